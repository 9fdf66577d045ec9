"""The check API: a history (or paired operations) and a model in, a verdict out.

Owns ``check_file``, ``check_events``, ``check_ops``, ``CheckResult`` and
``Anomaly`` (docs/checker.md "API").

Flow: pair events into operations (checker/history.py), partition them per
key with the model (P-compositionality: a history is linearizable iff each
key's is), compile each partition (checker/model.py), and search the
partitions smallest first (checker/search.py), stopping at the first
violation. A time limit turns into "unknown", never a guess. The one model
that is not searched, ``list-append``, is handed to checker/listappend.py
(dependency cycles, polynomial; ``consistency`` says which anomalies count)
and its result comes back in the same ``CheckResult``.

Invariants: an anomaly names operations by ``Op.id`` (positions in
``pair(history)``), never by copies of their events, so any reader that
pairs the same history gets the same operations back; the search and this
module know nothing about any particular model.
"""

from __future__ import annotations

import os
import select
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checker.history import (
    INF,
    HistoryError,
    Op,
    iter_events,
    no_gc,
    pair,
    read_history,
    read_ops,
    unwrap_independent,
)
from checker.listappend import (
    CONSISTENCY,
    ListAppend,
    TxnTable,
    TxnTableBuilder,
    check_list_append,
)
from checker.model import Compiled, Model
from checker.models import make_model
from checker.search import linearize

PROVEN_BUDGET_S = 2.0  # search time for the prefix of a partition already proven invalid
MEMORY_LIMIT_MB = 1024.0  # the default cap on what one key's search holds
# What one held search entry costs: a memo key (a 3-tuple of ints, its dict
# slot) or a stack tuple. Measured on benchmarks/checker_bench.py's blow-up
# history: RSS growth / entries held, rounded up (docs/checker.md).
BYTES_PER_ENTRY = 200


@dataclass(slots=True)
class Unsettled:
    """A key whose search stopped at the memory limit or the time limit:
    its verdict is unknown (never a guess); ``ops`` is the window of
    operations it could not settle (``Op.id``s)."""

    key: Any
    reason: str  # "memory" or "time"
    sentence: str
    ops: list[int]

    def to_dict(self) -> dict:
        return {"key": self.key, "reason": self.reason, "sentence": self.sentence,
                "ops": list(self.ops)}


@dataclass(slots=True)
class Anomaly:
    """One key that cannot be linearized."""

    key: Any
    sentence: str
    ops: list[int]  # Op.id: the op stuck at its deadline first, then those concurrent with it
    prefix: list[int]  # Op.id: the longest linearizable prefix, in linearization order
    #: what went wrong, by name (list-append anomalies carry Elle's names instead)
    kind: str = "non-linearizable"

    def to_dict(self, history: list[Op] | None = None) -> dict:
        """``{"kind", "key", "sentence", "ops", "prefix"}`` (ids), as results.json keeps it.

        Given the paired history the ids index, ``"operations"`` adds the
        anomaly's operations as readable records (``op_record``), in the
        order of ``"ops"``."""
        d: dict[str, Any] = {
            "kind": self.kind,
            "key": self.key,
            "sentence": self.sentence,
            "ops": list(self.ops),
            "prefix": list(self.prefix),
        }
        if history is not None:
            d["operations"] = [op_record(history[i]) for i in self.ops]
        return d


def op_record(op: Op) -> dict:
    """One operation as a JSON object: what was asked, what came back, when."""
    return {
        "id": op.id,
        "process": op.process,
        "f": op.f,
        "key": op.key,
        "value": op.value,
        "output": op.output,
        "type": op.type,
        "start": op.start,
        "end": op.end,
        "invoke_index": op.invoke_index,
        "complete_index": op.complete_index,
        "node": op.node,
        "error": op.error,
    }


