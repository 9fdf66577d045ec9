"""The violation, shown rather than stated: ops on a time axis with the longest
linearizable prefix and the op that cannot be placed (after Porcupine's
visualization), the faults and node roles at that moment, the nodes' log lines
around it, and a message diagram from net.jsonl.

Owns: turning the anomalies of results.json into `Witness`es and the HTML/SVG
of the violation section. A list-append anomaly that is a dependency cycle
(its results.json entry has a ``cycle``, docs/checker.md "list-append") is
drawn as the cycle itself: its transactions on a ring, an arrow per
dependency labelled with its kind and key, the checker's reason for each
edge in words, and the transactions' micro-operations.

Invariants: an anomaly names its operations by `Op.id` (positions in
`checker.history.pair(history)`, docs/run-folder.md), so the ops are looked up,
never guessed; an id the history does not hold is left out. The op that cannot
be placed is the anomaly's first op (the checker lists the stuck op first, then
those concurrent with it); if that one is in the prefix, the latest-starting
anomaly op is taken. Nothing here re-runs the checker: it draws what the
checker reported.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from checker.history import Op
from checker.nemesis import FaultWindow
from reports.charts import op_label, op_tip
from reports.cluster import roles_at
from reports.runfolder import WORKERS_LOG, anomaly_ops, log_path, started_time
from reports.svg import (
    Scale,
    band_class,
    esc,
    fault_bands,
    fmt_ms,
    fmt_time,
    n,
    svg_open,
)

WIDTH = 1160
PREFIX_TAIL = 10  # prefix ops drawn before the failure point
CONTEXT_OPS = 12  # other ops on the same key overlapping the window, nearest the moment first
LOG_LINES = 12  # per node
MESSAGES = 48


@dataclass
class Witness:
    key: Any
    sentence: str
    ops: list[Op]  # the anomaly's operations
    prefix: list[Op]  # longest linearizable prefix, in linearization order
    stuck: list[Op]  # the op(s) that cannot be placed
    moment: int  # when it went wrong (invoke of the stuck op)
    kind: str = ""  # the checker's name for it (non-linearizable, G-single, G1c, ...)
    #: a list-append cycle's edges, as results.json has them ({"from", "to", "kind", ...})
    cycle: list[dict] = field(default_factory=list)
    #: a finding's first node (faults/findings.py): no operation is to blame
    node: str = ""
    #: a finding's headline in lower case ("not durable", "replicas diverged"); "" for
    #: an anomaly of the history
    finding: str = ""
    #: every node a finding concerns (``node`` first)
    nodes: list[str] = field(default_factory=list)


def witnesses(checker: dict, ops: Sequence[Op]) -> list[Witness]:
    """The checker's anomalies (results.json form) with their operations looked up in ``ops``."""
    out: list[Witness] = []
    for a in checker.get("anomalies") or []:
        if not isinstance(a, dict):
            continue
        named = _lookup(anomaly_ops(a, "ops"), ops)
        prefix = _lookup(anomaly_ops(a, "prefix"), ops)
        in_prefix = {o.id for o in prefix}
        # The checker lists the op stuck at its deadline first, then those concurrent with it.
        cycle = [e for e in a.get("cycle") or [] if isinstance(e, dict)]
        stuck = [o for o in named[:1] if o.id not in in_prefix]
        if not stuck and named:
            stuck = [max(named, key=lambda o: o.start)]
        if cycle:
            stuck = []  # no transaction of a cycle is to blame more than another
        moment = min((o.start for o in stuck), default=min((o.start for o in named), default=0))
        if not named and isinstance(a.get("time"), int):
            moment = a["time"]  # a finding names its moment, not operations
        sentence = str(
            a.get("sentence")
            or "the operations below cannot be put in any order "
            "consistent with a single copy of the data"
        )
        kind = str(a.get("kind") or "")
        node = str(a.get("node") or "")
        # Run folders written before findings named themselves carry only the kind.
        finding = str(a.get("finding") or ("not durable" if kind.startswith("refused-after-")
                                           else ""))
        nodes = [str(n) for n in a.get("nodes") or [] if n is not None] if isinstance(
            a.get("nodes"), list) else []
        if node and node not in nodes:
            nodes.insert(0, node)
        out.append(Witness(a.get("key"), sentence, named, prefix, stuck, moment,
                           kind, cycle, node, finding, nodes))
    return out


def _lookup(ids: list[int], ops: Sequence[Op]) -> list[Op]:
    """The ops with these ids, in the given order, each once; unknown ids are skipped."""
    out: list[Op] = []
    seen: set[int] = set()
    for i in ids:
        if 0 <= i < len(ops) and i not in seen:
            seen.add(i)
            out.append(ops[i])
    return out


