"""The report's time charts: operation timeline, latency, throughput.

Owns: drawing client operations over time as SVG, with fault bands.

Invariants:
- Every chart shares one time scale (run start .. history end) so fault
  bands line up across charts.
- Size stays bounded whatever the history length: up to DETAIL_LIMIT
  operations each op is its own shape with hover details; beyond that
  operations are aggregated into per-lane time bins (and latency into a
  pixel grid), while the interesting operations -- the anomaly's and the
  info ones, up to INFO_LIMIT -- are still drawn one by one on top.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from checker.history import Op
from checker.nemesis import FaultWindow
from reports.analysis import throughput
from reports.svg import (
    Scale,
    esc,
    fault_bands,
    fault_strip,
    fmt_ms,
    fmt_time,
    mark_line,
    n,
    nice_step,
    svg_open,
    time_axis,
    y_grid,
)

WIDTH = 1160
LEFT = 92  # room for lane labels
RIGHT = 16
DETAIL_LIMIT = 3000
INFO_LIMIT = 1500
OUTCOMES = ("ok", "fail", "info")


def op_label(op: Op) -> str:
    """Short text for an op: 'write 3', 'cas 1→2', 'read → 7'."""
    if op.f == "read":
        got = op.output if op.type == "ok" else "?"
        return f"read → {_v(got)}"
    if op.f == "cas" and isinstance(op.value, (list, tuple)) and len(op.value) == 2:
        return f"cas {_v(op.value[0])}→{_v(op.value[1])}"
    return f"{op.f} {_v(op.value)}"


def _v(v: Any) -> str:
    s = "nil" if v is None else str(v)
    return s if len(s) <= 24 else s[:23] + "…"


def op_tip(op: Op, span: float) -> str:
    key = "" if op.key is None else f" {op.key}"
    lines = [f"process {op.process}: {op.f}{key} — {op.type}", op_label(op)]
    end = "no reply" if op.end is None else fmt_time(op.end, span)
    lines.append(f"{fmt_time(op.start, span)} → {end}")
    if op.latency is not None:
        lines.append(f"latency {fmt_ms(op.latency / 1e6)}")
    if op.node is not None:
        lines.append(f"node {op.node}")
    if op.error:
        lines.append(f"error {op.error}")
    if op.invoke_index is not None:
        lines.append(f"history index {op.invoke_index}")
    return "\n".join(lines)


def lane_of(op: Op, concurrency: int | None) -> Any:
    """The worker an op belongs to: Jepsen renumbers a worker's process after an info."""
    if concurrency and isinstance(op.process, int):
        return op.process % concurrency
    return op.process


