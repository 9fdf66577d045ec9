"""Read/write/cas registers, one per key: the harness's own store, and etcd's.

Owns ``CasRegister`` (and ``KV``, the harness's name for a map of them): its
step, its explanation of a stale read, and its compile, which integer-codes
values and applies exact reductions for registers on top of those every
model gets (checker/model.py; each keeps the set of linearizable histories
the same; docs/checker.md "Models"):

- an optional write/cas whose new value no operation can observe is dropped
  (the operation after it in any linearization must overwrite it, so
  removing it changes nothing) -- only when no failed cas is read as a
  negative observation;
- an optional write/cas that is the unique producer of a value some
  completed operation observed must take effect before that observer
  returned: it becomes definite with that deadline (Gibbons & Korach's use
  of unique written values);
- an op that provably sees an overwritten value is found without search
  (``_stale_observers``): the partition is invalid, the search only finds
  the longest linearizable prefix for the report.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

from checker.explain import fmt, when
from checker.history import INF, Op
from checker.model import Compiled, Model, by_key, hkey
from checker.search import NO


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
            return hkey(v) == hkey(state), state
        if f == "write":
            return True, op.value
        if f == "cas":
            exp, new = cas_args(op)
            if op.type == "fail":
                return hkey(state) != hkey(exp), state
            return (True, new) if hkey(state) == hkey(exp) else (False, state)
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
            exp, new = cas_args(op)
            return hkey(exp) == hkey(new)
        return False

    def describe_op(self, op: Op) -> str:
        k = "" if op.key is None else f" {op.key}"
        if op.f == "read":
            return f"read of{k or ' the register'} returned {fmt(op.output)}"
        if op.f == "write":
            return f"write of {fmt(op.value)}{' to' + k if k else ''}"
        if op.f == "cas":
            exp, new = cas_args(op)
            verb = {"fail": "failed", "ok": "succeeded"}.get(op.type, "(indeterminate)")
            return f"cas{k} from {fmt(exp)} to {fmt(new)} {verb}"
        return f"{op.f}{k} {fmt(op.value)}"

    def explain(self, key: Any, part: list[Op], stuck: Op, prefix: list[Op], state: Any) -> str:
        """A stale read or cas names the overwrite it missed, or the write it
        saw that never happened; otherwise the generic sentence."""
        return _register_sentence(self, key, part, stuck) or super().explain(
            key, part, stuck, prefix, state)

    def compile(self, ops: list[Op]) -> Compiled:
        key = self.partition_key(ops)
        init_v = self.initial_for(key)
        codes: dict[Any, int] = {}
        values: list[Any] = []

        def code(v: Any) -> int:
            h = v if type(v) is int or type(v) is str else hkey(v)
            c = codes.get(h)
            if c is None:
                c = codes[h] = len(values)
                values.append(v)
            return c

        init_c = code(init_v)
        # [op, kind, a, b, ret, call]: kind 0 read(a), 1 write(b), 2 cas(a->b), 3 failed cas
        # observed (!= a). ret and call are copied out of the op once: the passes below
        # read them many times, and a row's list index is cheaper than an Op attribute.
        rows: list[list[Any]] = []
        add = rows.append
        observed_fail = self.fail_cas == "observed"
        wildcard = self.nil_read == "wildcard"
        get_code = codes.get
        for op in ops:
            f = op.f
            st = op.type
            if f == "read":
                if st != "ok":
                    continue  # an indeterminate or failed read changes nothing
                out = op.output
                if out is None and wildcard:
                    continue
                c = get_code(out) if type(out) is int or type(out) is str else None
                if c is None:
                    c = code(out)
                add([op, 0, c, c, op.ret, op.call])
            elif f == "write":
                if st != "fail":
                    v = op.value
                    c = get_code(v) if type(v) is int or type(v) is str else None
                    if c is None:
                        c = code(v)
                    add([op, 1, -1, c, op.ret, op.call])
            elif f == "cas":
                v = op.value
                if type(v) is list and len(v) == 2:
                    exp, new = v
                else:
                    exp, new = cas_args(op)
                if st == "fail":
                    if observed_fail:
                        c = code(exp)
                        add([op, 3, c, c, op.ret, op.call])
                else:
                    add([op, 2, code(exp), code(new), op.ret, op.call])
            else:
                raise ValueError(f"{self.name} model has no operation {f!r}")
        n_in = len(ops)
        # optional ops that cannot change the state: dropped
        rows = [r for r in rows
                if not (r[4] == INF and (r[1] in (0, 3) or (r[1] == 2 and r[2] == r[3])))]
        negative = any(r[1] == 3 for r in rows)
        notes: list[str] = []
        # optional mutations whose value nobody can observe: dropped (to a fixpoint)
        if not negative:
            while True:
                observed: set[int] = set()
                for r in rows:
                    if r[1] in (0, 2):
                        observed.add(r[2])
                keep = [r for r in rows if not (r[4] == INF and r[3] not in observed)]
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
            if r[1] in (0, 2) and r[4] != INF:
                d = deadline.get(r[2])
                if d is None or r[4] < d:
                    deadline[r[2]] = r[4]
        rets: list[float] = []
        promoted = 0
        for idx, r in enumerate(rows):
            ret = r[4]
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
            kept, [r[5] for r in rows], rets, pred, init_c, step,
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
    muts = sorted((r[5], rets[idx]) for idx, r in enumerate(rows)
                  if r[1] in (1, 2) and rets[idx] != INF_)
    if not muts:
        return []
    # suffix minimum of completion over mutations ordered by invocation
    mcalls = [c for c, _ in muts]
    suffix = [INF_] * (len(muts) + 1)
    for x in range(len(muts) - 1, -1, -1):
        suffix[x] = min(suffix[x + 1], muts[x][1])
    out = []
    for idx, r in enumerate(rows):
        if r[1] in (0, 2) and rets[idx] != INF_:
            lp = last_prod.get(r[2])
            if lp is None or lp == INF_:
                continue  # never produced (the search explains it) or maybe later
            if suffix[bisect_right(mcalls, lp)] < r[5]:
                out.append(idx)
    return out


class KV(CasRegister):
    """A map of cas-registers, one per key: the harness's own store."""

    name = "kv"


