"""The linearizability search: Wing & Gong with Lowe's memoization.

Owns one function, ``linearize``, that decides whether a set of operations
on ONE object (one partition) has a linearization. It knows nothing about
values: the model is reduced to ``step(state, i) -> new state | NO``.

Theory of operation (Wing & Gong 1993; Lowe 2017, "Testing for
linearizability"; as in porcupine): every operation contributes a call entry
at its invocation and a return entry at its completion, in one doubly linked
list in time order. Walking from the head, a call entry may be linearized
now if the step is legal; its two entries are then lifted out of the list
and the walk restarts at the head. Reaching a return entry means that
operation's deadline passed unlinearized: backtrack. The pair (set of
linearized operations as an int bitset, state) is memoized, so no
configuration is explored twice.

Invariants:
- ``rets[i]`` is ``INF`` for an optional operation (may take effect at any
  time after its call, or never). Optional return entries sort after every
  definite one, so reaching one means every definite operation is
  linearized: success (the rest simply never took effect).
- ``pred[i] >= 0`` makes op i linearizable only after op ``pred[i]``
  (identical indeterminate operations are tried in one order only).
- The deadline is checked every few thousand steps; running out gives
  ``None`` (unknown), never a guess.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

INF = float("inf")
NO: Any = object()  # step result: the operation is illegal in this state


@dataclass(slots=True)
class Outcome:
    """Result of one partition's search."""

    valid: bool | None  # None: gave up at the deadline
    steps: int = 0
    prefix: list[int] = field(default_factory=list)  # longest linearizable prefix (op indices)
    prefix_state: Any = None
    stuck: int = -1  # op whose deadline passed after that prefix
    concurrent: list[int] = field(default_factory=list)  # calls pending there, none legal


def linearize(
    calls: Sequence[float],
    rets: Sequence[float],
    step: Callable[[Any, int], Any],
    init: Any,
    pred: Sequence[int] | None = None,
    deadline: float | None = None,
) -> Outcome:
    n = len(calls)
    if n == 0:
        return Outcome(True)
    order = sorted(
        [(calls[i], 0, i) for i in range(n)] + [(rets[i], 1, i) for i in range(n)]
    )
    m = 2 * n
    # Entry 0 is the head sentinel; entries 1..m in time order; circular.
    nxt = list(range(1, m + 2))
    nxt[m] = 0
    prv = list(range(-1, m))
    prv[0] = m
    eop = [0] * (m + 1)
    kind = [2] * (m + 1)  # 0 call, 1 definite return, 2 optional return / end of list
    ce = [0] * n
    re_ = [0] * n
    for k, (t, is_ret, i) in enumerate(order, 1):
        eop[k] = i
        if is_ret:
            re_[i] = k
            kind[k] = 2 if t == INF else 1
        else:
            ce[i] = k
            kind[k] = 0
    if pred is None:
        pred = [-1] * n

    cache: set = set()
    add = cache.add
    stack: list[tuple[int, Any]] = []
    push = stack.append
    pop = stack.pop
    lin = 0
    state = init
    best = -1
    out = Outcome(False)
    steps = 0
    check_every = 4096
    next_check = check_every
    k = nxt[0]
    while True:
        kd = kind[k]
        if kd == 0:
            i = eop[k]
            p = pred[i]
            if p < 0 or (lin >> p) & 1:
                s2 = step(state, i)
                steps += 1
                if s2 is not NO:
                    lin2 = lin | (1 << i)
                    key = (lin2, s2)
                    if key not in cache:
                        add(key)
                        push((i, state))
                        state = s2
                        lin = lin2
                        # lift op i: its call entry and its return entry
                        c = ce[i]
                        a, b = prv[c], nxt[c]
                        nxt[a] = b
                        prv[b] = a
                        r = re_[i]
                        a, b = prv[r], nxt[r]
                        nxt[a] = b
                        prv[b] = a
                        k = nxt[0]
                        if steps >= next_check:
                            next_check = steps + check_every
                            if deadline is not None and time.monotonic() > deadline:
                                out.valid = None
                                out.steps = steps
                                return out
                        continue
            k = nxt[k]
        elif kd == 1:
            # op eop[k] reached its deadline unlinearized: backtrack.
            if len(stack) > best:
                best = len(stack)
                out.prefix = [s[0] for s in stack]
                out.prefix_state = state
                out.stuck = eop[k]
                conc = []
                j = nxt[0]
                while j != k:
                    if kind[j] == 0:
                        conc.append(eop[j])
                    j = nxt[j]
                out.concurrent = conc
            if not stack:
                out.steps = steps
                return out
            i, state = pop()
            lin ^= 1 << i
            r = re_[i]
            nxt[prv[r]] = r
            prv[nxt[r]] = r
            c = ce[i]
            nxt[prv[c]] = c
            prv[nxt[c]] = c
            k = nxt[c]
            steps += 1
            if steps >= next_check:
                next_check = steps + check_every
                if deadline is not None and time.monotonic() > deadline:
                    out.valid = None
                    out.steps = steps
                    return out
        else:
            out.valid = True
            out.steps = steps
            out.prefix = [s[0] for s in stack]
            out.prefix_state = state
            return out
