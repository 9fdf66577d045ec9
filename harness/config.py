"""RunConfig: one plain object that describes a `harness run`, saved as config.json.

Owns the run options, their defaults and their validation. The command line,
the library API (``from harness import RunConfig, run``) and the pytest plugin
all build a RunConfig and hand it to ``harness.runner.run``; nothing else
decides what a run does, so a saved config.json repeats a run exactly.

Invariants:
- Every field is JSON-serialisable; ``to_dict``/``from_dict`` round-trip.
- ``validate()`` raises ``ConfigError`` with one line a user can act on; a
  config that validates can be run (ports, processes and the store are checked
  when the run starts).
- ``resolved()`` fills every "choose for me" default (seed, concurrency, name,
  net mode) so config.json records what actually ran.
"""

from __future__ import annotations

import dataclasses
import json
import random
import shlex
import sys
from dataclasses import dataclass, field
from typing import Any

from nodes.common.options import READ_MODES

OPS = ("read", "write", "cas")
#: ``--system maelstrom:CMD``: a Maelstrom program (docs/maelstrom.md).
MAELSTROM = "maelstrom:"
SYSTEMS = ("raft", "paxos")
NET_MODES = ("proxy", "direct", "netns")
CONSISTENCY = ("strict-serializable", "serializable", "snapshot-isolation", "read-committed")


class ConfigError(ValueError):
    """A run option is wrong; the message is one line."""


def default_net() -> str:
    """``proxy``: it carries partitions and link faults and needs no root."""
    return "proxy"


