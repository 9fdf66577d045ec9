"""The Maelstrom workload's verdict section of the report (reports/page.py's section hook).

``render(section, run) -> str``: the HTML of the ``section`` a Maelstrom
checker (maelstrom/checkers.py) put in its checker dict: what the workload
promises, and the figures and findings behind the verdict (lost, unexpected
and stale values and visibility latency for g-set and broadcast; the bounds
and every node's final read for the counters; duplicates for unique-ids;
wrong echoes; absent reads and error codes for lin-kv; for txn-list-append the
consistency model, the transactions' outcomes, the anomalies by kind and the
error codes). Node names carry
Maelstrom's id too (``n1 (n0)``). The anomalies themselves, with their
operations, logs and message diagram, are the page's own "What went wrong"
section. Everything interpolated is escaped.
"""

from __future__ import annotations

from html import escape
from typing import Any

PROMISES = {
    "lin-kv": "Maelstrom's lin-kv: every read, write and cas takes effect at one instant between "
              "its request and its reply. A read that failed with 20 (key-does-not-exist) counts "
              "as a read of nothing; a cas that failed with 20 or 22 did nothing.",
    "g-set": "Maelstrom's g-set: after healing and a quiet period, every node's final read holds "
             "every acknowledged add, and no read holds an element no client added.",
    "broadcast": "Maelstrom's broadcast: after healing and a quiet period, every node's final "
                 "read holds every acknowledged broadcast, and no read holds a message no client "
                 "sent.",
    "g-counter": "Maelstrom's g-counter: every node's final read lies between the sum of the "
                 "acknowledged adds and that sum plus the indeterminate ones.",
    "pn-counter": "Maelstrom's pn-counter: every node's final read lies between the acknowledged "
                  "sum plus the negative indeterminate adds and it plus the positive ones.",
    "unique-ids": "Maelstrom's unique-ids: no id is handed out twice.",
    "echo": "Maelstrom's echo: every echo_ok carries the payload that was sent.",
    "txn-list-append": "Maelstrom's txn-list-append: every transaction of appends and reads "
                       "takes effect atomically, in one order consistent with the consistency "
                       "model (strict-serializable by default: that order also respects real "
                       "time); checked Elle-style, by dependency cycles between transactions.",
}


def _e(x: Any) -> str:
    return escape(str(x), quote=True)


def _node(n: Any, ids: list[str]) -> str:
    if isinstance(n, str) and n in ids:
        return f"{_e(n)} <span class='muted'>(n{ids.index(n)})</span>"
    return _e(n)


def _table(head: list[str] | None, rows: list[list[str]]) -> str:
    if not rows:
        return ""
    th = "".join(f"<th>{h}</th>" for h in head or [])
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<div class="card"><table>{f"<tr>{th}</tr>" if th else ""}{body}</table></div>'


def _facts(pairs: list[tuple[str, Any]]) -> str:
    return _table(None, [[_e(k), _e(v)] for k, v in pairs])


def render(section: dict[str, Any], run: Any) -> str:
    w = str(section.get("workload", ""))
    ids = list(getattr(run, "node_ids", []) or [])
    out = [f'<h2 id="workload">Workload: {_e(w)}</h2>',
           f"<p>{_e(PROMISES.get(w, ''))}</p>"]
    if w in ("g-set", "broadcast"):
        out.append(_set(section, ids))
    elif w in ("g-counter", "pn-counter"):
        out.append(_counter(section, ids))
    elif w == "unique-ids":
        out.append(_facts([("ids generated", section.get("generated")),
                           ("distinct", section.get("distinct")),
                           ("returned twice", section.get("duplicates")),
                           ("replies without an id", section.get("without_id"))]))
        out.append(_table(["id", "nodes", "operations"], [
            [_e(x.get("id")), ", ".join(_node(n, ids) for n in x.get("nodes") or []),
             _e(x.get("ops"))] for x in section.get("examples") or []]))
    elif w == "echo":
        out.append(_facts([("echoes answered", section.get("echoed")),
                           ("wrong payloads", section.get("wrong"))]))
        out.append(_table(["sent", "got", "node", "operation"], [
            [_e(x.get("sent")), _e(x.get("got")), _node(x.get("node"), ids), _e(x.get("op"))]
            for x in section.get("examples") or []]))
    elif w == "txn-list-append":
        txns = section.get("txns") or {}
        out.append(_facts([
            ("consistency model", section.get("consistency")),
            ("transactions ok / fail / info",
             f"{txns.get('ok')} / {txns.get('fail')} / {txns.get('info')}"),
            ("txn_ok replies that do not echo their request", section.get("wrong_replies")),
        ]))
        out.append(_table(["anomaly", "found"], [
            [_e(k), _e(v)] for k, v in (section.get("anomaly_kinds") or {}).items()]))
        out.append(_table(["error", "transactions"], [
            [_e(k), _e(v)] for k, v in (section.get("errors") or {}).items()]))
    elif w == "lin-kv":
        out.append(_facts([("reads of an absent key (code 20)", section.get("absent_reads"))]))
        out.append(_table(["error", "operations"], [
            [_e(k), _e(v)] for k, v in (section.get("errors") or {}).items()]))
    return f'<section class="workload">{"".join(out)}</section>'