def cas_args(op: Op) -> tuple[Any, Any]:
    """A cas's (expected, new), from ``[expected, new]`` or ``{"expected", "new"}``."""
    v = op.value
    if isinstance(v, dict):
        return v.get("expected"), v.get("new", v.get("value"))
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise ValueError(f"cas value must be [expected, new], not {v!r}")
    return v[0], v[1]


def _register_sentence(model: CasRegister, key: Any, ops: list[Op], stuck: Op) -> str | None:
    if stuck.f == "read":
        v = stuck.output
        head = (f"read{' of ' + str(key) if key is not None else ''} returned {fmt(v)} at "
                f"{when(stuck.complete)}")
    elif stuck.f == "cas" and stuck.type == "ok":
        v = cas_args(stuck)[0]
        head = (
            f"cas{' of ' + str(key) if key is not None else ''} from {fmt(v)} succeeded at "
            f"{when(stuck.complete)}"
        )
    else:
        return None
    hv = hkey(v)
    # One pass: the ops that wrote v (producers), and the ok ops that wrote
    # something else (candidate overwrites), with the value each wrote.
    producers: list[Op] = []
    overwrites: list[tuple[Op, Any]] = []
    for op in ops:
        t = op.type
        if t == "fail":
            continue
        f = op.f
        if f == "write":
            pv = op.value
        elif f == "cas":
            pv = cas_args(op)[1]
        else:
            continue
        if (pv if type(pv) is int or type(pv) is str else hkey(pv)) == hv:
            producers.append(op)
        elif t == "ok":
            overwrites.append((op, pv))
    initial = model.initial_for(key)
    if not producers and hv != hkey(initial):
        return f"{head}, but no operation ever wrote {fmt(v)}"
    if producers and hv != hkey(initial) and all(p.call > stuck.ret for p in producers):
        first = min(producers, key=lambda p: p.call)
        return f"{head}, but the first write of {fmt(v)} began only at {when(first.invoke)}"
    # The latest completed overwrite before the read began, with no write of v
    # begun after it (a producer begun after op completed could have come between).
    latest_producer = max((p.call for p in producers if p is not stuck), default=-INF)
    began = stuck.call
    best: Op | None = None
    best_value: Any = None
    for op, pv in overwrites:
        ret = op.ret
        if ret >= began or latest_producer > ret:
            continue
        if best is None or ret > best.ret:
            best = op
            best_value = pv
    if best is not None:
        verb = "write" if best.f == "write" else "cas"
        return (
            f"{head}, but {verb} of {fmt(best_value)} completed at {when(best.complete)} "
            f"and no later write of {fmt(v)} exists"
        )
    return None
