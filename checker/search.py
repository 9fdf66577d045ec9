"""The linearizability search: Wing & Gong with Lowe's memoization.

Owns one function, ``linearize``, that decides whether a set of operations
on ONE object (one partition) has a linearization. It knows nothing about
values: the model is reduced to ``step(state, i) -> new state | NO``
(docs/checker.md "How it decides").

Theory of operation (Wing & Gong 1993; Lowe 2017, "Testing for
linearizability"; as in porcupine): every operation contributes a call entry
at its invocation and a return entry at its completion, in one doubly linked
list in time order. Walking from the head, a call entry may be linearized
now if the step is legal; its two entries are then lifted out of the list
and the walk restarts at the head. Reaching a return entry means that
operation's deadline passed unlinearized: backtrack. The pair (set of
linearized operations as an int bitset, state) is memoized, so no
configuration is explored twice.

Indeterminate ("optional") operations get no entries: they sit in a second
list by call time. At each node the candidates are the calls before the
first definite return (the "frontier"); definite ones are tried first and
optional ones after, so an indeterminate operation is only placed when the
definite ones cannot go on without it. Memoization is by dominance: a
configuration (definite ops done, state, optional ops used) is covered by a
seen one with the same definite ops and state that used a subset of the
optional ops (it had every option this one has). The loop has one
chooser of the next candidate at a node (the frontier op, the other definite
calls, then the optional calls) and one block that places a candidate
through that memo test.

Invariants:
- ``rets[i]`` is ``INF`` for an optional operation (may take effect at any
  time after its call, or never). Once every definite operation is
  linearized the search succeeds (the rest simply never took effect).
- ``needs[i]`` (optional ops only; None = no filter; sorted by call): op i is only placed
  when one of those ops is a pending candidate, the model's promise that
  some linearization places each used optional op right before one of them
  (an indeterminate write is only worth taking effect if something sees it).
- ``viable(state, linearized, due ops)`` (optional; ``linearized(op)`` tells
  whether an op is placed already): False when the
  model can tell that no continuation meets those next deadlines (the
  frontier op first); the node is then abandoned as a dead end.
- ``pred[i] >= 0`` makes op i linearizable only after op ``pred[i]``
  (identical indeterminate operations are tried in one order only).
- The deadline is checked every few thousand steps; running out gives
  ``None`` (unknown), never a guess. So does the memory cap: ``max_held``
  bounds what the search holds, memo entries (each optional set kept counts
  one) plus the stack; the test costs one add and one compare per new
  entry, so no RSS polling is needed (docs/checker.md "Memory limit").

Compiled twin: when the model's step is a table (``Table``; the register
compile gives one) and checker/_search.c is built and current
(checker/native.py), ``linearize`` runs the same loop in C: the same
``Outcome`` field for field, or None outside the bitset widths it keeps,
and then the Python loop below runs (tests/test_checker_native.py holds
the two equal). The loop here stays the specification.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from checker.history import INF  # an optional op's return: never due
from checker.native import load

NO: Any = object()  # step result: the operation is illegal in this state

#: A table step, ``(kinds, seen, writes)``: integer columns that say what
#: ``step(s, i)`` does on integer states, exactly:
#: kinds[i] == 1: writes[i]; kinds[i] == 3: s if s != seen[i] else NO;
#: otherwise (read, cas): writes[i] if s == seen[i] else NO.
#: A model whose step is a table passes it (``Compiled.table``), and the
#: compiled search runs it (checker/_search.c, same Outcome).
Table = tuple[Sequence[int], Sequence[int], Sequence[int]]

#: checker/_search.c built and current (checker/native.py), else None; tests
#: set it to None to run the Python loop.
NATIVE = load("_search")


@dataclass(slots=True)
class Outcome:
    """Result of one partition's search."""

    valid: bool | None  # None: gave up at the deadline or the memory cap
    steps: int = 0
    gave_up: str = ""  # "time" or "memory" when valid is None
    held: int = 0  # memo entries + stack entries at the end (or at the cap)
    window: list[int] = field(default_factory=list)  # when gave up: the ops not settled
    prefix: list[int] = field(default_factory=list)  # longest linearizable prefix (op indices)
    prefix_state: Any = None
    stuck: int = -1  # op whose deadline passed after that prefix
    concurrent: list[int] = field(default_factory=list)  # calls pending there, none legal


