"""Shrinking: from a failing run to the smallest story that still fails the same way.

Owns the search (docs/shrinking.md). Given a failing run folder, it re-runs
candidates that keep less of it, and keeps a candidate when it still fails
with an anomaly of the same *kind* (same model, same kind of violation, as
reports.ledger names it; ``any_anomaly`` accepts any anomaly):

1. a shorter run: the load ended at the streaming checker's first proven
   anomaly (``--stop-on-anomaly``, kept when it still fails the same way), then
   a binary search on the time limit (faults after it go);
   then the story without its opening (``renamed_faults``): the first k
   faults left out, the nodes of the rest renamed by a permutation of the
   node ids, on the best's load (early faults often only chose which nodes
   the later ones hit);
2. only the anomaly's client operations: first none at all, then only the
   operations on its key, then only the operations the checker named (the
   anomaly's own and the prefix it was checked against); if none fails, a
   binary search for the latest time before which every operation can go (the
   named prefix starts with the load), and if nothing can, one for the latest
   time before which every operation but the named ones can go;
3. fewer clients (ddmin over the client slots), then fewer client operations
   in blocks (``blocks``: one contiguous stretch of the (slot, n) operations the
   best invoked at a time, half of them first, four places per size; no ddmin);
4. fewer fault operations (random halves, then delta debugging: Zeller's
   ddmin);
5. shorter fault windows (each hold halved while it still fails);
6. fewer client operations in blocks and fewer faults once more;
7. fewer client operations (random halves, then ddmin to a 1-minimal list: the
   costliest search, so last), and fewer faults a last time.

ddmin goes on with the next chunk after a complement that fails, instead of
starting over: the end is 1-minimal all the same, and a fragile failure (most
single items needed) no longer costs a sweep per item left out.

The load is cut before the faults because client operations are most of what
a simulated run costs (a run without clients takes a tenth of one with them).

A candidate is kept only when it fails the same way and is no larger than the
best so far in any measure its own run took (faults, client operations, run
length, windows): a candidate that drops a fault may let the clients do more
work, so "fewer faults" alone could end larger than it began. Candidates keep
their client operations as ``keep_ops`` (only the operations the best invoked
may be invoked, and a slot ends after its last one), so dropping a fault does
not let a slot draw new ones. A candidate met again is answered from a cache,
not run again.

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
import hashlib
import itertools
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from harness.config import RunConfig
from nodes.common.clusterfile import node_ids

T = TypeVar("T")

#: Steps of the binary search on the time limit.
TIME_STEPS = 6
#: Times a window's hold is halved at most.
HOLD_HALVINGS = 3
#: The first guess of a shorter run ends this long after the anomaly's operations did.
ANOMALY_SLACK_S = 1.0
#: The shortest run a candidate may be, in seconds.
MIN_TIME_S = 0.5
#: ``renamed_faults``: every permutation of the node ids up to this many nodes (3: 6),
#: else this many drawn beside the identity; at most this share of the budget left.
RENAME_ALL = 3
RENAME_SAMPLE = 11
RENAME_SHARE = 0.3


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
    #: Only these (slot, n) operations may be invoked (None: every one not skipped or
    #: dropped): a candidate can then invoke no operation the run it came from did not.
    keep_ops: frozenset[tuple[int, int]] | None = None
    #: End the load at the streaming checker's first anomaly (None: as the base config).
    stop_on_anomaly: bool | None = None

    def mask(self) -> dict[str, Any] | None:
        """The client mask (``RunConfig.client_mask``) of this candidate."""
        if not (self.drop_slots or self.skip_ops or self.keep_ops is not None):
            return None
        mask: dict[str, Any] = {"drop_slots": sorted(self.drop_slots),
                                "skip_ops": [list(o) for o in sorted(self.skip_ops)]}
        if self.keep_ops is not None:
            mask["keep_ops"] = [list(o) for o in sorted(self.keep_ops)
                                if o[0] not in self.drop_slots and o not in self.skip_ops]
        return mask

    def config(self, base: RunConfig) -> RunConfig:
        concurrency = self.concurrency or base.concurrency
        soa = base.stop_on_anomaly if self.stop_on_anomaly is None else self.stop_on_anomaly
        return dataclasses.replace(base, time_limit=self.time_limit,
                                   client_mask=self.mask(),
                                   test_count=1, sim=True, replay=None,
                                   concurrency=concurrency, stop_on_anomaly=soa,
                                   follow=base.follow or soa)

    def key(self) -> bytes:
        """What decides the attempt's run, as a digest (the verdict cache's key): sets
        sorted, so equal candidates give equal keys whatever order their sets were built in."""
        keep = None if self.keep_ops is None else sorted(self.keep_ops)
        return hashlib.sha256(repr((
            self.time_limit, tuple(json.dumps(f, sort_keys=True) for f in self.faults),
            sorted(self.drop_slots), sorted(self.skip_ops), self.concurrency, keep,
            self.stop_on_anomaly)).encode()).digest()


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
    #: Seconds of load the run had (less than its time limit when --stop-on-anomaly ended it).
    load_s: float | None = None
    #: (kind, end, ids) of the first anomaly of each kind, in the checker's order: its
    #: ``anomaly_end_s`` and ``anomaly_ops`` as above (empty: only the first's are known).
    by_kind: tuple[tuple[str, float | None, tuple[int, ...]], ...] = ()
    #: The operation (``f``: read, write, cas, txn, ...) of each of ``ops``.
    fs: tuple[Any, ...] = ()


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
    #: Candidates met again and answered from the verdict cache (not run).
    cached: int = 0


def kind_of(checker: dict[str, Any] | None) -> tuple[str, str]:
    """(model, anomaly kind) of a result's first anomaly: what "the same failure" means."""
    from reports.ledger import anomaly_kind

    return str((checker or {}).get("model") or ""), anomaly_kind(checker)


