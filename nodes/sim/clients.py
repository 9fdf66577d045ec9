"""The simulated clients' operations as a history a linearizability checker reads.

Owns the mapping from ``SimNet.requests`` to history events (the format of
docs/history.md): one process per request, an invoke at its send time and a
completion at its reply time, ``ok`` / ``fail`` (a ``definite`` refusal) /
``info`` (anything else, or no reply).
"""

from __future__ import annotations

from typing import Any

from nodes.sim.net import SimNet


def history(net: SimNet) -> list[dict[str, Any]]:
    """The clients' operations as a history (docs/history.md; for the checker):
    each request is its own process; a reply with ``ok`` is ``ok``, a
    ``definite`` failure ``fail``, anything else (or no reply) ``info``."""
    timed: list[tuple[int, int, dict[str, Any]]] = []
    for n, r in enumerate(net.requests.values()):
        req = r.req
        f = req["op"]
        value = [req.get("expected"), req.get("value")] if f == "cas" else req.get("value")
        if f == "read":
            value = None
        base = {"process": n, "f": f, "key": req["key"]}
        timed.append((r.invoked, 0, dict(base, type="invoke", value=value)))
        if r.reply is None:
            continue
        reply = r.reply
        if reply.get("ok"):
            kind = "ok"
            if f == "read":
                value = reply.get("value")
        elif reply.get("definite"):
            kind = "fail"
        else:
            kind = "info"
        assert r.completed is not None
        timed.append((r.completed, 1, dict(base, type=kind, value=value, node=r.node)))
    timed.sort(key=lambda t: (t[0], t[1]))
    events = []
    for index, (time, _order, ev) in enumerate(timed):
        ev["index"] = index
        ev["time"] = time
        events.append(ev)
    return events