def timeline(
    ops: Sequence[Op],
    windows: Sequence[FaultWindow],
    t0: int,
    t1: int,
    *,
    concurrency: int | None = None,
    witness: set[int] | None = None,
    mark: int | None = None,
) -> str:
    """Operations per client worker over time, coloured by outcome, with fault bands."""
    witness = witness or set()
    lanes = sorted({lane_of(op, concurrency) for op in ops}, key=lambda v: (isinstance(v, str), v))
    lane_ix = {v: i for i, v in enumerate(lanes)}
    nl = max(1, len(lanes))
    lane_h = 22 if nl <= 8 else (16 if nl <= 16 else max(3, min(16, 420 / nl)))
    x = Scale(t0, t1, LEFT, WIDTH - RIGHT)
    strip, strip_h = fault_strip(windows, x, 6, t1)
    top = 6 + strip_h + (8 if strip_h else 0)
    height = top + nl * lane_h + 34
    span = t1 - t0
    out = [svg_open(WIDTH, height, label="operation timeline")]
    out.append(fault_bands(windows, x, 6, top + nl * lane_h, t1))
    out.append(strip)
    # Lane labels (thin out when lanes are too close to label each).
    every = max(1, math.ceil(11 / lane_h))
    for v, i in lane_ix.items():
        y = top + i * lane_h
        if i % 2 == 0:
            out.append(
                f'<rect class="lane" x="{LEFT}" y="{n(y)}" width="{WIDTH - RIGHT - LEFT}" height="{n(lane_h)}"/>'
            )
        if i % every == 0:
            name = f"worker {v}" if concurrency and isinstance(v, int) else f"process {v}"
            out.append(
                f'<text class="lab" x="{LEFT - 6}" y="{n(y + lane_h / 2 + 4)}" text-anchor="end">{esc(name)}</text>'
            )
    pad = max(0.5, lane_h * 0.12)
    bar_h = lane_h - 2 * pad
    detail = len(ops) <= DETAIL_LIMIT
    special: list[Op] = []
    if detail:
        for op in ops:
            if op.id in witness:
                special.append(op)
                continue
            out.append(
                _op_rect(
                    op, x, top + lane_ix[lane_of(op, concurrency)] * lane_h + pad, bar_h, span, t1
                )
            )
    else:
        out.append(_aggregated_lanes(ops, x, lane_ix, concurrency, top, lane_h, pad, bar_h, span))
        infos = 0
        for op in ops:
            if op.id in witness:
                special.append(op)
            elif op.type == "info" and infos < INFO_LIMIT:
                infos += 1
                out.append(
                    _op_rect(
                        op,
                        x,
                        top + lane_ix[lane_of(op, concurrency)] * lane_h + pad,
                        bar_h,
                        span,
                        t1,
                    )
                )
    for op in special:  # the anomaly's operations last, so they sit on top
        out.append(
            _op_rect(
                op,
                x,
                top + lane_ix[lane_of(op, concurrency)] * lane_h + pad - 1,
                bar_h + 2,
                span,
                t1,
                extra=" witness",
            )
        )
    out.append(time_axis(x, top - 2, top + nl * lane_h + 2))
    out.append(mark_line(x, mark, 6, top + nl * lane_h + 2))
    out.append("</svg>")
    return "".join(out)