def _placed_test(base: int, rel: int, ol: int, dpos: Sequence[int], opos: Sequence[int],
                 rets: Sequence[float]) -> Callable[[int], bool]:
    """``linearized(op)`` for the search's current (base, rel, ol)."""

    def linearized(o: int) -> bool:
        if rets[o] == INF:
            return bool((ol >> opos[o]) & 1)
        d = dpos[o] - base
        return d < 0 or bool((rel >> d) & 1)

    return linearized


def _frontier_window(out: Outcome, stack: list, nxt: list[int], kind: list[int],
                     eop: list[int], onxt: list[int], ocall: list[float], oop: list[int],
                     fr: int, etime: list[float]) -> None:
    """When the search stops before any backtrack: the operations pending at
    its current node (calls before the first due return) as the window."""
    out.prefix = [e[0] for e in stack]
    out.stuck = eop[fr] if kind[fr] == 1 else -1
    conc = []
    x = nxt[0]
    while x != fr and kind[x] == 0:
        conc.append(eop[x])
        x = nxt[x]
    out.concurrent = _with_optional_calls(conc, onxt, ocall, oop, etime[fr])


def _with_optional_calls(conc: list[int], onxt: list[int], ocall: list[float], oop: list[int],
                         frontier: float) -> list[int]:
    """``conc`` and then the optional operations called before ``frontier``, in
    call order: the rest of a failure's window of concurrent operations."""
    x = onxt[0]
    while x and ocall[x] < frontier:
        conc.append(oop[x])
        x = onxt[x]
    return conc


def _give_up(out: Outcome, why: str, steps: int, held: int, best: int, best_stack: list,
             stack: list, nxt: list[int], kind: list[int], eop: list[int], onxt: list[int],
             ocall: list[float], oop: list[int], fr: int, etime: list[float], low: int,
             calls: Sequence[float], rets: Sequence[float], dpos: Sequence[int]) -> Outcome:
    """The search stops undecided (``why``: "time" or "memory"): "unknown", with
    the longest prefix reached and the window of operations it could not settle."""
    out.valid = None
    out.gave_up = why
    out.steps = steps
    out.held = held
    if best < 0:
        _frontier_window(out, stack, nxt, kind, eop, onxt, ocall, oop, fr, etime)
    else:
        out.prefix = [e[0] for e in best_stack]
    out.window = _window(low, out, calls, rets, dpos)
    return out


def _window(low: int, out: Outcome, calls: Sequence[float], rets: Sequence[float],
            dpos: Sequence[int]) -> list[int]:
    """The ops a stopped search had not settled: from the first definite op
    (by call) it ever had to undo up to the deadline it was stuck at."""
    n = len(calls)
    definite = [i for i in range(n) if rets[i] != INF]
    lo = INF
    for i in definite:
        if dpos[i] >= low and calls[i] < lo:
            lo = calls[i]
    hi = rets[out.stuck] if out.stuck >= 0 else INF
    if hi == INF:
        hi = max((calls[i] for i in out.concurrent), default=INF)
    return [i for i in range(n) if calls[i] >= lo and calls[i] <= hi] or list(out.concurrent)


def linearize(
    calls: Sequence[float],
    rets: Sequence[float],
    step: Callable[[Any, int], Any],
    init: Any,
    pred: Sequence[int] | None = None,
    deadline: float | None = None,
    needs: Sequence[Sequence[int] | None] | None = None,
    viable: Callable[[Any, Callable[[int], bool], list[int]], bool] | None = None,
    max_held: int | None = None,
    table: Table | None = None,
) -> Outcome:
    n = len(calls)
    if n == 0:
        return Outcome(True)
    if table is not None and viable is None and NATIVE is not None:
        # the compiled twin of the loop below (checker/_search.c): the same
        # Outcome, or None outside the widths it keeps, then this loop runs
        r = NATIVE.linearize_table(calls, rets, table[0], table[1], table[2], init, pred, needs,
                                   deadline, max_held)
        if r is not None:
            return Outcome(*r)
    return _linearize(calls, rets, step, init, pred, deadline, needs, viable, max_held, n)


