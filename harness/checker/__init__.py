"""TEMPORARY: removed when every importer uses checker/.

The checker moved to the top-level package ``checker`` (docs/checker.md).
This re-export keeps the modules that still import ``harness.checker``
working, with the OLD result shape they expect: an anomaly's ``ops`` and
``prefix`` are ``Op`` objects, and ``to_dict()`` spells them out as event
dicts (the completion, or the invoke when there is none, plus
``invoke_index`` / ``invoke_time``). The new API names operations by
``Op.id`` instead; switch to ``checker`` and this module goes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import checker as _checker
from checker import *  # the whole public API, re-exported
from checker import CheckResult, Op
from checker.history import public


@dataclass(slots=True)
class Anomaly:
    """The old anomaly: operations as objects."""

    key: Any
    sentence: str
    ops: list[Op]
    prefix: list[Op]

    def to_dict(self, history: list[Op] | None = None) -> dict:
        return {
            "key": self.key,
            "sentence": self.sentence,
            "ops": [op_dict(op) for op in self.ops],
            "prefix": [op_dict(op) for op in self.prefix],
        }


def op_dict(op: Op) -> dict:
    """The old form of one operation: its completion (or invoke) event."""
    ev = public(op.complete if op.complete is not None else op.invoke)
    ev["invoke_index"] = op.invoke.get("index")
    ev["invoke_time"] = op.invoke.get("time")
    if op.complete is None:
        ev["type"] = "info"
        ev["pending"] = True
    return ev


class _LegacyResult(CheckResult):
    """A CheckResult whose anomalies are the old ``Anomaly`` above."""

    __slots__ = ()


def _legacy(res: CheckResult) -> CheckResult:
    out = _LegacyResult(**{f.name: getattr(res, f.name) for f in fields(res)})
    by_id = {op.id: op for op in res.history}
    out.anomalies = [  # type: ignore[assignment]
        Anomaly(a.key, a.sentence, [by_id[i] for i in a.ops], [by_id[i] for i in a.prefix])
        for a in res.anomalies
    ]
    return out


def check_file(path: str | Path, *args: Any, **kwargs: Any) -> CheckResult:
    return _legacy(_checker.check_file(path, *args, **kwargs))


def check_events(events: list[dict], *args: Any, **kwargs: Any) -> CheckResult:
    return _legacy(_checker.check_events(events, *args, **kwargs))


def check_ops(ops: list[Op], *args: Any, **kwargs: Any) -> CheckResult:
    return _legacy(_checker.check_ops(ops, *args, **kwargs))
