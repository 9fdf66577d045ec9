"""Turns a history into the figures of a run: fault windows, availability, latency, throughput.

Owns, for the runner (results.json) and the report alike, so each is computed
one way: the reading of nemesis events into fault windows (`fault_windows`),
availability per fault window (`availability_of`), latency percentiles
(`latency_percentiles_ms`), and `run_figures`, the figures results.json
carries (docs/run-folder.md). Operations are `checker.history.Op`, paired by
`checker.history.pair`, the one pairing (docs/history.md).

Invariants:
- Nemesis events never become ops. A fault window is a start event `f=KIND`
  matched with the first later `f=KIND-end` carrying the same value; a fault
  never healed lasts until the history ends (`end=None`).
- Times stay in the history's unit (ns since run start); nothing here reads a clock.
"""

from __future__ import annotations

import json
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from checker.history import Op, pair

# Operations that change state: "the next acknowledged write" is the next one of these to be ok.
WRITE_FS = frozenset({"write", "cas", "append", "txn"})


@dataclass(slots=True)
class FaultWindow:
    """A fault from its start event to its heal event (end None: never healed)."""

    kind: str
    value: Any
    start: int
    end: int | None
    index: int | None = None
    extra: dict = field(default_factory=dict)

    def end_or(self, horizon: int) -> int:
        return horizon if self.end is None else self.end

    def target(self) -> str:
        """A short human description of what the fault hit."""
        return describe_fault_value(self.kind, self.value)


def describe_fault_value(kind: str, value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, dict):
        if kind == "partition":
            shape = value.get("shape", "")
            grudge = value.get("grudge")
            one = " one-way" if value.get("oneway") else ""
            if isinstance(grudge, dict) and grudge:
                return f"{shape}{one}: {grudge_sides(grudge)}".strip(": ")
            return f"{shape}{one}".strip() or "partition"
        if kind == "net":
            return describe_net(value)
        parts = [f"{k}={_short(v)}" for k, v in value.items()]
        return " ".join(parts) or "-"
    if value is None:
        return "-"
    return str(value)


def describe_net(value: dict) -> str:
    """'loss 10%, delay 20 ms, duplicate 10% on n4's links' from a net fault's value."""
    parts = []
    for k, v in value.items():
        if k == "links" or not isinstance(v, (int, float)) or isinstance(v, bool) or not v:
            continue
        if k.endswith("_ms"):
            parts.append(f"{k[:-3]} {v:g} ms")
        elif 0 < v <= 1:
            parts.append(f"{k} {v * 100:g}%")
        else:
            parts.append(f"{k} {v:g}")
    links = value.get("links")
    where = ""
    if isinstance(links, list) and links and all(isinstance(x, (list, tuple)) for x in links):
        common = set(map(str, links[0]))
        for link in links[1:]:
            common &= set(map(str, link))
        where = f" on {min(common)}'s links" if len(common) == 1 else f" on {len(links)} links"
    elif isinstance(links, str):
        where = f" on {links} links"
    return (", ".join(parts) or "net fault") + where


def grudge_sides(grudge: dict) -> str:
    """A partition as its sides, 'n1 n2 | n3 n4 n5': nodes grouped by whom they can hear."""
    everyone = set(map(str, grudge))
    for v in grudge.values():
        everyone |= set(map(str, v or []))
    sides: list[list[str]] = []
    seen: set[frozenset] = set()
    for node in sorted(everyone):
        hears = frozenset(everyone - set(map(str, grudge.get(node) or [])))
        if hears not in seen:
            seen.add(hears)
            sides.append(sorted(hears))
    if len(sides) <= 1:
        return "no link cut"
    # Symmetric partitions give disjoint sides; otherwise say who cannot hear whom.
    flat = [nd for side in sides for nd in side]
    if len(flat) == len(set(flat)):
        return " | ".join(" ".join(side) for side in sides)
    return "; ".join(
        f"{n} can't hear {','.join(map(str, v))}" for n, v in sorted(grudge.items()) if v
    )


def _short(v: Any) -> str:
    s = v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
    return s if len(s) <= 40 else s[:37] + "..."


class FaultReader:
    """Reads nemesis events into fault windows one at a time: the one reading, used
    whole by ``fault_windows`` (results.json, the report) and live by the runner's
    status line (which faults are active now)."""

    __slots__ = ("_open", "windows")

    def __init__(self) -> None:
        self.windows: list[FaultWindow] = []  # in start order
        self._open: list[tuple[str, str, FaultWindow]] = []  # (kind, value key, window)

    @property
    def active(self) -> list[FaultWindow]:
        """The windows started and not yet healed, oldest first."""
        return [w for _, _, w in self._open]

    def feed(self, f: str, value: Any, t: int, index: int | None = None) -> None:
        """One nemesis event: ``f`` (``kill``, ``kill-end``, ``heal``, ...) at time ``t``."""
        open_windows = self._open
        if f.endswith("-end"):
            kind = f[: -len("-end")]
            vkey = _value_key(value)
            match = next((w for w in open_windows if w[0] == kind and w[1] == vkey), None)
            if match is None:  # heal without a value match: heal the oldest of that kind
                match = next((w for w in open_windows if w[0] == kind), None)
            if match is not None:
                match[2].end = t
                open_windows.remove(match)
            return
        if f in ("heal", "heal-all", "stop"):  # a global heal closes whatever is open
            for _, _, w in open_windows:
                w.end = t
            open_windows.clear()
            return
        w = FaultWindow(kind=f, value=value, start=t, end=None, index=index)
        self.windows.append(w)
        open_windows.append((f, _value_key(value), w))


