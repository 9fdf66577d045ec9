"""Turns a history into the figures of a run: fault windows, availability, latency, throughput.

Owns, for the runner (results.json) and the report alike, so each is computed
one way: availability per fault window (`availability_of`), latency percentiles
(`latency_percentiles_ms`), and `run_figures`, the figures results.json
carries (docs/run-folder.md). Operations are `checker.history.Op`, paired by
`checker.history.pair`, the one pairing (docs/history.md).

Fault windows are read from nemesis events by `checker.nemesis`, the one
reading (the nemesis's replay uses it too).

Invariants:
- Times stay in the history's unit (ns since run start); nothing here reads a clock.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from typing import Any

from checker.history import Op, pair
from checker.nemesis import FaultWindow, fault_windows

# Operations that change state: "the next acknowledged write" is the next one of these to be ok.
WRITE_FS = frozenset({"write", "cas", "append", "txn"})


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
