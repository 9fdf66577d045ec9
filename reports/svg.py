"""Small SVG building blocks shared by the report's charts.

Owns: the time scale, time formatting, axes, fault bands and escaping.

Invariants: every string returned is well-formed SVG markup with all text and
attribute values escaped; hover text goes in a `data-tip` attribute (the
page's one small script shows it), so charts render without any script too.
Colours come from CSS classes (page.CSS), never inline, to keep pages small.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from html import escape

from checker.nemesis import FaultWindow

# Fault kinds with a colour class of their own; others use "band-other".
BAND_KINDS = ("kill", "pause", "partition", "net", "clock", "disk")


def esc(s: object) -> str:
    return escape(str(s), quote=True)


def fmt_time(ns: float, span_ns: float | None = None) -> str:
    """Seconds since run start with precision suited to the span shown."""
    s = ns / 1e9
    span = (span_ns or 10e9) / 1e9
    if span < 0.01:
        return f"{s:.6f} s"
    if span < 1:
        return f"{s:.4f} s"
    if span < 100:
        return f"{s:.3f} s"
    return f"{s:.1f} s"


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "–"
    if ms >= 10_000:
        return f"{ms / 1000:.1f} s"
    if ms >= 100:
        return f"{ms:.0f} ms"
    if ms >= 1:
        return f"{ms:.1f} ms"
    return f"{ms:.2f} ms"


def n(x: float) -> str:
    """A coordinate with at most one decimal: keeps big charts small."""
    r = round(x, 1)
    return str(int(r)) if r == int(r) else str(r)


class Scale:
    """Linear map from [d0, d1] (data) to [r0, r1] (pixels)."""

    def __init__(self, d0: float, d1: float, r0: float, r1: float) -> None:
        self.d0, self.d1, self.r0, self.r1 = d0, (d1 if d1 != d0 else d0 + 1), r0, r1
        self.k = (self.r1 - self.r0) / (self.d1 - self.d0)

    def __call__(self, d: float) -> float:
        return self.r0 + (d - self.d0) * self.k

    def clamp(self, d: float) -> float:
        return min(max(self(d), min(self.r0, self.r1)), max(self.r0, self.r1))


def nice_step(span: float, target: int) -> float:
    raw = span / max(1, target)
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def time_axis(
    x: Scale, y_top: float, y_axis: float, *, ticks: int = 10, relative_to: float = 0
) -> str:
    """Vertical grid lines from y_top to y_axis and second labels below y_axis."""
    step = nice_step((x.d1 - x.d0) / 1e9, ticks) * 1e9
    first = math.ceil((x.d0 - relative_to) / step) * step + relative_to
    out = [f'<line class="axis" x1="{n(x.r0)}" x2="{n(x.r1)}" y1="{n(y_axis)}" y2="{n(y_axis)}"/>']
    t = first
    while t <= x.d1 + 1e-6:
        px = x(t)
        out.append(
            f'<line class="grid" x1="{n(px)}" x2="{n(px)}" y1="{n(y_top)}" y2="{n(y_axis)}"/>'
        )
        label = f"{round((t - relative_to) / 1e9, 6):g}"
        out.append(
            f'<text class="tick" x="{n(px)}" y="{n(y_axis + 13)}" text-anchor="middle">{label}</text>'
        )
        t += step
    out.append(
        f'<text class="tick" x="{n(x.r1)}" y="{n(y_axis + 26)}" text-anchor="end">'
        f"seconds since start</text>"
    )
    return "".join(out)


def band_class(kind: str) -> str:
    return f"band band-{kind}" if kind in BAND_KINDS else "band band-other"


def window_tip(w: FaultWindow, horizon: int) -> str:
    """The hover text of a fault window: what, on whom, when, how long."""
    end = "end (never healed)" if w.end is None else fmt_time(w.end)
    lasted = fmt_ms((w.end_or(horizon) - w.start) / 1e6)
    return f"{w.kind} {w.target()}\nfrom {fmt_time(w.start)} to {end}\nlasted {lasted}"


def y_grid(y: Scale, x0: float, x1: float, vmax: float, step: float, label_x: float) -> list[str]:
    """Horizontal grid lines with their value labels, every ``step`` up to ``vmax``."""
    out: list[str] = []
    v = 0.0
    while v <= vmax + 1e-9:
        out.append(f'<line class="grid" x1="{x0}" x2="{x1}" y1="{n(y(v))}" y2="{n(y(v))}"/>')
        out.append(
            f'<text class="tick" x="{label_x}" y="{n(y(v) + 4)}" text-anchor="end">{v:g}</text>'
        )
        v += step
    return out


def fault_bands(
    windows: Sequence[FaultWindow],
    x: Scale,
    y0: float,
    y1: float,
    horizon: int,
    *,
    labels: bool = False,
) -> str:
    """Translucent bands for fault windows between y0 and y1 (labels on top when asked)."""
    out: list[str] = []
    lo, hi = min(x.d0, x.d1), max(x.d0, x.d1)
    for i, w in enumerate(windows):
        if w.end_or(horizon) < lo or w.start > hi:
            continue  # entirely outside what this chart shows
        a, b = x.clamp(w.start), x.clamp(w.end_or(horizon))
        tip = window_tip(w, horizon)
        out.append(
            f'<rect class="{band_class(w.kind)}" x="{n(a)}" y="{n(y0)}" width="{n(max(1.5, b - a))}" '
            f'height="{n(y1 - y0)}" data-tip="{esc(tip)}"/>'
        )
        if labels:
            # Stagger labels of neighbouring windows so they do not overprint.
            ly = y0 - 4 - (i % 2) * 11
            out.append(
                f'<text class="band-label" x="{n(a + 2)}" y="{n(ly)}">{esc(w.kind)} {esc(_clip(w.target(), 28))}</text>'
            )
    return "".join(out)


def fault_strip(
    windows: Sequence[FaultWindow],
    x: Scale,
    y: float,
    horizon: int,
    *,
    row_h: float = 15,
    label_x: float | None = None,
) -> tuple[str, float]:
    """One row per fault kind with a solid bar per window (Jepsen's nemesis lanes); returns (svg, height)."""
    kinds: list[str] = []
    for w in windows:
        if w.kind not in kinds:
            kinds.append(w.kind)
    out: list[str] = []
    lx = x.r0 - 6 if label_x is None else label_x
    for r, kind in enumerate(kinds):
        yy = y + r * row_h
        out.append(
            f'<text class="lab" x="{n(lx)}" y="{n(yy + row_h - 4)}" text-anchor="end">{esc(kind)}</text>'
        )
        for w in windows:
            if w.kind != kind or w.end_or(horizon) < x.d0 or w.start > x.d1:
                continue
            a, b = x.clamp(w.start), x.clamp(w.end_or(horizon))
            tip = window_tip(w, horizon)
            out.append(
                f'<rect class="{band_class(w.kind)} solid" x="{n(a)}" y="{n(yy + 1)}" '
                f'width="{n(max(2.0, b - a))}" height="{n(row_h - 2)}" rx="2" data-tip="{esc(tip)}"/>'
            )
            text = _clip(w.target(), max(0, int((b - a - 6) / 6.2)))
            if len(text) >= 2:
                out.append(
                    f'<text class="strip-label" x="{n(a + 3)}" y="{n(yy + row_h - 4)}">{esc(text)}</text>'
                )
    return "".join(out), len(kinds) * row_h


def _clip(s: str, k: int) -> str:
    return s if len(s) <= k else s[: k - 1] + "…"


def mark_line(x: Scale, t: int | None, y0: float, y1: float, label: str = "violation") -> str:
    """A dashed red vertical line at t (the violation), labelled at its top."""
    if t is None or not (min(x.d0, x.d1) <= t <= max(x.d0, x.d1)):
        return ""
    px = x(t)
    return (
        f'<line class="mark" x1="{n(px)}" x2="{n(px)}" y1="{n(y0)}" y2="{n(y1)}"/>'
        f'<text class="marklab" x="{n(px + 4)}" y="{n(y0 + 9)}">{esc(label)}</text>'
    )


def svg_open(width: float, height: float, cls: str = "chart", label: str = "") -> str:
    aria = f' role="img" aria-label="{esc(label)}"' if label else ""
    return (
        f'<svg class="{cls}" viewBox="0 0 {n(width)} {n(height)}" width="{n(width)}" '
        f'height="{n(height)}" xmlns="http://www.w3.org/2000/svg"{aria}>'
    )


def legend(items: Iterable[tuple[str, str]]) -> str:
    """An HTML legend: (css class of the swatch, label)."""
    parts = [f'<span class="key"><i class="sw {esc(c)}"></i>{esc(t)}</span>' for c, t in items]
    return f'<div class="legend">{"".join(parts)}</div>'