def fault_windows(events: Iterable[dict]) -> list[FaultWindow]:
    """Fault windows in start order, from nemesis start/-end event pairs."""
    reader = FaultReader()
    for ev in events:
        if ev.get("process") == "nemesis":
            reader.feed(str(ev.get("f") or ""), ev.get("value"), int(ev.get("time") or 0),
                        ev.get("index"))
    return reader.windows


def _value_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def history_span(events: Sequence[dict]) -> tuple[int, int]:
    """(first, last) event time; (0, 1) for an empty history."""
    times = [int(e.get("time") or 0) for e in events]
    if not times:
        return 0, 1
    lo, hi = min(times), max(times)
    return lo, max(hi, lo + 1)


def availability(events: Sequence[dict]) -> list[dict]:
    """Availability per fault window, as written to results.json.

    For each window: how many client operations were invoked while it was
    active, the share of those that succeeded (`ok_share`, None when there
    were none), and the time from the fault's start and from its heal to the
    next acknowledged (ok) write, in milliseconds (None when no write was
    acknowledged after it). Times are ns since run start.
    """
    events = list(events)
    return availability_of(pair(events), fault_windows(events), history_span(events)[1])


def run_figures(events: Sequence[dict]) -> dict[str, Any]:
    """The figures results.json carries: ``latency_ms`` (percentiles of ok
    operations) and ``availability`` (per fault window), from one pairing."""
    events = list(events)
    ops = pair(events)
    return {
        "latency_ms": latency_percentiles_ms(ops),
        "availability": availability_of(ops, fault_windows(events), history_span(events)[1]),
    }


#: The fields of one availability row, as ``availability_of`` makes it and results.json
#: ``availability`` holds it (docs/run-folder.md).
AVAILABILITY_FIELDS = (
    "kind", "value", "target", "start_ns", "end_ns", "duration_ms", "ops", "ok", "fail", "info",
    "ok_share", "to_ack_after_start_ms", "to_ack_after_heal_ms",
)


def availability_of(ops: Sequence[Op], windows: Sequence[FaultWindow], horizon: int) -> list[dict]:
    """`availability` from already paired ops and windows (the report has them at hand)."""
    # Acknowledged writes by completion time, for "next ack after t" lookups.
    acks = sorted(
        op.end for op in ops if op.type == "ok" and op.f in WRITE_FS and op.end is not None
    )
    starts = sorted((op.start, i) for i, op in enumerate(ops))
    start_times = [s for s, _ in starts]

    def next_ack_ms(t: int) -> float | None:
        i = bisect_left(acks, t)
        return None if i == len(acks) else round((acks[i] - t) / 1e6, 3)

    out: list[dict] = []
    for w in windows:
        end = w.end_or(horizon)
        lo, hi = bisect_left(start_times, w.start), bisect_right(start_times, end)
        counts = {"ok": 0, "fail": 0, "info": 0}
        for _, i in starts[lo:hi]:
            counts[ops[i].type] += 1
        n = sum(counts.values())
        out.append(
            {
                "kind": w.kind,
                "value": w.value,
                "target": w.target(),
                "start_ns": w.start,
                "end_ns": w.end,
                "duration_ms": round((end - w.start) / 1e6, 3),
                "ops": n,
                "ok": counts["ok"],
                "fail": counts["fail"],
                "info": counts["info"],
                "ok_share": None if n == 0 else round(counts["ok"] / n, 4),
                "to_ack_after_start_ms": next_ack_ms(w.start),
                "to_ack_after_heal_ms": None if w.end is None else next_ack_ms(w.end),
            }
        )
    return out


def counts(ops: Sequence[Op]) -> dict[str, int]:
    c = {"invoke": len(ops), "ok": 0, "fail": 0, "info": 0}
    for op in ops:
        c[op.type] += 1
    return c


def latency_percentiles_ms(ops: Sequence[Op]) -> dict[str, float | None]:
    lats = sorted(op.latency for op in ops if op.type == "ok" and op.latency is not None)
    if not lats:
        return {"p50": None, "p95": None, "p99": None, "max": None}

    def pick(q: float) -> float:
        return round(lats[min(len(lats) - 1, int(q * len(lats)))] / 1e6, 3)

    return {
        "p50": pick(0.50),
        "p95": pick(0.95),
        "p99": pick(0.99),
        "max": round(lats[-1] / 1e6, 3),
    }


def throughput(
    ops: Sequence[Op], t0: int, t1: int, buckets: int
) -> tuple[int, list[dict[str, int]]]:
    """Completions per bucket by outcome: (bucket width in ns, [{"ok","fail","info"}, ...])."""
    width = max(1, -(-(t1 - t0) // max(1, buckets)))
    rows = [{"ok": 0, "fail": 0, "info": 0} for _ in range(buckets)]
    for op in ops:
        t = op.end if op.end is not None else op.start
        i = min(buckets - 1, max(0, (t - t0) // width))
        rows[i][op.type] += 1
    return width, rows
