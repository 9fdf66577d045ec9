"""Models: what each kind of object does, shaped like porcupine's Model.

A model is an object with ``init()``, ``step(state, op) -> (ok, new_state)``,
``partition(ops) -> [[op...]...]`` and ``describe_op`` / ``describe_state``.
That is all a user model needs. Ours also ``compile`` a partition into the
integer-coded form the search runs on (``Compiled``), applying exact
reductions there.

Semantics (Jepsen): a ``fail`` operation had no effect and is dropped (unless
the model is told that failures were observed, porcupine's etcd reading of a
failed cas); an ``info`` operation, or an invoke with no completion, may take
effect at any time after its invocation, or never ("optional"). States must
be hashable: the search memoizes them.

Exact reductions (each keeps the set of linearizable histories the same):
- an optional operation that cannot change the state is dropped (taking
  effect never helps);
- identical optional operations are tried in call order only;
- registers: an optional write/cas whose new value no operation can
  observe is dropped (the operation after it in any linearization must
  overwrite it, so removing it changes nothing) -- only when no failed cas
  is read as a negative observation;
- registers: an optional write/cas that is the unique producer of a value
  some completed operation observed must take effect before that observer
  returned: it becomes definite with that deadline (Gibbons & Korach's use
  of unique written values).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.checker.search import INF, NO
from harness.history import Op

NIL_READ = ("absent", "wildcard")
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
    dropped: int = 0
    notes: list[str] = field(default_factory=list)


def fmt(v: Any) -> str:
    if v is None:
        return "nil"
    if isinstance(v, str):
        return repr(v) if (v == "" or " " in v or len(v) > 40) else v
    return json.dumps(v) if isinstance(v, (list, dict, bool)) else str(v)


def _hkey(v: Any) -> Any:
    """A dict key for a JSON value (lists are unhashable; True is not 1)."""
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, (list, dict)):
        return ("json", json.dumps(v, sort_keys=True))
    return v


class Model:
    """Base model: porcupine's interface plus a generic ``compile``."""

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

    # --- hints for the generic compile
    def considered(self, op: Op) -> bool:
        """Whether the search must consider op at all (fail = no effect)."""
        return op.type != "fail"

    def readonly(self, op: Op) -> bool:
        """True if op can never change the state (optional copies are dropped)."""
        return False

    def compile(self, ops: list[Op]) -> Compiled:
        kept = [op for op in ops if self.considered(op) and not (op.type == "info" and self.readonly(op))]
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
        sig = (op.f, _hkey(op.key), _hkey(op.value))
        j = last.get(sig)
        if j is not None:
            pred[i] = j
        last[sig] = i
    return pred


def by_key(ops: list[Op]) -> list[list[Op]]:
    groups: dict[Any, list[Op]] = {}
    for op in ops:
        k = op.key
        g = groups.get(k if type(k) is str or k is None else _hkey(k))
        if g is None:
            g = groups[k if type(k) is str or k is None else _hkey(k)] = []
        g.append(op)
    return list(groups.values())


# --------------------------------------------------------------------------- registers