def kinds_of(checker: dict[str, Any] | None) -> set[tuple[str, str]]:
    """(model, kind) of every anomaly of a result: a candidate fails "the same way" when
    one of them is the original's first. A finding (replicas-diverged, refused-after-...)
    follows the history's own anomalies, so a candidate that shows the original's
    finding and, besides it, a history anomaly still shows the same failure."""
    from reports.ledger import anomaly_kinds

    model = str((checker or {}).get("model") or "")
    return {(model, k) for k in anomaly_kinds(checker)}


def ddmin(items: Sequence[T], fails: Callable[[list[T]], bool],
          out_of_time: Callable[[], bool] = lambda: False) -> list[T]:
    """A smallest-found sublist of ``items`` (order kept) for which ``fails`` holds,
    by Zeller's delta debugging: try each chunk alone, then each complement, and
    refine the chunks when neither fails. ``fails(items)`` is assumed true.

    After a complement fails, the sweep goes on with the next chunk instead of
    starting over at the first: the chunks before it were just tried and kept, and
    where most single items are needed (a fragile failure, at the finest chunks)
    starting over cost a whole sweep of runs per item left out. The end is
    1-minimal all the same: the search stops only after a sweep of single items in
    which none could go."""
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
            cut = False
            i = 0
            while i < len(chunks) and len(chunks) > 1 and not out_of_time():
                rest = [x for j, c in enumerate(chunks) if j != i for x in c]
                if fails(rest):
                    items, cut = rest, True
                    del chunks[i]  # the next chunk is now the i-th
                else:
                    i += 1
            if cut:
                n = max(len(chunks), 2)
            elif n >= len(items):
                break
            else:
                n = min(len(items), 2 * n)
    return items


#: The share of the budget left that a pass run again later may take the first time.
PASS_SHARE = {"fewer_ops": 0.5}
#: Random halves tried per size before ``halves`` gives up at that size.
HALF_TRIES = 6


