"""Asking a live test cluster until it answers: one helper for the process tests.

``ok_reply(cluster, req, within)`` sends ``req`` (a fresh ``id`` added) to each
node in turn until one answers ``ok``, or ``within`` seconds pass (None then);
it waits for a condition, never for a fixed time.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from nodes.common.wire import call

_ids = itertools.count(1)


def ok_reply(cluster: Any, req: dict, within: float = 10.0) -> dict | None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for node in cluster.node_ids:
            reply = call(cluster.client_addrs[node], {"id": next(_ids), **req}, 0.5)
            if reply and reply.get("ok"):
                return reply
        time.sleep(0.05)
    return None
