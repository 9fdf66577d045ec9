"""Checking while the run goes: a follower of a kv history as it is recorded.

Owns ``StreamChecker`` (docs/checker.md "Checking while the run goes"). It
is fed the recorder's stamped events in order and reports, the moment the
completion that proves it arrives, an anomaly no later event can undo. It
only claims what an exact proof gives, never a guess:

- a read (or an ok cas) of a value that no operation invoked before it
  completed writes (nor the initial value): no later write can come before
  it in any linearization;
- a stale read (the proof of ``checker/registers.py``'s ``_stale_observers``):
  every write of the value read completed, then a definite write of another
  value began after them and completed before the read began.

Whatever it does not find, the full offline check (``check_events``) may
still find: the run's verdict always comes from that check. Per key it
settles the prefix that no open operation can still observe: the completed
writes that ended before the earliest open operation began fold into one
number, so the operations it holds are those in flight; what grows with the
run is one small entry per written value (its last completion).

Invariants: event positions are the recorder's ``index`` (real-time order,
as ``pair`` uses positions); pairing follows ``checker.history.pair`` (a
second invoke on an open process makes the first indeterminate; an info
completion leaves a write's effect possible forever).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from dataclasses import dataclass
from typing import Any

from checker.explain import fmt
from checker.model import hkey

__all__ = ["StreamAnomaly", "StreamChecker"]

INF = float("inf")
NINF = float("-inf")


@dataclass(slots=True)
class StreamAnomaly:
    """An anomaly proven while following: on ``key``, at event ``index``
    (``time`` ns, the proving completion's), in words."""

    key: Any
    index: int
    time: Any
    sentence: str


class _Key:
    """One key's followed state."""

    __slots__ = ("bad", "closed", "muts_call", "muts_ret", "open_calls", "settled_call", "vals")

    def __init__(self) -> None:
        # value (hashable form) -> [writes of it open, an indeterminate one exists,
        # the last ok completion's position or None]
        self.vals: dict[Any, list[Any]] = {}
        # definite completed writes not folded yet: calls and rets, in completion order
        self.muts_call: list[int] = []
        self.muts_ret: list[int] = []
        self.settled_call: float = NINF  # the latest call among the folded writes
        self.open_calls: deque[int] = deque()  # calls of open ops, in call order
        self.closed: set[int] = set()  # closed calls not yet popped from open_calls' left
        self.bad = False  # an anomaly was reported: one per key is enough


class StreamChecker:
    """Follows kv-register events (``read``/``write``/``cas``, per key) with
    the register semantics of the ``kv`` model (``initial`` for every key;
    an ok read of null is the initial null, a failed write had no effect)."""

    def __init__(self, initial: Any = None) -> None:
        self.initial = _h(initial)
        self.keys: dict[Any, _Key] = {}
        self.open: dict[Any, tuple[int, dict]] = {}  # process -> (call position, invoke)
        self.anomalies: list[StreamAnomaly] = []
        self.events = 0

    def feed_many(self, events: list[dict]) -> list[StreamAnomaly]:
        """A batch of events, in order; the anomalies they prove."""
        feed = self.feed
        return [a for a in map(feed, events) if a is not None]

    def feed(self, ev: dict) -> StreamAnomaly | None:
        """One stamped event; the anomaly it proves, if any."""
        pos = ev.get("index", self.events)
        self.events += 1
        p = ev.get("process")
        if p == "nemesis":
            return None
        t = ev.get("type")
        if t == "invoke":
            prev = self.open.pop(p, None)
            if prev is not None:  # pair's rule: the earlier op becomes indeterminate
                self._finish(prev[0], prev[1], "info")
            self.open[p] = (pos, ev)
            k = self._key(ev.get("key"))
            k.open_calls.append(pos)
            v = _written(ev)
            if v is not _NONE:
                ent = k.vals.get(v)
                if ent is None:
                    k.vals[v] = [1, False, None]
                else:
                    ent[0] += 1
            return None
        opened = self.open.pop(p, None)
        if opened is None:
            return None  # not an operation (pair ignores it, or the offline check names it)
        call, inv = opened
        found = None
        if t == "ok":
            k = self._key(inv.get("key"))
            f = inv.get("f")
            if f == "read":
                found = self._observe(k, inv.get("key"), ev.get("value"), call, pos, ev, "read")
            elif f == "cas":
                a = _cas(inv.get("value"))
                if a is not _NONE:
                    found = self._observe(k, inv.get("key"), a[0], call, pos, ev, "cas")
        self._finish(call, inv, t, pos)
        return found

    # ------------------------------------------------------------------ internals

    def _key(self, key: Any) -> _Key:
        h = key if type(key) is str or key is None else hkey(key)
        k = self.keys.get(h)
        if k is None:
            k = self.keys[h] = _Key()
        return k

    def _finish(self, call: int, inv: dict, t: str, pos: int = -1) -> None:
        """The op invoked at ``call`` is no longer open: ok, fail or info."""
        k = self._key(inv.get("key"))
        oc = k.open_calls
        if oc and oc[0] == call:
            oc.popleft()
            while oc and oc[0] in k.closed:
                k.closed.discard(oc.popleft())
        else:
            k.closed.add(call)
        v = _written(inv)
        if v is not _NONE:
            ent = k.vals[v]
            ent[0] -= 1
            if t == "ok":
                ent[2] = pos
                k.muts_call.append(call)
                k.muts_ret.append(pos)
            elif t == "info":
                ent[1] = True  # may take effect at any later time
            # fail: no effect
        # fold the writes that completed before every open op began: every
        # later observer began after them
        horizon = oc[0] if oc else INF
        mr = k.muts_ret
        if mr and mr[0] < horizon:
            n = bisect_left(mr, horizon)
            k.settled_call = max(k.settled_call, max(k.muts_call[:n]))
            del k.muts_call[:n]
            del mr[:n]

    def _observe(self, k: _Key, key: Any, value: Any, call: int, pos: int, ev: dict,
                 what: str) -> StreamAnomaly | None:
        if k.bad:
            return None
        h = _h(value)
        ent = k.vals.get(h)
        lp: float | None
        if ent is None:
            lp = NINF if h == self.initial else None
        elif ent[0] or ent[1]:
            return None  # a write of it is open or indeterminate: it may be the one seen
        elif ent[2] is None:
            lp = NINF if h == self.initial else None  # only failed writes of it
        else:
            lp = ent[2]
        verb = "returned" if what == "read" else "from"
        if lp is None:
            return self._report(k, key, pos, ev, f"{what} of {key} {verb} {fmt(value)}, but no "
                                f"operation begun before it completed wrote {fmt(value)}")
        # stale: a definite write began after every write of the value had
        # completed, and completed before this op began. The folded writes all
        # completed before this op began (it was open, or not begun, then).
        stale = k.settled_call > lp
        if not stale:
            i = bisect_left(k.muts_ret, call)
            for c in k.muts_call[:i]:
                if c > lp:
                    stale = True
                    break
        if not stale:
            return None
        return self._report(k, key, pos, ev, f"{what} of {key} {verb} {fmt(value)}, but a write "
                            f"of another value began after every write of {fmt(value)} had "
                            "completed, and completed before it began")

    def _report(self, k: _Key, key: Any, pos: int, ev: dict, sentence: str) -> StreamAnomaly:
        k.bad = True
        a = StreamAnomaly(key, pos, ev.get("time"), sentence)
        self.anomalies.append(a)
        return a


_NONE: Any = object()


def _h(v: Any) -> Any:
    return v if type(v) is int or type(v) is str or v is None else hkey(v)


def _cas(v: Any) -> Any:
    if isinstance(v, (list, tuple)) and len(v) == 2:
        return v[0], v[1]
    return _NONE


def _written(inv: dict) -> Any:
    """The value an invoke would write (hashable form), or _NONE."""
    f = inv.get("f")
    if f == "write":
        return _h(inv.get("value"))
    if f == "cas":
        a = _cas(inv.get("value"))
        return _NONE if a is _NONE else _h(a[1])
    return _NONE