@dataclass(slots=True)
class CheckResult:
    """The verdict on one history."""

    valid: bool | str  # True, False or "unknown"
    seconds: float
    model: str
    #: ``Anomaly``s, or for list-append ``checker.listappend.TxnAnomaly``s (same
    #: ``key``/``sentence``/``ops``/``kind``/``to_dict(history)``)
    anomalies: list[Any] = field(default_factory=list)
    path: str | None = None
    ops: int = 0  # operations checked
    partitions: int = 0
    checked: int = 0  # partitions fully decided
    steps: int = 0
    history: list[Op] = field(default_factory=list, repr=False)  # what Anomaly ids index
    unknown: list[Unsettled] = field(default_factory=list)  # keys left undecided
    #: list-append only: consistency, txns, edges, allowed (docs/checker.md)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, history: list[Op] | None = None) -> dict:
        """The result as JSON (results.json's "checker"); anomalies as ids, or
        with their operations spelled out when ``history`` is given."""
        d = {
            "valid": self.valid,
            "seconds": round(self.seconds, 6),
            "model": self.model,
            "anomalies": [a.to_dict(history) for a in self.anomalies],
        }
        if self.path is not None:
            d["path"] = self.path
        d.update(ops=self.ops, partitions=self.partitions, steps=self.steps)
        if self.unknown:
            d["unknown"] = [u.to_dict() for u in self.unknown]
        d.update(self.extra)
        return d


def check_file(
    path: str | Path,
    model: str | Model = "kv",
    time_limit: float | None = None,
    *,
    independent: bool = False,
    every_key: bool = False,
    memory_limit: float | None = MEMORY_LIMIT_MB,
    consistency: str | None = None,
    workers: int | None = None,
    **semantics: Any,
) -> CheckResult:
    """Check a history file (JSON Lines or EDN). Raises HistoryError if unreadable.

    ``independent``: Jepsen independent-key history (value ``[key value]``).
    ``every_key``, ``workers``: see ``check_ops``. ``consistency``: see ``check_events``."""
    if (model == "list-append" or isinstance(model, ListAppend)) and not independent \
            and not semantics:
        return _check_list_append_file(path, consistency)
    if not independent and not (model == "list-append" or isinstance(model, ListAppend)) \
            and consistency is None:
        t0 = time.perf_counter()
        with no_gc():
            ops = read_ops(path)  # the fast reading of a plain JSON Lines file, else None
            if ops is not None:
                res = _check_paired(ops, model, time_limit, t0, every_key, memory_limit,
                                    workers, semantics, str(path))
                res.path = str(path)
                return res
    events = read_history(path)
    if independent:
        events = unwrap_independent(events)
    return check_events(events, model, time_limit, path=str(path), every_key=every_key,
                        memory_limit=memory_limit, consistency=consistency, workers=workers,
                        **semantics)


def _check_list_append_file(path: str | Path, consistency: str | None) -> CheckResult:
    """A list-append file, read run by run into the checker's compact table
    (``TxnTableBuilder``): the events of a million transactions never exist
    all at once (docs/checker.md "list-append", memory)."""
    t0 = time.perf_counter()
    consistency = consistency or CONSISTENCY[0]
    if consistency not in CONSISTENCY:
        raise ValueError(f"unknown consistency {consistency!r} "
                         f"(one of {', '.join(CONSISTENCY)})")
    with no_gc():
        builder = TxnTableBuilder()
        try:
            for events in iter_events(path):
                builder.feed(events)
            table = builder.finish()
        except KeyError as exc:
            raise HistoryError(str(path), None, f"missing {exc.args[0]!r}") from None
        except HistoryError as exc:
            raise HistoryError(str(path), exc.line, exc.message) from None
        try:
            res = _list_append_result(table, consistency, t0)
        except ValueError as exc:
            raise HistoryError(str(path), None, f"not a list-append history: {exc}") from None
    res.path = str(path)
    return res


def check_events(
    events: list[dict],
    model: str | Model = "kv",
    time_limit: float | None = None,
    *,
    path: str | None = None,
    every_key: bool = False,
    memory_limit: float | None = MEMORY_LIMIT_MB,
    consistency: str | None = None,
    workers: int | None = None,
    **semantics: Any,
) -> CheckResult:
    """Check a list of history events. ``semantics``: initial, fail_cas
    ("noeffect" | "observed"), nil_read ("absent" | "wildcard").

    ``model="list-append"`` checks ``f: "txn"`` operations for dependency
    cycles under ``consistency`` (strict-serializable by default,
    serializable, snapshot-isolation or read-committed); it is polynomial,
    so ``time_limit``, ``every_key`` and ``memory_limit`` do not apply. A
    ``consistency`` with any other model is a ValueError."""
    t0 = time.perf_counter()
    if model == "list-append" or isinstance(model, ListAppend):
        if semantics:
            raise ValueError(f"list-append takes no {', '.join(sorted(semantics))} option")
        consistency = consistency or CONSISTENCY[0]
        if consistency not in CONSISTENCY:
            raise ValueError(f"unknown consistency {consistency!r} "
                             f"(one of {', '.join(CONSISTENCY)})")
        with no_gc():
            ops = pair(events, path or "<events>")
            try:
                res = check_list_append_ops(ops, consistency, start=t0)
            except ValueError as exc:
                raise HistoryError(path or "<events>", None,
                                   f"not a list-append history: {exc}") from None
        res.path = path
        return res
    if consistency is not None:
        raise ValueError("--consistency applies to the list-append model only")
    with no_gc():  # millions of tuples, no cycles (checker/history.py no_gc)
        ops = pair(events, path or "<events>")
        res = _check_paired(ops, model, time_limit, t0, every_key, memory_limit, workers,
                            semantics, path or "<events>")
    res.path = path
    return res


