"""The models by name, and the small ones: several registers in transactions, a mutex.

Owns ``MODELS`` (name -> model class) and ``make_model``, plus
``MultiRegister`` and ``Mutex``, which need nothing beyond the generic
compile of checker/model.py. The registers live in checker/registers.py, the
append strings in checker/append.py, list-append (Elle-style transactions,
checked by dependency cycles, not by the search) in checker/listappend.py.
docs/checker.md "Models" lists them and says how a new one plugs in.
"""

from __future__ import annotations

from typing import Any

from checker.append import KVAppend
from checker.explain import fmt
from checker.history import Op
from checker.listappend import ListAppend
from checker.model import Model, hkey
from checker.registers import KV, CasRegister


class MultiRegister(Model):
    """Several registers changed by transactions ``[["read"|"write", k, v], ...]``.

    Not partitioned: one transaction spans keys. A nil read value is unknown.
    """

    name = "multi-register"

    def init(self) -> Any:
        init = self.initial if isinstance(self.initial, dict) else {}
        return tuple(sorted(init.items(), key=lambda kv: str(kv[0])))

    def step(self, state: Any, op: Op) -> tuple[bool, Any]:
        d = dict(state)
        txn = op.output if op.type == "ok" else op.value
        for mop in txn or []:
            f, k, v = mop[0], mop[1], mop[2]
            if f == "read":
                if v is not None and (op.type == "ok") and hkey(d.get(k)) != hkey(v):
                    return False, state
            elif f == "write":
                d[k] = v
            else:
                raise ValueError(f"multi-register transaction has no micro-op {f!r}")
        return True, tuple(sorted(d.items(), key=lambda kv: str(kv[0])))

    def readonly(self, op: Op) -> bool:
        return all(m[0] == "read" for m in (op.value or []))

    def describe_op(self, op: Op) -> str:
        txn = op.output if op.type == "ok" else op.value
        return "txn " + ", ".join(f"{m[0]} {m[1]} {fmt(m[2])}" for m in (txn or []))

    def describe_state(self, state: Any) -> str:
        return ", ".join(f"{k}={fmt(v)}" for k, v in state) or "empty"


class Mutex(Model):
    """A lock: ``acquire`` when free, ``release`` when held; initially free."""

    name = "mutex"

    def init(self) -> Any:
        return bool(self.initial)

    def step(self, state: Any, op: Op) -> tuple[bool, Any]:
        if op.f == "acquire":
            return (not state), True
        if op.f == "release":
            return bool(state), False
        raise ValueError(f"mutex model has no operation {op.f!r}")

    def describe_op(self, op: Op) -> str:
        return f"{op.f} by process {op.process}"

    def describe_state(self, state: Any) -> str:
        return "held" if state else "free"


# The models ``make_model`` and ``harness check --model`` know by name. A new
# model is a Model subclass added here (or, from outside, to this dict): the
# search and the check API do not change (docs/checker.md "Adding a model").
MODELS: dict[str, type[Model]] = {
    "kv": KV,
    "cas-register": CasRegister,
    "kv-append": KVAppend,
    "list-append": ListAppend,
    "multi-register": MultiRegister,
    "mutex": Mutex,
}


def make_model(name: str | Model, **options: Any) -> Model:
    """A model by name, with semantics options (initial, fail_cas, nil_read)."""
    if isinstance(name, Model):
        return name
    cls = MODELS.get(name)
    if cls is None:
        raise ValueError(f"unknown model {name!r} (one of {', '.join(MODELS)})")
    return cls(**options)
