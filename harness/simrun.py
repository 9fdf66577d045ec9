"""`harness run --sim`: one run on the simulated cluster, same config, folder and report.

Owns ``run(cfg) -> RunResult`` for ``cfg.sim`` (the runner dispatches here)
and ``simulate(cfg) -> SimOutcome``, the run without the folder (the sweep
and the benchmarks call it). The phases are the real runner's
(harness/runner.py), in simulated time:

1. the nodes start at time 0 (``nodes.sim.world.World``: the real cores of
   ``cfg.system`` built from cluster.json's timing and options);
2. once a leader is known (polled every 50 ms, at most 10 s, like the real
   runner) the load starts: ``cfg.concurrency`` slots with the workload's
   generators (``harness.workload``), and the nemesis: the plan of
   ``faults.schedule.build_plan`` (or ``ReplayPlan`` for ``--replay``)
   carried out by ``faults.simulate.SimInterpreter``;
3. after ``time_limit`` simulated seconds the load stops (operations in
   flight end), every fault is healed, the cluster gets ``recovery_timeout``
   to have every node up and a leader, and the kv final step reads every key;
4. the same checker path (``harness.workload.check``), results.json, report,
   store index and ledger as a real run (``runner.finish_run``).

Replica agreement (faults/agreement.py) is sampled from the nodes' appliers
every 0.5 s of simulated time during and after the load and once at the end,
as the real interpreter asks for it, and the terms each core won
(faults/election.py) after every 0.1 s slice; a divergence or two leaders of
one term becomes a nemesis event of
the history, so the findings, the shrinker and ``harness check`` see it, and
with ``--stop-on-anomaly`` the first finding ends the load as the streaming
checker's first anomaly does (``_Follower``).

Random streams, each its own ``random.Random`` named from the seed: the
clients' (``ops:SEED:SLOT``, the generator's own), the faults'
(``nemesis:SEED``, the real runner's name, so a sim and a real run of one
seed draw the same plan), the network's (``net:SEED``), the disk's, and each
core incarnation's. Removing a fault operation therefore leaves every
slot's sequence of operations unchanged (their timing and outcomes change).

Determinism: nothing reads the wall clock, ids or hash order inside the
simulation; the history holds simulated ns. The wall-clock fields of
results.json are ``reports.runfolder.WALL_CLOCK_FIELDS`` (``started``,
``wall_s``, ``checker.seconds``): everything else is the same for the same
config and seed (docs/simulation.md).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import workload
from harness.config import ConfigError, RunConfig

SIM_SYSTEMS = ("raft", "paxos")
#: Fault kinds of real runs the simulator does not carry out (none: corrupt is
#: simulated too, docs/disk-and-clock.md "In simulation").
NOT_SIMULATED: tuple[str, ...] = ()
#: The disk and clock kinds the simulated cluster always offers (build_plan's kinds_available).
SIMULATED_DISK_KINDS = ("lose-unsynced", "clock")
LEADER_WAIT_S = 10.0
POLL_NS = 50_000_000
METRICS_NS = 250_000_000


def _error(msg: str) -> Exception:
    from harness.runner import RunError

    return RunError(msg)


@dataclass
class SimOutcome:
    """A simulated run before it is written: its history and figures."""

    cfg: RunConfig
    events: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    counts: dict[str, int]
    load_seconds: float
    simulated_s: float
    recovered: bool
    notes: list[str] = field(default_factory=list)
    sim_only: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    flushes: int = 0
    messages: int = 0
    check_s: float = 0.0
    #: The checker's verdict and dict (None until checked: ``simulate(check=False)``).
    verdict: str | None = None
    checker: dict[str, Any] | None = None
    #: (slot, n) of every invoked client operation, in invoke order (the shrinker's).
    ops: list[tuple[int, int]] = field(default_factory=list)

    @property
    def client_ops(self) -> int:
        """Client operations invoked (final reads not counted)."""
        return len(self.ops)


def prepare(config: RunConfig) -> RunConfig:
    """Resolve and validate ``config`` for a simulation; RunError (one line) if it cannot be."""
    if config.system not in SIM_SYSTEMS:
        raise _error(f"--sim simulates raft and paxos only, not the command {config.system!r} "
                     "(run it on real processes without --sim)")
    from harness import swarm

    cfg = swarm.run_settings(config.resolved())  # a default run's settings, per seed
    try:
        cfg.validate()
    except ConfigError as exc:
        raise _error(str(exc)) from None
    from faults import mixes, schedule

    try:
        schedule.check_spec(cfg.nemesis, network=True)
        kinds = () if mixes.mix_name(cfg.nemesis) is not None else \
            schedule.parse_spec(cfg.nemesis, network=True)
    except ValueError as exc:
        raise _error(f"--nemesis: {exc}") from None
    missing = [k for k in kinds if k in NOT_SIMULATED]
    if missing:
        raise _error(f"--nemesis {', '.join(missing)}: not modelled by the simulator yet "
                     "(run it on real processes without --sim)")
    return cfg


def _timing(cfg: RunConfig) -> Any:
    from nodes.common.core_api import Timing

    t = dict(cfg.timing or {})
    d = Timing()
    election = t.get("election_timeout_ms", d.election_timeout_ms)
    return Timing(heartbeat_ms=int(t.get("heartbeat_ms", d.heartbeat_ms)),
                  election_timeout_ms=(int(election[0]), int(election[1])),
                  tick_ms=int(t.get("tick_ms", d.tick_ms)))


def _plan(cfg: RunConfig, link_faults: tuple[str, ...],
          faults: list[dict[str, Any]] | None) -> Any:
    from faults import schedule
    from faults.plan import ReplayPlan

    if faults is not None:
        return ReplayPlan(faults)
    if cfg.replay:
        from harness.runner import _replay_ops

        return ReplayPlan(_replay_ops(cfg))
    return schedule.build_plan(cfg.nemesis, interval_s=cfg.nemesis_interval,
                               rng=random.Random(f"nemesis:{cfg.seed}"),
                               link_faults=link_faults, network=True, timing=cfg.timing,
                               kinds_available=SIMULATED_DISK_KINDS)


#: Peer messages one simulated second may carry before the run counts as a message
#: storm: 50x a default run's ~1,200/s and 5x `--rate 0 --concurrency 64`'s ~12,000/s.
#: Simulated time is not charged for CPU, so a livelock of the cores (an endless
#: exchange) would otherwise keep a run from ever reaching its end.
STORM_MESSAGES_PER_S = 60_000
#: The slices (simulated ns) between two looks at the message count.
SLICE_NS = 100_000_000
#: How often the replicas' agreement chains are compared (faults/interpret.py's AGREE_EVERY_S).
AGREE_EVERY_NS = 500_000_000


class _Storm(Exception):
    """The cores exchange messages without end; the run is cut short."""


class _AgreementSampler:
    """Replica agreement in simulated time (faults/agreement.py), as the real
    interpreter samples it: every ``AGREE_EVERY_NS`` of simulated time (looked
    at after each slice) and once at the end, each running, unpaused node's
    applier reports its agreement chain (the ``agree`` of its ``status``);
    a divergence is recorded at once as its nemesis event. The terms each
    core says it won (``led`` of its ``status``, faults/election.py) are
    looked at after every slice, as the real interpreter's views ask for
    status several times a second; two leaders of one term are recorded at
    once too. The same statuses feed the durable-state watch
    (faults/durable.py), but only of a node with no fsync in flight: a busy
    node's core is ahead of its disk, which the real driver never shows (it
    answers ``status`` only after the fsync). Deterministic: it reads the
    appliers and cores and changes nothing."""

    def __init__(self, world: Any, record: Callable[..., None]) -> None:
        from faults.agreement import EVENT, AgreementWatch
        from faults.durable import EVENT as DURABLE_EVENT
        from faults.durable import DurableWatch
        from faults.election import EVENT as ELECTION_EVENT
        from faults.election import ElectionWatch

        self.world = world
        self.record = record
        self.event = EVENT
        self.watch = AgreementWatch()
        self.election_event = ELECTION_EVENT
        self.elections = ElectionWatch()
        self.durable_event = DURABLE_EVENT
        self.durable = DurableWatch()
        self.next = world.now + AGREE_EVERY_NS
        self.since: dict[str, tuple[Any, int]] = {}  # node -> (pid, its newest mark seen)

    def look(self, final: bool = False) -> None:
        world = self.world
        for n in world.ids:
            node = world.nodes[n]
            if node.up and not node.paused and node.core is not None:
                status = node.core.status()
                for d in self.elections.observe(n, node.pid, status.get("led")):
                    self.record(self.election_event, d["value"], evidence=d["evidence"])
                if not node.busy:
                    for d in self.durable.observe(n, node.pid, status):
                        self.record(self.durable_event, d["value"], evidence=d["evidence"])
        if world.now < self.next and not final:
            return
        self.next = world.now + AGREE_EVERY_NS
        for n in world.ids:
            node = world.nodes[n]
            if not node.up or node.paused or node.applier is None:
                continue
            pid, since = self.since.get(n, (None, 0))
            if pid != node.pid:
                since = 0
            agree = node.applier.agreement(since)
            if agree is None:
                continue
            if agree["marks"]:
                since = agree["marks"][-1][0]
            self.since[n] = (node.pid, since)
            for d in self.watch.observe(n, node.pid, agree):
                self.record(self.event, d["value"], evidence=d["evidence"])


class _StormWatch:
    """Counts peer messages per simulated second (a window that restarts every
    second); deterministic: it counts messages, never wall time. ``agree``:
    the agreement sampler, looked at after every slice too."""

    def __init__(self, world: Any) -> None:
        self.world = world
        self.t, self.n = world.now, world.messages
        self.agree: _AgreementSampler | None = None

    def look(self) -> None:
        w = self.world
        span = max(1.0, (w.now - self.t) / 1e9)
        sent = w.messages - self.n
        if sent > STORM_MESSAGES_PER_S * span:
            raise _Storm(f"message storm: {sent:,} peer messages in {(w.now - self.t) / 1e9:.3f} "
                         f"simulated s before {w.now / 1e9:.3f} s (the budget is "
                         f"{STORM_MESSAGES_PER_S:,}/s): the cores exchange messages without end "
                         "(a livelock), so the run was cut short there")
        if w.now - self.t >= 1_000_000_000:
            self.t, self.n = w.now, w.messages


def _run(watch: _StormWatch, t_end: int, stop: Callable[[], bool] | None = None,
         each_slice: Callable[[], bool] | None = None) -> None:
    """``world.run_until(t_end, stop)`` in slices, raising ``_Storm`` (see _StormWatch);
    ``each_slice()`` true after a slice ends it too."""
    world = watch.world
    while world.now < t_end:
        world.run_until(min(t_end, world.now + SLICE_NS), stop)
        watch.look()
        if watch.agree is not None:
            watch.agree.look()
        if stop is not None and stop():
            return
        if each_slice is not None and each_slice():
            return


class _Follower:
    """--stop-on-anomaly in simulated time: after every slice the recorded events go
    through the streaming checker (checker/stream.py), as the real runner's
    follower reads history.jsonl, and the nemesis events through the findings
    (faults/findings.py: a replicas-diverged agreement event, a node that refused
    to restart); the first anomaly either proves ends the load (the rest of the
    run goes on as usual). A finding counts because the history cannot always
    show a divergence (a lost write on a hot key is explained by any timed-out
    write of it): a run that fails only by its finding would otherwise run its
    whole load. Deterministic: slices are simulated time."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        from checker.stream import StreamChecker
        from faults.findings import FindingWatch

        self.events = events
        self.fed = 0
        self.checker = StreamChecker()
        self.first: Any = None
        #: The first finding proven (faults/findings.py's anomaly dict), if any.
        self.finding: dict[str, Any] | None = None
        self._findings = FindingWatch()

    def look(self) -> bool:
        new = self.events[self.fed:]
        self.fed += len(new)
        for a in self.checker.feed_many(new):
            if self.first is None:
                self.first = a
        self.finding = self._findings.feed(new)
        return self.first is not None or self.finding is not None

    def note(self) -> str | None:
        a, f = self.first, self.finding
        if a is None and f is None:
            return None
        parts = []
        if a is not None:
            parts.append(f"streaming checker: anomaly on {a.key} at {(a.time or 0) / 1e9:.1f} s "
                         f"(--stop-on-anomaly ended the load): {a.sentence}")
        if f is not None:
            parts.append(f"{f['finding']} at {(f.get('time') or 0) / 1e9:.1f} s "
                         f"(--stop-on-anomaly ended the load): {f['sentence']}")
        return "; ".join(parts)