def _check_paired(ops: list[Op], model: str | Model, time_limit: float | None, t0: float,
                  every_key: bool, memory_limit: float | None, workers: int | None,
                  semantics: dict[str, Any], where: str) -> CheckResult:
    m = make_model(model, **semantics)
    try:
        return check_ops(ops, m, time_limit, start=t0, every_key=every_key,
                         memory_limit=memory_limit, workers=workers)
    except HistoryError as exc:
        raise HistoryError(where, None, exc.message) from None


def check_list_append_ops(ops: list[Op], consistency: str = CONSISTENCY[0], *,
                          start: float | None = None) -> CheckResult:
    """The list-append check of paired operations as a ``CheckResult``
    (checker/listappend.py; ValueError for an unknown ``consistency`` or a
    malformed micro-operation)."""
    if consistency not in CONSISTENCY:
        raise ValueError(f"unknown consistency {consistency!r} "
                         f"(one of {', '.join(CONSISTENCY)})")
    t0 = time.perf_counter() if start is None else start
    return _list_append_result(TxnTable.from_ops(ops), consistency, t0)


def _list_append_result(table: TxnTable, consistency: str, t0: float) -> CheckResult:
    r = check_list_append(table, consistency)
    res = CheckResult(r.valid, time.perf_counter() - t0, "list-append", list(r.anomalies),
                      ops=table.n_ops, partitions=1, checked=1,
                      history=table.history())  # type: ignore[arg-type]
    res.extra = {"consistency": consistency, "txns": r.txns, "edges": r.edges,
                 "allowed": dict(r.allowed)}
    return res


PARALLEL_MIN_OPS = 100_000  # below this a second process costs more than it saves


