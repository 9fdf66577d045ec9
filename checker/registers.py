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

from bisect import bisect_left, bisect_right
from collections import Counter
from itertools import compress
from typing import Any

from checker.explain import fmt, when
from checker.history import INF, Op
from checker.model import Compiled, Model, by_key, hkey
from checker.native import load
from checker.search import NO

#: checker/_registers.c built and current (checker/native.py), else None:
#: the compiled twin of ``_columns``
COLUMNS_NATIVE = load("_registers")


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
        """Integer-coded columns of the considered operations, with the
        reductions of the module header. Columns, not rows, and each pass
        does what it can: at a million operations every pass over them costs
        a good part of a second (measured: 6.4 s -> see docs/checker.md)."""
        init_v = self.initial_for(self.partition_key(ops))
        observed_fail = self.fail_cas == "observed"
        wildcard = self.nil_read == "wildcard"
        cols = None
        if COLUMNS_NATIVE is not None and type(ops) is list:
            cols = COLUMNS_NATIVE.columns(ops, observed_fail, wildcard, init_v, hkey, cas_args)
        if cols is None:
            cols = _columns(ops, observed_fail, wildcard, init_v, self.name)
        O, K, A, B, R, C, MB, values, init_c, deadline, opt, ocas_seen, negative = cols
        n_in = len(ops)
        notes: list[str] = []
        # Optional mutations whose value nobody can observe: dropped (to a fixpoint: dropping
        # an optional cas may leave the value it expected unobserved). Without failed cas read
        # as observations only. A value is observed by a read or a definite cas (the keys of
        # ``deadline``) or by an optional cas still kept (``ocas_seen``); only the optional
        # rows are visited, and the columns are rebuilt once.
        if opt and not negative:
            dropped = [x for x in opt if B[x] not in deadline and not ocas_seen.get(B[x])]
            if dropped and ocas_seen:
                gone = set(dropped)
                by_value: dict[int, list[int]] = {}
                for x in opt:
                    by_value.setdefault(B[x], []).append(x)
                work = list(dropped)
                while work:
                    x = work.pop()
                    if K[x] != 2:
                        continue
                    a = A[x]
                    left = ocas_seen[a] - 1
                    ocas_seen[a] = left
                    if left or a in deadline:
                        continue
                    for y in by_value.get(a, ()):
                        if y not in gone:
                            gone.add(y)
                            work.append(y)
                dropped = sorted(gone)
            if dropped:
                mask = bytearray(b"\x01") * len(K)
                for x in dropped:
                    mask[x] = 0
                O, K, A, B, R, C = (list(compress(col, mask)) for col in (O, K, A, B, R, C))
                opt = [x - bisect_left(dropped, x) for x in opt if mask[x]]
        # unique producer of an observed value: definite, deadline = first observer's return
        # (a dropped row's value is observed by nobody, so counting the producers before
        # the drop gives the same answer for every value with a deadline)
        rets = R
        promoted = 0
        if opt:
            producers = Counter(MB)
            for x in opt:
                b = B[x]
                if b != init_c and producers[b] == 1:
                    d = deadline.get(b)
                    if d is not None:
                        rets[x] = d - 0.5
                        promoted += 1
        if promoted:
            notes.append(f"{promoted} indeterminate writes made definite by unique values")
        stale = None
        if COLUMNS_NATIVE is not None:
            stale = COLUMNS_NATIVE.stale_observers(K, A, B, C, rets, init_c)
        if stale is None:
            stale = _stale_observers(K, A, B, C, rets, init_c)

        def step(s: int, i: int) -> Any:
            k = K[i]
            if k == 1:
                return B[i]
            if k == 3:
                return NO if s == A[i] else s
            return B[i] if s == A[i] else NO

        # An optional write/cas is only worth placing right before an op that
        # sees its value (a read of it, a cas from it, or a failed cas from
        # another value when failures are observed): otherwise drop it from
        # the linearization or let the next write overwrite it.
        opt_rows = [x for x in opt if rets[x] == INF]
        pn = None
        if COLUMNS_NATIVE is not None and opt_rows:
            pn = COLUMNS_NATIVE.needs(K, A, B, opt_rows, negative)
        pred, needs = pn if pn is not None else _needs(K, A, B, opt_rows, negative)
        return Compiled(
            O, C, rets, pred, init_c, step,
            decode=lambda c: values[c], dropped=n_in - len(O), notes=notes, needs=needs,
            stale=stale, table=(K, A, B),
        )


