"""Shrinking: from a failing run to the smallest story that still fails the same way.

Owns the search (docs/shrinking.md). Given a failing run folder, it re-runs
candidates that keep less of it, and keeps a candidate when it still fails
with an anomaly of the same *kind* (same model, same kind of violation, as
reports.ledger names it; ``any_anomaly`` accepts any anomaly):

1. a shorter run (a binary search on the time limit; faults after it go);
2. fewer fault operations (delta debugging, Zeller's ddmin);
3. shorter fault windows (each hold halved while it still fails);
4. only the anomaly's client operations: first only the operations on its
   key, then only the operations the checker named (the anomaly's own and the
   prefix it was checked against); if neither fails, a binary search for the
   latest time before which every operation but the named ones can go;
5. fewer clients (ddmin over the client slots), then fewer client operations
   (ddmin over the (slot, n) operations the last failing candidate invoked).

Each candidate is one deterministic simulated run (harness/simrun.py): the
faults are replayed from the candidate's list, and the client operations left
out are a ``RunConfig.client_mask``; since workload, faults and network draw
from separate random streams, leaving one thing out changes nothing else that
was drawn. A real run of our own nodes is shrunk through simulation: its
recorded faults are re-simulated with its workload seed first; if that does
not fail, ``ShrinkError`` says so (the real failure hung on timing the
simulation did not reproduce).

A run of a node command (``--system COMMAND``, or a Maelstrom program) cannot
be simulated: ``RealProcesses`` runs each candidate on real processes instead
(its faults replayed as ``--replay`` does, in a scratch store), with the
passes that need no client mask: a shorter run, fewer faults, shorter
windows, fewer clients (a lower concurrency), fewer faults. Real runs are not
deterministic, so a candidate counts as failing when it failed once, the
original is not run again (its folder says it failed), and the result is
labelled best effort.

Invariants: the original run folder is only read; the search stops when its
wall-clock budget runs out and returns the smallest failing candidate found so
far (never one that was not seen to fail); the result is written as a new run
folder through the simulator, marked ``shrunk`` in results.json.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from harness.config import RunConfig

T = TypeVar("T")

#: Steps of the binary search on the time limit.
TIME_STEPS = 6
#: Times a window's hold is halved at most.
HOLD_HALVINGS = 3
#: The first guess of a shorter run ends this long after the anomaly's operations did.
ANOMALY_SLACK_S = 1.0
#: The shortest run a candidate may be, in seconds.
MIN_TIME_S = 0.5


class ShrinkError(Exception):
    """The run cannot be shrunk (one line: why)."""


@dataclass(frozen=True)
class Candidate:
    """What one attempt keeps of the run."""

    time_limit: float
    faults: tuple[dict[str, Any], ...]
    drop_slots: frozenset[int] = frozenset()
    skip_ops: frozenset[tuple[int, int]] = frozenset()
    #: Client slots (None: the base config's); the real-process pass lowers it.
    concurrency: int | None = None

    def config(self, base: RunConfig) -> RunConfig:
        mask = None
        if self.drop_slots or self.skip_ops:
            mask = {"drop_slots": sorted(self.drop_slots),
                    "skip_ops": [list(o) for o in sorted(self.skip_ops)]}
        return dataclasses.replace(base, time_limit=self.time_limit, client_mask=mask,
                                   test_count=1, sim=True, replay=None,
                                   concurrency=self.concurrency or base.concurrency)


@dataclass(frozen=True)
class Outcome:
    """What a simulated attempt gave (harness/simrun.py's outcome, the fields used here)."""

    verdict: str
    checker: dict[str, Any] | None
    client_ops: int
    ops: tuple[tuple[int, int], ...]
    #: Seconds into the history when the first anomaly's last operation ended (None: unknown).
    anomaly_end_s: float | None = None
    #: The key of each of ``ops`` (None for a multi-key transaction).
    keys: tuple[Any, ...] = ()
    #: Positions in ``ops`` of the operations the first anomaly names (its own and its prefix).
    anomaly_ops: tuple[int, ...] = ()
    #: When each of ``ops`` was invoked, in seconds of history time.
    times: tuple[float, ...] = ()
    #: The run folder the attempt left (real processes only; None when nothing was kept).
    run_dir: str | None = None


#: Runs one candidate: (config, faults) -> Outcome.
Simulate = Callable[[RunConfig, list[dict[str, Any]]], Outcome]


@dataclass
class Shrunk:
    """The smallest failing candidate and how it was found."""

    candidate: Candidate
    outcome: Outcome
    original: Candidate
    original_outcome: Outcome
    steps: list[str] = field(default_factory=list)
    attempts: int = 0
    seconds: float = 0.0
    out_of_budget: bool = False


def kind_of(checker: dict[str, Any] | None) -> tuple[str, str]:
    """(model, anomaly kind) of a result: what "the same failure" means."""
    from reports.ledger import anomaly_kind

    return str((checker or {}).get("model") or ""), anomaly_kind(checker)


def ddmin(items: Sequence[T], fails: Callable[[list[T]], bool],
          out_of_time: Callable[[], bool] = lambda: False) -> list[T]:
    """A smallest-found sublist of ``items`` (order kept) for which ``fails`` holds,
    by Zeller's delta debugging: try each chunk alone, then each complement, and
    refine the chunks when neither fails. ``fails(items)`` is assumed true."""
    items = list(items)
    if items and fails([]):
        return []
    n = 2
    while len(items) >= 2 and not out_of_time():
        size = -(-len(items) // n)
        chunks = [items[i:i + size] for i in range(0, len(items), size)]
        for chunk in chunks:
            if len(chunk) < len(items) and fails(chunk):
                items, n = chunk, 2
                break
        else:
            for i in range(len(chunks)):
                rest = [x for j, c in enumerate(chunks) if j != i for x in c]
                if fails(rest):
                    items, n = rest, max(n - 1, 2)
                    break
            else:
                if n >= len(items):
                    break
                n = min(len(items), 2 * n)
            continue
    return items


class Shrinker:
    """One shrinking search; see the module header."""

    #: The passes of a simulated search, in order.
    PASSES = ("shorter_run", "fewer_faults", "shorter_windows", "focus", "fewer_clients",
              "fewer_ops", "fewer_faults")
    #: The passes on real processes: none needs a client mask.
    REAL_PASSES = ("shorter_run", "fewer_faults", "shorter_windows", "lower_concurrency",
                   "fewer_faults")

    def __init__(self, base: RunConfig, original: Candidate, simulate: Simulate, *,
                 any_anomaly: bool = False, budget_s: float = 60.0,
                 log: Callable[[str], None] = lambda s: None,
                 known: Outcome | None = None, passes: Sequence[str] = PASSES) -> None:
        """``known``: the original's outcome, taken as is instead of running it again
        (a real run's folder says how it failed)."""
        self.base = base
        self.simulate = simulate
        self.any_anomaly = any_anomaly
        self.deadline = time.monotonic() + budget_s
        self.log = log
        self.passes = tuple(passes)
        self.attempts = 0
        self.started = time.monotonic()
        out = known if known is not None else self._run(original)
        if out.verdict != "invalid":
            raise ShrinkError("the run does not fail in simulation: its failure hung on "
                              "timing the simulation did not reproduce")
        self.want = kind_of(out.checker)
        self.original, self.original_outcome = original, out
        self.best, self.best_outcome = original, out
        self.steps: list[str] = []

    def out_of_time(self) -> bool:
        return time.monotonic() >= self.deadline

    def _run(self, c: Candidate) -> Outcome:
        self.attempts += 1
        return self.simulate(c.config(self.base), [dict(f) for f in c.faults])

    def fails(self, c: Candidate) -> bool:
        """Run ``c``; keep it as the best when it fails the same way and is smaller."""
        if self.out_of_time():
            return False
        out = self._run(c)
        same = out.verdict == "invalid" and (self.any_anomaly or kind_of(out.checker) == self.want)
        if same and _size(c, out) < _size(self.best, self.best_outcome):
            self.best, self.best_outcome = c, out
        return same

    def _note(self, what: str) -> None:
        b, o = self.best, self.best_outcome
        line = (f"{what}: {len(b.faults)} faults, {o.client_ops} client ops, "
                f"{b.time_limit:g} s ({self.attempts} runs)")
        self.steps.append(line)
        self.log(line)

    # --- the passes

    def _until(self, t: float) -> Candidate:
        return dataclasses.replace(self.best, time_limit=t,
                                   faults=tuple(f for f in self.best.faults if f["at"] < t))

    def shorter_run(self) -> None:
        lo, hi = MIN_TIME_S, self.best.time_limit
        # First guess: the run can end once the anomaly's operations have (plus slack).
        end = self.best_outcome.anomaly_end_s
        if end is not None and end + ANOMALY_SLACK_S < hi:
            guess = round(max(lo, end + ANOMALY_SLACK_S), 3)
            if self.fails(self._until(guess)):
                hi = guess
        for _ in range(TIME_STEPS):
            if hi - lo < 0.25 or self.out_of_time():
                break
            mid = round((lo + hi) / 2, 3)
            if self.fails(self._until(mid)):
                hi = mid
            else:
                lo = mid
        self._note("shorter run")

    def fewer_faults(self) -> None:
        best = self.best
        ddmin(list(best.faults),
              lambda fs: self.fails(dataclasses.replace(self.best, faults=tuple(fs))),
              self.out_of_time)
        self._note("fewer faults")

    def shorter_windows(self) -> None:
        for i in range(len(self.best.faults)):
            for _ in range(HOLD_HALVINGS):
                faults = list(self.best.faults)
                if i >= len(faults) or not faults[i].get("hold") or self.out_of_time():
                    break
                faults[i] = {**faults[i], "hold": round(faults[i]["hold"] / 2, 6)}
                if not self.fails(dataclasses.replace(self.best, faults=tuple(faults))):
                    break
        self._note("shorter windows")

    def focus(self) -> None:
        """Keep only the first anomaly's key, then only the operations it names, then
        (a binary search) only the operations invoked from some time on, besides the
        named ones: what came long before the anomaly rarely matters."""
        start = self.best
        out = self.best_outcome
        ops = list(out.ops)
        named = [ops[i] for i in out.anomaly_ops if i < len(ops)]
        keys = {out.keys[i] for i in out.anomaly_ops if i < len(out.keys)} - {None}

        def keeping(keep: set[tuple[int, int]]) -> Candidate:
            return dataclasses.replace(start, skip_ops=frozenset(
                start.skip_ops | (set(ops) - keep)))

        keeps = []
        if keys and len(out.keys) == len(ops):
            keeps.append([o for o, k in zip(ops, out.keys, strict=True) if k in keys])
        if named:
            keeps.append(named)
        for keep in keeps:
            if self.out_of_time() or len(keep) >= len(self.best_outcome.ops):
                continue
            if self.fails(keeping(set(keep))):
                start, out = self.best, self.best_outcome
                self._note("only the anomaly's operations")
                return
        times = list(out.times)
        if len(times) == len(ops) and ops:
            lo = times[0]
            hi = min((times[i] for i in out.anomaly_ops if i < len(ops)), default=times[-1])
            for _ in range(TIME_STEPS):
                if hi - lo < 0.05 or self.out_of_time():
                    break
                mid = (lo + hi) / 2
                keep = {o for o, t in zip(ops, times, strict=True) if t >= mid} | set(named)
                if self.fails(keeping(keep)):
                    lo = mid
                else:
                    hi = mid
        self._note("only the anomaly's operations")

    def fewer_clients(self) -> None:
        slots = [s for s in range(self.base.concurrency or 1) if s not in self.best.drop_slots]
        every = set(range(self.base.concurrency or 1))
        ddmin(slots, lambda keep: self.fails(dataclasses.replace(
            self.best, drop_slots=frozenset(every - set(keep)))), self.out_of_time)
        self._note("fewer clients")

    def lower_concurrency(self) -> None:
        """Fewer clients without a mask: the smallest of 1, a quarter, a half of the
        client slots that still fails."""
        n = self.best.concurrency or self.base.concurrency or 1
        for k in sorted({1, n // 4, n // 2} - {0, n}):
            if self.out_of_time():
                break
            if self.fails(dataclasses.replace(self.best, concurrency=k)):
                break
        self._note("fewer clients")

    def fewer_ops(self) -> None:
        invoked = list(self.best_outcome.ops)
        skipped = set(self.best.skip_ops)
        ddmin(invoked, lambda keep: self.fails(dataclasses.replace(
            self.best, skip_ops=frozenset(skipped | (set(invoked) - set(keep))))),
            self.out_of_time)
        self._note("fewer client ops")

    def run(self) -> Shrunk:
        for name in self.passes:
            if self.out_of_time():
                break
            getattr(self, name)()
        return Shrunk(self.best, self.best_outcome, self.original, self.original_outcome,
                      self.steps, self.attempts, round(time.monotonic() - self.started, 3),
                      self.out_of_time())


def _size(c: Candidate, out: Outcome) -> tuple[int, int, float, float]:
    """Smaller is better: fewer faults, then fewer client ops, a shorter run, shorter windows."""
    return (len(c.faults), out.client_ops, c.time_limit,
            sum(f.get("hold") or 0.0 for f in c.faults))


class RealProcesses:
    """Runs a candidate on real processes (harness.runner.run): its faults replayed from a
    scratch folder (none: ``--nemesis none``), its run folder kept in ``scratch``; a
    ``Simulate`` for ``Shrinker`` (see the module header)."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = Path(scratch)
        self.n = 0

    def __call__(self, cfg: RunConfig, faults: list[dict[str, Any]]) -> Outcome:
        from checker.history import HistoryError, read_history
        from harness import runner
        from reports import runfolder

        self.n += 1
        replay = None
        if faults:
            src = self.scratch / "plans" / f"c{self.n}"
            src.mkdir(parents=True)
            runfolder.write_atomic(src / runfolder.HISTORY, plan_history(faults))
            replay = str(src)
        cfg = dataclasses.replace(cfg, sim=False, client_mask=None, replay=replay,
                                  nemesis=cfg.nemesis if faults else "none",
                                  store=str(self.scratch / "runs"), progress=False, test_count=1)
        res = runner.run(cfg)
        checker = res.results.get("checker") if isinstance(res.results, dict) else None
        try:
            events = read_history(runfolder.RunFolder(res.run_dir).history)
        except (OSError, HistoryError):
            events = []
        counts = res.results.get("counts") or {}
        return Outcome(res.verdict, checker, int(counts.get("invoke") or 0), (),
                       anomaly_end(events, checker), run_dir=str(res.run_dir))


def plan_history(faults: list[dict[str, Any]]) -> str:
    """A history holding only ``faults`` as nemesis events (a start and its ``-end``),
    which faults.plan.recorded_ops reads back as the same operations: what a real
    ``--replay`` of a candidate reads."""
    events = []
    for f in faults:
        extra = {"target": f["target"]} if "target" in f else {}
        events.append({"at": float(f["at"]), "f": f["f"], "value": f.get("value"), **extra})
        events.append({"at": float(f["at"]) + float(f.get("hold") or 0.0), "f": f"{f['f']}-end",
                       "value": f.get("value")})
    events.sort(key=lambda e: e["at"])  # stable: a start stays before its own end
    import json

    return "".join(json.dumps({"index": i, "time": int(e["at"] * 1e9), "process": "nemesis",
                               "type": "info", **e}) + "\n" for i, e in enumerate(events))


def known_outcome(run_dir: Path) -> Outcome:
    """A real run's outcome as its folder recorded it (it is not run again)."""
    from checker.history import HistoryError, read_history
    from reports import runfolder

    results = runfolder.read_results(Path(run_dir)) or {}
    checker = results.get("checker") if isinstance(results.get("checker"), dict) else None
    try:
        events = read_history(runfolder.RunFolder(Path(run_dir)).history)
    except (OSError, HistoryError):
        events = []
    counts = results.get("counts") or {}
    return Outcome(str(results.get("verdict") or "unknown"), checker,
                   int(counts.get("invoke") or 0), (), anomaly_end(events, checker),
                   run_dir=str(run_dir))


def simulate(cfg: RunConfig, faults: list[dict[str, Any]]) -> Outcome:
    """One candidate on the simulator (harness/simrun.py): ``faults`` replayed as given,
    ``cfg.client_mask`` honoured, nothing written; checked by the workload's checker."""
    from harness import simrun

    out = simrun.simulate(simrun.prepare(cfg), faults=faults, metrics=False)
    ops = tuple(tuple(o) for o in out.ops)
    # The checker's operation ids are positions among the client invokes (checker.history.pair),
    # and the load's invokes come first, in the order of ``out.ops``.
    invokes = [e for e in out.events if e["type"] == "invoke" and e["process"] != "nemesis"]
    invokes = invokes[:len(ops)]
    return Outcome(out.verdict, out.checker, out.client_ops, ops,
                   anomaly_end(out.events, out.checker),
                   tuple(_hashable(e.get("key")) for e in invokes), anomaly_ids(out.checker),
                   times=tuple(e["time"] / 1e9 for e in invokes))


def _hashable(key: Any) -> Any:
    return key if isinstance(key, (str, int)) else None


def anomaly_ids(checker: dict[str, Any] | None) -> tuple[int, ...]:
    """The operation ids the first anomaly names: its own and the prefix it was checked
    against (the kv checker's ``prefix``), sorted."""
    anomalies = (checker or {}).get("anomalies") or []
    first = anomalies[0] if anomalies and isinstance(anomalies[0], dict) else {}
    ids = [*(first.get("ops") or ()), *(first.get("prefix") or ())]
    return tuple(sorted({i for i in ids if isinstance(i, int) and not isinstance(i, bool)}))


def anomaly_end(events: list[dict[str, Any]], checker: dict[str, Any] | None) -> float | None:
    """When the first anomaly's operations had all ended, in seconds of history time."""
    from checker.history import pair

    anomalies = (checker or {}).get("anomalies") or []
    ids = anomalies[0].get("ops") if anomalies and isinstance(anomalies[0], dict) else None
    if not ids:
        return None
    ops = pair(events)
    ends = [ops[i].end or ops[i].start for i in ids if isinstance(i, int) and i < len(ops)]
    return max(ends) / 1e9 if ends else None


# --- from a run folder ------------------------------------------------------------------


def load(run_dir: Path) -> tuple[RunConfig, Candidate]:
    """The run's config and the candidate that keeps all of it; ShrinkError if it
    is not a failing run we can simulate."""
    from checker.history import HistoryError, read_history
    from faults.plan import recorded_ops
    from reports import runfolder

    folder = runfolder.RunFolder(Path(run_dir))
    data = runfolder.read_json(folder.config)
    if not data:
        raise ShrinkError(f"{run_dir}: no readable config.json (not a run folder?)")
    try:
        cfg = RunConfig.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise ShrinkError(f"{run_dir}: config.json: {exc}") from None
    results = runfolder.read_results(folder.root)
    if results and results.get("verdict") != "invalid":
        raise ShrinkError(f"{run_dir}: the run is {results.get('verdict')}, not failing: "
                          "nothing to shrink")
    try:
        faults = recorded_ops(read_history(folder.history))
    except (OSError, HistoryError) as exc:
        raise ShrinkError(f"{run_dir}: {exc}") from None
    mask = cfg.client_mask or {}
    return cfg, Candidate(
        cfg.time_limit, tuple(faults), frozenset(mask.get("drop_slots", ())),
        frozenset(tuple(o) for o in mask.get("skip_ops", ())), cfg.concurrency)


def simulable(cfg: RunConfig) -> bool:
    """Whether the run's system is one the simulator runs (our raft and paxos cores)."""
    return cfg.system in ("raft", "paxos")