def check_ops(
    ops: list[Op], model: Model, time_limit: float | None = None, *, start: float | None = None,
    every_key: bool = False, memory_limit: float | None = MEMORY_LIMIT_MB,
    workers: int | None = None,
) -> CheckResult:
    """Check paired operations against a model object. The check stops at the
    first invalid partition (key) unless ``every_key``: then each invalid key
    gives its anomaly, earliest first (by the stuck operation's invocation).

    ``memory_limit`` (MB; None = no cap) bounds what one key's search holds
    (memo and stack entries, ``BYTES_PER_ENTRY`` each). A key that would pass
    it is unknown (``res.unknown`` names its window of operations); the
    other keys still get their verdicts.

    ``workers``: processes deciding keys (None: two when the history has at
    least ``PARALLEL_MIN_OPS`` operations, the machine two cores and this
    process no other thread, else one; see ``_parallel_valid``)."""
    if isinstance(model, ListAppend):
        return check_list_append_ops(ops, start=start)
    t0 = time.perf_counter() if start is None else start
    deadline = None if time_limit is None else time.monotonic() + time_limit
    max_held = None if memory_limit is None else max(1, int(memory_limit * 2**20 / BYTES_PER_ENTRY))
    parts = [p for p in model.partition(ops) if p]
    res = CheckResult(True, 0.0, model.name, ops=len(ops), partitions=len(parts), history=ops)
    compiled: list[tuple[list[Op], Compiled | None]] = []
    if _workers(workers, len(ops), len(parts)) > 1:
        settled, first = _parallel_valid(parts, model, deadline, max_held, every_key)
        res.steps += sum(settled.values())
        res.checked += len(settled)
        # What the workers did not settle, compiled as the loop reaches it: the
        # keys they stopped at first (invalid or undecided), then the rest, if
        # a worker died, smallest first.
        rest = sorted((x for x in range(len(parts)) if x not in settled and x not in first),
                      key=lambda x: len(parts[x]))
        compiled = [(parts[x], None) for x in first + rest]
    else:
        for p in parts:
            c = _compile(model, p)
            compiled.append((p, c))
            if c.stale and not every_key:
                break  # proven invalid: searched first and the check stops there
        # Partitions with a proven stale read first, then smallest first: a
        # violating key is found after little work.
        compiled.sort(key=lambda pc: (not pc[1].stale, len(pc[1].ops)))  # type: ignore[union-attr]
    unknown = False
    # keys already proven invalid share one budget for their prefix searches,
    # so every_key costs at most PROVEN_BUDGET_S more than a valid history
    proven_until = time.monotonic() + PROVEN_BUDGET_S
    for part, c in compiled:
        if c is None:
            c = _compile(model, part)
        if min(c.rets, default=INF) == INF:
            res.checked += 1
            continue  # only optional operations: never taking effect is fine
        limit = deadline
        if c.stale:
            # Already proven invalid; the search only finds the longest
            # linearizable prefix for the report, so it gets a short budget.
            budget = max(proven_until, time.monotonic() + 0.05) if every_key else \
                time.monotonic() + PROVEN_BUDGET_S
            limit = budget if deadline is None else min(deadline, budget)
        out = _search(c, limit, max_held, model)
        res.steps += out.steps
        key = model.partition_key(part)
        if out.valid is None and c.stale:
            stuck = c.ops[c.stale[0]]
            text = model.explain(key, part, stuck, [], None)
            res.valid = False
            res.anomalies.append(Anomaly(key, text, [stuck.id], []))
            if every_key:
                continue
            break
        if out.valid is None:
            unknown = True
            res.unknown.append(_unsettled(key, c, out, memory_limit))
            if out.gave_up == "memory":
                continue  # this key only: the others still get their verdicts
            break
        res.checked += 1
        if out.valid and c.stale:  # pragma: no cover - would be a checker bug
            raise AssertionError(f"search found a linearization despite stale op {c.stale[0]}")
        if not out.valid:
            stuck = c.ops[out.stuck]
            prefix = [c.ops[i] for i in out.prefix]
            conc = [c.ops[i].id for i in out.concurrent if i != out.stuck]
            text = model.explain(key, part, stuck, prefix, c.decode(out.prefix_state))
            res.valid = False
            res.anomalies.append(Anomaly(key, text, [stuck.id, *conc], [o.id for o in prefix]))
            if every_key:
                continue
            break
    if res.valid is True and unknown:
        res.valid = "unknown"
    if len(res.anomalies) > 1:
        res.anomalies.sort(key=lambda a: a.ops[0])  # earliest stuck invocation first
    res.seconds = time.perf_counter() - t0
    return res


def _compile(model: Model, part: list[Op]) -> Compiled:
    try:
        return model.compile(part)
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise HistoryError("<history>", None, f"not a {model.name} history: {exc}") from None


def _search(c: Compiled, limit: float | None, max_held: int | None, model: Model) -> Any:
    try:
        return linearize(c.calls, c.rets, c.step, c.init, c.pred, limit, c.needs, c.viable,
                         max_held, c.table)
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise HistoryError("<history>", None, f"not a {model.name} history: {exc}") from None


def _workers(asked: int | None, n_ops: int, n_parts: int) -> int:
    if n_parts < 2 or not hasattr(os, "fork"):
        return 1
    if asked is not None:
        return max(1, asked)
    if n_ops < PARALLEL_MIN_OPS or threading.active_count() > 1:
        return 1  # a fork beside other threads is not safe (a lock one of them holds)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return 2 if cores >= 2 else 1