class GapScale(Scale):
    """A time scale that shortens long idle gaps, so that ops seconds apart (the last
    write, then a stale read much later) stay readable. Order and overlap of ops are
    kept exactly; only empty stretches shrink, and each shrunk gap is marked."""

    def __init__(self, times: list[int], d0: int, d1: int, r0: float, r1: float) -> None:
        super().__init__(d0, d1, r0, r1)
        pts = sorted({d0, d1, *times})
        gaps = [b - a for a, b in pairwise(pts)]
        cap = max(1.0, (d1 - d0) / 8)  # no quiet stretch takes more than an eighth of the width
        widths = [min(g, cap) for g in gaps]
        total = sum(widths) or 1.0
        self.pts, self.pos, self.breaks = pts, [r0], []
        for a, b, g, w in zip(pts, pts[1:], gaps, widths):
            self.pos.append(self.pos[-1] + w / total * (r1 - r0))
            if g > w:
                self.breaks.append((a, b))

    def __call__(self, d: float) -> float:
        from bisect import bisect_right

        pts, pos = self.pts, self.pos
        if d <= pts[0]:
            return pos[0]
        if d >= pts[-1]:
            return pos[-1]
        i = bisect_right(pts, d) - 1
        a, b = pts[i], pts[i + 1]
        return pos[i] + (pos[i + 1] - pos[i]) * (d - a) / (b - a)

    def axis(self, y_top: float, y_axis: float) -> str:
        """Tick labels at real times, at least ~90 px apart; a '≈' mark on each shrunk gap."""
        span = self.d1 - self.d0
        out = [
            (f'<line class="axis" x1="{n(self.r0)}" x2="{n(self.r1)}" y1="{n(y_axis)}" '
            f'y2="{n(y_axis)}"/>')
        ]
        last = -1e9
        for t in self.pts[1:-1]:
            px = self(t)
            if px - last >= 90:
                out.append(
                    f'<line class="grid" x1="{n(px)}" x2="{n(px)}" y1="{n(y_top)}" '
                    f'y2="{n(y_axis)}"/><text class="tick" x="{n(px)}" y="{n(y_axis + 13)}" '
                    f'text-anchor="middle">{esc(fmt_time(t, span))}</text>'
                )
                last = px
        last = -1e9
        for a, b in self.breaks:
            px = (self(a) + self(b)) / 2
            out.append(
                f'<line class="gap" x1="{n(px)}" x2="{n(px)}" y1="{n(y_top)}" y2="{n(y_axis)}"/>'
            )
            if px - last >= 130:  # label the marks that have room
                out.append(
                    f'<text class="gaplab" x="{n(px)}" y="{n(y_axis + 26)}" text-anchor="middle">'
                    f"≈ {esc(fmt_ms((b - a) / 1e6))} shortened</text>"
                )
                last = px
        return "".join(out)


def _step(state: Any, op: Op) -> Any:
    """The register after op (read/write/cas; other fs leave it unknown)."""
    if op.f == "write":
        return op.value
    if op.f == "cas" and isinstance(op.value, (list, tuple)) and len(op.value) == 2:
        return op.value[1]
    if op.f == "read":
        return state
    return "?"


