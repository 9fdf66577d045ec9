"""Per-key strings that grow by appends: the kv-append model.

Owns ``KVAppend``: ``read`` returns the whole string, ``write`` sets it,
``append`` adds to it. Its compile adds an exact prefix check (between
writes the string only grows) and a ``viable`` test that abandons a search
node whose string no pending read can extend to; its explanation names the
read an append contradicts. docs/checker.md "Models".
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable
from typing import Any

from checker.explain import fmt, when
from checker.history import INF, Op
from checker.model import Compiled, Model, by_key, identical_chain
from checker.search import NO


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

    def explain(self, key: Any, part: list[Op], stuck: Op, prefix: list[Op], state: Any) -> str:
        """An append or write is cut when it cannot lead to what a later read
        saw: name that read, it is the observation in conflict."""
        if stuck.f in ("append", "write"):
            later = [op for op in part
                     if op.f == "read" and op.type == "ok" and op.call > stuck.ret]
            if later:
                r = min(later, key=lambda o: o.ret)
                return (
                    f"{self.describe_op(stuck)} completed at {when(stuck.complete)}, but no "
                    f"order of the operations concurrent with it agrees with the reads of {key} "
                    f"after it (the first, invoked {when(r.invoke)}, returned {fmt(r.output)}): "
                    f"after the longest linearizable prefix ({len(prefix)} operations) {key} is "
                    f"{self.describe_state(state)}"
                )
        return super().explain(key, part, stuck, prefix, state)

    def compile(self, ops: list[Op]) -> Compiled:
        """Specialised step with an exact prefix check.

        Between writes the string only grows. So when a definite append or
        write leaves the string s, and R is the earliest-returning read that
        must come after it (invoked after it completed), then unless some
        other write could fall between the two, s must be a prefix of what R
        returned: any other order of concurrent appends is cut at once
        instead of being found out at R.
        """
        kept = self.kept(ops)
        kinds = []
        vals = []
        # calls/rets copied out once: the passes below read them often, and a
        # list index is cheaper than an Op attribute
        calls = []
        rets = []
        for op in kept:
            f = op.f
            if f == "read":
                kinds.append(0)
                v = op.output or ""
            elif f == "append":
                kinds.append(1)
                v = op.value or ""
            elif f == "write":
                kinds.append(2)
                v = op.value or ""
            else:
                raise ValueError(f"kv-append model has no operation {f!r}")
            if not isinstance(v, str):
                raise TypeError(f"kv-append values are strings, not {v!r}")
            vals.append(v)
            calls.append(op.call)
            rets.append(op.ret)
        n = len(kept)
        reads = sorted((calls[i], rets[i], vals[i]) for i in range(n)
                       if kinds[i] == 0 and rets[i] != INF)
        # suffix minimum of read returns, by call time
        suffix: list[tuple[float, str | None]] = [(INF, None)] * (len(reads) + 1)
        for x in range(len(reads) - 1, -1, -1):
            r = reads[x]
            suffix[x] = (r[1], r[2]) if r[1] < suffix[x + 1][0] else suffix[x + 1]
        read_calls = [r[0] for r in reads]
        # "Some other write could fall between op i and R" is: a write j != i
        # invoked before R returned and returning after i was invoked. Over the
        # writes by call time, keep the two latest returns of each prefix (with
        # the first one's op), so each op asks in O(log n), not over all writes.
        writes = sorted((calls[i], rets[i], i) for i in range(n) if kinds[i] == 2)
        write_calls = [w[0] for w in writes]
        top: list[tuple[float, int, float]] = [(-INF, -1, -INF)]  # (latest ret, its op, 2nd)
        for _, wr, j in writes:
            r1, j1, r2 = top[-1]
            if wr > r1:
                top.append((wr, j, r1))
            else:
                top.append((r1, j1, max(r2, wr)))
        must: list[str | None] = [None] * n
        for i in range(n):
            ret = rets[i]
            if kinds[i] == 0 or ret == INF:
                continue
            r_ret, r_val = suffix[bisect_right(read_calls, ret)]
            if r_val is None:
                continue
            r1, j1, r2 = top[bisect_left(write_calls, r_ret)]
            if (r2 if j1 == i else r1) > calls[i]:
                continue  # another write may come between: the string may be reset
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
        write_ids = [i for i in range(n) if kinds[i] == 2]
        writes_before = [[w for w in write_ids if calls[w] < rets[f]] if kinds[f] == 0 else []
                         for f in range(n)]

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
