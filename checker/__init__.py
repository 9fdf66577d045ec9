"""The linearizability checker, on its own: exact, and it explains its verdict.

docs/checker.md is its manual, docs/history.md the history format. Imports
nothing from the harness, the faults, the reports or the nodes: a history
and a model are all it needs.

- ``check_file(path, model="kv", time_limit=None, **semantics)``,
  ``check_events(events, ...)``, ``check_ops(ops, model_object, ...)``
  -> ``CheckResult`` (``valid`` True, False or "unknown"; ``anomalies``,
  each naming operations by ``Op.id``).
- Models: ``Model`` (the protocol), ``KV``, ``CasRegister``, ``KVAppend``,
  ``MultiRegister``, ``Mutex``; ``MODELS`` by name, ``make_model(name,
  initial=..., fail_cas=..., nil_read=...)``.
- Histories: ``Op``, ``pair``, ``read_history``, ``HistoryError``
  (checker.history).

Modules: history (formats, Op, pair), model (the protocol, generic
compile), registers / append / models (the models), search (the search),
explain (the sentences), check (the API).
"""

from checker.check import (
    Anomaly,
    CheckResult,
    Unsettled,
    check_events,
    check_file,
    check_ops,
    op_record,
)
from checker.history import HistoryError, Op, pair, read_history
from checker.model import Model
from checker.models import KV, MODELS, CasRegister, KVAppend, MultiRegister, Mutex, make_model

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
    "Op",
    "Unsettled",
    "check_events",
    "check_file",
    "check_ops",
    "make_model",
    "op_record",
    "pair",
    "read_history",
]