def diagram(w: Witness, all_ops: Sequence[Op], windows: Sequence[FaultWindow], horizon: int) -> str:
    """Porcupine-style: bars per process, the prefix numbered in linearization order,
    a line through the linearization points, and the op that cannot be placed in red."""
    order: dict[int, int] = {o.id: i + 1 for i, o in enumerate(w.prefix)}
    states: dict[int, Any] = {}
    st: Any = None
    for o in w.prefix:
        st = _step(st, o)
        states[o.id] = st
    stuck_ids = {o.id for o in w.stuck}
    involved = {o.id for o in w.ops}
    shown: list[Op] = []
    seen: set[int] = set()
    for o in w.prefix[-PREFIX_TAIL:] + w.ops + w.stuck:
        if o.id not in seen:
            seen.add(o.id)
            shown.append(o)
    if not shown:
        return '<p class="muted">The checker named no operations for this anomaly.</p>'
    lo = min(o.start for o in shown)
    hi = max((o.end if o.end is not None else o.start) for o in shown)
    context = [
        o
        for o in all_ops  # other ops on the key overlapping the window
        if o.id not in seen and o.key == w.key and o.start <= hi and (o.end or hi) >= lo
    ]
    context.sort(key=lambda o: abs(o.start - w.moment))
    for o in context[:CONTEXT_OPS]:
        seen.add(o.id)
        shown.append(o)
    pad = max(1, (hi - lo) // 20)
    t0, t1 = lo - pad, hi + pad
    procs = sorted({o.process for o in shown}, key=lambda p: (isinstance(p, str), p))
    lane = {p: i for i, p in enumerate(procs)}
    lane_h, top, left, right = 34, 30, 110, 20
    height = top + len(procs) * lane_h + 40
    times = [t for o in shown for t in (o.start, o.end if o.end is not None else hi)]
    x = GapScale(times, t0, t1, left, WIDTH - right)
    span = t1 - t0
    out = [
        svg_open(WIDTH, height, cls="chart witness-chart", label="linearization of the violation")
    ]
    out.append(fault_bands(windows, x, top - 6, top + len(procs) * lane_h, horizon, labels=True))
    for p, i in lane.items():
        y = top + i * lane_h
        out.append(
            f'<text class="lab" x="{left - 8}" y="{n(y + 20)}" text-anchor="end">process {esc(p)}</text>'
        )
    points: list[tuple[float, float]] = []
    last_t = t0
    ordered = sorted(shown, key=lambda o: o.start)
    # Where the next bar of the same lane begins: a label must end before it.
    next_x: dict[int, float] = {}
    upcoming: dict[Any, float] = {}
    for o in reversed(ordered):
        next_x[o.id] = upcoming.get(o.process, WIDTH - right)
        upcoming[o.process] = x(o.start)
    label_end: dict[Any, float] = {}
    for o in ordered:
        y = top + lane[o.process] * lane_h + 5
        a = x(o.start)
        b = x(o.end if o.end is not None else t1)
        if o.id in stuck_ids:
            cls, badge = "stuck", "✗"
        elif o.id in order:
            cls, badge = "placed", f"#{order[o.id]}"
        elif o.id in involved:
            cls, badge = "concurrent", ""
        else:
            cls, badge = "other", ""
        tip = op_tip(o, span)
        if o.id in order:
            tip += f"\nlinearized #{order[o.id]}; register after: {states[o.id]}"
        elif o.id in stuck_ids:
            tip += "\ncannot be placed after the prefix"
        out.append(
            f'<rect class="wop {cls}" x="{n(a)}" y="{n(y)}" width="{n(max(3, b - a))}" height="24" rx="3" '
            f'data-tip="{esc(tip)}"/>'
        )
        label = (
            f"{badge} {op_label(o)}".strip()
            if cls != "stuck"
            else f"{op_label(o)} — cannot be placed"
        )
        room = next_x[o.id] - b - 8  # free space right of the bar, before the lane's next bar
        left_room = a - max(label_end.get(o.process, left), left) - 8
        for text in (label, badge, op_label(o)) if cls != "stuck" else (label, op_label(o), "✗"):
            wide = 6.2 * len(text)
            if not text:
                continue
            if b - a > wide + 8:
                out.append(
                    f'<text class="wlab {cls}" x="{n(a + 5)}" y="{n(y + 16)}">{esc(text)}</text>'
                )
                label_end[o.process] = b
            elif wide < room:
                out.append(
                    f'<text class="wlab outside {cls}" x="{n(b + 4)}" y="{n(y + 16)}">{esc(text)}</text>'
                )
                label_end[o.process] = b + 4 + wide
            elif wide < left_room:
                out.append(
                    f'<text class="wlab outside {cls}" x="{n(a - 4)}" y="{n(y + 16)}" '
                    f'text-anchor="end">{esc(text)}</text>'
                )
                label_end[o.process] = b
            else:
                continue
            break
        else:
            label_end[o.process] = b  # no room for any label: the hover text has it all
    # Linearization points in prefix order: the earliest moment inside each op not before the previous.
    for o in w.prefix:
        if o.id not in seen or o.start > t1:
            continue
        end = o.end if o.end is not None else t1
        last_t = min(max(o.start, last_t), end)
        points.append((x(max(last_t, t0)), top + lane[o.process] * lane_h + 17))
    if points:
        out.append(
            f'<polyline class="lin" points="{" ".join(f"{n(px)},{n(py)}" for px, py in points)}"/>'
        )
        out += [f'<circle class="linpt" cx="{n(px)}" cy="{n(py)}" r="3"/>' for px, py in points]
    for o in w.stuck:
        if o.process in lane:
            px, py = x(max(o.start, last_t)), top + lane[o.process] * lane_h + 17
            if points:
                out.append(
                    f'<line class="lin fail" x1="{n(points[-1][0])}" y1="{n(points[-1][1])}" '
                    f'x2="{n(px)}" y2="{n(py)}"/>'
                )
            out.append(
                f'<text class="x-mark" x="{n(px)}" y="{n(py + 5)}" text-anchor="middle">✗</text>'
            )
    out.append(x.axis(top - 6, top + len(procs) * lane_h + 2))
    out.append("</svg>")
    return "".join(out)


# -- the moment: faults, roles, log lines ----------------------------------------------------------

_TS = re.compile(r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2}(?:[.,]\d+)?)(Z|[+-]\d{2}:?\d{2})?")