def _needs(K: list[int], A: list[int], B: list[int], opt_rows: list[int],
           negative: bool) -> tuple[list[int], list[list[int] | None]]:
    """``pred`` and ``needs`` for the search (checker/search.py): identical
    optional rows in call order only, and each optional row's seers
    (checker/_registers.c ``needs`` is its compiled twin)."""
    n = len(K)
    pred = [-1] * n
    needs: list[list[int] | None] = [None] * n
    if opt_rows:
        # identical optional ops (same kind and coded values) in call order only
        last_same: dict[tuple[int, int, int], int] = {}
        for x in opt_rows:
            sig = (K[x], A[x], B[x])
            j = last_same.get(sig)
            if j is not None:
                pred[x] = j
            last_same[sig] = x
        # the rows seeing each value an optional row writes (reads and cas from
        # it), found in one pass over the seen column
        wanted = {B[x] for x in opt_rows}
        seers: dict[int, list[int]] = {}
        for x in [x for x, a in enumerate(A) if a in wanted]:
            if K[x] != 3:
                seers.setdefault(A[x], []).append(x)
        neg = [(x, A[x]) for x, k in enumerate(K) if k == 3] if negative else []
        neg_other: dict[int, list[int]] = {}  # value -> failed cas rows from another
        for x in opt_rows:
            b = B[x]
            lst = [j for j in seers.get(b, ()) if j != x]
            if neg:
                other = neg_other.get(b)
                if other is None:
                    other = neg_other[b] = [j for j, a in neg if a != b]
                lst += other
                lst.sort()  # call order (rows are): the search stops at the frontier
            needs[x] = lst
    return pred, needs


