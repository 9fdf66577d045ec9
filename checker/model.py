"""The model protocol: what a model is, and how a partition becomes search input.

A model (porcupine-shaped; docs/checker.md "Models") is an object with

- ``init()``: the initial state;
- ``step(state, op) -> (ok, new_state)``: whether ``op`` is legal in
  ``state``, and the state after it;
- ``partition(ops) -> [[op, ...], ...]`` and ``partition_key(part)``: the
  per-key split (P-compositionality: a history is linearizable iff each
  part is) and the key a part is reported under;
- ``describe_op(op)`` / ``describe_state(state)``: words for the sentences;
- ``explain(key, part, stuck, prefix, state)``: the sentence of a violation
  (the default is generic; a model may say more).

That is all a new model needs: ``Model.compile`` turns a partition into the
``Compiled`` form the search runs on by calling ``step``. A model may also
override ``compile`` to integer-code its states and apply exact reductions
(checker/registers.py does); the search (checker/search.py) never changes
for a model.

Semantics (Jepsen): a ``fail`` operation had no effect and is dropped (unless
the model is told that failures were observed, porcupine's etcd reading of a
failed cas); an ``info`` operation, or an invoke with no completion, may take
effect at any time after its invocation, or never ("optional"). States must
be hashable: the search memoizes them.

Exact reductions every model gets (each keeps the set of linearizable
histories the same): an optional operation that cannot change the state
(``readonly``) is dropped, since taking effect never helps; identical
optional operations are tried in call order only (``identical_chain``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from checker.explain import fmt, generic_sentence
from checker.history import INF, Op
from checker.search import NO, Table

NIL_READ = ("absent", "wildcard")
_KEY = itemgetter(Op._fields.index("key"))  # Op.key of a tuple, at C speed
FAIL_CAS = ("noeffect", "observed")


@dataclass(slots=True)
class Compiled:
    """One partition, ready for the search."""

    ops: list[Op]  # the operations the search considers (index = search op id)
    calls: list[float]
    rets: list[float]
    pred: list[int]
    init: Any
    step: Callable[[Any, int], Any]
    decode: Callable[[Any], Any] = lambda s: s
    needs: list[list[int] | None] | None = None
    viable: Callable[[Any, Callable[[int], bool], list[int]], bool] | None = None
    stale: list[int] = field(default_factory=list)  # ops proven to see an overwritten value
    #: the step as a table (checker/search.py ``Table``) when it is one: the
    #: compiled search runs it
    table: Table | None = None
    dropped: int = 0
    notes: list[str] = field(default_factory=list)



def hkey(v: Any) -> Any:
    """A dict key for a JSON value (lists are unhashable; True is not 1)."""
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, (list, dict)):
        return ("json", json.dumps(v, sort_keys=True))
    return v



class Model:
    """Base model: porcupine's interface, a generic ``compile`` and its hints.

    The semantics options every model takes: ``initial`` (the initial
    value), ``fail_cas`` ("noeffect" | "observed"), ``nil_read`` ("absent" |
    "wildcard"); a model uses those that mean something to it.
    """

    name = "model"

    def __init__(self, initial: Any = None, fail_cas: str = "noeffect", nil_read: str = "absent"):
        if fail_cas not in FAIL_CAS:
            raise ValueError(f"fail_cas must be one of {FAIL_CAS}, not {fail_cas!r}")
        if nil_read not in NIL_READ:
            raise ValueError(f"nil_read must be one of {NIL_READ}, not {nil_read!r}")
        self.initial = initial
        self.fail_cas = fail_cas
        self.nil_read = nil_read

    # --- porcupine's interface
    def init(self) -> Any:
        return self.initial

    def step(self, state: Any, op: Op) -> tuple[bool, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def partition(self, ops: list[Op]) -> list[list[Op]]:
        return [ops] if ops else []

    def partition_key(self, ops: list[Op]) -> Any:
        return None

    def describe_op(self, op: Op) -> str:
        return f"{op.f} {fmt(op.output if op.type == 'ok' else op.value)}"

    def describe_state(self, state: Any) -> str:
        return fmt(state)

    def explain(self, key: Any, part: list[Op], stuck: Op, prefix: list[Op], state: Any) -> str:
        """Why ``stuck`` cannot be linearized after ``prefix`` (leaving ``state``)."""
        return generic_sentence(self, key, stuck, prefix, state)

    # --- hints for the generic compile
    def considered(self, op: Op) -> bool:
        """Whether the search must consider op at all (fail = no effect)."""
        return op.type != "fail"

    def readonly(self, op: Op) -> bool:
        """True if op can never change the state (optional copies are dropped)."""
        return False

    def kept(self, ops: list[Op]) -> list[Op]:
        """The operations of a partition the search must consider."""
        return [op for op in ops
                if self.considered(op) and not (op.type == "info" and self.readonly(op))]

    def compile(self, ops: list[Op]) -> Compiled:
        """The generic form: the model's own ``step`` on the kept operations."""
        kept = self.kept(ops)
        model_step = self.step

        def step(state: Any, i: int) -> Any:
            ok, s2 = model_step(state, kept[i])
            return s2 if ok else NO

        return Compiled(
            kept, [op.call for op in kept], [op.ret for op in kept], identical_chain(kept),
            self.init(), step, dropped=len(ops) - len(kept),
        )



def identical_chain(ops: list[Op], optional: list[bool] | None = None) -> list[int]:
    """pred[i] = the previous identical optional op (by call), else -1."""
    pred = [-1] * len(ops)
    last: dict[Any, int] = {}
    for i, op in enumerate(ops):
        opt = op.ret == INF if optional is None else optional[i]
        if not opt:
            continue
        sig = (op.f, hkey(op.key), hkey(op.value))
        j = last.get(sig)
        if j is not None:
            pred[i] = j
        last[sig] = i
    return pred


def by_key(ops: list[Op]) -> list[list[Op]]:
    """The ops grouped by key (``hkey``), groups in order of first appearance."""
    keys = list(map(_KEY, ops))  # Op.key, by position: a C-level pass
    if keys:
        k0 = keys[0]
        # one key, the common case of a register history: one group, copied
        # at C speed (None and str are keyed as themselves, equal only to
        # themselves among JSON values)
        if (k0 is None or type(k0) is str) and keys[-1] == k0 and keys.count(k0) == len(keys):
            return [list(ops)]
    groups: dict[Any, list[Op]] = {}
    for op in ops:
        k = op.key
        g = groups.get(k if type(k) is str or k is None else hkey(k))
        if g is None:
            g = groups[k if type(k) is str or k is None else hkey(k)] = []
        g.append(op)
    return list(groups.values())

