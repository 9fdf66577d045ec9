"""`harness run`: parse options into a RunConfig and call harness.runner.

Thin on purpose (STYLE.md): every decision about what a run does lives in
RunConfig and the runner, which the library API and pytest plugin share.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from harness.bugs import names as bug_names
from harness.config import RunConfig
from harness.runner import RunError, run, run_series, series_exit_code, summary, summary_table
from nodes.common.options import DEFAULT_READ_MODE, READ_MODES

D = RunConfig()


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run",
        help="run a cluster under faults, record the history, check it, write a report",
        description="Start real node processes, drive concurrent clients while the nemesis "
        "injects faults, record history.jsonl, heal, read back, check for linearizability and "
        "write the run folder. Exit 0 valid, 1 anomaly found, 2 usage or config error, "
        "3 unknown (checker gave up or the run could not finish).",
    )
    a = p.add_argument
    a("--system", default=D.system, metavar="raft|paxos|COMMAND",
      help="the nodes to test: raft, paxos, or any node command (quoted) that keeps the node "
      "contract; '--id ID --cluster PATH' is appended (default: %(default)s)")
    a("--nodes", type=int, default=D.nodes, help="cluster size (default: %(default)s)")
    a("--time-limit", type=float, default=D.time_limit, metavar="SECONDS",
      help="seconds of client load and faults; recovery, final reads and the check come after "
      "(default: %(default)g)")
    a("--concurrency", type=int, default=None, metavar="N",
      help="client workers, each bound to a node (default: 2 per node)")
    a("--rate", type=float, default=D.rate, metavar="OPS",
      help="operations per second in total over all workers, 0 = as fast as they can "
      "(default: %(default)g)")
    a("--keys", type=int, default=D.keys, help="number of keys (default: %(default)s)")
    a("--ops", default=",".join(D.ops), metavar="LIST",
      help="operation mix, comma-separated from read, write, cas (default: %(default)s)")
    a("--nemesis", default=D.nemesis, metavar="SPEC",
      help="faults, e.g. kill,pause,partition,net or all; 'none' for no faults; bug:NAME for "
      "the demonstration mix and settings written for a known bug (faults/mixes.py) "
      "(default: the hunting plan, faults/hunt.py: a seeded search over every fault kind "
      "the network allows, which knows no bug)")
    a("--replay", default=None, metavar="RUN_DIR",
      help="re-apply the fault operations RUN_DIR recorded, at the same offsets (a 'leader' "
      "target is resolved again), with its config.json (same seed and load), on real "
      "processes (also for a simulated RUN_DIR), or in simulation with --sim; --store, "
      "--name and --no-progress still apply (default: off)")
    a("--nemesis-interval", type=float, default=D.nemesis_interval, metavar="SECONDS",
      help="seconds between the starts of fault windows (default: %(default)g)")
    a("--seed", type=int, default=None,
      help="seed of the operation and fault schedule (default: random, saved in config.json)")
    a("--test-count", type=int, default=D.test_count, metavar="N",
      help="repeat with seeds seed, seed+1, ...; print a summary table; exit non-zero if any "
      "run fails (default: %(default)s)")
    a("--store", default=D.store, metavar="DIR",
      help="where run folders go; DIR/latest points at the newest (default: %(default)s/)")
    a("--name", default=None, help="run name, the folder under the store (default: the system)")
    a("--bug", action="append", default=[], metavar="NAME",
      help="turn on a known bug in the nodes (cluster.json options.bugs); repeatable. It "
      "changes nothing else: for the fault mix written for it, add --nemesis bug:NAME. raft: " + ", ".join(bug_names("raft")) + "; paxos: "
      + ", ".join(bug_names("paxos")) + " (default: none)")
    a("--net", choices=("proxy", "direct", "netns"), default=None,
      help="proxy: peer traffic through faults.netproxy (partitions, link faults); direct: "
      "nodes talk straight to each other; netns: namespaces and firewall rules, root only "
      "(default: proxy when available, else direct)")
    a("--read-mode", choices=READ_MODES, default=None,
      help="how the nodes serve reads: log (each read is a log entry, like a write) or index "
      "(read-index: one round of heartbeats confirms a batch of reads) (cluster.json "
      f"options.read_mode; default: the nodes' default, {DEFAULT_READ_MODE})")
    a("--journal", action="store_true",
      help="journal every peer message to net.jsonl (proxy mode; default: off)")
    a("--request-timeout", type=float, default=D.request_timeout, metavar="SECONDS",
      help="seconds a client waits for a reply before recording info (default: %(default)g)")
    a("--recovery-timeout", type=float, default=D.recovery_timeout, metavar="SECONDS",
      help="seconds to wait after healing for the cluster to serve (default: %(default)g)")
    a("--check-time-limit", type=float, default=D.check_time_limit, metavar="SECONDS",
      help="seconds the checker may spend before it answers unknown (default: %(default)g)")
    a("--no-progress", action="store_true",
      help="no live progress line, even on a terminal (default: shown on a terminal)")
    a("--stop-on-anomaly", action="store_true",
      help="end the load as soon as the streaming checker proves an anomaly; then heal, "
           "final reads, full check and report as usual (default: run to --time-limit)")
    a("--no-follow", action="store_true",
      help="do not follow the history with the streaming checker during the run "
           "(default: follow; the verdict always comes from the full check at the end)")
    a("--no-swarm", action="store_true",
      help="keep the nodes' default timing, batching and client timeout under the default "
           "nemesis (default: drawn per seed where not given, harness/swarm.py)")
    a("--sim", action="store_true",
      help="simulate the cluster in one process (the same cores, faults, checker and report; "
      "deterministic from --seed; raft and paxos only) (default: real processes)")
    a("--workers", type=int, default=None, metavar="N",
      help="runs of a --test-count sweep at once, each real one with its own cluster and ports "
      "(default: the machine's cores for --sim; real runs one after another)")
    a("--scheduler", default=None, metavar="ADDRESS",
      help="run a --test-count sweep's seeds on a running Dask distributed scheduler "
      "(e.g. tcp://127.0.0.1:8786; needs pip install '.[dask]'); each task runs its own "
      "cluster on its worker's machine and writes its run folder to --store, which every "
      "worker must reach (default: local processes)")
    a("--stop-on-fail", action="store_true",
      help="a --test-count sweep stops at the first run that is not valid (default: run all)")
    a("--keep-all", action="store_true",
      help="a simulated sweep keeps every run folder, not only the failing ones "
      "(default: keep the failing ones)")
    a("--client-mask", default=None, metavar="JSON", type=_json_object,
      help="client operations to leave out, as a shrunk run records them: "
      '{"drop_slots": [slot, ...], "skip_ops": [[slot, n], ...]} (default: none)')
    a("--workload", default=D.workload, metavar="NAME",
      help="what the clients do: kv (read, write, cas; checked for linearizability) or "
      "list-append (transactions; checked Elle-style) (default: %(default)s)")
    a("--txn-length", type=int, default=D.txn_length, metavar="N",
      help="most micro-operations per transaction, list-append (default: %(default)s)")
    a("--consistency", default=D.consistency, metavar="MODEL",
      help="what a list-append history must be: strict-serializable, serializable, "
      "snapshot-isolation or read-committed (default: %(default)s)")
    p.set_defaults(func=main)


def _json_object(text: str) -> dict:
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


#: RunConfig fields that are not a flag of the same name (they are built below), and
#: --replay, which replay_config reads instead.
_NOT_PLAIN = frozenset({"ops", "bugs", "progress", "follow", "replay", "swarm"})


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The RunConfig of ``harness run``'s flags: each flag named like a field goes in as
    it is, so a new option needs only its field and its flag."""
    given = vars(args)
    plain = {f.name: given[f.name] for f in dataclasses.fields(RunConfig)
             if f.name in given and f.name not in _NOT_PLAIN}
    return RunConfig(
        **plain,
        ops=[op.strip() for op in args.ops.split(",") if op.strip()],
        bugs=list(args.bug),
        progress=not args.no_progress,
        follow=not args.no_follow,
        swarm=not args.no_swarm,
    )