_CLOCK = re.compile(r"^\[?(\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?\b")


def line_time(line: str, started: datetime) -> int | None:
    """A log line's time in ns since run start, from a leading ISO timestamp or a
    leading wall clock time of day ("04:51:00.791", the run's day and zone assumed)."""
    m = _TS.search(line[:48])
    if not m:
        c = _CLOCK.match(line)
        if not c:
            return None
        frac = (c.group(4) or "0").ljust(9, "0")[:9]
        secs = int(c.group(1)) * 3600 + int(c.group(2)) * 60 + int(c.group(3))
        local = started if started.tzinfo is None else started.astimezone()  # nodes log local time
        start_secs = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        delta = secs + int(frac) / 1e9 - start_secs
        if delta < -12 * 3600:  # the run crossed midnight
            delta += 24 * 3600
        return int(delta * 1e9)
    try:
        dt = datetime.fromisoformat(
            f"{m.group(1)}T{m.group(2).replace(',', '.')}"
            + (m.group(3) or "").replace("Z", "+00:00")
        )
    except ValueError:
        return None
    if (dt.tzinfo is None) != (started.tzinfo is None):
        if dt.tzinfo is None:  # a naive log time: the machine's local time
            dt = dt.astimezone(UTC)
        else:
            started = started.astimezone(UTC)
    return int((dt - started).total_seconds() * 1e9)


def log_excerpt(
    logs: dict[str, list[str]], results: dict, moment: int, focus: set[str] | None = None
) -> str:
    """Log lines of each node (and the proxy) around the moment; the nodes in `focus` (the
    one that answered the stuck op, the leader then) start unfolded, the others folded.
    The client workers' log is no node's and says nothing of the moment: it is left out."""
    started = started_time(results)
    blocks: list[str] = []
    for node in sorted(logs):
        lines = logs[node]
        if not lines or node == WORKERS_LOG:
            continue
        timed = [(line_time(ln, started), ln) for ln in lines] if started else []
        chosen: list[tuple[int | None, str, bool]] = []
        if timed and any(t is not None for t, _ in timed):
            # Lines nearest the moment: the LOG_LINES-1 before it and a few after.
            idx = next(
                (i for i, (t, _) in enumerate(timed) if t is not None and t > moment), len(timed)
            )
            lo, hi = max(0, idx - (LOG_LINES - 4)), min(len(timed), idx + 4)
            for i in range(lo, hi):
                t, ln = timed[i]
                chosen.append((t, ln, i == idx))
            note = ""
        else:
            chosen = [(None, ln, False) for ln in lines[-LOG_LINES:]]
            note = '<p class="muted">No timestamps in this log: its last lines are shown.</p>'
        rows = []
        for t, ln, after in chosen:
            rel = "" if t is None else f'<span class="rel">{(t - moment) / 1e6:+.0f} ms</span>'
            mark = '<div class="now">▲ the violation</div>' if after else ""
            rows.append(f"{mark}<div>{rel}{esc(ln)}</div>")
        if chosen and all(not a for _, _, a in chosen) and note == "":
            rows.append('<div class="now">▲ the violation</div>')
        unfold = " open" if focus is None or node in focus else ""
        why = ""
        if focus and node in focus:
            why = '<span class="muted"> — involved at that moment</span>'
        blocks.append(
            f'<details{unfold}><summary>{esc(node)}{why} <a href="{esc(log_path(node))}">full log</a>'
            "</summary>"
            f'{note}<div class="log">{"".join(rows)}</div></details>'
        )
    if not blocks:
        return '<p class="muted">No node logs in this run folder.</p>'
    return "".join(blocks)


def focus_nodes(w: Witness, metrics: Sequence[dict]) -> set[str] | None:
    """The nodes that answered the anomaly's ops, and the leader(s) at that moment."""
    nodes = {str(o.node) for o in w.ops + w.stuck if o.node is not None}
    for node, (state, _, _) in roles_at(metrics, w.moment).items():
        if state == "leader":
            nodes.add(node)
    return nodes or None