def halves(items: Sequence[T], fails: Callable[[list[T]], bool], rng: random.Random,
           out_of_time: Callable[[], bool] = lambda: False,
           tries: int = HALF_TRIES) -> list[T]:
    """A sublist of ``items`` (order kept) for which ``fails`` holds, by halving: keep a
    random half of what is left, up to ``tries`` different halves per size, while one
    fails. ``ddmin``'s fixed chunks suit a failure that needs a few parts; when leaving
    anything out moves the timing of all the rest (one network rng stream), each smaller
    candidate fails about as often as a fresh one, and random halves get small faster."""
    items = list(items)
    while len(items) >= 2 and not out_of_time():
        for _ in range(tries):
            if out_of_time():
                break
            keep = sorted(rng.sample(range(len(items)), len(items) // 2))
            half = [items[i] for i in keep]
            if fails(half):
                items = half
                break
        else:
            break
    return items


#: Random halves tried per size by the early cut of the load (``Shrinker.halve_ops``).
EARLY_HALF_TRIES = 20

#: Failed tries at one block size before ``blocks`` halves the size.
BLOCK_TRIES = 4


def blocks(items: Sequence[T], fails: Callable[[list[T]], bool], rng: random.Random,
           out_of_time: Callable[[], bool] = lambda: False,
           tries: int = BLOCK_TRIES) -> list[T]:
    """A sublist of ``items`` (order kept) for which ``fails`` holds, by leaving out one
    contiguous block at a time: a block of half the items at a random place, up to
    ``tries`` places per size, the size kept after each success and halved after
    ``tries`` failures, down to single items. Where every cut perturbs the rest (a
    fragile failure), a candidate fails about as often whatever was cut, so a big cut
    is worth as much to try as a small one; ddmin's finest rounds instead try every
    single item (one run each) and spend the budget there."""
    items = list(items)
    k = len(items) // 2
    while k >= 1 and not out_of_time():
        k = min(k, len(items) // 2) or (1 if len(items) == 1 else 0)
        if k == 0:
            break
        for _ in range(tries):
            if out_of_time():
                break
            i = rng.randrange(len(items) - k + 1)
            rest = items[:i] + items[i + k:]
            if fails(rest):
                items = rest
                break
        else:
            k //= 2
    return items


class Shrinker:
    """One shrinking search; see the module header."""

    #: The passes of a simulated search, in order: the faults' opening (``renamed_faults``)
    #: on the whole load (after the fault passes, on a cut load that no longer reaches
    #: the renamed nodes, it found nothing in session 11), then the cheap cuts of the
    #: load, since client operations are most of what a simulated run costs (a 20 s run
    #: without clients takes a tenth of one with them), then the faults over the cheap
    #: runs. ``coarse_ops``, ``halve_ops`` and ``fresh_faults`` are for ``--passes``:
    #: measured against this order in session 10 and not in it (docs/shrinking.md).
    PASSES = ("shorter_run", "renamed_faults", "focus", "fewer_clients", "block_ops",
              "fewer_faults", "shorter_windows", "block_ops", "fewer_faults", "fewer_ops",
              "fewer_faults")
    #: The passes on real processes: none needs a client mask.
    REAL_PASSES = ("shorter_run", "fewer_faults", "shorter_windows", "lower_concurrency",
                   "fewer_faults")

    def __init__(self, base: RunConfig, original: Candidate, simulate: Simulate, *,
                 any_anomaly: bool = False, budget_s: float = 60.0,
                 log: Callable[[str], None] = lambda s: None,
                 known: Outcome | None = None, passes: Sequence[str] = PASSES,
                 stop_on_anomaly: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``known``: the original's outcome, taken as is instead of running it again
        (a real run's folder says how it failed). ``stop_on_anomaly``: try the original
        with the load ended at its first proven anomaly first (kept when it still fails
        the same way). ``clock``: what the budget is counted in (wall-clock seconds; a
        benchmark on a loaded machine may count the process's CPU seconds instead)."""
        self.base = base
        self.simulate = simulate
        self.any_anomaly = any_anomaly
        self.clock = clock
        self.deadline = clock() + budget_s
        self.log = log
        self.passes = tuple(passes)
        self.try_stop = stop_on_anomaly
        self.attempts = 0
        self.cached = 0
        self._seen: dict[tuple[Any, ...], Outcome] = {}
        # The halving passes' draws: deterministic per run (its seed), apart from its streams.
        self.rng = random.Random(f"shrink:{base.seed}")
        self.started = clock()
        out = known if known is not None else self._run(original)
        if out.verdict != "invalid":
            raise ShrinkError("the run does not fail in simulation: its failure hung on "
                              "timing the simulation did not reproduce")
        self.want = kind_of(out.checker)
        self.original, self.original_outcome = original, out
        self.best, self.best_outcome = original, out
        self.steps: list[str] = []

    def out_of_time(self) -> bool:
        return self.clock() >= self.deadline

    def _run(self, c: Candidate) -> Outcome:
        """``c``'s outcome; a candidate tried before is not run again (runs are deterministic).

        The cache is keyed by ``c.key()``, a digest, and an outcome that does not fail
        the same way (most) is kept only as its verdict, checker and size (``_compact``):
        its operations, keys and times are of no later use. (Each run's garbage is
        collected where it is checked, harness/workload.py ``check``.)"""
        key = c.key()
        out = self._seen.get(key)
        if out is not None:
            self.cached += 1
            return out
        self.attempts += 1
        out = self.simulate(c.config(self.base), [dict(f) for f in c.faults])
        self._seen[key] = out if not hasattr(self, "want") or self._same(out) else _compact(out)
        return out

    def fails(self, c: Candidate) -> bool:
        """Run ``c``; take it as the best, and say True, when it fails the same way and is
        no larger than the best in any measure (faults, client ops, run, windows), as its
        run measured them: a candidate that drops a fault may let the clients do more
        work, and a shrinker must never end larger than it began."""
        if self.out_of_time():
            return False
        out = self._run(c)
        if not self._same(out):
            return False
        new, old = _size(c, out), _size(self.best, self.best_outcome)
        if any(a > b for a, b in zip(new, old, strict=True)):
            return False
        self.best, self.best_outcome = c, out
        return True

    def _same(self, out: Outcome) -> bool:
        """Whether ``out`` fails the same way as the original (any way: ``any_anomaly``)."""
        return out.verdict == "invalid" and (self.any_anomaly
                                             or self.want in kinds_of(out.checker))

    def _story(self, out: Outcome) -> tuple[float | None, tuple[int, ...]]:
        """When the anomaly that makes ``out`` fail the same way ended, and the positions
        in ``out.ops`` of the operations it names: the first of the wanted kind."""
        if not self.any_anomaly:
            for kind, end, ids in out.by_kind:
                if kind == self.want[1]:
                    return end, ids
        return out.anomaly_end_s, out.anomaly_ops

    def _note(self, what: str) -> None:
        b, o = self.best, self.best_outcome
        line = (f"{what}: {len(b.faults)} faults, {o.client_ops} client ops, "
                f"{b.time_limit:g} s ({self.attempts} runs)")
        self.steps.append(line)
        self.log(line)

    # --- the passes

    def _until(self, t: float, c: Candidate | None = None) -> Candidate:
        c = c or self.best
        return dataclasses.replace(c, time_limit=t, faults=tuple(f for f in c.faults if f["at"] < t))

    def shorter_run(self) -> None:
        """End the load at the first proven anomaly (when the workload's streaming checker
        can prove one), then a binary search on the time limit."""
        if self.try_stop and not self.best.stop_on_anomaly:
            stopped = dataclasses.replace(self.best, stop_on_anomaly=True)
            if self.fails(stopped):
                load = self.best_outcome.load_s
                if load is not None and load + 0.1 < self.best.time_limit:
                    # the load ended there: the faults after it never happened
                    self.fails(self._until(round(load + 0.1, 3)))
        lo, hi = MIN_TIME_S, self.best.time_limit
        # First guess: the run can end once the anomaly's operations have (plus slack).
        end = self._story(self.best_outcome)[0]
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
        """Random halves of the faults, then ddmin over what is left."""
        def fails(fs: list[dict[str, Any]]) -> bool:
            return self.fails(dataclasses.replace(self.best, faults=tuple(fs)))

        ddmin(halves(list(self.best.faults), fails, self.rng, self.out_of_time), fails,
              self.out_of_time)
        self._note("fewer faults")

    def renamed_faults(self) -> None:
        """The story without its opening: leave out the first k faults (the most first)
        and rename the nodes of the rest by a permutation of the node ids, while that
        fails the same way; again from the new best until nothing goes. The early
        faults of a long run often only set the stage (which node leads, whose log is
        longest when the later faults land); left out, the stage is set again on other
        nodes, and the later faults, recorded against fixed nodes (a ``one`` kill, a
        clock fault, a cut of whoever led), miss it unless the nodes are renamed. The
        load stays the best's (``keep_ops``: no slot draws more), and the pass takes at
        most ``RENAME_SHARE`` of the budget left, so the cuts of the load after it keep
        theirs."""
        end, self.deadline = self.deadline, min(
            self.deadline, self.clock() + RENAME_SHARE * (self.deadline - self.clock()))
        try:
            renamings = self._renamings()
            while not self.out_of_time() and self._drop_opening(renamings):
                pass
        finally:
            self.deadline = end
        self._note("fewer faults, nodes renamed")

    def _renamings(self) -> list[dict[str, str]]:
        """Every permutation of the node ids on up to ``RENAME_ALL`` nodes, else the
        identity and ``RENAME_SAMPLE`` others, drawn from their own rng (the other
        passes' draws stay as they were)."""
        nodes = node_ids(self.base.nodes)
        perms = list(itertools.permutations(nodes))
        if len(nodes) > RENAME_ALL:
            rng = random.Random(f"rename:{self.base.seed}")
            perms = [perms[0], *rng.sample(perms[1:], RENAME_SAMPLE)]
        return [dict(zip(nodes, perm, strict=True)) for perm in perms]

    def _drop_opening(self, renamings: list[dict[str, str]]) -> bool:
        """One sweep of ``renamed_faults``: True when a candidate without the best's first
        k faults (k from the most down) and renamed so failed, and became the best."""
        faults = sorted(self.best.faults, key=lambda f: f["at"])
        keep = frozenset(self.best_outcome.ops)
        for k in range(len(faults) - 1, 0, -1):
            for names in renamings:
                if self.out_of_time():
                    return False
                fs = tuple({**f, "value": renamed(f.get("value"), names)} for f in faults[k:])
                if self.fails(dataclasses.replace(self.best, faults=fs, keep_ops=keep)):
                    return True
        return False

    def fresh_faults(self) -> None:
        """The fault search once more from every fault the original had before the best's
        time limit (a fault the best kept with its shortened window), on the load the
        search ended with: which faults can go follows the load a fault search began on,
        and this one begins on the smallest, where runs are cheapest. Its end is kept only
        when it is smaller than the best (fewer faults, no larger in any other measure);
        otherwise the best stays as it was."""
        if self.out_of_time():
            return
        kept = {json.dumps({k: v for k, v in f.items() if k != "hold"}, sort_keys=True): f
                for f in self.best.faults}
        every = tuple(kept.get(json.dumps({k: v for k, v in f.items() if k != "hold"},
                                          sort_keys=True), f)
                      for f in self.original.faults if f["at"] < self.best.time_limit)
        if len(every) <= len(self.best.faults):
            return
        saved, saved_out = self.best, self.best_outcome
        start = dataclasses.replace(saved, faults=every,
                                    keep_ops=frozenset(saved_out.ops))
        out = self._run(start)
        if not self._same(out) or out.client_ops > saved_out.client_ops:
            self._note("fewer faults, from all of them")
            return
        self.best, self.best_outcome = start, out
        log, steps, self.log = self.log, list(self.steps), lambda line: None
        try:
            self.fewer_faults()
            self.shorter_windows()
        finally:
            self.log, self.steps = log, steps
        new, old = _size(self.best, self.best_outcome), _size(saved, saved_out)
        if not (new < old and all(a <= b for a, b in zip(new[1:], old[1:], strict=True))):
            self.best, self.best_outcome = saved, saved_out
        self._note("fewer faults, from all of them")

    def block_ops(self) -> None:
        """Contiguous blocks of the invoked operations (``blocks``) out, no ddmin."""
        def fails(keep: list[tuple[int, int]]) -> bool:
            return self.fails(self._keeping(keep))

        blocks(list(self.best_outcome.ops), fails, self.rng, self.out_of_time)
        self._note("fewer client ops, in blocks")

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

    def _keeping(self, keep: Sequence[tuple[int, int]] | set[tuple[int, int]]) -> Candidate:
        """The best with only ``keep`` of its client operations left to invoke."""
        return dataclasses.replace(self.best, keep_ops=frozenset(keep))

    def focus(self) -> None:
        """Keep no client operation, then only the first anomaly's key, then only the
        operations it names; if none fails, a binary search for the latest time before
        which every operation can go (up to when the anomaly ended), and if nothing can
        so, one for the latest before which every operation but the named ones can go:
        what came long before the anomaly rarely matters."""
        out = self.best_outcome
        ops = list(out.ops)
        story = self._story(out)[1]
        named = [ops[i] for i in story if i < len(ops)]
        keys = {out.keys[i] for i in story if i < len(out.keys)} - {None}
        # No client operation at all first: a run without clients costs a tenth of one with
        # them, and a failure the nodes show alone (a node that refuses to restart) needs none.
        keeps: list[list[tuple[int, int]]] = [[]]
        if keys and len(out.keys) == len(ops):
            keeps.append([o for o, k in zip(ops, out.keys, strict=True) if k in keys])
        if named:
            keeps.append(named)
        for keep in keeps:
            if self.out_of_time() or len(keep) >= len(self.best_outcome.ops):
                continue
            if self.fails(self._keeping(keep)):
                self._note("only the anomaly's operations")
                return
        times = list(out.times)
        if len(times) == len(ops) and ops:
            first = times[0]
            end = self._story(out)[0]
            cut = first
            if end is not None and end > first:
                # Every operation invoked before some time goes, the named prefix too: the
                # prefix the anomaly was checked against starts with the load, so keeping it
                # kept hundreds of operations the story did not need (lease-read paxos).
                cut = self._latest_cut(ops, times, first, end, ())
            if cut == first:
                # Nothing could go so: keep the named ones and cut only the others.
                hi = min((times[i] for i in story if i < len(ops)), default=times[-1])
                self._latest_cut(ops, times, first, hi, named)
        self._note("only the anomaly's operations")

    def _latest_cut(self, ops: Sequence[tuple[int, int]], times: Sequence[float], lo: float,
                    hi: float, also: Sequence[tuple[int, int]]) -> float:
        """A binary search for the latest time before which every one of ``ops`` (invoked
        at ``times``) but ``also`` can go and the run still fails; ``lo`` if none."""
        for _ in range(TIME_STEPS):
            if hi - lo < 0.05 or self.out_of_time():
                break
            mid = (lo + hi) / 2
            keep = {o for o, t in zip(ops, times, strict=True) if t >= mid} | set(also)
            if self.fails(self._keeping(keep)):
                lo = mid
            else:
                hi = mid
        return lo

    def coarse_ops(self) -> None:
        """Whole keys out, then whole kinds of operation: ddmin over the keys of the
        invoked operations that the anomaly does not name (its own keys stay), then over
        their ``f`` (read, write, cas, ...; the named operations stay whatever their f).
        Each cut takes a whole class of the load at once, in a few runs where ddmin over
        single operations takes hundreds; a failure that no operation names (a finding)
        has no key of its own, so every key may go."""
        out = self.best_outcome
        ops = list(out.ops)
        if len(out.keys) == len(ops) and ops:
            story = self._story(out)[1]
            must = {out.keys[i] for i in story if i < len(ops)}
            keyed = list(zip(ops, out.keys, strict=True))

            def by_key(keys: list[Any]) -> bool:
                kept = must | set(keys)
                return self.fails(self._keeping([o for o, k in keyed if k in kept]))

            free = sorted({k for _, k in keyed} - must, key=repr)
            if free:
                ddmin(free, by_key, self.out_of_time)
        out = self.best_outcome
        ops = list(out.ops)
        if len(out.fs) == len(ops) and ops and not self.out_of_time():
            story = self._story(out)[1]
            named = {ops[i] for i in story if i < len(ops)}
            typed = list(zip(ops, out.fs, strict=True))

            def by_f(fs: list[Any]) -> bool:
                kept = set(fs)
                return self.fails(self._keeping([o for o, f in typed
                                                 if f in kept or o in named]))

            kinds = sorted({f for _, f in typed}, key=repr)
            if len(kinds) >= 2:
                ddmin(kinds, by_f, self.out_of_time)
        self._note("fewer keys and kinds of operations")

    def fewer_clients(self) -> None:
        """ddmin over the slots that still invoke something (halves first)."""
        every = set(range(self.base.concurrency or 1))
        active = sorted({s for s, _ in self.best_outcome.ops} - set(self.best.drop_slots))
        gone = every - set(active)
        ddmin(active, lambda keep: self.fails(dataclasses.replace(
            self.best, drop_slots=frozenset(gone | (set(active) - set(keep))))), self.out_of_time)
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

    def halve_ops(self) -> None:
        """Random halves of the invoked operations, up to ``EARLY_HALF_TRIES`` different
        halves per size, no ddmin: the early cut of a load whose every cut moves the
        timing of the rest (a fragile failure keeps a random half in one try of ten or
        twenty, where it keeps almost no single operation ddmin tries)."""
        def fails(keep: list[tuple[int, int]]) -> bool:
            return self.fails(self._keeping(keep))

        halves(list(self.best_outcome.ops), fails, self.rng, self.out_of_time,
               tries=EARLY_HALF_TRIES)
        self._note("fewer client ops, in halves")

    def fewer_ops(self) -> None:
        """Random halves of the invoked operations, then ddmin over what is left."""
        def fails(keep: list[tuple[int, int]]) -> bool:
            return self.fails(self._keeping(keep))

        ddmin(halves(list(self.best_outcome.ops), fails, self.rng, self.out_of_time), fails,
              self.out_of_time)
        self._note("fewer client ops")

    def run(self) -> Shrunk:
        end = self.deadline
        for i, name in enumerate(self.passes):
            if self.clock() >= end:
                break
            # The first cut of the operations may take half of what is left at most: on a
            # run whose every smaller load moves its timing it could take it all, and the
            # faults would never be cut.
            later = name in self.passes[i + 1:]
            share = PASS_SHARE.get(name, 1.0) if later else 1.0
            self.deadline = min(end, self.clock() + share * (end - self.clock()))
            getattr(self, name)()
            self.deadline = end
        return Shrunk(self.best, self.best_outcome, self.original, self.original_outcome,
                      self.steps, self.attempts, round(self.clock() - self.started, 3),
                      self.out_of_time(), self.cached)


def renamed(value: Any, names: dict[str, str]) -> Any:
    """A fault's value with every node id in ``names`` (as a string, a list item or a
    key, at any depth) renamed: a kill's nodes, a partition's grudge, a link list, a
    clock fault's node."""
    if isinstance(value, str):
        return names.get(value, value)
    if isinstance(value, list):
        return [renamed(v, names) for v in value]
    if isinstance(value, dict):
        return {renamed(k, names): renamed(v, names) for k, v in value.items()}
    return value


def _compact(out: Outcome) -> Outcome:
    """``out`` without what only a best needs (its operations, keys, times, anomalies'
    positions): what the cache keeps of a candidate that did not fail the same way."""
    return Outcome(out.verdict, out.checker, out.client_ops, (), load_s=out.load_s)


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

    return outcome_of(simrun.simulate(simrun.prepare(cfg), faults=faults, metrics=False))


def outcome_of(out: Any) -> Outcome:
    """A simulated run's outcome (harness/simrun.py's ``SimOutcome``, checked) as the search
    uses it; a caller that has simulated the original gives it as ``Shrinker(known=...)``."""
    ops = tuple(tuple(o) for o in out.ops)
    # The checker's operation ids are positions among the client invokes (checker.history.pair),
    # and the load's invokes come first, in the order of ``out.ops``.
    invokes = [e for e in out.events if e["type"] == "invoke" and e["process"] != "nemesis"]
    invokes = invokes[:len(ops)]
    by_kind = firsts_by_kind(out.events, out.checker)
    return Outcome(out.verdict, out.checker, out.client_ops, ops,
                   by_kind[0][1] if by_kind else None,
                   tuple(_hashable(e.get("key")) for e in invokes),
                   by_kind[0][2] if by_kind else (),
                   times=tuple(e["time"] / 1e9 for e in invokes), load_s=out.load_seconds,
                   by_kind=by_kind, fs=tuple(_hashable(e.get("f")) for e in invokes))


def _hashable(key: Any) -> Any:
    return key if isinstance(key, (str, int)) else None


def _ids(anomaly: dict[str, Any]) -> tuple[int, ...]:
    """The operation ids an anomaly names: its own and the prefix it was checked against
    (the kv checker's ``prefix``), sorted."""
    ids = [*(anomaly.get("ops") or ()), *(anomaly.get("prefix") or ())]
    return tuple(sorted({i for i in ids if isinstance(i, int) and not isinstance(i, bool)}))


def anomaly_end(events: list[dict[str, Any]], checker: dict[str, Any] | None) -> float | None:
    """When the first anomaly's operations had all ended (a finding, which names no
    operation: when it was seen), in seconds of history time."""
    by_kind = firsts_by_kind(events, checker, first_only=True)
    return by_kind[0][1] if by_kind else None


def firsts_by_kind(events: list[dict[str, Any]], checker: dict[str, Any] | None,
                   first_only: bool = False
                   ) -> tuple[tuple[str, float | None, tuple[int, ...]], ...]:
    """(kind, end, ids) of the first anomaly of each kind (see ``Outcome.by_kind``): when
    its operations had all ended, or for a finding (no operations) its ``time``, in
    seconds of history time; and the operation ids it names (``_ids``)."""
    from checker.history import pair
    from reports.ledger import anomaly_kinds

    anomalies = (checker or {}).get("anomalies") or []
    found: list[tuple[str, float | None, tuple[int, ...]]] = []
    seen: set[str] = set()
    paired: list[Any] | None = None
    for kind, a in zip(anomaly_kinds(checker), anomalies, strict=True):
        if kind in seen:
            continue
        seen.add(kind)
        a = a if isinstance(a, dict) else {}
        own = [i for i in a.get("ops") or () if isinstance(i, int) and not isinstance(i, bool)]
        end: float | None = None
        if own:
            paired = pair(events) if paired is None else paired
            ends = [paired[i].end or paired[i].start for i in own if i < len(paired)]
            end = max(ends) / 1e9 if ends else None
        elif isinstance(a.get("time"), (int, float)) and not isinstance(a.get("time"), bool):
            end = a["time"] / 1e9
        found.append((kind, end, _ids(a)))
        if first_only:
            break
    return tuple(found)


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