def _linearize(calls: Sequence[float], rets: Sequence[float], step: Callable[[Any, int], Any],
               init: Any, pred: Sequence[int] | None, deadline: float | None,
               needs: Sequence[Sequence[int] | None] | None,
               viable: Callable[[Any, Callable[[int], bool], list[int]], bool] | None,
               max_held: int | None, n: int) -> Outcome:
    if pred is None:
        pred = [-1] * n
    # Entries in time order, calls before returns at equal times, then by op:
    # a stable sort on the time alone of [definite calls..., their returns...]
    # (already in that tie order) sorts plain numbers, not tuples (3x faster
    # on a 1M-op history).
    dops = [i for i in range(n) if rets[i] != INF]
    nd = len(dops)
    # as floats: a sort whose keys are all floats compares them natively (times
    # are event positions, or half-way between two, so exact)
    times = [calls[i] + 0.0 for i in dops] + [rets[i] + 0.0 for i in dops]
    m = len(times)
    order = sorted(range(m), key=times.__getitem__)
    # main list: definite call/return entries 1..m in time order, 0 = head/end
    nxt = list(range(1, m + 2))
    nxt[m] = 0
    prv = list(range(-1, m))
    prv[0] = m
    both = dops + dops
    eop = [0] + [both[e] for e in order]
    etime = [INF] + [times[e] for e in order]
    kind = [2] + [0 if e < nd else 1 for e in order]  # 0 call, 1 return, 2 end (entry 0)
    # Bit positions: definite ops by call rank, optional ops by call rank.
    # The definite set is kept as (base, rel): every definite op ranked below
    # base is linearized, rel holds the rest shifted by base. Ops are mostly
    # linearized in call order, so rel stays small however long the history
    # is, and memo keys stay cheap to build and hash.
    entry = [0] * m  # entry[e]: e's place in the main list
    for k, e in enumerate(order, 1):
        entry[e] = k
    ce = [0] * n
    re_ = [0] * n
    for x, i in enumerate(dops):
        ce[i] = entry[x]
        re_[i] = entry[x + nd]
    dpos = [0] * n
    opos = [0] * n
    for rank, e in enumerate([e for e in order if e < nd]):
        dpos[dops[e]] = rank
    # optional list: slots 1..q by call time, 0 = head/end
    oops = [i for i in range(n) if rets[i] == INF]
    oops.sort(key=calls.__getitem__)  # stable: equal calls by op, as a tuple sort would
    q = len(oops)
    onxt = list(range(1, q + 2))
    onxt[q] = 0
    oprv = list(range(-1, q))
    oprv[0] = q
    ocall = [INF] + [calls[i] for i in oops]
    oop = [-1, *oops]
    if needs is None:
        needs = [None] * n
    for rank, i in enumerate(oops):
        opos[i] = rank
    # Each filtered optional op's seers, split when first tested: the optional
    # ones by call, and the definite ones as sorted ranks (with their calls),
    # so the test at a node starts at rank ``base`` (bisect) instead of walking
    # every seer already linearized.
    nopt: dict[int, list[int]] = {}
    ndp: dict[int, list[int]] = {}
    ndc: dict[int, list[float]] = {}
    early = [calls[i] < rets[i] for i in range(n)]  # may take effect before its deadline
    seen_sets: dict = {}  # (base, rel, state) -> optional bitset(s) used
    get = seen_sets.get
    # (op, state before, opt slot or 0, frontier entry, urgent op, base, rel)
    stack: list[tuple[int, Any, int, int, int, int, int]] = []
    push = stack.append
    pop = stack.pop
    base = 0  # definite ops linearized: ranks below base, and rel << base
    rel = 0
    ol = 0  # optional ops linearized
    state = init
    best = -1
    out = Outcome(False)
    steps = 0
    check_every = 4096
    next_check = check_every
    fr = nxt[0]  # frontier: the first definite return entry (0 when none is left)
    while kind[fr] == 0:
        fr = nxt[fr]
    best_stack: list = []
    kept = 0  # best_stack[:kept] == stack[:kept]
    held = 0  # memo entries (optional sets) held; with the stack, what max_held bounds
    cap = INF if max_held is None else max_held
    low = n  # the lowest settled base a backtrack went back to (the window's start)
    fresh_node = True
    pending = False  # the fast path's step result s2 awaits the memo test below
    dead = False
    urgent = -1
    k = 0  # phase 0 cursor: the next definite call entry to try at this node
    phase = 0  # 0: definite calls before the frontier; 1: optional calls before it
    j = 0  # phase 1 cursor: the next optional slot to try
    frontier = INF
    # One loop: pick the next candidate at this node (i, and its optional slot
    # or 0), then one block places it; when a node has no candidate left, it
    # backtracks. Every placement goes through the same memo test.
    while True:
        if steps >= next_check:
            next_check = steps + check_every
            if deadline is not None and time.monotonic() > deadline:
                return _give_up(out, "time", steps, held, best, best_stack, stack, nxt, kind,
                                eop, onxt, ocall, oop, fr, etime, min(low, base), calls,
                                rets, dpos)
        if fresh_node:
            # The frontier op (earliest definite return) is tried first: the
            # most urgent candidate, and often the right one.
            x = fr
            if kind[x] == 2:
                out.valid = True
                out.steps = steps
                out.held = held
                out.prefix = [e[0] for e in stack]
                out.prefix_state = state
                return out
            urgent = eop[x]
            pending = False
            if viable is None and early[urgent]:
                # Fast path, most nodes: the frontier op placed at once when legal
                # and its configuration new, by the same memo test and
                # bookkeeping as the block below, which takes every other case
                # (a configuration seen, the cap) with this step's result.
                s2 = step(state, urgent)
                steps += 1
                if s2 is not NO:
                    d = dpos[urgent] - base
                    rel2 = rel | (1 << d)
                    base2 = base
                    if d == 0:
                        t = (~rel2 & (rel2 + 1)).bit_length() - 1
                        rel2 >>= t
                        base2 += t
                    key = (base2, rel2, s2)
                    if key not in seen_sets and held + 1 + len(stack) <= cap:
                        seen_sets[key] = ol
                        held += 1
                        push((urgent, state, 0, x, urgent, base, rel))
                        state = s2
                        base = base2
                        rel = rel2
                        c = ce[urgent]
                        a, b = prv[c], nxt[c]
                        nxt[a] = b
                        prv[b] = a
                        a, b = prv[x], nxt[x]  # x == re_[urgent], the frontier
                        nxt[a] = b
                        prv[b] = a
                        while kind[b] == 0:
                            b = nxt[b]
                        fr = b
                        continue
                    pending = True
            k = nxt[0]
            phase = 0
            fresh_node = False
            dead = False
            if pending:
                i = urgent
                slot = 0
            elif viable is not None:
                # the model may know this state cannot meet the next deadlines
                due = [urgent]
                y = nxt[x]
                budget = 16
                while y and budget and len(due) < 3:
                    if kind[y] == 1:
                        due.append(eop[y])
                    y = nxt[y]
                    budget -= 1
                if not viable(state, _placed_test(base, rel, ol, dpos, opos, rets), due):
                    dead = True
                    k = x
                i = urgent if not dead and early[urgent] else -1
                slot = 0
            else:
                i = -1  # tried above: not legal here
        else:
            i = -1
        if i < 0:
            if phase == 0 and kind[k] == 0:
                # phase 0: the other definite calls before the frontier, in call order
                i = eop[k]
                k = nxt[k]
                if i == urgent:
                    continue
                slot = 0
            else:
                if phase == 0:
                    # phase 1: k is the frontier (first definite return); optional
                    # calls before it, in call order
                    phase = 1
                    frontier = etime[k]
                    j = 0 if dead else onxt[0]
                    dead = False
                while j and ocall[j] < frontier:
                    o = oop[j]
                    q = pred[o]
                    if q < 0 or (ol >> opos[q]) & 1:
                        if needs[o] is None:
                            break
                        # placed only right before a pending op that sees it: an
                        # optional seer not placed, or a definite one not
                        # linearized (rank >= base), called before the frontier
                        seen_by = False
                        so = nopt.get(o)
                        if so is None:
                            seers = needs[o]
                            so = nopt[o] = [o2 for o2 in seers if rets[o2] == INF]
                            ds = sorted([(dpos[o2], calls[o2]) for o2 in seers
                                         if rets[o2] != INF])
                            ndp[o] = [d for d, _ in ds]
                            ndc[o] = [c for _, c in ds]
                        for o2 in so:
                            if calls[o2] >= frontier:
                                break
                            if not (ol >> opos[o2]) & 1:
                                seen_by = True
                                break
                        if not seen_by:
                            dl = ndp[o]
                            dc = ndc[o]
                            x = bisect_left(dl, base)
                            nx = len(dl)
                            while x < nx and dc[x] < frontier:
                                if not (rel >> (dl[x] - base)) & 1:
                                    seen_by = True
                                    break
                                x += 1
                        if seen_by:
                            break
                    j = onxt[j]
                else:
                    # no candidate left at this node: backtrack
                    if len(stack) > best:
                        best = len(stack)
                        # only what changed since the last copy: the entries
                        # below ``kept`` were never popped (a whole copy per
                        # new best was quadratic on long partitions)
                        best_stack[kept:] = stack[kept:]
                        kept = best
                        out.prefix_state = state
                        out.stuck = eop[k]
                        conc = []
                        x = nxt[0]
                        while x != k:
                            if kind[x] == 0:
                                conc.append(eop[x])
                            x = nxt[x]
                        out.concurrent = _with_optional_calls(conc, onxt, ocall, oop,
                                                              frontier)
                    if not stack:
                        out.steps = steps
                        out.held = held
                        out.prefix = [e[0] for e in best_stack]
                        return out
                    i, state, slot, fr, urgent, base, rel = pop()
                    if len(stack) < kept:  # noqa: PLR1730 - a compare, not a call (hot)
                        kept = len(stack)
                    if base < low:  # noqa: PLR1730 - a compare, not a call: backtracks are hot
                        low = base
                    steps += 1
                    if slot:
                        # resume phase 1 at that node, after the undone slot
                        phase = 1
                        ol ^= 1 << opos[i]
                        onxt[oprv[slot]] = slot
                        oprv[onxt[slot]] = slot
                        j = onxt[slot]
                        k = fr
                        frontier = etime[k]
                    else:
                        r = re_[i]
                        nxt[prv[r]] = r
                        prv[nxt[r]] = r
                        c = ce[i]
                        nxt[prv[c]] = c
                        prv[nxt[c]] = c
                        # resume phase 0 at that node: from the head if the urgent
                        # op was the one undone, else after the undone call
                        k = nxt[0] if i == urgent else nxt[c]
                        phase = 0
                    continue
                i = o
                slot = j
                j = onxt[j]
        # place candidate i (definite, or optional in ``slot``) if legal and new
        if pending:
            pending = False  # the fast path's step, already counted
        else:
            s2 = step(state, i)
            steps += 1
            if s2 is NO:
                continue
        if slot:
            ol2 = ol | (1 << opos[i])
            base2 = base
            rel2 = rel
        else:
            ol2 = ol
            d = dpos[i] - base
            rel2 = rel | (1 << d)
            base2 = base
            if d == 0:
                t = (~rel2 & (rel2 + 1)).bit_length() - 1
                rel2 >>= t
                base2 += t
        key = (base2, rel2, s2)
        # The optional sets seen with this (definite set, state): one int, the
        # common case, or a list of them once a second one comes.
        used = get(key)
        if used is None:
            seen_sets[key] = ol2
        elif type(used) is int:
            if used & ol2 == used:
                continue  # a seen configuration had every option this one has
            seen_sets[key] = [used, ol2]
        else:
            new = True
            for y in used:
                if y & ol2 == y:
                    new = False
                    break
            if not new:
                continue
            used.append(ol2)
        held += 1
        if held + len(stack) > cap:
            # the memory cap: unknown, with the window the search was in
            return _give_up(out, "memory", steps, held + len(stack), best, best_stack, stack,
                            nxt, kind, eop, onxt, ocall, oop, fr, etime, min(low, base), calls,
                            rets, dpos)
        push((i, state, slot, fr, urgent, base, rel))
        state = s2
        base = base2
        rel = rel2
        ol = ol2
        if slot:
            a, b = oprv[slot], onxt[slot]
            onxt[a] = b
            oprv[b] = a
        else:
            c = ce[i]
            a, b = prv[c], nxt[c]
            nxt[a] = b
            prv[b] = a
            r = re_[i]
            a, b = prv[r], nxt[r]
            nxt[a] = b
            prv[b] = a
            if r == fr:
                while kind[b] == 0:
                    b = nxt[b]
                fr = b
        fresh_node = True