def _set(s: dict[str, Any], ids: list[str]) -> str:
    vis = s.get("visibility_ms") or {}
    parts = [_facts([
        ("values added", s.get("attempted")), ("acknowledged", s.get("acknowledged")),
        ("indeterminate (may or may not be there)", s.get("indeterminate")),
        ("lost (acknowledged, missing from a final read)", s.get("lost_count")),
        ("unexpected (read, never added)", s.get("unexpected_count")),
        ("stale reads (lacked a value added before they began; allowed)", s.get("stale_reads")),
        ("visibility everywhere, p50 / p95 / max ms",
         f"{vis.get('p50')} / {vis.get('p95')} / {vis.get('max')}"),
        ("acknowledged values never visible everywhere", s.get("never_stable")),
        ("visible everywhere only by the final reads (no latency counted)",
         s.get("visible_only_finally")),
        ("nodes without a final read", ", ".join(s.get("unread_nodes") or []) or "none"),
    ])]
    parts.append("<h3>Final reads</h3>")
    parts.append(_table(["node", "values held"], [
        [_node(n, ids), _e(c)] for n, c in (s.get("final_reads") or {}).items()]))
    if s.get("lost"):
        parts.append("<h3>Lost values</h3>")
        parts.append(_table(["value", "missing at", "add operation"], [
            [_e(x.get("value")), ", ".join(_node(n, ids) for n in x.get("nodes") or []),
             _e(x.get("op"))] for x in s["lost"]]))
    if s.get("unexpected"):
        parts.append("<h3>Unexpected values</h3>")
        parts.append(_table(["value", "read at", "read operation"], [
            [_e(x.get("value")), _node(x.get("node"), ids), _e(x.get("op"))]
            for x in s["unexpected"]]))
    if s.get("stale_examples"):
        parts.append("<h3>Stale reads (examples)</h3>")
        parts.append(_table(["read operation", "node", "values missing", "e.g."], [
            [_e(x.get("op")), _node(x.get("node"), ids), _e(x.get("missing")),
             _e(x.get("example"))] for x in s["stale_examples"]]))
    return "".join(parts)


def _counter(s: dict[str, Any], ids: list[str]) -> str:
    adds = s.get("adds") or {}
    parts = [_facts([
        ("acknowledged sum", s.get("acknowledged_sum")),
        ("a final read may be", f"{s.get('low')} .. {s.get('high')}"),
        ("adds ok / fail / info", f"{adds.get('ok')} / {adds.get('fail')} / {adds.get('info')}"),
        ("nodes without a final read", ", ".join(s.get("unread_nodes") or []) or "none"),
    ])]
    parts.append("<h3>Final reads</h3>")
    parts.append(_table(["node", "value", "within bounds", "operation"], [
        [_node(r.get("node"), ids), _e(r.get("value")), "yes" if r.get("ok") else "<b>no</b>",
         _e(r.get("op"))] for r in s.get("final_reads") or []]))
    return "".join(parts)