def _parallel_valid(parts: list[list[Op]], model: Model, deadline: float | None,
                    max_held: int | None, every_key: bool) -> tuple[dict[int, int], list[int]]:
    """Half of the partitions decided by a forked worker, the other half by
    this process meanwhile: ``({partition index: steps} of the keys found
    plainly valid, [the keys either process stopped at])``. Every other key (invalid,
    unknown, a stale proof, or one the worker never reached because it
    stopped or died) is left to the caller, which decides it in this
    process through the one loop of ``check_ops``: the verdicts, sentences
    and windows are the same as without the worker.

    The worker takes every second partition by size (so both halves hold
    about as many operations) and reports one line per key through a pipe;
    without ``every_key`` each process stops at its first key that is not
    plainly valid (the check stops at the first invalid key anyway, and a
    stale proof found there is the caller's first compile). Forked, so the
    worker reads the paired operations without a copy."""
    by_size = sorted(range(len(parts)), key=lambda x: len(parts[x]))
    theirs = by_size[1::2]
    ours = by_size[0::2]
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker
        code = 0
        try:
            os.close(r)
            with os.fdopen(w, "w") as out:
                for x, steps in _decide(theirs, parts, model, deadline, max_held):
                    out.write(f"{x} {-1 if steps is None else steps}\n")
                    out.flush()
                    if steps is None and not every_key:
                        break
        except BaseException:  # noqa: BLE001 - the parent decides whatever is missing
            code = 1
        os._exit(code)
    os.close(w)
    settled: dict[int, int] = {}
    first: list[int] = []
    inp = os.fdopen(r, "r")
    done = False  # the worker's results are all in (or not needed)
    stop = False

    def take(line: str) -> bool:
        """One line of the worker's; True when it stopped the check."""
        x, steps = map(int, line.split())
        if steps >= 0:
            settled[x] = steps
            return False
        first.append(x)
        return not every_key

    try:
        for x, steps in _decide(ours, parts, model, deadline, max_held):
            if steps is None:
                first.append(x)  # the caller decides it itself
                if not every_key:
                    stop = True
                    break
            else:
                settled[x] = steps
            # a key the worker could not settle may end the check before this half does
            while not done and select.select([inp], [], [], 0)[0]:
                line = inp.readline()
                if not line:
                    done = True
                elif take(line):
                    stop = True
                    break
            if stop:
                break
        if not stop and not done:
            for line in inp:
                if take(line):
                    break
    finally:
        inp.close()
        os.kill(pid, signal.SIGKILL)  # a no-op on a worker that has finished
        os.waitpid(pid, 0)
    return settled, first


def _decide(xs: list[int], parts: list[list[Op]], model: Model, deadline: float | None,
            max_held: int | None) -> Iterator[tuple[int, int | None]]:
    """(partition index, steps if plainly valid else None), for the keys xs:
    all compiled first, so a stale proof (an invalid key found without
    search) comes before any search, as in ``check_ops``'s own loop."""
    compiled = []
    for x in xs:
        try:
            c = model.compile(parts[x])
        except (ValueError, TypeError, IndexError, KeyError):
            yield x, None  # the caller's own compile names the problem
            return
        if c.stale:
            yield x, None
            return
        compiled.append((x, c))
    for x, c in compiled:
        yield x, _valid_steps(c, deadline, max_held)


def _valid_steps(c: Compiled, deadline: float | None, max_held: int | None) -> int | None:
    """The search steps of a compiled partition that is plainly valid (a
    linearization found), else None."""
    if min(c.rets, default=INF) == INF:
        return 0
    try:
        out = linearize(c.calls, c.rets, c.step, c.init, c.pred, deadline, c.needs, c.viable,
                        max_held, c.table)
    except (ValueError, TypeError, IndexError, KeyError):
        return None  # the caller's own search names the problem
    return out.steps if out.valid is True else None


def _unsettled(key: Any, c: Compiled, out: Any, memory_limit: float | None) -> Unsettled:
    """The window a stopped search could not settle (``Outcome.window``):
    from the first operation it had to undo to the deadline it was stuck at."""
    ops = [c.ops[i] for i in out.window] or c.ops
    ids = sorted(o.id for o in ops)
    starts = [o.start for o in ops if o.start is not None]
    ends = [o.end for o in ops if o.end is not None]
    span = ""
    if starts:
        span = f" ({min(starts) / 1e9:.3f} s to {max(ends or starts) / 1e9:.3f} s)"
    if out.gave_up == "memory":
        why = f"the search would pass the memory limit ({memory_limit:g} MB, {out.held} entries)"
    else:
        why = "the time limit ran out"
    k = "" if key is None else f" of {key}"
    sentence = (f"unknown{k}: {why} with {len(ids)} operations unsettled, ids {ids[0]}..{ids[-1]}"
                f"{span}, after {len(out.prefix)} linearized")
    return Unsettled(key, out.gave_up or "time", sentence, ids)