def moment_panel(
    w: Witness, windows: Sequence[FaultWindow], metrics: Sequence[dict], horizon: int
) -> str:
    active = [f for f in windows if f.start <= w.moment < f.end_or(horizon)]
    recent = [f for f in windows if f.end is not None and 0 <= w.moment - f.end <= 5_000_000_000]
    items = []
    for f in active:
        items.append(
            f'<li><i class="sw {band_class(f.kind)}"></i><b>{esc(f.kind)}</b> {esc(f.target())} '
            f"— active since {fmt_time(f.start)} ({fmt_ms((w.moment - f.start) / 1e6)} before)</li>"
        )
    for f in recent:
        items.append(
            f'<li><i class="sw {band_class(f.kind)}"></i>{esc(f.kind)} {esc(f.target())} '
            f"— healed {fmt_ms((w.moment - f.end) / 1e6)} before</li>"
        )
    faults = (
        f'<ul class="plain">{"".join(items)}</ul>'
        if items
        else '<p class="muted">No fault was active.</p>'
    )
    roles = roles_at(metrics, w.moment)
    if roles:
        rows = "".join(
            f'<tr><td>{esc(node)}</td><td><i class="sw role-{esc(st)}"></i>{esc(st)}</td>'
            f"<td>{esc('' if term is None else term)}</td><td>{esc(leader or '')}</td></tr>"
            for node, (st, term, leader) in sorted(roles.items())
        )
        table = (
            f'<table class="mini"><tr><th>node</th><th>state</th><th>term / ballot</th><th>believes leader</th></tr>'
            f"{rows}</table>"
        )
    else:
        table = '<p class="muted">No cluster metrics were recorded.</p>'
    return (
        f'<div class="cols"><div><h4>Faults at {fmt_time(w.moment)}</h4>{faults}</div>'
        f"<div><h4>Node roles at that moment</h4>{table}</div></div>"
    )


# -- message diagram -------------------------------------------------------------------------------


def _msg_fields(m: dict) -> tuple[int | None, str, str, str, str, int | None]:
    t = m.get("time", m.get("sent"))
    src = str(m.get("src", m.get("from", "?")))
    dst = str(m.get("dest", m.get("to", "?")))
    typ = str(m.get("type", m.get("msg_type", m.get("kind", "msg"))))
    fate = str(m.get("result", m.get("action", m.get("fate", m.get("event", "delivered")))))
    recv = m.get("delivered", m.get("deliver_time", m.get("recv")))
    return (
        t if isinstance(t, int) else None,
        src,
        dst,
        typ,
        fate,
        recv if isinstance(recv, int) else None,
    )


def message_diagram(net: Sequence[dict], nodes: Sequence[str], moment: int) -> str:
    """A sequence diagram of the MESSAGES messages sent nearest the violation: one row
    per message in send order (so simultaneous broadcasts stay readable), a lifeline per node."""
    msgs = [f for f in (_msg_fields(m) for m in net) if f[0] is not None]
    if not msgs:
        return ""
    msgs.sort(key=lambda f: abs(f[0] - moment))
    msgs = sorted(msgs[:MESSAGES], key=lambda f: f[0])
    names = list(nodes) or sorted({f[1] for f in msgs} | {f[2] for f in msgs})
    for f in msgs:
        for nd in (f[1], f[2]):
            if nd not in names:
                names.append(nd)
    row, left, right, top = 13, 160, 40, 30
    mark_row = sum(1 for f in msgs if f[0] <= moment)  # the violation sits after this many messages
    height = top + (len(msgs) + 1) * row + 16
    xs = Scale(0, max(1, len(names) - 1), left + 50, WIDTH - right - 50)
    span = max(1, msgs[-1][0] - msgs[0][0])
    out = [svg_open(WIDTH, height, cls="chart msgs", label="messages around the violation")]
    out.append(
        '<defs><marker id="arr" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" '
        'orient="auto"><path d="M0,0L8,4L0,8z" class="arrowhead"/></marker></defs>'
    )
    col = {nd: i for i, nd in enumerate(names)}
    for nd, i in col.items():
        px = xs(i)
        out.append(
            f'<text class="lab strong" x="{n(px)}" y="{top - 12}" text-anchor="middle">{esc(nd)}</text>'
        )
        out.append(
            f'<line class="lifeline" x1="{n(px)}" x2="{n(px)}" y1="{top - 6}" y2="{height - 8}"/>'
        )
    last_label = None
    for k, (t, src, dst, typ, fate, recv) in enumerate(msgs):
        r = k + (1 if k >= mark_row else 0)  # leave a row for the violation line
        ya = top + r * row + 3
        xa, xb = xs(col[src]), xs(col[dst])
        yb = ya + row * 0.6
        dropped = fate.startswith("drop") or fate in ("lost", "cut", "blocked")
        tip = f"{typ}: {src} → {dst}\n{fate} at {fmt_time(t, span)}"
        label = fmt_time(t, span)
        if label != last_label:
            out.append(
                f'<text class="tick" x="{left - 6}" y="{n(ya + 7)}" text-anchor="end">{esc(label)}</text>'
            )
            last_label = label
        if dropped:
            mx, my = xa + (xb - xa) * 0.55, ya + (yb - ya) * 0.55
            out.append(
                f'<line class="msg dropped" x1="{n(xa)}" y1="{n(ya)}" x2="{n(mx)}" y2="{n(my)}" '
                f'data-tip="{esc(tip)}"/><text class="x-mark small" x="{n(mx)}" y="{n(my + 4)}" '
                f'text-anchor="middle">×</text>'
            )
        else:
            out.append(
                f'<line class="msg" x1="{n(xa)}" y1="{n(ya)}" x2="{n(xb)}" y2="{n(yb)}" '
                f'marker-end="url(#arr)" data-tip="{esc(tip)}"/>'
            )
        out.append(
            f'<text class="msglab" x="{n((xa + xb) / 2)}" y="{n((ya + yb) / 2 - 2)}" '
            f'text-anchor="middle">{esc(typ)}</text>'
            if abs(xb - xa) > 8 * len(typ)
            else ""
        )
    ym = top + mark_row * row + 6
    out.append(
        f'<line class="mark" x1="{left}" x2="{WIDTH - right}" y1="{n(ym)}" y2="{n(ym)}"/>'
        f'<text class="marklab" x="{left - 6}" y="{n(ym + 4)}" text-anchor="end">violation '
        f"{esc(fmt_time(moment, span))}</text>"
    )
    out.append("</svg>")
    return "".join(out)