def _op_rect(op: Op, x: Scale, y: float, h: float, span: float, t1: int, extra: str = "") -> str:
    a = x(op.start)
    open_ended = op.end is None
    b = x(op.end if op.end is not None else min(t1, op.start + max(span // 200, 1)))
    cls = f"op {op.type}{' open' if open_ended else ''}{extra}"
    return (
        f'<rect class="{cls}" x="{n(a)}" y="{n(y)}" width="{n(max(1.5, b - a))}" height="{n(h)}" '
        f'data-tip="{esc(op_tip(op, span))}"/>'
    )


def _aggregated_lanes(
    ops: Sequence[Op],
    x: Scale,
    lane_ix: dict,
    concurrency: int | None,
    top: float,
    lane_h: float,
    pad: float,
    bar_h: float,
    span: float,
) -> str:
    """Per lane, time bins of outcome counts; runs of all-ok bins merge into one shape."""
    nl = max(1, len(lane_ix))
    bins = int(min(300, max(60, 16000 / nl)))
    width = (x.d1 - x.d0) / bins
    counts: dict[Any, list[list[int]]] = {v: [[0, 0, 0] for _ in range(bins)] for v in lane_ix}
    which = {"ok": 0, "fail": 1, "info": 2}
    for op in ops:
        b = min(bins - 1, int((op.start - x.d0) / width))
        counts[lane_of(op, concurrency)][b][which[op.type]] += 1
    px = (x.r1 - x.r0) / bins
    out: list[str] = []
    for v, rows in counts.items():
        y = top + lane_ix[v] * lane_h + pad
        i = 0
        while i < bins:
            ok, fail, info = rows[i]
            if ok + fail + info == 0:
                i += 1
                continue
            if fail == 0 and info == 0:  # merge the run of all-ok bins
                j, total = i, 0
                while j < bins and rows[j][1] == 0 and rows[j][2] == 0 and rows[j][0] > 0:
                    total += rows[j][0]
                    j += 1
                tip = (
                    f"worker {v}: {total} ok ops\n"
                    f"{fmt_time(x.d0 + i * width, span)} – {fmt_time(x.d0 + j * width, span)}"
                )
                out.append(
                    f'<rect class="op ok" x="{n(x.r0 + i * px)}" y="{n(y)}" width="{n((j - i) * px)}" '
                    f'height="{n(bar_h)}" data-tip="{esc(tip)}"/>'
                )
                i = j
                continue
            total = ok + fail + info
            tip = (
                f"worker {v}: {ok} ok, {fail} fail, {info} info\n"
                f"{fmt_time(x.d0 + i * width, span)} – {fmt_time(x.d0 + (i + 1) * width, span)}"
            )
            bx = x.r0 + i * px
            out.append(
                f'<rect class="op {"ok" if ok else ("fail" if fail else "info")}" x="{n(bx)}" y="{n(y)}" '
                f'width="{n(px)}" height="{n(bar_h)}" data-tip="{esc(tip)}"/>'
            )
            # Fail and info shares as overlays from the top, at least 2 px so one is visible.
            yy = y
            for k, cls in ((fail, "fail"), (info, "info")):
                if k and ok:
                    h = max(2.0, bar_h * k / total)
                    out.append(
                        f'<rect class="op {cls} mute" x="{n(bx)}" y="{n(yy)}" width="{n(px)}" height="{n(h)}"/>'
                    )
                    yy += h
            i += 1
    return "".join(out)


def latency(
    ops: Sequence[Op],
    windows: Sequence[FaultWindow],
    t0: int,
    t1: int,
    witness: set[int] | None = None,
    mark: int | None = None,
) -> str:
    """Latency of each operation (log scale) at its invoke time, by outcome."""
    witness = witness or set()
    height, top, bottom = 250, 14, 212
    lats = [op.latency for op in ops if op.latency is not None and op.latency > 0]
    lo_ms = 10 ** math.floor(math.log10(max(1e-3, min(lats) / 1e6))) if lats else 0.1
    hi_ms = 10 ** math.ceil(math.log10(max(lats) / 1e6)) if lats else 1000
    hi_ms = max(hi_ms, lo_ms * 10)
    no_reply_y = top + 4
    y = Scale(math.log10(lo_ms), math.log10(hi_ms), bottom, top + 16)
    x = Scale(t0, t1, LEFT, WIDTH - RIGHT)
    span = t1 - t0
    out = [svg_open(WIDTH, height, label="latency over time")]
    out.append(fault_bands(windows, x, top, bottom, t1))
    e = math.log10(lo_ms)
    while e <= math.log10(hi_ms) + 1e-9:
        yy = y(e)
        out.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{n(yy)}" y2="{n(yy)}"/>'
        )
        out.append(
            f'<text class="tick" x="{LEFT - 6}" y="{n(yy + 4)}" text-anchor="end">{fmt_ms(10**e)}</text>'
        )
        e += 1
    out.append(
        f'<text class="tick" x="{LEFT - 6}" y="{n(no_reply_y + 4)}" text-anchor="end">no reply</text>'
    )
    out.append(
        f'<text class="tick" x="12" y="{n((top + bottom) / 2)}" transform="rotate(-90 12 {n((top + bottom) / 2)})" '
        f'text-anchor="middle">latency</text>'
    )

    def ypos(op: Op) -> float:
        if op.latency is None:
            return no_reply_y
        return y(math.log10(max(op.latency / 1e6, lo_ms)))

    if len(ops) <= DETAIL_LIMIT:
        for kind in OUTCOMES:  # ok first so the rarer outcomes draw on top
            for op in ops:
                if op.type == kind and op.id not in witness:
                    out.append(
                        f'<circle class="pt {kind}" cx="{n(x(op.start))}" cy="{n(ypos(op))}" r="2.2" '
                        f'data-tip="{esc(op_tip(op, span))}"/>'
                    )
    else:
        cell = 3.0
        grids: dict[str, dict[tuple[int, int], int]] = {k: defaultdict(int) for k in OUTCOMES}
        for op in ops:  # one pass; cells in pixel units
            grids[op.type][(int(x(op.start) / cell), int(ypos(op) / cell))] += 1
        for kind in OUTCOMES:
            for (cx, cy), k in grids[kind].items():
                out.append(
                    f'<rect class="pt {kind}{" dense" if k > 3 else ""}" x="{n(cx * cell)}" '
                    f'y="{n(cy * cell)}" width="{n(cell)}" height="{n(cell)}"/>'
                )
    for op in ops:
        if op.id in witness:
            out.append(
                f'<circle class="pt {op.type} witness" cx="{n(x(op.start))}" cy="{n(ypos(op))}" r="4" '
                f'data-tip="{esc(op_tip(op, span))}"/>'
            )
    out.append(time_axis(x, top, bottom))
    out.append(mark_line(x, mark, top, bottom))
    out.append("</svg>")
    return "".join(out)


def throughput_chart(
    ops: Sequence[Op], windows: Sequence[FaultWindow], t0: int, t1: int, mark: int | None = None
) -> str:
    """Completed operations per second, stacked by outcome."""
    height, top, bottom = 200, 12, 162
    buckets = max(10, min(240, (t1 - t0) // 50_000_000 or 10))
    width_ns, rows = throughput(ops, t0, t1, int(buckets))
    per_s = 1e9 / width_ns
    totals = [sum(r.values()) * per_s for r in rows]
    ymax = max(totals) if totals and max(totals) > 0 else 1
    step = nice_step(ymax, 4)
    ymax = math.ceil(ymax / step) * step
    x = Scale(t0, t1, LEFT, WIDTH - RIGHT)
    y = Scale(0, ymax, bottom, top)
    out = [svg_open(WIDTH, height, label="throughput over time")]
    out.append(fault_bands(windows, x, top, bottom, t1))
    out.extend(y_grid(y, LEFT, WIDTH - RIGHT, ymax, step, LEFT - 6))
    out.append(
        f'<text class="tick" x="12" y="{n((top + bottom) / 2)}" transform="rotate(-90 12 {n((top + bottom) / 2)})" '
        f'text-anchor="middle">ops/s</text>'
    )
    base = [0.0] * len(rows)
    for kind in OUTCOMES:
        pts_top, pts_bot = [], []
        for i, r in enumerate(rows):
            xa = x(t0 + i * width_ns)
            xb = x(min(t1, t0 + (i + 1) * width_ns))
            lo = base[i]
            hi = lo + r[kind] * per_s
            pts_bot += [(xa, y(lo)), (xb, y(lo))]
            pts_top += [(xa, y(hi)), (xb, y(hi))]
            base[i] = hi
        if all(abs(a[1] - b[1]) < 0.05 for a, b in zip(pts_top, pts_bot)):
            continue
        path = " ".join(f"{n(px)},{n(py)}" for px, py in pts_top + pts_bot[::-1])
        out.append(f'<polygon class="area {kind}" points="{path}"/>')
    for i, r in enumerate(rows):  # invisible columns carry the hover text
        xa = x(t0 + i * width_ns)
        tip = (
            f"{fmt_time(t0 + i * width_ns, t1 - t0)} – {fmt_time(t0 + (i + 1) * width_ns, t1 - t0)}\n"
            f"{r['ok'] * per_s:.0f} ok/s, {r['fail'] * per_s:.0f} fail/s, {r['info'] * per_s:.0f} info/s"
        )
        out.append(
            f'<rect class="hit" x="{n(xa)}" y="{top}" width="{n(max(1.0, x(t0 + width_ns) - x(t0)))}" '
            f'height="{bottom - top}" data-tip="{esc(tip)}"/>'
        )
    out.append(time_axis(x, top, bottom))
    out.append(mark_line(x, mark, top, bottom))
    out.append("</svg>")
    return "".join(out)
