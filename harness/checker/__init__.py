"""The linearizability checker: exact, explains its verdict.

Public API (see /work/interfaces.md):
- ``check_events(events, model="kv", time_limit=None, **semantics)``
- ``check_file(path, model="kv", time_limit=None, **semantics)``
- ``CheckResult`` with ``valid`` (True, False or "unknown") and ``to_dict()``.
- Models (porcupine-shaped): ``Model``, ``KV``, ``CasRegister``, ``KVAppend``,
  ``MultiRegister``, ``Mutex``; ``make_model(name, initial=..., fail_cas=...,
  nil_read=...)``. ``check_ops(ops, model)`` checks a model object of yours.

Flow: pair events into operations, partition them per key with the model
(P-compositionality: a history is linearizable iff each key's is), compile
each partition (exact reductions, integer-coded states), and search the
partitions smallest first, stopping at the first violation. A time limit
turns into "unknown", never a guess.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.checker.explain import sentence
from harness.checker.models import (
    KV,
    MODELS,
    CasRegister,
    Compiled,
    KVAppend,
    Model,
    MultiRegister,
    Mutex,
    make_model,
)
from harness.checker.search import INF, linearize
from harness.history import HistoryError, Op, pair_ops, public, read_history, unwrap_independent

PROVEN_BUDGET_S = 2.0  # search time for the prefix of a partition already proven invalid

__all__ = [
    "KV",
    "MODELS",
    "Anomaly",
    "CasRegister",
    "CheckResult",
    "HistoryError",
    "KVAppend",
    "Model",
    "MultiRegister",
    "Mutex",
    "check_events",
    "check_file",
    "check_ops",
    "make_model",
]


@dataclass(slots=True)
class Anomaly:
    key: Any
    sentence: str
    ops: list[Op]  # the operation stuck at its deadline, then those concurrent with it
    prefix: list[Op]  # longest linearizable prefix, in linearization order

    def to_dict(self) -> dict:
        return {
            "key": self.key,
            "sentence": self.sentence,
            "ops": [op_dict(op) for op in self.ops],
            "prefix": [op_dict(op) for op in self.prefix],
        }


def op_dict(op: Op) -> dict:
    """One operation as one event dict: its completion (or its invoke when it
    has none), plus ``invoke_index`` / ``invoke_time`` for drawing its span."""
    ev = public(op.complete if op.complete is not None else op.invoke)
    ev["invoke_index"] = op.invoke.get("index")
    ev["invoke_time"] = op.invoke.get("time")
    if op.complete is None:
        ev["type"] = "info"
        ev["pending"] = True
    return ev


@dataclass(slots=True)
class CheckResult:
    valid: bool | str  # True, False or "unknown"
    seconds: float
    model: str
    anomalies: list[Anomaly] = field(default_factory=list)
    path: str | None = None
    ops: int = 0
    partitions: int = 0
    checked: int = 0  # partitions fully decided
    steps: int = 0

    def to_dict(self) -> dict:
        d = {
            "valid": self.valid,
            "seconds": round(self.seconds, 6),
            "model": self.model,
            "anomalies": [a.to_dict() for a in self.anomalies],
        }
        if self.path is not None:
            d["path"] = self.path
        d.update(ops=self.ops, partitions=self.partitions, steps=self.steps)
        return d


def check_file(
    path: str | Path,
    model: str | Model = "kv",
    time_limit: float | None = None,
    *,
    independent: bool = False,
    every_key: bool = False,
    **semantics: Any,
) -> CheckResult:
    """Check a history file (JSON Lines or EDN). Raises HistoryError if unreadable.

    ``independent``: Jepsen independent-key history (value ``[key value]``).
    ``every_key``: see ``check_ops``."""
    events = read_history(path)
    if independent:
        events = unwrap_independent(events)
    res = check_events(events, model, time_limit, path=str(path), every_key=every_key,
                       **semantics)
    return res


def check_events(
    events: list[dict],
    model: str | Model = "kv",
    time_limit: float | None = None,
    *,
    path: str | None = None,
    every_key: bool = False,
    **semantics: Any,
) -> CheckResult:
    """Check a list of history events. ``semantics``: initial, fail_cas
    ("noeffect" | "observed"), nil_read ("absent" | "wildcard")."""
    t0 = time.perf_counter()
    ops = pair_ops(events, path or "<events>")
    m = make_model(model, **semantics)
    try:
        res = check_ops(ops, m, time_limit, start=t0, every_key=every_key)
    except HistoryError as exc:
        raise HistoryError(path or "<events>", None, exc.message) from None
    res.path = path
    return res


def check_ops(
    ops: list[Op], model: Model, time_limit: float | None = None, *, start: float | None = None,
    every_key: bool = False,
) -> CheckResult:
    """Check paired operations against a model object. The check stops at the
    first invalid partition (key) unless ``every_key``: then each invalid key
    gives its anomaly (to find the earliest one, as benchmarks/bug_zoo.py does)."""
    t0 = time.perf_counter() if start is None else start
    deadline = None if time_limit is None else time.monotonic() + time_limit
    parts = [p for p in model.partition(ops) if p]
    compiled: list[tuple[list[Op], Compiled]] = []
    try:
        for p in parts:
            compiled.append((p, model.compile(p)))
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise HistoryError("<history>", None, f"not a {model.name} history: {exc}") from None
    # Partitions with a proven stale read first, then smallest first: a
    # violating key is found after little work.
    compiled.sort(key=lambda pc: (not pc[1].stale, len(pc[1].ops)))
    res = CheckResult(True, 0.0, model.name, ops=len(ops), partitions=len(parts))
    unknown = False
    for part, c in compiled:
        if not any(r != INF for r in c.rets):
            res.checked += 1
            continue  # only optional operations: never taking effect is fine
        limit = deadline
        if c.stale:
            # Already proven invalid; the search only finds the longest
            # linearizable prefix for the report, so it gets a short budget.
            budget = time.monotonic() + PROVEN_BUDGET_S
            limit = budget if deadline is None else min(deadline, budget)
        try:
            out = linearize(c.calls, c.rets, c.step, c.init, c.pred, limit, c.needs, c.viable)
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            raise HistoryError("<history>", None, f"not a {model.name} history: {exc}") from None
        res.steps += out.steps
        key = model.partition_key(part)
        if out.valid is None and c.stale:
            stuck = c.ops[c.stale[0]]
            text = sentence(model, key, part, stuck, [], None)
            res.valid = False
            res.anomalies.append(Anomaly(key, text, [stuck], []))
            if every_key:
                continue
            break
        if out.valid is None:
            unknown = True
            break
        res.checked += 1
        if out.valid and c.stale:  # pragma: no cover - would be a checker bug
            raise AssertionError(f"search found a linearization despite stale op {c.stale[0]}")
        if not out.valid:
            stuck = c.ops[out.stuck]
            prefix = [c.ops[i] for i in out.prefix]
            conc = [c.ops[i] for i in out.concurrent if i != out.stuck]
            text = sentence(model, key, part, stuck, prefix, c.decode(out.prefix_state))
            res.valid = False
            res.anomalies.append(Anomaly(key, text, [stuck] + conc, prefix))
            if every_key:
                continue
            break
    if res.valid is True and unknown:
        res.valid = "unknown"
    res.seconds = time.perf_counter() - t0
    return res