# -- a list-append cycle ---------------------------------------------------------------------------

#: Stroke colour and dash of each dependency kind (ww, wr, rw, real time, process order).
EDGE_STYLE = {"ww": ("#1c7ed6", ""), "wr": ("#2f9e44", ""), "rw": ("#e03131", "6 4"),
              "rt": ("#868e96", "2 3"), "process": ("#868e96", "2 3")}
EDGE_WORDS = {"ww": "ww: appended right after", "wr": "wr: read what it appended",
              "rw": "rw: read before it appended", "rt": "rt: completed before it began",
              "process": "process: earlier on the same process"}


def cycle_diagram(w: Witness, i: int) -> str:
    """The cycle as a ring of transactions with one labelled arrow per dependency."""
    ids: list[int] = []
    for e in w.cycle:
        for t in (e.get("from"), e.get("to")):
            if type(t) is int and t not in ids:
                ids.append(t)
    if not ids:
        return ""
    k = len(ids)
    radius = 0 if k == 1 else max(90.0, 40.0 * k / math.pi)
    width = max(420.0, 2 * radius + 300)
    height = (2 * radius if k > 2 else 0) + 150
    cx, cy, r = width / 2, height / 2, 27
    # clockwise from the top (two: left and right), so each arrow bends outwards
    first = -math.pi / 2 if k == 2 else 0.0
    pos = {t: (cx + radius * math.sin(first + 2 * math.pi * j / k),
               cy - radius * math.cos(first + 2 * math.pi * j / k)) for j, t in enumerate(ids)}
    by_id = {o.id: o for o in w.ops}
    marker = f"cyc{i}"
    out = [svg_open(width, height, cls="chart cycle-chart",
                    label=f"dependency cycle, {w.kind or 'anomaly'}"), "<defs>"]
    for kind, (colour, _dash) in EDGE_STYLE.items():
        out.append(f'<marker id="{marker}-{kind}" viewBox="0 0 10 10" refX="9" refY="5" '
                   f'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
                   f'<path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>')
    out.append("</defs>")
    for e in w.cycle:
        a, b = e.get("from"), e.get("to")
        if a not in pos or b not in pos:
            continue
        kind = str(e.get("kind") or "")
        colour, dash = EDGE_STYLE.get(kind, ("#495057", ""))
        (x1, y1), (x2, y2) = pos[a], pos[b]
        dx, dy = x2 - x1, y2 - y1
        dist = math.hypot(dx, dy) or 1.0
        # bend every arrow to its left, so a -> b and b -> a do not overlap
        nx, ny = dy / dist, -dx / dist
        bend = 28 if k > 2 else 46
        mx, my = (x1 + x2) / 2 + nx * bend, (y1 + y2) / 2 + ny * bend
        sx, sy = _towards(x1, y1, mx, my, r + 2)
        ex, ey = _towards(x2, y2, mx, my, r + 5)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        label = kind + ("" if e.get("key") is None else f" {e['key']}")
        if e.get("value") is not None:
            label += f" ({e['value']})"
        out.append(f'<path d="M{n(sx)},{n(sy)} Q{n(mx)},{n(my)} {n(ex)},{n(ey)}" fill="none" '
                   f'stroke="{colour}" stroke-width="2"{dash_attr} '
                   f'marker-end="url(#{marker}-{kind if kind in EDGE_STYLE else "ww"})">'
                   f'<title>{esc(e.get("why") or label)}</title></path>')
        lx, ly = (x1 + x2) / 4 + mx / 2, (y1 + y2) / 4 + my / 2  # the curve's apex
        anchor = "middle" if abs(nx) < 0.4 else "start" if nx > 0 else "end"
        out.append(f'<text x="{n(lx + nx * 10)}" y="{n(ly + ny * 15 + (4 if ny >= 0 else 0))}" '
                   f'font-size="12" '
                   f'text-anchor="{anchor}" fill="{colour}">{esc(label)}</text>')
    for t, (x, y) in pos.items():
        o = by_id.get(t)
        sub = "" if o is None else f"process {o.process}"
        tip = f"T{t}" if o is None else f"T{t}: " + txn_text(o)
        out.append(f'<circle cx="{n(x)}" cy="{n(y)}" r="{r}" fill="#fff3bf" stroke="#f08c00" '
                   f'stroke-width="2"><title>{esc(tip)}</title></circle>'
                   f'<text x="{n(x)}" y="{n(y + 1)}" text-anchor="middle" font-size="13" '
                   f'font-weight="600">T{t}</text>'
                   f'<text x="{n(x)}" y="{n(y + 13)}" text-anchor="middle" font-size="9" '
                   f'fill="#495057">{esc(sub)}</text>')
    out.append("</svg>")
    return "".join(out)


