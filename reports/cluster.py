"""Cluster state over time, from metrics.jsonl: roles, terms, leaders, down/paused, CPU, memory.

Owns: turning status and proc samples into per-node state segments
(`node_segments`), the leader over time (`leader_segments`), the roles at one
moment (`roles_at`), each node's clock offset over time from its clock
faults (`clock_segments`: drawn as a thin strip under the node's lane, with
the offset a drift left behind in the lane's label), and their SVG charts.

Invariants: a node's shown state is "down" when its process is dead or its
status poll failed (and it is not paused), "paused" when its process is
stopped, else the role it reported; a segment lasts from the sample that
started it to the next change (the last one to the end of the run). The
leader at a moment is the up node claiming leadership with the highest term.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from checker.nemesis import FaultWindow
from reports.charts import LEFT, RIGHT, WIDTH
from reports.svg import (
    Scale,
    esc,
    fault_bands,
    fault_strip,
    fmt_time,
    n,
    nice_step,
    svg_open,
    time_axis,
    y_grid,
)

NODE_COLOURS = 8  # CSS defines .c0 .. .c7


@dataclass(slots=True)
class Segment:
    node: str
    start: int
    end: int
    state: str  # leader | follower | candidate | down | paused | unknown
    term: Any = None
    leader: Any = None


def _term(m: dict) -> Any:
    return m.get("term", m.get("ballot"))


_memo: list = [None, None]  # (metrics list, its node_states): one report asks three times


def node_states(metrics: Sequence[dict]) -> dict[str, list[tuple[int, str, Any, Any]]]:
    """Per node, (time, state, term, leader it believes in) at each sample, in time order."""
    if _memo[0] is metrics and _memo[1] is not None:
        return _memo[1]
    _memo[0], _memo[1] = metrics, _node_states(metrics)
    return _memo[1]


def _node_states(metrics: Sequence[dict]) -> dict[str, list[tuple[int, str, Any, Any]]]:
    rows = sorted(
        (m for m in metrics if m.get("node") is not None), key=lambda m: m.get("time") or 0
    )
    cur: dict[str, dict] = {}
    out: dict[str, list[tuple[int, str, Any, Any]]] = {}
    for m in rows:
        node = str(m["node"])
        c = cur.setdefault(
            node, {"proc": "running", "up": None, "role": None, "term": None, "leader": None}
        )
        kind = m.get("kind")
        if kind == "proc":
            c["proc"] = m.get("state") or "running"
        elif kind == "status":
            c["up"] = m.get("up", True)
            if c["up"]:
                c["role"], c["term"], c["leader"] = m.get("role"), _term(m), m.get("leader")
        else:
            continue
        if c["proc"] == "dead":
            state = "down"
        elif c["proc"] == "paused":
            state = "paused"
        elif c["up"] is False:
            state = "down"
        elif c["role"] in ("leader", "follower", "candidate"):
            state = c["role"]
        elif isinstance(c["role"], str) and "candidate" in c["role"]:
            state = "candidate"  # pre-candidate (pre-vote) campaigns too
        else:
            state = "unknown"
        out.setdefault(node, []).append((int(m.get("time") or 0), state, c["term"], c["leader"]))
    return out


def node_segments(metrics: Sequence[dict], t1: int) -> dict[str, list[Segment]]:
    segs: dict[str, list[Segment]] = {}
    for node, samples in node_states(metrics).items():
        lst: list[Segment] = []
        for t, state, term, leader in samples:
            if lst and lst[-1].state == state and lst[-1].term == term:
                continue
            if lst:
                lst[-1].end = t
            lst.append(Segment(node, t, max(t1, t), state, term, leader))
        segs[node] = lst
    return segs


def leader_segments(metrics: Sequence[dict], t1: int) -> list[Segment]:
    """Who led when: the up node claiming leadership with the highest term (None: no leader)."""
    latest: dict[str, tuple[str, Any]] = {}
    events: list[tuple[int, str, str, Any]] = []
    for node, samples in node_states(metrics).items():
        for t, state, term, _ in samples:
            events.append((t, node, state, term))
    events.sort(key=lambda e: e[0])
    out: list[Segment] = []
    for i, (t, node, state, term) in enumerate(events):
        latest[node] = (state, term)
        if i + 1 < len(events) and events[i + 1][0] == t:
            continue  # decide once all samples taken at the same moment are in
        leaders = [
            (tm if isinstance(tm, (int, float)) else -1, nd)
            for nd, (st, tm) in latest.items()
            if st == "leader"
        ]
        who, term_of = (max(leaders)[1], max(leaders)[0]) if leaders else (None, None)
        if out and out[-1].node == (who or "") and out[-1].term == term_of:
            continue
        if out:
            out[-1].end = t
        out.append(Segment(who or "", t, max(t1, t), "leader" if who else "none", term_of))
    return out


def roles_at(metrics: Sequence[dict], t: int) -> dict[str, tuple[str, Any, Any]]:
    """Each node's (state, term, leader) as last sampled at or before t."""
    out: dict[str, tuple[str, Any, Any]] = {}
    for node, samples in node_states(metrics).items():
        for ts, state, term, leader in samples:
            if ts > t:
                break
            out[node] = (state, term, leader)
    return out