@dataclass
class RunConfig:
    """Every option of one run. Field comments are the --help defaults."""

    #: ``raft``, ``paxos``, or a node command line (``--id ID --cluster PATH`` appended).
    system: str = "raft"
    nodes: int = 5
    #: Seconds of client load and faults (recovery, final reads and checking come after).
    time_limit: float = 60.0
    #: Client workers; None = 2 per node.
    concurrency: int | None = None
    #: Total operations per second over all workers; 0 = as fast as they can.
    rate: float = 200.0
    #: Number of keys the workload spreads over.
    keys: int = 8
    #: Operation mix, each equally likely.
    ops: list[str] = field(default_factory=lambda: list(OPS))
    #: Nemesis spec for faults.schedule.build_nemesis; "" = its default mix, "none" = no faults.
    nemesis: str = ""
    #: A run folder whose recorded fault operations this run re-applies (--replay).
    replay: str | None = None
    #: Seconds between the starts of fault windows.
    nemesis_interval: float = 5.0
    #: Seed of the operation and fault schedule; None = pick one (recorded in config.json).
    seed: int | None = None
    #: Repeat the run this many times with seeds seed, seed+1, ...
    test_count: int = 1
    store: str = "store"
    #: Run name (folder under the store); None = the system name.
    name: str | None = None
    #: Known bugs to turn on in the nodes (cluster.json options.bugs).
    bugs: list[str] = field(default_factory=list)
    #: ``proxy`` (faults go through faults.netproxy), ``direct``, or ``netns`` (root);
    #: None = proxy when faults.netproxy exists, otherwise direct.
    net: str | None = None
    #: Journal every peer message to net.jsonl (proxy mode).
    journal: bool = False
    #: Seconds a client waits for a reply before recording ``info``.
    request_timeout: float = 1.0
    #: Seconds to wait for the nodes to answer status at start.
    start_timeout: float = 30.0
    #: Seconds to wait after healing for the cluster to serve again.
    recovery_timeout: float = 20.0
    #: Seconds the checker may spend; None = no limit.
    check_time_limit: float | None = 300.0
    #: Node timing for cluster.json (e.g. {"heartbeat_ms": 50}); None = the nodes' defaults.
    timing: dict | None = None
    #: More cluster.json ``options`` (e.g. {"max_batch": 1}); ``bugs`` comes from --bug.
    node_options: dict | None = None
    #: How the nodes serve reads (cluster.json ``options.read_mode``): ``log`` (a read is
    #: a log entry) or ``index`` (read-index); None = the nodes' one default.
    read_mode: str | None = None
    #: Live progress line on stderr when it is a terminal.
    progress: bool = True
    #: Follow the history with the streaming checker while the run goes
    #: (checker/stream.py; the progress line shows an anomaly when one is proven).
    follow: bool = True
    #: End the load early once the streaming checker proves an anomaly (heal,
    #: final reads, full check and report as usual). Needs ``follow``.
    stop_on_anomaly: bool = False
    #: Under the default nemesis (the hunting plan), draw the run's timing, batching,
    #: client timeout and fault interval per seed where left at their defaults
    #: (harness/swarm.py ``run_settings``; the node count is kept); False = the nodes' defaults.
    swarm: bool = True
    #: Simulate the cluster in one process (nodes/sim) instead of real node processes;
    #: times in the history are simulated nanoseconds.
    sim: bool = False
    #: Processes a ``--test-count`` sweep runs at once; None = the machine's cores.
    workers: int | None = None
    #: A running Dask distributed scheduler (``tcp://127.0.0.1:8786``) that runs the
    #: sweep's seeds instead of local processes; needs the ``[dask]`` extra.
    scheduler: str | None = None
    #: A sweep stops at the first run that is not valid.
    stop_on_fail: bool = False
    #: A sweep keeps every run folder, not only the failing ones (simulated sweeps).
    keep_all: bool = False
    #: Client operations left out (a shrunk run, `harness shrink`): ``{"drop_slots":
    #: [slot, ...], "skip_ops": [[slot, n], ...], "keep_ops": [[slot, n], ...]}``: those
    #: slots invoke nothing; a slot's n-th generated operation (0-based) is drawn but not
    #: invoked, so the rest are unchanged; with ``keep_ops``, only the listed operations
    #: are invoked (every other one is skipped, and a slot ends after its last listed one).
    client_mask: dict | None = None
    #: What the clients do and which checker judges it (harness/workload.py): ``kv``
    #: (read, write, cas; linearizability) or ``list-append`` (transactions; Elle-style).
    workload: str = "kv"
    #: Most micro-operations in one transaction (``list-append``).
    txn_length: int = 4
    #: The consistency model a ``list-append`` history is judged against.
    consistency: str = "strict-serializable"

    # --- derived -----------------------------------------------------------------

    def cluster_options(self) -> dict[str, Any]:
        """cluster.json ``options``: node_options, the bugs, and read_mode when chosen."""
        options: dict[str, Any] = {**(self.node_options or {}), "bugs": list(self.bugs)}
        if self.read_mode is not None:
            options["read_mode"] = self.read_mode
        return options

    def maelstrom_command(self) -> str | None:
        """The Maelstrom program's command line of ``--system maelstrom:CMD``, else None."""
        if self.system.startswith(MAELSTROM):
            return self.system[len(MAELSTROM):].strip()
        return None

    def system_kind(self) -> str:
        """``maelstrom`` for a Maelstrom program, ``node`` for raft, paxos or a node command."""
        return "maelstrom" if self.maelstrom_command() is not None else "node"

    def command(self) -> list[str]:
        """The node command line, without ``--id ID --cluster PATH``. A Maelstrom
        program runs under its host (maelstrom/host.py), which keeps our node contract."""
        if self.system in SYSTEMS:
            return [sys.executable, "-m", "nodes", self.system]
        program = self.maelstrom_command()
        if program is not None:
            return [sys.executable, "-m", "maelstrom.host", "--workload", self.workload,
                    "--command", program]
        return shlex.split(self.system)

    def system_name(self) -> str:
        if self.system in SYSTEMS:
            return self.system
        program = self.maelstrom_command()
        parts = shlex.split(program if program is not None else self.system)
        base = parts[-1] if parts else "custom"
        name = "".join(c if c.isalnum() or c in "-_." else "-" for c in base.split("/")[-1])
        return f"maelstrom-{name}" if program is not None else name

    def resolved(self) -> RunConfig:
        """A copy with every open default decided. With ``--nemesis bug:NAME``
        the demonstration mix's settings (faults/mixes.py) fill the options left
        at their defaults; ``--bug`` alone changes nothing but the nodes' flags."""
        from faults import mixes

        cfg = mixes.profile(self)
        return dataclasses.replace(
            cfg,
            concurrency=cfg.concurrency or 2 * cfg.nodes,
            seed=cfg.seed if cfg.seed is not None else random.SystemRandom().randrange(2**31),
            name=cfg.name or cfg.system_name(),
            net=cfg.net or default_net(),
            ops=list(cfg.ops),
            bugs=list(cfg.bugs),
            # The streaming checker (checker/stream.py) reads every read as a register
            # read: on sets, counters or transactions it would prove false anomalies.
            follow=cfg.follow and cfg.workload in ("kv", "lin-kv"),
            stop_on_anomaly=cfg.stop_on_anomaly and cfg.workload in ("kv", "lin-kv"),
        )

    def validate(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ConfigError(msg)

        need(isinstance(self.nodes, int) and self.nodes >= 1, f"--nodes must be at least 1, not {self.nodes}")
        need(self.time_limit > 0, f"--time-limit must be positive, not {self.time_limit:g}")
        need(self.concurrency is None or self.concurrency >= 1,
             f"--concurrency must be at least 1, not {self.concurrency}")
        need(self.rate >= 0, f"--rate must be 0 (unlimited) or positive, not {self.rate:g}")
        need(self.keys >= 1, f"--keys must be at least 1, not {self.keys}")
        need(bool(self.ops), "--ops needs at least one of read, write, cas")
        bad = [op for op in self.ops if op not in OPS]
        need(not bad, f"--ops: unknown operation {', '.join(bad)} (choose from read, write, cas)")
        need(self.nemesis_interval > 0, "--nemesis-interval must be positive")
        need(self.test_count >= 1, f"--test-count must be at least 1, not {self.test_count}")
        need(self.net is None or self.net in NET_MODES,
             f"--net must be one of {', '.join(NET_MODES)}, not {self.net!r}")
        need(self.read_mode is None or self.read_mode in READ_MODES,
             f"--read-mode must be one of {', '.join(READ_MODES)}, not {self.read_mode!r}")
        need(self.request_timeout > 0, "request timeout must be positive")
        need(self.follow or not self.stop_on_anomaly,
             "--stop-on-anomaly needs the streaming checker (drop --no-follow)")
        need(bool(self.system.strip()), "--system must be raft, paxos or a command")
        program = self.maelstrom_command()
        try:
            parts = shlex.split(program if program is not None else self.system)
        except ValueError as exc:
            raise ConfigError(f"--system: cannot parse the command: {exc}") from None
        need(program is None or bool(parts),
             "--system maelstrom: needs the node's command, e.g. maelstrom:'python3 echo.py'")
        need(bool(self.store), "--store must name a directory")
        need(self.workers is None or self.workers >= 1,
             f"--workers must be at least 1, not {self.workers}")
        need(self.scheduler is None or bool(self.scheduler.strip()),
             "--scheduler must be a Dask scheduler address such as tcp://127.0.0.1:8786")
        need(self.client_mask is None or _mask_ok(self.client_mask),
             "--client-mask must be {\"drop_slots\": [slot, ...], \"skip_ops\": [[slot, n], ...], "
             "\"keep_ops\": [[slot, n], ...]}")
        need(self.txn_length >= 1, f"--txn-length must be at least 1, not {self.txn_length}")
        need(self.consistency in CONSISTENCY,
             f"--consistency must be one of {', '.join(CONSISTENCY)}, not {self.consistency!r}")
        from harness import workload

        need(self.workload in workload.WORKLOADS,
             f"--workload must be one of {', '.join(workload.WORKLOADS)}, not {self.workload!r}")
        need(self.workload not in workload.NOT_THERE_YET,
             workload.NOT_THERE_YET.get(self.workload, ""))
        kind = self.system_kind()
        fitting = [n for n in workload.WORKLOADS if workload.fits(n, kind)]
        need(workload.fits(self.workload, kind),
             f"--workload {self.workload} does not run on "
             + ("a Maelstrom node" if kind == "maelstrom" else "raft, paxos or a node command")
             + f"; choose one of {', '.join(fitting)}")
        need(not (self.sim and kind == "maelstrom"),
             "--sim simulates our own raft and paxos cores; a Maelstrom node runs as a process")
        from harness import bugs

        try:
            bugs.check(self.bugs, self.system)
        except bugs.BugError as exc:
            raise ConfigError(str(exc)) from None
        for name in self.bugs:
            bug = bugs.BUGS.get(name)
            want = getattr(bug, "workload", "kv")
            need(bug is None or self.system not in SYSTEMS or want == self.workload,
                 f"--bug {name} breaks only {want} operations: add --workload {want}")
        if self.name is not None:
            need(bool(self.name) and "/" not in self.name and self.name not in (".", ".."),
                 f"--name must be a plain folder name, not {self.name!r}")

    # --- serialisation ----------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown run option(s): {', '.join(unknown)}")
        return cls(**data)

    def argv(self) -> list[str]:
        """The `harness run` arguments that repeat this (resolved) run."""
        d = RunConfig()
        out = ["harness", "run"]

        def opt(flag: str, value: Any, default: Any) -> None:
            if value != default and value is not None:
                out.extend([flag, str(value)])

        opt("--system", self.system, d.system)
        opt("--nodes", self.nodes, d.nodes)
        opt("--time-limit", f"{self.time_limit:g}", f"{d.time_limit:g}")
        opt("--concurrency", self.concurrency, 2 * self.nodes)
        opt("--rate", f"{self.rate:g}", f"{d.rate:g}")
        opt("--keys", self.keys, d.keys)
        opt("--ops", ",".join(self.ops), ",".join(d.ops))
        opt("--nemesis", self.nemesis, d.nemesis)
        opt("--replay", self.replay, None)
        opt("--nemesis-interval", f"{self.nemesis_interval:g}", f"{d.nemesis_interval:g}")
        opt("--seed", self.seed, None)
        opt("--store", self.store, d.store)
        opt("--name", self.name, self.system_name())
        for bug in self.bugs:
            out.extend(["--bug", bug])
        opt("--net", self.net, default_net())
        opt("--read-mode", self.read_mode, None)
        if self.journal:
            out.append("--journal")
        opt("--request-timeout", f"{self.request_timeout:g}", f"{d.request_timeout:g}")
        opt("--recovery-timeout", f"{self.recovery_timeout:g}", f"{d.recovery_timeout:g}")
        if self.check_time_limit != d.check_time_limit and self.check_time_limit is not None:
            out.extend(["--check-time-limit", f"{self.check_time_limit:g}"])
        if not self.follow:
            out.append("--no-follow")
        if self.stop_on_anomaly:
            out.append("--stop-on-anomaly")
        if not self.swarm:
            out.append("--no-swarm")
        if self.sim:
            out.append("--sim")
        opt("--workers", self.workers, None)
        opt("--scheduler", self.scheduler, None)
        if self.stop_on_fail:
            out.append("--stop-on-fail")
        if self.keep_all:
            out.append("--keep-all")
        if self.client_mask:
            out.extend(["--client-mask", json.dumps(self.client_mask, separators=(",", ":"))])
        opt("--workload", self.workload, d.workload)
        opt("--txn-length", self.txn_length, d.txn_length)
        opt("--consistency", self.consistency, d.consistency)
        return [shlex.quote(a) for a in out]


def _mask_ok(mask: Any) -> bool:
    if not isinstance(mask, dict) or set(mask) - {"drop_slots", "skip_ops", "keep_ops"}:
        return False
    slots = mask.get("drop_slots", [])
    return (isinstance(slots, list) and all(isinstance(s, int) for s in slots)
            and all(_pairs_ok(mask.get(k, [])) for k in ("skip_ops", "keep_ops")))


def _pairs_ok(ops: Any) -> bool:
    """A list of [slot, n] int pairs."""
    return isinstance(ops, list) and all(
        isinstance(o, list) and len(o) == 2 and all(isinstance(x, int) for x in o) for o in ops)
