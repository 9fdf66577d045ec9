"""One `harness run`: cluster up, load and faults, heal, final reads, check, report.

Owns the order of a run and its result. ``run(config) -> RunResult`` is the
single entry point the command line, the library API and the pytest plugin
share; ``run_series`` repeats it over consecutive seeds (``--test-count``).

Phases:
1. resolve and validate the config; make the run folder (its layout and the
   results.json schema are reports.runfolder's, docs/run-folder.md); write
   config.json and cluster.json; start the nodes (and the proxy) and wait for
   ``status``;
2. for ``time_limit`` seconds: workers invoke operations, the nemesis injects
   faults, the poller samples metrics, the history is written as it happens;
3. stop the load, heal every fault, wait (bounded) for the cluster to serve,
   read every key with fresh clients;
4. end every process, check the history, write results.json, the report and
   the store index, point store/latest at the run.

Invariants:
- Every process the run starts is ended by PID before ``run`` returns or
  raises, on Ctrl-C and SIGTERM too (first signal: stop, heal, check what was
  recorded; the nodes also die with a SIGKILLed harness).
- Usage/config/start-up problems raise ``RunError`` (one line, exit 2) with
  nothing left running; every other outcome is a RunResult whose exit code is
  0 valid, 1 invalid, 3 unknown (checker gave up, or the run was interrupted);
  docs/exit-codes.md.
- Figures derived from the history (latency percentiles, availability per
  fault window) are computed once, by reports.analysis, from the history file
  the run wrote; the report draws them from results.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import reports
from checker import nemesis, op_record
from checker.history import HistoryError, pair, read_history
from harness import workload
from harness.client import NodeClient
from harness.cluster import ClusterError, LocalCluster
from harness.config import ConfigError, RunConfig
from harness.metrics import MetricsPoller, live_status
from harness.recorder import Clock, Recorder
from harness.workers import WorkerPool, WorkerSettings
from nodes.common.clusterfile import write_cluster
from reports import analysis, runfolder

EXIT_CODES = {"valid": 0, "invalid": 1, "unknown": 3}
#: Tries to start the cluster when a port was taken between picking and binding.
START_ATTEMPTS = 3
#: A node process younger than this that has not answered ``status`` yet is booting;
#: the nemesis's status requests give it BOOTING_STATUS_S instead of 0.2 s.
BOOT_S = 1.0
BOOTING_STATUS_S = 0.02


class RunError(Exception):
    """The run could not start (bad option, unwritable store, node exits): one line, exit 2."""


@dataclass
class RunResult:
    """What a run found. ``results`` is the content of results.json (docs/run-folder.md).

    ``anomalies`` are the checker's as results.json has them, ``{"key", "sentence",
    "ops", "prefix"}`` where ``ops`` and ``prefix`` are operation ids (positions in
    ``operations``, the run's history paired by ``checker.history.pair``), plus
    ``"operations"``: the ops that ``ops`` names, as readable records
    (``checker.op_record``: process, f, key, value, output, type, start, end, ...)."""

    verdict: str
    exit_code: int
    run_dir: Path
    config: RunConfig
    results: dict[str, Any] = field(default_factory=dict)
    report: Path | None = None
    interrupted: bool = False

    @property
    def valid(self) -> bool:
        return self.verdict == "valid"

    @functools.cached_property
    def anomalies(self) -> list[dict[str, Any]]:
        found = list((self.results.get("checker") or {}).get("anomalies") or [])
        if not found:
            return []
        try:
            ops = self.operations
        except (HistoryError, OSError):  # a history gone or damaged: the ids stay, unread
            return found
        return [{**a, "operations": [op_record(ops[i]) for i in runfolder.anomaly_ops(a)
                                     if 0 <= i < len(ops)]} for a in found]

    @functools.cached_property
    def operations(self) -> list[Any]:
        """The run's operations (``checker.history.Op``), read from history.jsonl on first use;
        ``operations[i]`` is the op an anomaly names by id ``i``."""
        return pair(read_history(runfolder.RunFolder(self.run_dir).history))

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.results.get("counts") or {})

    @property
    def availability(self) -> list[Any]:
        return list(self.results.get("availability") or [])


# --- the live part ---------------------------------------------------------------


class Progress:
    """One live status line on a terminal (stderr); silent otherwise."""

    def __init__(self, enabled: bool, time_limit: float) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.time_limit = time_limit
        self.faults = nemesis.FaultReader()  # the one reading of nemesis events, fed live
        self._last_ops = 0
        self._last_t = time.monotonic()
        self._width = 0
        self.anomaly = ""  # "anomaly on k3 at 12.3 s", once the streaming checker proves one

    def fault(self, f: str, value: Any) -> None:
        self.faults.feed(f, value, 0)  # times do not matter here: only what is active

    def show(self, elapsed: float, counts: dict[str, int], phase: str = "") -> None:
        if not self.enabled:
            return
        done = counts["ok"] + counts["fail"] + counts["info"]
        now = time.monotonic()
        rate = (done - self._last_ops) / max(1e-3, now - self._last_t)
        self._last_ops, self._last_t = done, now
        faults = ", ".join(_fault_label(w.kind, w.value) for w in self.faults.active) or "none"
        line = (f"[{elapsed:5.1f}/{self.time_limit:g}s] {rate:6.0f} ops/s  ok {counts['ok']}"
                f"  fail {counts['fail']}  info {counts['info']}  faults: {faults}"
                f"{'  ' + self.anomaly if self.anomaly else ''}"
                f"{'  ' + phase if phase else ''}")[:160]
        pad = max(0, self._width - len(line))
        self._width = len(line)
        sys.stderr.write("\r" + line + " " * pad)
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and self._width:
            sys.stderr.write("\r" + " " * self._width + "\r")
            sys.stderr.flush()


def _fault_label(kind: str, value: Any) -> str:
    """``kill ["n2"]`` -> ``kill n2``; ``partition {...}`` -> ``partition halves``."""
    if isinstance(value, list):
        return f"{kind} {' '.join(map(str, value))}"
    if isinstance(value, dict) and "shape" in value:
        return f"{kind} {value['shape']}{' one-way' if value.get('oneway') else ''}"
    return kind


class _Follower:
    """The streaming checker (checker/stream.py) in a thread of its own.

    It tails history.jsonl as the recorder writes it, every ``period_s``,
    and feeds the complete lines in one batch: no work on the clients' or
    the recorder's path, whatever writes the file. ``on_anomaly`` is called
    (in this thread) with the first anomaly proven, ``on_finding`` with the
    first finding of the nemesis events (faults/findings.py: replicas
    diverged, a node that refused to restart), as the simulated follower
    does: a run that fails only by its finding would otherwise run its whole
    load under --stop-on-anomaly. The verdict still comes from the full check
    at the end (docs/checker.md).
    """

    def __init__(self, path: Path, on_anomaly: Callable[[Any], None],
                 on_finding: Callable[[dict[str, Any]], None] | None = None,
                 period_s: float = 0.2) -> None:
        from checker.stream import StreamChecker
        from faults.findings import FindingWatch

        self.path = path
        self.checker = StreamChecker()
        self.findings = FindingWatch()
        self.on_anomaly = on_anomaly
        self.on_finding = on_finding
        self.period_s = period_s
        self.first: Any = None
        self.error = ""
        self.cpu_s = 0.0  # thread CPU time spent following
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="follow", daemon=True)

    @property
    def finding(self) -> dict[str, Any] | None:
        """The first finding proven so far (faults/findings.py), if any."""
        return self.findings.first

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10.0)

    def _run(self) -> None:
        from checker.history import parse_jsonl

        rest = b""
        try:
            with self.path.open("rb") as f:
                while True:
                    stopping = self._stop.wait(self.period_s)
                    chunk = f.read()
                    cut = chunk.rfind(b"\n")
                    if cut >= 0:
                        c0 = time.thread_time()
                        lines, rest = rest + chunk[:cut], chunk[cut + 1:]
                        events = parse_jsonl(lines.decode("utf-8"), str(self.path))
                        for a in self.checker.feed_many(events):
                            if self.first is None:
                                self.first = a
                                self.on_anomaly(a)
                        if self.finding is None:
                            found = self.findings.feed(events)
                            if found is not None and self.on_finding is not None:
                                self.on_finding(found)
                        self.cpu_s += time.thread_time() - c0
                    else:
                        rest += chunk
                    if stopping:
                        return
        except (OSError, HistoryError, UnicodeDecodeError) as exc:
            self.error = str(exc)  # the full check at the end reads the file again


@dataclass
class _Live:
    """State shared between the phases of one run."""

    cfg: RunConfig
    cluster: LocalCluster
    recorder: Recorder
    poller: MetricsPoller
    progress: Progress
    build_nemesis: Callable[..., Any] | None
    network: Any = None  # NetworkControl for --net netns (the proxy is found by address)
    interrupted: bool = False
    load_seconds: float = 0.0
    recovered: bool = True
    notes: list[str] = field(default_factory=list)
    #: Client workers whose last batch never reached the recorder (WorkerPool.lost).
    lost_workers: list[int] = field(default_factory=list)
    closers: list[Callable[[], None]] = field(default_factory=list)
    follower: _Follower | None = None


async def _drive(live: _Live) -> None:
    cfg = live.cfg
    loop = asyncio.get_running_loop()
    stop_load = asyncio.Event()
    stop_poll = asyncio.Event()
    hard_stop = asyncio.Event()

    def on_signal() -> None:
        if live.interrupted:
            hard_stop.set()  # a second Ctrl-C: skip recovery and final reads
        live.interrupted = True
        stop_load.set()

    handled: list[int] = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
            handled.append(sig)
    poll_task = asyncio.create_task(live.poller.run(stop_poll))
    try:
        # Start the load once someone leads (nodes that do not say who leads: at once).
        await _wait_for(lambda: live.poller.has_leader(), stop_load, 10.0)
        # The client worker processes (harness/workers.py) feed the recorder.
        settings = WorkerSettings(live.cluster.client_addrs, cfg.request_timeout)
        pool = WorkerPool(settings=settings, recorder=live.recorder, seed=cfg.seed,
                          keys=cfg.keys, ops=cfg.ops, concurrency=cfg.concurrency,
                          workload=cfg.workload, options=workload.options(cfg),
                          rate=cfg.rate, log=live.cluster.log_dir / "workers.log",
                          client_mask=cfg.client_mask)
        live.closers.append(pool.close)
        await pool.ready(30.0)
        start = loop.time()
        if cfg.follow:
            live.follower = _start_follower(live, loop, stop_load, start)
        nemesis = None
        if live.build_nemesis is not None:
            nemesis = live.build_nemesis(cfg.nemesis, _nemesis_context(live))
            nemesis_task = asyncio.create_task(nemesis.run(stop_load))
        pool.go()
        while not stop_load.is_set():
            elapsed = loop.time() - start
            if elapsed >= cfg.time_limit:
                stop_load.set()
                break
            live.progress.show(elapsed, live.recorder.counts)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop_load.wait(), min(0.5, cfg.time_limit - elapsed))
        live.load_seconds = loop.time() - start
        live.progress.show(live.load_seconds, live.recorder.counts, "stopping clients")
        live.notes.extend(await pool.stop(timeout=cfg.request_timeout * 3 + 2))
        live.lost_workers = list(pool.lost)
        if nemesis is not None:
            live.progress.show(live.load_seconds, live.recorder.counts, "healing")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(nemesis_task, 10.0)
            if not nemesis_task.done():
                nemesis_task.cancel()
            await asyncio.gather(nemesis_task, return_exceptions=True)
            if nemesis_task.done() and not nemesis_task.cancelled() and nemesis_task.exception():
                live.notes.append(f"nemesis failed: {nemesis_task.exception()!r}")
            heal = asyncio.create_task(nemesis.heal())
            impatient = asyncio.create_task(hard_stop.wait())
            await asyncio.wait([heal, impatient], timeout=60.0,
                               return_when=asyncio.FIRST_COMPLETED)
            impatient.cancel()
            if not heal.done():
                heal.cancel()  # processes are ended below anyway; proxy rules die with it
                live.notes.append("heal did not finish")
            (result,) = await asyncio.gather(heal, return_exceptions=True)
            if isinstance(result, Exception):  # a heal that fails must not hide the history
                live.notes.append(f"heal failed: {result!r}")
        if not hard_stop.is_set() and not live.interrupted:
            live.progress.show(live.load_seconds, live.recorder.counts, "recovering")
            live.recovered = await _wait_for(
                lambda: all(live.poller.latest.values()) and live.poller.has_leader(),
                hard_stop, cfg.recovery_timeout)
        final = workload.final(cfg.workload)
        if final is not None and not hard_stop.is_set() and not live.interrupted:
            live.progress.show(live.load_seconds, live.recorder.counts, "final reads")
            live.notes.extend(await asyncio.to_thread(
                final, cfg, settings, live.recorder, pool.next_process(), cfg.recovery_timeout))
    finally:
        if live.follower is not None:
            live.follower.stop()
            _follow_notes(live)
        stop_poll.set()
        await asyncio.gather(poll_task, return_exceptions=True)
        for sig in handled:
            loop.remove_signal_handler(sig)
        live.progress.done()


def _start_follower(live: _Live, loop: asyncio.AbstractEventLoop, stop_load: asyncio.Event,
                    start: float) -> _Follower:
    """Follow the history; on the first proven anomaly show it and, with
    --stop-on-anomaly, end the load (the rest of the run goes on as usual)."""

    def on_anomaly(a: Any) -> None:
        at = (a.time or 0) / 1e9
        live.progress.anomaly = f"anomaly on {a.key} at {at:.1f} s"
        if live.cfg.stop_on_anomaly:
            loop.call_soon_threadsafe(stop_load.set)

    def on_finding(finding: dict[str, Any]) -> None:
        at = (finding.get("time") or 0) / 1e9
        live.progress.anomaly = f"{finding['finding']} at {at:.1f} s"
        if live.cfg.stop_on_anomaly:
            loop.call_soon_threadsafe(stop_load.set)

    f = _Follower(Path(live.recorder.path), on_anomaly, on_finding)
    f.start()
    return f


def _follow_notes(live: _Live) -> None:
    f = live.follower
    assert f is not None
    if f.first is not None:
        a = f.first
        stopped = " (--stop-on-anomaly ended the load)" if live.cfg.stop_on_anomaly else ""
        live.notes.append(f"streaming checker: anomaly on {a.key} at {(a.time or 0) / 1e9:.1f} s"
                          f"{stopped}: {a.sentence}")
    if f.finding is not None:
        d = f.finding
        stopped = " (--stop-on-anomaly ended the load)" if live.cfg.stop_on_anomaly else ""
        live.notes.append(f"{d['finding']} at {(d.get('time') or 0) / 1e9:.1f} s{stopped}: "
                          f"{d['sentence']}")
    if f.error:
        live.notes.append(f"streaming checker stopped: {f.error}")


async def _wait_for(cond: Callable[[], bool], stop: asyncio.Event, timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if stop.is_set() or loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def _nemesis_context(live: _Live) -> Any:
    from faults.api import NemesisContext

    def record(f: str, value: Any, **fields: Any) -> None:
        # fields: at, target, evidence (docs/faults.md "Nemesis events")
        live.recorder.record({"process": "nemesis", "type": "info", "f": f, "value": value,
                              **fields})
        live.progress.fault(f, value)

    async def leader() -> str | None:
        return live.poller.leader()

    # Its own sockets: the poller's are busy on its own schedule.
    statuses = NodeClient(live.cluster.client_addrs, live.cluster.node_ids[0],
                          follow_leader=False)
    live.closers.append(statuses.close)

    # The PID each node last answered from: a node that has not answered since it
    # (re)started is still booting (200-500 ms of Python start-up), and a plan's
    # view waits for its slowest node, so a booting node gets a short timeout: a
    # reactive plan keeps seeing the others every few ms instead of every 0.2 s.
    # Past BOOT_S a node that never answered is slow, not booting: the usual timeout.
    answered_pid: dict[str, int | None] = {}
    first_seen: dict[str, tuple[int, float]] = {}  # node -> (pid, loop time first seen)

    async def status(node: str) -> dict[str, Any] | None:
        pid = live.cluster.pid(node)
        booting = False
        if pid is not None and answered_pid.get(node) != pid:
            now = asyncio.get_running_loop().time()
            seen = first_seen.get(node)
            if seen is None or seen[0] != pid:
                first_seen[node] = seen = (pid, now)
            booting = now - seen[1] < BOOT_S
        got = await live_status(live.cluster, statuses, node, BOOTING_STATUS_S if booting else 0.2)
        if got is not None:
            answered_pid[node] = pid
        return got

    async def answers(node: str, timeout: float) -> bool:
        # asks even a node we paused: the evidence that the pause bit
        try:
            return await statuses.status(node, timeout) is not None
        except (OSError, TimeoutError):
            return False

    return NemesisContext(
        cluster=live.cluster,
        proxy_control=live.cluster.proxy_control,
        record=record,
        rng=random.Random(f"nemesis:{live.cfg.seed}"),
        leader=leader,
        status=status,
        answers=answers,
        interval_s=live.cfg.nemesis_interval,
        **({"network": live.network} if live.network is not None else {}),
    )


# --- results ---------------------------------------------------------------------


def _check(events: list[dict], cfg: RunConfig) -> tuple[str, dict[str, Any] | None]:
    """(verdict, checker dict) of the run's history, by its workload's checker."""
    from harness import workload

    return workload.check(events, cfg)


def _ineffective(events: list[dict], notes: list[str]) -> list[dict[str, Any]]:
    """The fault windows whose recorded evidence says they had no effect."""
    from faults.interpret import ineffective_faults

    try:
        return ineffective_faults(events)
    except Exception as exc:  # noqa: BLE001 - a figure, not the verdict
        notes.append(f"fault evidence failed: {exc!r}")
        return []


def _replayed(cfg: RunConfig, events: list[dict]) -> dict[str, Any] | None:
    """What a ``--replay`` run replayed: the source folder and its operations."""
    if not cfg.replay:
        return None
    starts = [e for e in events if e.get("process") == "nemesis"
              and not str(e.get("f", "")).endswith("-end")]
    return {"run": cfg.replay, "ops": len(_replay_ops(cfg)), "applied": len(starts)}


def _bugs(cfg: RunConfig) -> list[dict[str, str]]:
    """Each known bug the nodes ran with and its mistake, so the report needs no registry."""
    from harness import bugs

    return [{"name": name, "mistake": bugs.BUGS[name].mistake if name in bugs.BUGS else ""}
            for name in cfg.bugs]


# --- entry points ----------------------------------------------------------------


def prepare(config: RunConfig) -> tuple[RunConfig, Callable[..., Any] | None]:
    """Resolve and validate ``config``; find the nemesis builder. RunError if unusable.
    A default run's settings are swarmed here, per seed (harness/swarm.py)."""
    from harness import swarm

    cfg = swarm.run_settings(config.resolved())
    try:
        cfg.validate()
    except ConfigError as exc:
        raise RunError(str(exc)) from None
    from faults import schedule

    try:
        schedule.check_spec(cfg.nemesis, network=cfg.net != "direct")
    except ValueError as exc:
        raise RunError(f"--nemesis: {exc}") from None
    replay = _replay_ops(cfg) if cfg.replay else None
    build = None
    if replay is not None or cfg.nemesis.strip().lower() != "none":
        build = functools.partial(schedule.build_nemesis, replay=replay)
    if cfg.net == "netns":
        from faults import netns

        reason = netns.unavailable_reason()
        if reason:
            raise RunError(reason)
    from faults import disk

    reason = disk.unavailable_reason(_fault_kinds(cfg, replay))
    if reason:
        raise RunError(reason)
    if cfg.system not in ("raft", "paxos"):
        import shutil
        exe = cfg.command()[0]
        if not (shutil.which(exe) or Path(exe).exists()):
            raise RunError(f"--system: no such program: {exe}")
    return cfg, build


def _fault_kinds(cfg: RunConfig, replay: list[dict[str, Any]] | None) -> tuple[str, ...]:
    """The fault kinds the run may use, so the cluster is set up for the disk and
    clock kinds: the replayed operations', else faults.schedule.fault_kinds (a
    plain spec's, the hunting plan's where available, a mix's)."""
    from faults import schedule

    if replay is not None:
        return tuple(dict.fromkeys(str(op.get("f")) for op in replay))
    return schedule.fault_kinds(cfg.nemesis, network=cfg.net != "direct")


def _replay_ops(cfg: RunConfig) -> list[dict[str, Any]]:
    """The fault operations the run folder ``cfg.replay`` recorded (faults.plan)."""
    from faults.plan import recorded_ops

    try:
        ops = recorded_ops(read_history(runfolder.RunFolder(Path(cfg.replay)).history))
    except (OSError, HistoryError) as exc:
        raise RunError(f"--replay: {exc}") from None
    if not ops:  # replaying nothing would be a fault-free run passed off as a replay
        raise RunError(f"--replay: {cfg.replay} recorded no fault operations to replay")
    return ops


def replay_config(run_dir: str | Path, **overrides: Any) -> RunConfig:
    """The config of a run to replay: the folder's config.json (same seed, load,
    timing and bugs) with ``replay`` set to the folder, on real processes (a
    simulated run's too, unless ``sim=True`` is given); RunError if unreadable."""
    folder = runfolder.RunFolder(Path(run_dir))
    try:
        data = runfolder.read_json(folder.config)
        if not data:
            raise ValueError("not a run folder")
        cfg = RunConfig.from_dict({**data, "replay": None})
    except (OSError, ValueError, TypeError) as exc:
        raise RunError(f"--replay: {run_dir}: no readable config.json ({exc})") from None
    if not folder.history.exists():
        raise RunError(f"--replay: {run_dir}: no history.jsonl, so no faults to replay")
    # A simulated run's plan replays on real processes (the real-world check of
    # docs/simulation.md); pass sim=True to replay it in the simulator instead.
    return dataclasses.replace(cfg, replay=str(run_dir), test_count=1,
                               **{"sim": False, **overrides})


def run(config: RunConfig) -> RunResult:
    """Run one test as ``config`` says; see the module header. ``config.sim``:
    the simulated cluster instead (harness/simrun.py), same folder and report."""
    if config.sim:
        from harness import simrun

        return simrun.run(config)
    cfg, build_nemesis = prepare(config)
    try:
        folder = runfolder.new_run_folder(Path(cfg.store), cfg.name)
    except runfolder.StoreError as exc:
        raise RunError(str(exc)) from None
    run_dir = folder.root
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    try:
        runfolder.write_json(folder.config, cfg.to_dict())
    except runfolder.ReportError as exc:
        raise RunError(str(exc)) from None

    interrupted = False
    previous_term = None
    if threading.current_thread() is threading.main_thread():
        def terminate(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt
        previous_term = signal.signal(signal.SIGTERM, terminate)
    live: _Live | None = None
    from faults import disk

    kinds = _fault_kinds(cfg, _replay_ops(cfg) if cfg.replay else None)
    try:
        with contextlib.ExitStack() as stack:
            nets = _enter_netns(stack, cfg) if cfg.net == "netns" else None
            command = nets.command(cfg.command()) if nets else cfg.command()
            network = nets.network() if nets else None
            for attempt in range(1, START_ATTEMPTS + 1):
                # Fresh ports each attempt: a port found free may be taken by another
                # program before the node binds it (parallel test runs).
                cluster_json = write_cluster(
                    run_dir, cfg.nodes, net="direct" if nets else cfg.net, timing=cfg.timing,
                    options=cfg.cluster_options())
                if nets:
                    nets.rewrite_cluster(cluster_json)
                # Time 0 of history, metrics and the proxy's journal: the nodes' start.
                clock = Clock()
                proxy_args = ["--seed", str(cfg.seed), "--t0-ns", str(clock.start_ns)]
                if cfg.journal:
                    proxy_args += ["--journal", str(folder.net.resolve())]
                cluster = stack.enter_context(
                    LocalCluster(cluster_json, command, folder.logs, proxy_args=proxy_args,
                                 **disk.needs(kinds)))
                try:
                    cluster.start_all()
                    cluster.wait_ready(cfg.start_timeout)
                    break
                except ClusterError as exc:
                    cluster.close()
                    if "already in use" not in str(exc) or attempt == START_ATTEMPTS:
                        raise RunError(str(exc)) from None
            recorder = Recorder(folder.history, clock)
            poller = MetricsPoller(cluster, folder.metrics, clock)
            live = _Live(cfg, cluster, recorder, poller, Progress(cfg.progress, cfg.time_limit),
                         build_nemesis, network=network)
            try:
                asyncio.run(_drive(live))
            except KeyboardInterrupt:
                live.interrupted = True
            finally:
                if previous_term is not None:  # asyncio reset SIGTERM to the default
                    signal.signal(signal.SIGTERM, terminate)
                poller.close()
                for close in live.closers:
                    close()
                recorder.close()
            interrupted = live.interrupted
    except KeyboardInterrupt:
        interrupted = True  # processes (and namespaces) are ended by the exit stack
        if live is None:
            raise RunError("interrupted before the run started") from None
    finally:
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)
    return _finish(cfg, run_dir, started, live, interrupted)


def _enter_netns(stack: contextlib.ExitStack, cfg: RunConfig) -> Any:
    """One network namespace per node (faults.netns), removed when ``stack`` closes."""
    from faults import netns

    try:
        return stack.enter_context(
            netns.NetnsCluster([f"n{i}" for i in range(1, cfg.nodes + 1)]))
    except netns.NetnsError as exc:
        raise RunError(str(exc)) from None


def _finish(cfg: RunConfig, run_dir: Path, started: str, live: _Live,
            interrupted: bool) -> RunResult:
    folder = runfolder.RunFolder(run_dir)
    notes = list(live.notes)
    live.progress.show(live.load_seconds, live.recorder.counts, "checking")
    events: list[dict] = []
    try:
        events = read_history(folder.history)
    except Exception as exc:  # noqa: BLE001 - a history that cannot be read is "unknown"
        notes.append(f"checker failed: {exc!r}")
        events = []
        return finish_run(cfg, run_dir, started, events, dict(live.recorder.counts),
                          live.load_seconds, notes, interrupted, live.recovered,
                          checked=("unknown", None), on_checked=live.progress.done)
    return finish_run(cfg, run_dir, started, events, dict(live.recorder.counts),
                      live.load_seconds, notes, interrupted, live.recovered,
                      on_checked=live.progress.done, lost_workers=live.lost_workers)


def finish_run(cfg: RunConfig, run_dir: Path, started: str, events: list[dict],
               counts: dict[str, int], load_seconds: float, notes: list[str],
               interrupted: bool, recovered: bool, *,
               checked: tuple[str, dict[str, Any] | None] | None = None,
               extra: dict[str, Any] | None = None,
               on_checked: Callable[[], None] | None = None,
               report: bool = True, index: bool = True,
               lost_workers: list[int] | None = None) -> RunResult:
    """Check ``events``, write results.json, the report, the store index and the
    ledger: the end of every run, real or simulated (harness/simrun.py).
    ``extra``: results.json fields only some runs have (``simulated``, ...);
    ``report``/``index``: draw the page and the store index (a sweep's passing
    seeds and its per-seed indexes skip them). ``lost_workers``: client workers
    whose last batch never came; an anomaly may then be an operation the history
    lacks, so "invalid" becomes "unknown" (a false alarm is worse than a miss)."""
    notes = list(notes)
    if checked is None:
        try:
            verdict, checker = _check(events, cfg)
        except Exception as exc:  # noqa: BLE001 - a checker crash is "unknown", not a lost run
            verdict, checker = "unknown", None
            notes.append(f"checker failed: {exc!r}")
    else:
        verdict, checker = checked
    if lost_workers and verdict == "invalid":
        verdict = "unknown"
        notes.append(f"client worker(s) {', '.join(map(str, lost_workers))} ended without "
                     "their last batch: operations they sent may be missing from the history, "
                     "so the anomalies found prove nothing (verdict unknown)")
    if on_checked is not None:
        on_checked()
    try:
        figures = analysis.run_figures(events)
    except Exception as exc:  # noqa: BLE001 - the figures are optional
        figures = {"latency_ms": analysis.latency_percentiles_ms([]), "availability": []}
        notes.append(f"availability failed: {exc!r}")
    exit_code = EXIT_CODES[verdict]
    if interrupted and verdict != "invalid":
        exit_code = 3  # the run could not finish: a clean prefix proves little
    completed = counts.get("ok", 0) + counts.get("fail", 0) + counts.get("info", 0)
    results: dict[str, Any] = {
        "verdict": verdict,
        "exit_code": exit_code,
        "name": cfg.name,
        "system": cfg.system,
        "seed": cfg.seed,
        "command": " ".join(cfg.argv()),
        "started": started,
        "duration_s": round(load_seconds, 3),
        "nodes": cfg.nodes,
        "nemesis": cfg.nemesis or "default",
        "bugs": _bugs(cfg),
        "counts": counts,
        "ops_per_s": round(completed / load_seconds, 1) if load_seconds else 0.0,
        "latency_ms": figures["latency_ms"],
        "checker": checker,
        "availability": figures["availability"],
        "ineffective_faults": _ineffective(events, notes),
        "replay": _replayed(cfg, events),
        "interrupted": interrupted,
        "recovered": recovered,
        "notes": notes,
        **(extra or {}),
    }
    try:
        results = runfolder.write_results(run_dir, results)
    except runfolder.ReportError as exc:  # the verdict is known; say where the history is
        folder = runfolder.RunFolder(run_dir)
        raise RunError(f"{exc}; verdict {verdict}, history kept in {folder.history}") from None
    store = Path(cfg.store)
    if index:
        runfolder.point_latest(store, run_dir)
    page = None
    if report:
        try:
            page = reports.write_report(run_dir)
        except Exception as exc:  # noqa: BLE001 - no report is better than no verdict
            notes.append(f"report failed: {exc!r}")
    if index:
        with contextlib.suppress(Exception):
            reports.write_store_index(store)
    _record_ledger(store, run_dir)
    if notes != results["notes"]:
        with contextlib.suppress(runfolder.ReportError):  # results.json stands as written
            results = runfolder.write_results(run_dir, {**results, "notes": notes})
    return RunResult(verdict, exit_code, run_dir, cfg, results, page, interrupted)


def _record_ledger(store: Path, run_dir: Path) -> None:
    """Best effort: the ledger (reports/ledger.py) rebuilds what it missed."""
    try:
        from reports import ledger
    except ImportError:
        return
    with contextlib.suppress(ledger.LedgerError, OSError):
        ledger.record(store, run_dir)


def run_series(config: RunConfig, executor: Any = None) -> Iterator[RunResult]:
    """``config.test_count`` runs with seeds seed, seed+1, ...; yields each result.

    Simulated runs, and real ones given an ``executor`` (any
    ``concurrent.futures.Executor``, a Dask client's included), ``workers`` or a
    ``scheduler``, go over a pool (harness/sweep.py; each real task starts its own
    cluster on its own free ports). Otherwise real runs go one after another, so
    they do not share the machine's cores."""
    if config.sim or executor is not None or config.scheduler or config.workers:
        from harness import sweep

        yield from sweep.run_series(config, executor)
        return
    base = config.resolved()
    for i in range(base.test_count):
        yield run(dataclasses.replace(base, seed=base.seed + i, test_count=1))


# --- summaries -------------------------------------------------------------------


def describe(anomaly: dict[str, Any]) -> str:
    """One line for an anomaly of results.json: "anomaly on key k3: ...", or its
    kind where that says more (a transaction cycle, a finding with no key)."""
    kind = anomaly.get("kind")
    where = f" on key {anomaly['key']}" if anomaly.get("key") is not None else ""
    what = kind if kind and kind != "non-linearizable" else "anomaly"
    return f"{what}{where}: {anomaly.get('sentence')}"


def summary(result: RunResult) -> str:
    """The short end-of-run summary the command line prints."""
    r = result.results
    c = r.get("counts", {})
    lat = r.get("latency_ms", {})
    lines = [
        f"{r.get('name')} seed {r.get('seed')}: {c.get('ok', 0)} ok, {c.get('fail', 0)} fail, "
        f"{c.get('info', 0)} info in {r.get('duration_s', 0):g} s ({r.get('ops_per_s', 0):g} ops/s"
        + (f", p50 {lat['p50']:g} ms, p99 {lat['p99']:g} ms" if lat.get("p50") is not None else "")
        + ")",
    ]
    for anomaly in ((r.get("checker") or {}).get("anomalies") or [])[:3]:  # no history read
        lines.append(f"  {describe(anomaly)}")
    for note in r.get("notes", []):
        lines.append(f"  note: {note}")
    lines.append(f"run folder: {result.run_dir}")
    if result.report is not None:
        lines.append(f"report: {result.report}")
    verdict = result.verdict.upper() + (" (interrupted)" if result.interrupted else "")
    lines.append(f"verdict: {verdict}")
    return "\n".join(lines)


def summary_table(results: list[RunResult]) -> str:
    """One row per run, for --test-count and nightly CI."""
    header = f"{'#':>3}  {'seed':>10}  {'verdict':8}  {'ok':>7}  {'fail':>6}  {'info':>6}  run"
    rows = [header, "-" * len(header)]
    for i, res in enumerate(results, 1):
        c = res.counts
        rows.append(f"{i:>3}  {res.config.seed:>10}  {res.verdict:8}  {c.get('ok', 0):>7}  "
                    f"{c.get('fail', 0):>6}  {c.get('info', 0):>6}  {res.run_dir}")
    bad = sum(1 for r in results if r.exit_code != 0)
    rows.append(f"{len(results) - bad} of {len(results)} runs passed")
    return "\n".join(rows)


def series_exit_code(results: list[RunResult]) -> int:
    codes = {r.exit_code for r in results}
    for code in (1, 3, 2):
        if code in codes:
            return code
    return 0