def _clock_label(value: dict) -> str:
    mode = value.get("mode")
    off = value.get("offset_s", 0)
    if mode == "drift":
        return f"clock x{value.get('rate', 1):g}"
    if mode == "strobe":
        return f"clock strobe +{off:g} s every {value.get('period_ms', 0):g} ms"
    if mode == "bump":
        return f"clock bump {off:+g} s"
    return f"clock {off:+g} s"


def clock_segments(windows: Sequence[FaultWindow], t1: int) -> dict[str, list[tuple[int, int, str]]]:
    """Per node, (start, end, label) of its clock whenever it is not true: each clock
    fault (faults/clock.py) and, after a drift, the offset the drift left (a drift's
    gain stays: its estimate is (rate - 1) x its length)."""
    per: dict[str, list[FaultWindow]] = {}
    for w in windows:
        if w.kind == "clock" and isinstance(w.value, dict) and w.value.get("node"):
            per.setdefault(str(w.value["node"]), []).append(w)
    out: dict[str, list[tuple[int, int, str]]] = {}
    for node, ws in per.items():
        segs: list[tuple[int, int, str]] = []
        base = 0.0
        since: int | None = None
        for w in sorted(ws, key=lambda w: w.start):
            if base and since is not None and w.start > since:
                segs.append((since, w.start, f"clock {base:+.1f} s (left by a drift)"))
            end = w.end_or(t1)
            segs.append((w.start, end, _clock_label(w.value)
                         + (f" (on a clock already {base:+.1f} s)" if base else "")))
            if w.value.get("mode") == "drift":
                base += (float(w.value.get("rate", 1.0)) - 1.0) * (end - w.start) / 1e9
            since = end
        if base and since is not None and since < t1:
            segs.append((since, t1, f"clock {base:+.1f} s (left by a drift)"))
        out[node] = segs
    return out


def colour_of(node: str, nodes: Sequence[str]) -> str:
    return f"c{nodes.index(node) % NODE_COLOURS}" if node in nodes else "c7"