def simulate(cfg: RunConfig, *, faults: list[dict[str, Any]] | None = None,
             wire: bool = False, metrics: bool = True, check: bool = True) -> SimOutcome:
    """Run the resolved ``cfg`` on the simulated cluster (see the module header);
    writes nothing. ``faults``: carry out exactly these fault operations
    (faults.plan.recorded_ops form, as --replay does) instead of the config's
    plan; ``cfg.client_mask`` is honoured (nodes/sim/load.py); ``wire``: every
    peer message crosses the codec and msgpack (same history, ~1.6x the time:
    docs/simulation.md); ``check``: fill in ``verdict`` and ``checker``."""
    from faults.simulate import SimInterpreter
    from nodes.__main__ import load_protocol
    from nodes.common.clusterfile import node_ids
    from nodes.sim.load import SimLoad
    from nodes.sim.world import LINK_FAULTS, World

    wall0 = time.perf_counter()
    ids = node_ids(cfg.nodes)
    world = World(load_protocol(cfg.system), ids, seed=int(cfg.seed or 0), timing=_timing(cfg),
                  options=cfg.cluster_options(), wire_codec=wire)
    events: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    notes: list[str] = []
    if metrics:
        world.at(0, _sample, (world, samples))

    # 2. the load starts once someone leads
    deadline = world.now + int(LEADER_WAIT_S * 1e9)
    while world.leader() is None and world.now < deadline:
        world.run_until(world.now + POLL_NS)
    start = world.now
    gen_cls = workload.generator_class(cfg.workload)
    extra = workload.options(cfg)
    seen: dict[str, Any] = {}
    gens = [gen_cls(cfg.seed, slot, keys=cfg.keys, ops=cfg.ops, concurrency=cfg.concurrency,
                    rate=cfg.rate, seen=seen, **extra) for slot in range(cfg.concurrency or 1)]
    mask = cfg.client_mask or {}
    load = SimLoad(world, ids, gens, cfg.request_timeout, events,
                   drop_slots=frozenset(int(x) for x in mask.get("drop_slots") or ()),
                   skip_ops=frozenset((int(a), int(b)) for a, b in mask.get("skip_ops") or ()),
                   keep_ops=(frozenset((int(a), int(b)) for a, b in mask["keep_ops"])
                             if mask.get("keep_ops") is not None else None))

    def record(f: str, value: Any, **fields: Any) -> None:
        events.append({"time": world.now, "process": "nemesis", "type": "info", "f": f,
                       "value": value, **fields})

    plan = _plan(cfg, LINK_FAULTS, faults)
    nemesis = SimInterpreter(plan, world, record, LINK_FAULTS) if plan is not None else None
    if nemesis is not None:
        nemesis.start()
    load.go()
    storm = None
    watch = _StormWatch(world)
    watch.agree = _AgreementSampler(world, record)
    follower = _Follower(events) if cfg.stop_on_anomaly else None
    try:
        _run(watch, start + int(cfg.time_limit * 1e9),
             each_slice=follower.look if follower is not None else None)
    except _Storm as exc:
        storm = str(exc)
    load_seconds = (world.now - start) / 1e9
    if follower is not None and follower.note() is not None:
        notes.append(follower.note())  # type: ignore[arg-type]
    try:
        if storm is not None:
            raise _Storm(storm)
        _after_load(cfg, watch, load, nemesis, notes)
    except _Storm as exc:
        storm = str(exc)
        notes.append(storm)
        load.stop()
        if nemesis is not None:
            nemesis.stop()
    watch.agree.look(final=True)  # after the final reads: the nodes have converged
    recovered = storm is None and world.all_up() and world.leader() is not None

    for i, e in enumerate(events):
        e["index"] = i  # written first (see write_history)
    out = SimOutcome(cfg, events, samples, dict(load.counts), load_seconds, world.now / 1e9,
                     recovered, notes, nemesis.sim_only() if nemesis is not None else [],
                     wall_s=time.perf_counter() - wall0, flushes=world.flushes,
                     messages=world.messages, ops=list(load.ops))
    if check:
        out.verdict, out.checker = _checked(out)
        if storm is not None and out.verdict == "valid":
            out.verdict = "unknown"  # a cut run proves nothing valid; an anomaly still counts
    return out