class CasRegister(Model):
    """Read/write/cas registers, one per key (P-compositional).

    ``read`` returns the value (nil = absent, or unknown with
    nil_read="wildcard"); ``write`` sets it; ``cas`` with value
    ``[expected, new]`` swaps when the register holds ``expected`` (ok) and
    did nothing when it failed.
    """

    name = "cas-register"

    def partition(self, ops: list[Op]) -> list[list[Op]]:
        return by_key(ops)

    def partition_key(self, ops: list[Op]) -> Any:
        return ops[0].key if ops else None

    def initial_for(self, key: Any) -> Any:
        if isinstance(self.initial, dict):
            return self.initial.get(key)
        return self.initial

    def init(self) -> Any:
        return self.initial if not isinstance(self.initial, dict) else None

    def step(self, state: Any, op: Op) -> tuple[bool, Any]:
        f = op.f
        if f == "read":
            if op.type != "ok":
                return True, state
            v = op.output
            if v is None and self.nil_read == "wildcard":
                return True, state
            return _hkey(v) == _hkey(state), state
        if f == "write":
            return True, op.value
        if f == "cas":
            exp, new = _cas_args(op)
            if op.type == "fail":
                return _hkey(state) != _hkey(exp), state
            return (True, new) if _hkey(state) == _hkey(exp) else (False, state)
        return False, state

    def considered(self, op: Op) -> bool:
        if op.type == "fail":
            return op.f == "cas" and self.fail_cas == "observed"
        if op.f == "read":
            if op.type != "ok":
                return False
            if op.output is None and self.nil_read == "wildcard":
                return False
        return True

    def readonly(self, op: Op) -> bool:
        if op.f == "read":
            return True
        if op.f == "cas":
            exp, new = _cas_args(op)
            return _hkey(exp) == _hkey(new)
        return False

    def describe_op(self, op: Op) -> str:
        k = "" if op.key is None else f" {op.key}"
        if op.f == "read":
            return f"read of{k or ' the register'} returned {fmt(op.output)}"
        if op.f == "write":
            return f"write of {fmt(op.value)}{' to' + k if k else ''}"
        if op.f == "cas":
            exp, new = _cas_args(op)
            verb = "failed" if op.type == "fail" else ("succeeded" if op.type == "ok" else "(indeterminate)")
            return f"cas{k} from {fmt(exp)} to {fmt(new)} {verb}"
        return f"{op.f}{k} {fmt(op.value)}"

    def compile(self, ops: list[Op]) -> Compiled:
        key = self.partition_key(ops)
        init_v = self.initial_for(key)
        codes: dict[Any, int] = {}
        values: list[Any] = []

        def code(v: Any) -> int:
            h = v if type(v) is int or type(v) is str else _hkey(v)
            c = codes.get(h)
            if c is None:
                c = codes[h] = len(values)
                values.append(v)
            return c

        init_c = code(init_v)
        # (op, kind, a, b): kind 0 read(a), 1 write(b), 2 cas(a->b), 3 failed cas observed (!= a)
        rows: list[list[Any]] = []
        add = rows.append
        observed_fail = self.fail_cas == "observed"
        wildcard = self.nil_read == "wildcard"
        for op in ops:
            f = op.f
            st = op.type
            if f == "read":
                if st != "ok":
                    continue  # an indeterminate or failed read changes nothing
                v = op.output
                if v is None and wildcard:
                    continue
                c = code(v)
                add([op, 0, c, c])
            elif f == "write":
                if st != "fail":
                    add([op, 1, -1, code(op.value)])
            elif f == "cas":
                v = op.value
                if type(v) is list and len(v) == 2:
                    exp, new = v
                else:
                    exp, new = _cas_args(op)
                if st == "fail":
                    if observed_fail:
                        c = code(exp)
                        add([op, 3, c, c])
                else:
                    add([op, 2, code(exp), code(new)])
            else:
                raise ValueError(f"{self.name} model has no operation {f!r}")
        n_in = len(ops)
        # optional ops that cannot change the state: dropped
        rows = [r for r in rows if not (r[0].ret == INF and (r[1] in (0, 3) or (r[1] == 2 and r[2] == r[3])))]
        negative = any(r[1] == 3 for r in rows)
        notes: list[str] = []
        # optional mutations whose value nobody can observe: dropped (to a fixpoint)
        if not negative:
            while True:
                observed: set[int] = set()
                for r in rows:
                    if r[1] in (0, 2):
                        observed.add(r[2])
                keep = [r for r in rows if not (r[0].ret == INF and r[3] not in observed)]
                if len(keep) == len(rows):
                    break
                rows = keep
        # unique producer of an observed value: definite, deadline = first observer's return
        producers: dict[int, int] = {}
        for idx, r in enumerate(rows):
            if r[1] in (1, 2):
                producers[r[3]] = -2 if r[3] in producers else idx
        deadline: dict[int, float] = {}
        for r in rows:
            if r[1] in (0, 2) and r[0].ret != INF:
                d = deadline.get(r[2])
                if d is None or r[0].ret < d:
                    deadline[r[2]] = r[0].ret
        rets: list[float] = []
        promoted = 0
        for idx, r in enumerate(rows):
            ret = r[0].ret
            if ret == INF and r[1] in (1, 2) and r[3] != init_c and producers.get(r[3]) == idx:
                d = deadline.get(r[3])
                if d is not None:
                    ret = d - 0.5
                    promoted += 1
            rets.append(ret)
        if promoted:
            notes.append(f"{promoted} indeterminate writes made definite by unique values")
        stale = _stale_observers(rows, rets, init_c)
        kept = [r[0] for r in rows]
        kinds = [r[1] for r in rows]
        A = [r[2] for r in rows]
        B = [r[3] for r in rows]

        def step(s: int, i: int) -> Any:
            k = kinds[i]
            if k == 1:
                return B[i]
            if k == 3:
                return NO if s == A[i] else s
            return B[i] if s == A[i] else NO

        # An optional write/cas is only worth placing right before an op that
        # sees its value (a read of it, a cas from it, or a failed cas from
        # another value when failures are observed): otherwise drop it from
        # the linearization or let the next write overwrite it.
        optional = [r == INF for r in rets]
        # identical optional ops (same kind and coded values) in call order only
        pred = [-1] * len(rows)
        last_same: dict[tuple[int, int, int], int] = {}
        for idx, r in enumerate(rows):
            if optional[idx]:
                sig = (r[1], r[2], r[3])
                j = last_same.get(sig)
                if j is not None:
                    pred[idx] = j
                last_same[sig] = idx
        seers: dict[int, list[int]] = {}
        for idx, r in enumerate(rows):
            if r[1] in (0, 2):
                seers.setdefault(r[2], []).append(idx)
        neg = [(idx, r[2]) for idx, r in enumerate(rows) if r[1] == 3]
        needs: list[list[int] | None] = [None] * len(rows)
        for idx, r in enumerate(rows):
            if optional[idx] and r[1] in (1, 2):
                lst = [j for j in seers.get(r[3], ()) if j != idx]
                lst += [j for j, a in neg if a != r[3]]
                lst.sort()  # call order (rows are): the search stops at the frontier
                needs[idx] = lst
        return Compiled(
            kept, [op.call for op in kept], rets, pred, init_c, step,
            decode=lambda c: values[c], dropped=n_in - len(kept), notes=notes, needs=needs,
            stale=stale,
        )