def state_chart(
    metrics: Sequence[dict],
    windows: Sequence[FaultWindow],
    t0: int,
    t1: int,
    nodes: Sequence[str],
    mark: int | None = None,
) -> str:
    """A lane per node (role/term, down, paused) under a 'leader' lane naming who led."""
    segs = node_segments(metrics, t1)
    nodes = list(nodes) or sorted(segs)
    lane_h = 20
    rows = 1 + len(nodes)
    x = Scale(t0, t1, LEFT, WIDTH - RIGHT)
    strip, strip_h = fault_strip(windows, x, 6, t1)
    top = 6 + strip_h + (10 if strip_h else 4)
    height = top + rows * (lane_h + 4) + 30
    span = t1 - t0
    out = [svg_open(WIDTH, height, label="cluster state over time")]
    bottom = top + rows * (lane_h + 4)
    out.append(fault_bands(windows, x, 6, bottom, t1))
    out.append(strip)

    def seg_rect(s: Segment, y: float, cls: str, label: str, tip: str, text_cls: str = "") -> str:
        a, b = x.clamp(s.start), x.clamp(s.end)
        w = max(1.0, b - a)
        r = (
            f'<rect class="seg {cls}" x="{n(a)}" y="{n(y)}" width="{n(w)}" height="{lane_h}" '
            f'data-tip="{esc(tip)}"/>'
        )
        if label and w > 7 * len(label) + 4:
            r += (
                f'<text class="seglab {text_cls or cls}" x="{n(a + w / 2)}" y="{n(y + 14)}" '
                f'text-anchor="middle">{esc(label)}</text>'
            )
        return r

    y = top
    out.append(
        f'<text class="lab strong" x="{LEFT - 6}" y="{n(y + 14)}" text-anchor="end">leader</text>'
    )
    for s in leader_segments(metrics, t1):
        if s.state == "none":
            tip = f"no leader\n{fmt_time(s.start, span)} – {fmt_time(s.end, span)}"
            out.append(seg_rect(s, y, "role-none", "none", tip))
        else:
            tip = f"{s.node} led at term {s.term}\n{fmt_time(s.start, span)} – {fmt_time(s.end, span)}"
            out.append(
                seg_rect(s, y, colour_of(s.node, nodes), f"{s.node} t{s.term}", tip, "on-dark")
            )
    clocks = clock_segments(windows, t1)
    for node in nodes:
        y += lane_h + 4
        out.append(
            f'<text class="lab" x="{LEFT - 6}" y="{n(y + 14)}" text-anchor="end">{esc(node)}</text>'
        )
        for a0, b0, label in clocks.get(node, ()):
            a, b = x.clamp(a0), x.clamp(b0)
            tip = f"{node}: {label}\n{fmt_time(a0, span)} – {fmt_time(b0, span)}"
            out.append(
                f'<rect class="clockseg" x="{n(a)}" y="{n(y + lane_h - 4)}" '
                f'width="{n(max(1.0, b - a))}" height="4" fill="#7048e8" '
                f'data-tip="{esc(tip)}"/>'
            )
        for s in segs.get(node, []):
            term = "" if s.term is None else f" at term {s.term}"
            led = f", leader {s.leader}" if s.leader and s.state == "follower" else ""
            tip = (
                f"{node}: {s.state}{term}{led}\n{fmt_time(s.start, span)} – {fmt_time(s.end, span)}"
            )
            label = {"down": "down", "paused": "paused"}.get(
                s.state, "" if s.term is None else f"t{s.term}"
            )
            out.append(seg_rect(s, y, f"role-{s.state}", label, tip))
    if mark is not None:
        out.append(
            f'<line class="mark" x1="{n(x(mark))}" x2="{n(x(mark))}" y1="{top - 6}" y2="{n(bottom)}"/>'
        )
    out.append(time_axis(x, top - 4, bottom))
    out.append("</svg>")
    return "".join(out)


def resource_chart(
    metrics: Sequence[dict],
    windows: Sequence[FaultWindow],
    t0: int,
    t1: int,
    nodes: Sequence[str],
    field: str,
) -> str:
    """A line per node of a proc sample field ("cpu" percent or "rss" bytes); half width."""
    width, left, right, top, bottom, height = 570, 56, 10, 10, 150, 186
    series: dict[str, list[tuple[int, float]]] = {}
    for m in metrics:
        if (
            m.get("kind") == "proc"
            and isinstance(m.get(field), (int, float))
            and m.get("node") is not None
        ):
            series.setdefault(str(m["node"]), []).append((int(m.get("time") or 0), float(m[field])))
    scale_div = 1.0 if field == "cpu" else float(1 << 20)
    unit = "% CPU" if field == "cpu" else "MiB RSS"
    vmax = max((v for pts in series.values() for _, v in pts), default=1.0) / scale_div
    step = nice_step(max(vmax, 1e-9), 4)
    vmax = max(step, -(-vmax // step) * step)
    x = Scale(t0, t1, left, width - right)
    y = Scale(0, vmax, bottom, top)
    out = [svg_open(width, height, cls="chart half", label=unit)]
    out.append(fault_bands(windows, x, top, bottom, t1))
    out.extend(y_grid(y, left, width - right, vmax, step, left - 5))
    out.append(f'<text class="tick" x="{left + 4}" y="{top + 10}">{unit}</text>')
    nodes = list(nodes) or sorted(series)
    for node, pts in sorted(series.items()):
        pts.sort()
        stride = max(1, len(pts) // 600)  # at most ~600 points a line
        pts = pts[::stride]
        path = " ".join(f"{n(x(t))},{n(y(v / scale_div))}" for t, v in pts)
        last = pts[-1][1] / scale_div if pts else 0
        out.append(
            f'<polyline class="line {colour_of(node, nodes)}" points="{path}" '
            f'data-tip="{esc(f"{node}: {unit}, last {last:.1f}")}"/>'
        )
    out.append(time_axis(x, top, bottom, ticks=5))
    out.append("</svg>")
    return "".join(out)