def _towards(x: float, y: float, tx: float, ty: float, d: float) -> tuple[float, float]:
    """The point ``d`` from (x, y) in the direction of (tx, ty)."""
    dx, dy = tx - x, ty - y
    dist = math.hypot(dx, dy) or 1.0
    return x + dx / dist * d, y + dy / dist * d


def txn_text(op: Op) -> str:
    """A transaction's micro-operations in short: 'append x 3, r y [1 2]'."""
    mops = op.output if op.type == "ok" else op.value
    if not isinstance(mops, list):
        return str(mops)
    words = []
    for m in mops:
        if isinstance(m, (list, tuple)) and len(m) == 3:
            f, key, v = m
            shown = ("?" if op.type != "ok" else "nil") if v is None and f == "r" else v
            if isinstance(shown, list):
                shown = "[" + " ".join(map(str, shown)) + "]"
            words.append(f"{f} {key} {shown}")
        else:
            words.append(str(m))
    return ", ".join(words)


def cycle_section(w: Witness, i: int) -> str:
    """The cycle diagram, each dependency's reason, and the transactions' micro-operations."""
    kinds = [k for k in EDGE_STYLE if any(e.get("kind") == k for e in w.cycle)]
    legend_html = "".join(
        f'<span class="key"><i class="sw" style="background:{EDGE_STYLE[k][0]}"></i>'
        f"{esc(EDGE_WORDS[k])}</span>" for k in kinds)
    steps = "".join(f"<li>{esc(e.get('why') or '')}</li>" for e in w.cycle if e.get("why"))
    return (f'<div class="legend">{legend_html}</div>{cycle_diagram(w, i)}'
            f"<h4>Why each arrow</h4><ol>{steps}</ol>{txn_table(w.ops)}")


def txn_table(ops: Sequence[Op]) -> str:
    """The transactions of an anomaly: id, process, outcome, micro-operations."""
    rows = "".join(
        f"<tr><td>T{o.id}</td><td>{esc(o.process)}</td><td>{esc(o.type)}</td>"
        f"<td><code>{esc(txn_text(o))}</code></td></tr>" for o in ops)
    return (f'<table class="data"><tr><th>txn</th><th>process</th><th>outcome</th>'
            f"<th>micro-operations (reads as returned)</th></tr>{rows}</table>")