def _stale_observers(rows: list[list[Any]], rets: list[float], init_c: int) -> list[int]:
    """Ops that provably see an overwritten value (Gibbons & Korach style).

    An op observing v (ok read, ok cas from v) is stale when some definite
    write/cas X began after every producer of v had completed (the initial
    value counts as produced at -inf) and X completed before the op began:
    every linearization puts a producer of v, then X, then the op, with
    nothing that writes v in between. No search needed, and exact.
    """
    INF_ = INF
    last_prod: dict[int, float] = {init_c: -INF_}
    for idx, r in enumerate(rows):
        if r[1] in (1, 2):
            ret = rets[idx]
            if ret > last_prod.get(r[3], -INF_):
                last_prod[r[3]] = ret
    muts = sorted((r[0].call, rets[idx]) for idx, r in enumerate(rows)
                  if r[1] in (1, 2) and rets[idx] != INF_)
    if not muts:
        return []
    # suffix minimum of completion over mutations ordered by invocation
    mcalls = [c for c, _ in muts]
    suffix = [INF_] * (len(muts) + 1)
    for x in range(len(muts) - 1, -1, -1):
        suffix[x] = min(suffix[x + 1], muts[x][1])
    from bisect import bisect_right
    out = []
    for idx, r in enumerate(rows):
        if r[1] in (0, 2) and rets[idx] != INF_:
            lp = last_prod.get(r[2])
            if lp is None or lp == INF_:
                continue  # never produced (the search explains it) or maybe later
            if suffix[bisect_right(mcalls, lp)] < r[0].call:
                out.append(idx)
    return out


class KV(CasRegister):
    """A map of cas-registers, one per key: the harness's own store."""

    name = "kv"


def _cas_args(op: Op) -> tuple[Any, Any]:
    v = op.value
    if isinstance(v, dict):
        return v.get("expected"), v.get("new", v.get("value"))
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise ValueError(f"cas value must be [expected, new], not {v!r}")
    return v[0], v[1]


# --------------------------------------------------------------------------- other models


