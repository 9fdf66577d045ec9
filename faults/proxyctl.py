"""A client for the network proxy's control socket (see faults/netproxy.py).

One request, one reply, each a msgpack map. Every call opens a fresh DEALER
(so a lost reply can never be mistaken for the answer to a later request)
and gives up after ``timeout`` seconds with ``ProxyError``. A reply with
``"ok": false`` also raises ``ProxyError`` carrying the proxy's message.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgpack
import zmq


class ProxyError(Exception):
    """The proxy did not answer, or refused the request."""


def request(addr: str, req: dict[str, Any], timeout: float = 2.0) -> dict[str, Any]:
    """Send one control request to the proxy at ``addr`` and return its reply."""
    op = req.get("op") if isinstance(req, dict) else None
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(addr)
        sock.send(msgpack.packb(req))
        if not sock.poll(int(timeout * 1000), zmq.POLLIN):
            raise ProxyError(f"proxy at {addr} did not answer {op!r} in {timeout} s")
        reply = msgpack.unpackb(sock.recv(), raw=False)
    finally:
        sock.close(linger=0)
    if not isinstance(reply, dict) or not reply.get("ok"):
        err = reply.get("error") if isinstance(reply, dict) else repr(reply)
        raise ProxyError(f"proxy refused {op!r}: {err}")
    return reply


class ProxyControl:
    """Typed helpers over ``request`` for one proxy."""

    def __init__(self, addr: str, timeout: float = 2.0) -> None:
        self.addr = addr
        self.timeout = timeout

    def _call(self, req: dict[str, Any]) -> dict[str, Any]:
        return request(self.addr, req, self.timeout)

    def ping(self) -> bool:
        try:
            self._call({"op": "ping"})
            return True
        except ProxyError:
            return False

    def state(self) -> dict[str, Any]:
        return self._call({"op": "state"})

    def set_grudge(self, grudge: dict[str, Iterable[str]]) -> dict[str, Any]:
        """Replace the grudge: ``grudge[dest]`` = nodes ``dest`` cannot hear from."""
        return self._call({"op": "grudge", "grudge": {d: sorted(s) for d, s in grudge.items()}})

    def set_links(
        self, faults: dict[str, Any] | None, links: str | list[tuple[str, str]] = "all"
    ) -> dict[str, Any]:
        """Set link faults for every link (``"all"``) or for the given [src, dest] pairs."""
        target: Any = links if links == "all" else [list(p) for p in links]
        return self._call({"op": "links", "faults": faults, "links": target})

    def heal(self) -> dict[str, Any]:
        return self._call({"op": "heal"})

    def counters(self, reset: bool = False) -> dict[str, Any]:
        return self._call({"op": "counters", "reset": reset})