def _after_load(cfg: RunConfig, watch: _StormWatch, load: Any, nemesis: Any,
                notes: list[str]) -> None:
    """Stop the load, heal, wait for recovery and read back (_Storm may cut it short)."""
    world = watch.world
    from harness.generator import key_names
    from nodes.sim.load import FinalReads

    # 3. stop the load, heal, recover, read back
    load.stop()
    _run(watch, world.now + int((cfg.request_timeout * 3 + 2) * 1e9), lambda: load.active == 0)
    if load.active:
        notes.append(f"{load.active} client slots did not stop")
    if nemesis is not None:
        nemesis.stop()
        nemesis.heal()
    recover_end = world.now + int(cfg.recovery_timeout * 1e9)
    while not (world.all_up() and world.leader() is not None) and world.now < recover_end:
        _run(watch, world.now + POLL_NS)
    final = workload.get(cfg.workload).final
    if final == "harness.workload:final_kv_reads":
        reads = FinalReads(load, key_names(cfg.keys), cfg.request_timeout,
                           world.now + int(cfg.recovery_timeout * 1e9))
        _run(watch, world.now + int((cfg.recovery_timeout + 2 * cfg.request_timeout) * 1e9),
             lambda: reads.done)
        if not all(reads.ok.values()):
            notes.append("final reads failed for " +
                         ", ".join(k for k, good in reads.ok.items() if not good))
    elif final is not None:
        notes.append(f"the simulator has no final step for workload {cfg.workload!r}; skipped")