class KVAppend(Model):
    """Per-key strings: ``read`` returns all of it, ``write`` sets, ``append`` adds."""

    name = "kv-append"

    def __init__(self, initial: Any = "", **kw: Any):
        super().__init__("" if initial is None else initial, **kw)

    def partition(self, ops: list[Op]) -> list[list[Op]]:
        return by_key(ops)

    def partition_key(self, ops: list[Op]) -> Any:
        return ops[0].key if ops else None

    def step(self, state: Any, op: Op) -> tuple[bool, Any]:
        f = op.f
        if f == "read":
            return (op.output or "") == state, state
        if f == "append":
            return True, state + (op.value or "")
        if f == "write":
            return True, op.value or ""
        raise ValueError(f"kv-append model has no operation {f!r}")

    def considered(self, op: Op) -> bool:
        return op.type == "ok" or (op.type == "info" and op.f != "read")

    def readonly(self, op: Op) -> bool:
        return op.f == "read" or (op.f == "append" and not op.value)

    def describe_op(self, op: Op) -> str:
        if op.f == "read":
            return f"read of {op.key} returned {fmt(op.output)}"
        return f"{op.f} of {fmt(op.value)} to {op.key}"

    def compile(self, ops: list[Op]) -> Compiled:
        """Specialised step with an exact prefix check.

        Between writes the string only grows. So when a definite append or
        write leaves the string s, and R is the earliest-returning read that
        must come after it (invoked after it completed), then unless some
        other write could fall between the two, s must be a prefix of what R
        returned: any other order of concurrent appends is cut at once
        instead of being found out at R.
        """
        kept = [op for op in ops if self.considered(op) and not (op.type == "info" and self.readonly(op))]
        kinds = []
        vals = []
        for op in kept:
            if op.f == "read":
                kinds.append(0)
                vals.append(op.output or "")
            elif op.f == "append":
                kinds.append(1)
                vals.append(op.value or "")
            elif op.f == "write":
                kinds.append(2)
                vals.append(op.value or "")
            else:
                raise ValueError(f"kv-append model has no operation {op.f!r}")
            if not isinstance(vals[-1], str):
                raise TypeError(f"kv-append values are strings, not {vals[-1]!r}")
        reads = sorted((op.call, op.ret, vals[i]) for i, op in enumerate(kept)
                       if kinds[i] == 0 and op.ret != INF)
        # suffix minimum of read returns, by call time
        suffix: list[tuple[float, str | None]] = [(INF, None)] * (len(reads) + 1)
        for x in range(len(reads) - 1, -1, -1):
            r = reads[x]
            suffix[x] = (r[1], r[2]) if r[1] < suffix[x + 1][0] else suffix[x + 1]
        read_calls = [r[0] for r in reads]
        writes = [(op.call, op.ret, i) for i, op in enumerate(kept) if kinds[i] == 2]
        must: list[str | None] = [None] * len(kept)
        from bisect import bisect_right
        for i, op in enumerate(kept):
            if kinds[i] == 0 or op.ret == INF:
                continue
            r_ret, r_val = suffix[bisect_right(read_calls, op.ret)]
            if r_val is None:
                continue
            if any(j != i and wc < r_ret and wr > op.call for wc, wr, j in writes):
                continue
            must[i] = r_val

        def step(s: str, i: int) -> Any:
            k = kinds[i]
            if k == 0:
                return s if s == vals[i] else NO
            s2 = s + vals[i] if k == 1 else vals[i]
            t = must[i]
            if t is not None and not t.startswith(s2):
                return NO
            return s2

        # For viable(): the writes that could still be placed before op f returns.
        write_ids = [i for i in range(len(kept)) if kinds[i] == 2]
        rets = [op.ret for op in kept]
        calls = [op.call for op in kept]
        writes_before = [[w for w in write_ids if calls[w] < rets[f]] if kinds[f] == 0 else []
                         for f in range(len(kept))]

        def viable(s: str, linearized: Callable[[int], bool], due: list[int]) -> bool:
            # Any pending read must later see exactly its string; until a
            # write resets it, the string only grows: so it must extend s.
            for f in due:
                if kinds[f] == 0 and not vals[f].startswith(s):
                    for w in writes_before[f]:
                        if not linearized(w):
                            break
                    else:
                        return False
            return True

        return Compiled(
            kept, calls, rets, identical_chain(kept),
            self.init(), step, dropped=len(ops) - len(kept), viable=viable,
        )


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
                if v is not None and (op.type == "ok") and _hkey(d.get(k)) != _hkey(v):
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


MODELS: dict[str, type[Model]] = {
    "kv": KV,
    "cas-register": CasRegister,
    "kv-append": KVAppend,
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
    opts = {k: v for k, v in options.items() if v is not _UNSET}
    return cls(**opts)


_UNSET: Any = object()