def section(
    w: Witness,
    i: int,
    all_ops: Sequence[Op],
    windows: Sequence[FaultWindow],
    metrics: Sequence[dict],
    logs: dict[str, list[str]],
    results: dict,
    net: Sequence[dict],
    nodes: Sequence[str],
    horizon: int,
) -> str:
    if w.cycle or w.kind in LIST_APPEND_KINDS or w.kind.startswith("G"):
        return list_append_section(w, i, all_ops, windows, metrics, logs, results, horizon)
    if is_finding(w):
        return finding_section(w, i, windows, metrics, logs, results, horizon)
    key = "" if w.key is None else f" on key <code>{esc(w.key)}</code>"
    parts = [
        f"<h3>Anomaly {i + 1}{key}</h3>",
        f'<p class="sentence">{esc(w.sentence)}</p>',
        ('<div class="legend"><span class="key"><i class="sw wop placed"></i>in the longest linearizable prefix '
        '(#n = its place in the order)</span><span class="key"><i class="sw wop stuck"></i>cannot be placed'
        '</span><span class="key"><i class="sw wop concurrent"></i>concurrent with it, not placed</span>'
        '<span class="key"><i class="sw wop other"></i>other operations on the key</span>'
        '<span class="key"><i class="sw lin-sw"></i>linearization points</span></div>'),
        diagram(w, all_ops, windows, horizon),
        moment_panel(w, windows, metrics, horizon),
        "<h4>Node logs around the violation</h4>",
        log_excerpt(logs, results, w.moment, focus_nodes(w, metrics)),
    ]
    md = message_diagram(net, nodes, w.moment)
    if md:
        parts += [
            "<h4>Messages around the violation</h4>",
            ('<div class="legend"><span class="key"><i class="sw msg-sw"></i>delivered</span>'
            '<span class="key"><i class="sw msg-drop"></i>dropped ×</span>'
            '<span class="key"><i class="sw mark-sw"></i>moment of the violation</span></div>'),
            md,
        ]
    return f'<section class="anomaly">{"".join(parts)}</section>'


def is_finding(w: Witness) -> bool:
    """A finding of the nodes' own behaviour (faults/findings.py), not a history anomaly."""
    return bool(w.finding)


def finding_section(w: Witness, i: int, windows: Sequence[FaultWindow], metrics: Sequence[dict],
                    logs: dict[str, list[str]], results: dict, horizon: int) -> str:
    """A finding: its nodes, the fault windows around its moment, and the nodes' own
    logs (for a durability finding, the last line is why the node would not start)."""
    who = ", ".join(f"<code>{esc(n)}</code>" for n in w.nodes) or "the cluster"
    durable = w.kind.startswith("refused-after-")
    title = f"{who} did not come back" if durable else f"{esc(w.finding)}: {who}"
    evidence = ("the node's restart, recorded with the fault window below" if durable
                else "the nodes' own status, sampled during the run")
    parts = [
        f"<h3>Anomaly {i + 1}: {title}</h3>",
        f'<p class="sentence">{esc(w.sentence)}</p>',
        f'<p class="muted">No client operation is to blame: the evidence is {evidence}.</p>',
        moment_panel(w, windows, metrics, horizon),
        "<h4>Node logs around that moment</h4>" if not durable
        else "<h4>Node logs around the restart</h4>",
        log_excerpt(logs, results, w.moment, set(w.nodes) or None),
    ]
    return f'<section class="anomaly">{"".join(parts)}</section>'


#: The list-append anomalies that are no cycle (checker/listappend.py).
LIST_APPEND_KINDS = frozenset(("duplicate-appends", "incompatible-order", "duplicate-elements",
                               "unknown-value", "internal", "G1a", "G1b"))


def list_append_section(
    w: Witness,
    i: int,
    all_ops: Sequence[Op],
    windows: Sequence[FaultWindow],
    metrics: Sequence[dict],
    logs: dict[str, list[str]],
    results: dict,
    horizon: int,
) -> str:
    """A list-append anomaly: its name and sentence, the cycle (if it is one),
    the transactions on a time axis, the moment and the node logs."""
    parts = [
        f"<h3>Anomaly {i + 1}: {esc(w.kind)}</h3>",
        f'<p class="sentence">{esc(w.sentence)}</p>',
    ]
    parts.append(cycle_section(w, i) if w.cycle else txn_table(w.ops))
    parts += [
        "<h4>The transactions in time</h4>",
        ('<div class="legend"><span class="key"><i class="sw wop concurrent"></i>a transaction '
         'of the anomaly</span></div>'),
        diagram(w, all_ops, windows, horizon),
        moment_panel(w, windows, metrics, horizon),
        "<h4>Node logs around the anomaly</h4>",
        log_excerpt(logs, results, w.moment, focus_nodes(w, metrics)),
    ]
    return f'<section class="anomaly">{"".join(parts)}</section>'