def _sample(arg: tuple[Any, list[dict[str, Any]]]) -> None:
    """metrics.jsonl lines for every node (docs/run-folder.md), every 250 ms simulated."""
    world, out = arg
    now = world.now
    for n in world.ids:
        s = world.status(n)
        line: dict[str, Any] = {"time": now, "kind": "status", "node": n, "up": s is not None}
        for key in ("role", "term", "leader", "commit_index", "last_applied", "log_len"):
            v = (s or {}).get(key)
            if key == "term" and v is None and s is not None:
                v = s.get("ballot")
            line[key] = v
        out.append(line)
    for n in world.ids:
        node = world.nodes[n]
        state = "dead" if not node.up else ("paused" if node.paused else "running")
        out.append({"time": now, "kind": "proc", "node": n, "pid": node.pid, "state": state,
                    "cpu": None, "rss": None})
    world.at(now + METRICS_NS, _sample, arg)


def history_text(events: list[dict[str, Any]]) -> str:
    """history.jsonl's text: ``index`` first, then the event's own order (as the recorder)."""
    dumps = json.dumps
    return "".join(dumps({"index": e["index"], **{k: v for k, v in e.items() if k != "index"}})
                   + "\n" for e in events)


def run(config: RunConfig, *, faults: list[dict[str, Any]] | None = None,
        shrunk: dict[str, Any] | None = None, keep: bool = True, index: bool = True,
        report: bool = True, wire: bool = False) -> Any:
    """One simulated run, written as a run folder (see the module header).
    ``faults``: carry out these fault operations instead of the config's plan;
    ``shrunk``: results.json ``shrunk`` (harness/shrink.py's story of how this
    run was shrunk). ``keep`` False: a passing run keeps only config.json and
    results.json (a sweep's passing seeds); a failing one always keeps everything."""
    from harness.runner import RunError, RunResult, finish_run
    from reports import runfolder

    cfg = prepare(config)
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    out = simulate(cfg, faults=faults, wire=wire)
    verdict, checker = out.verdict or "unknown", out.checker
    failing = verdict != "valid"
    keep_all = keep or failing
    try:
        folder = runfolder.new_run_folder(Path(cfg.store), cfg.name or cfg.system)
        runfolder.write_json(folder.config, cfg.to_dict())
        if keep_all:
            runfolder.write_atomic(folder.history, history_text(out.events))
            runfolder.write_atomic(folder.metrics, "".join(json.dumps(m) + "\n"
                                                           for m in out.metrics))
            from nodes.common.clusterfile import write_cluster

            write_cluster(folder.root, cfg.nodes, net="direct", timing=cfg.timing,
                          options=cfg.cluster_options())
    except (runfolder.StoreError, runfolder.ReportError, OSError) as exc:
        raise RunError(str(exc)) from None
    extra: dict[str, Any] = {"simulated": True, "simulated_s": round(out.simulated_s, 3),
                             "sim_only_faults": out.sim_only}
    if shrunk is not None:
        extra["shrunk"] = shrunk
    result: RunResult = finish_run(
        cfg, folder.root, started, out.events, out.counts, out.load_seconds, out.notes,
        False, out.recovered, checked=(verdict, checker),
        extra={**extra, "wall_s": round(out.wall_s + out.check_s, 3)},
        report=report and keep_all, index=index)
    return result


def _checked(out: SimOutcome) -> tuple[str, dict[str, Any] | None]:
    t0 = time.perf_counter()
    try:
        verdict, checker = workload.check(out.events, out.cfg)
    except Exception as exc:  # noqa: BLE001 - a checker crash is "unknown", not a lost run
        verdict, checker = "unknown", None
        out.notes.append(f"checker failed: {exc!r}")
    out.check_s = time.perf_counter() - t0
    return verdict, checker