def _columns(ops: list[Op], observed_fail: bool, wildcard: bool, init_v: Any,
             name: str) -> tuple:
    """The register compile's first pass, one visit per op: (O, K, A, B, R, C,
    MB, values, init_c, deadline, opt, ocas_seen, negative), as
    ``CasRegister.compile`` reads them (checker/_registers.c is its compiled
    twin, ``COLUMNS_NATIVE``)."""
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
    # Columns: O op, K kind (0 read(a), 1 write(b), 2 cas(a->b), 3 failed cas observed
    # (!= a)), A, B, R ret, C call. Built in one pass, which also collects the values
    # seen (reads and cas from a value) and each seen value's earliest definite return.
    O: list[Op] = []
    K: list[int] = []
    A: list[int] = []
    B: list[int] = []
    R: list[float] = []
    C: list[int] = []
    o_add, k_add, a_add, b_add, r_add, c_add = (O.append, K.append, A.append, B.append,
                                                R.append, C.append)
    get_code = codes.get
    deadline: dict[int, float] = {}  # value -> earliest definite return of an op seeing it
    get_deadline = deadline.get
    negative = False
    opt: list[int] = []  # rows of the optional writes and cas, in row order
    ocas_seen: dict[int, int] = {}  # value -> optional cas rows expecting it
    MB: list[int] = []  # the value each write and cas writes (producers, counted)
    mb_add = MB.append
    for op in ops:
        f = op.f
        st = op.type
        ret = op.ret
        if f == "read":
            if st != "ok":
                continue  # an indeterminate or failed read changes nothing
            out = op.output
            if out is None and wildcard:
                continue
            c = get_code(out) if type(out) is int or type(out) is str else None
            if c is None:
                c = code(out)
            o_add(op); k_add(0); a_add(c); b_add(c); r_add(ret); c_add(op.call)
            d = get_deadline(c)
            if d is None or ret < d:
                deadline[c] = ret
        elif f == "write":
            if st != "fail":
                v = op.value
                c = get_code(v) if type(v) is int or type(v) is str else None
                if c is None:
                    c = code(v)
                o_add(op); k_add(1); a_add(-1); b_add(c); r_add(ret); c_add(op.call)
                mb_add(c)
                if ret == INF:
                    opt.append(len(O) - 1)
        elif f == "cas":
            v = op.value
            if type(v) is list and len(v) == 2:
                exp, new = v
            else:
                exp, new = cas_args(op)
            if st == "fail":
                if observed_fail:
                    c = code(exp)
                    o_add(op); k_add(3); a_add(c); b_add(c); r_add(ret); c_add(op.call)
                    negative = True
                continue
            a, b = code(exp), code(new)
            if ret == INF:
                if a == b:
                    continue  # optional and cannot change the state: dropped
                o_add(op); k_add(2); a_add(a); b_add(b); r_add(ret); c_add(op.call)
                mb_add(b)
                opt.append(len(O) - 1)
                ocas_seen[a] = ocas_seen.get(a, 0) + 1
                continue
            o_add(op); k_add(2); a_add(a); b_add(b); r_add(ret); c_add(op.call)
            mb_add(b)
            d = get_deadline(a)
            if d is None or ret < d:
                deadline[a] = ret
        else:
            raise ValueError(f"{name} model has no operation {f!r}")
    return O, K, A, B, R, C, MB, values, init_c, deadline, opt, ocas_seen, negative


def _stale_observers(K: list[int], A: list[int], B: list[int], C: list[int],
                     rets: list[float], init_c: int) -> list[int]:
    """Ops that provably see an overwritten value (Gibbons & Korach style).

    An op observing v (ok read, ok cas from v) is stale when some definite
    write/cas X began after every producer of v had completed (the initial
    value counts as produced at -inf) and X completed before the op began:
    every linearization puts a producer of v, then X, then the op, with
    nothing that writes v in between. No search needed, and exact.

    Columns as ``CasRegister.compile`` builds them (K kind, A seen, B
    written, C call, rets after promotion).
    """
    INF_ = INF
    last_prod: dict[int, float] = {init_c: -INF_}
    get_last = last_prod.get
    mcalls: list[int] = []  # definite mutations: calls and returns, by call
    mrets: list[float] = []
    for x, k in enumerate(K):
        if k == 1 or k == 2:
            ret = rets[x]
            b = B[x]
            if ret > get_last(b, -INF_):
                last_prod[b] = ret
            if ret != INF_:
                mcalls.append(C[x])
                mrets.append(ret)
    if not mcalls:
        return []
    if any(mcalls[x] > mcalls[x + 1] for x in range(len(mcalls) - 1)):
        order = sorted(range(len(mcalls)), key=lambda x: (mcalls[x], mrets[x]))
        mcalls = [mcalls[x] for x in order]
        mrets = [mrets[x] for x in order]
    # suffix minimum of completion over mutations ordered by invocation
    suffix = [INF_] * (len(mcalls) + 1)
    low = INF_
    for x in range(len(mcalls) - 1, -1, -1):
        r = mrets[x]
        if r < low:  # noqa: PLR1730 - a compare, not a call, in a loop over every mutation
            low = r
        suffix[x] = low
    out = []
    for x, k in enumerate(K):
        if (k == 0 or k == 2) and rets[x] != INF_:
            lp = get_last(A[x])
            if lp is None or lp == INF_:
                continue  # never produced (the search explains it) or maybe later
            if suffix[bisect_right(mcalls, lp)] < C[x]:
                out.append(x)
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