# What a replay takes from the command line; everything else comes from the run replayed.
REPLAY_OPTIONS = ("store", "name", "sim")


def _replay_overrides(args: argparse.Namespace) -> dict[str, object]:
    """``--store``/``--name`` given with ``--replay``; any other option given is
    a usage error, since the replay repeats the recorded run's settings and
    would silently ignore it."""
    from harness.cli import build_parser

    defaults = vars(build_parser().parse_args(["run"]))
    given = {k: v for k, v in vars(args).items()
             if k in defaults and k not in ("replay", "no_progress", "func")
             and v != defaults[k]}
    others = sorted(k for k in given if k not in REPLAY_OPTIONS)
    if others:
        flags = ", ".join("--" + k.replace("_", "-") for k in others)
        raise RunError(f"--replay repeats the recorded run's settings; it takes only "
                       f"--store, --name, --sim and --no-progress, not {flags}")
    # The world is chosen here, not inherited: --replay plays a run's faults on real
    # processes (a simulated run's too: does its failure hold for real?), --sim --replay
    # re-simulates them.
    return {**{k: v for k, v in given.items() if k in REPLAY_OPTIONS}, "sim": bool(args.sim)}


def main(args: argparse.Namespace) -> int:
    try:
        if args.replay:
            from harness.runner import replay_config

            config = replay_config(args.replay, progress=not args.no_progress,
                                   **_replay_overrides(args))
        else:
            config = config_from_args(args)
        if config.test_count == 1:
            result = run(config)
            print(summary(result))
            return result.exit_code
        if config.sim or config.scheduler or config.workers:
            from harness import sweep  # one table, seeds over a pool (harness/sweep.py)

            return sweep.main(config)
        results = []
        for result in run_series(config):
            print(summary(result), end="\n\n", flush=True)
            results.append(result)
            if result.interrupted:
                break
        print(summary_table(results))
        return series_exit_code(results)
    except RunError as exc:
        print(f"harness run: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("harness run: interrupted", file=sys.stderr)
        return 3
