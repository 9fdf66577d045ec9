"""``python -m nodes.client --cluster PATH {read KEY|write KEY VALUE|cas KEY OLD NEW|status}``.

A tiny hand-held client for trying a cluster from a terminal (README). It
sends one request to some node, follows ``not_leader`` hints to the leader,
and prints the reply as JSON. Values given on the command line are parsed as
JSON when they can be (``7``, ``"x"``, ``[1,2]``), else taken as strings.
``status`` asks every node and prints one line per node.

Exit codes: 0 ok, 1 the operation failed (e.g. cas_mismatch) or no node
answered in time, 2 usage or cluster file error.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

import zmq

from nodes.common.clusterfile import ConfigError, load_cluster
from nodes.common.wire import call, decode_reply, pack_request

_ids = itertools.count(int(time.time() * 1000) % 1_000_000_000)
NOT_SENT = "not sent"


def send_once(addr: str, req: dict[str, Any], timeout: float) -> dict | None | str:
    """One attempt: the reply, None on timeout (outcome unknown), or NOT_SENT
    if no connection to the node came up within 0.3 s (it is down)."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.IMMEDIATE, 1)  # queue only on a live connection
    try:
        sock.connect(addr)
        if not sock.poll(300, zmq.POLLOUT):
            return NOT_SENT
        sock.send(pack_request(req))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if not sock.poll(int(left * 1000) + 1):
                break
            reply = decode_reply(sock.recv())  # a garbled reply counts as none
            if reply is not None and reply.get("id") == req["id"]:
                return reply
        return None
    finally:
        sock.close()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def request(
    addrs: dict[str, str], req: dict[str, Any], timeout: float
) -> tuple[str | None, dict | None]:
    """Send ``req`` until a node that is not a follower answers; follow leader hints.

    A request that timed out is never re-sent (it may still take effect), so
    the answer is then None: outcome unknown."""
    deadline = time.monotonic() + timeout
    order = list(addrs)
    node = order[0]
    tried = 0
    while time.monotonic() < deadline:
        reply = send_once(addrs[node], dict(req, id=next(_ids)),
                          max(0.05, deadline - time.monotonic()))
        if reply == NOT_SENT:
            tried += 1
            node = order[tried % len(order)]
            continue
        if reply is None:
            if req["op"] != "read":
                return node, None  # may have taken effect: do not send it twice
            tried += 1
            node = order[tried % len(order)]
            continue
        if reply.get("error") in ("not_leader", "unavailable") and reply.get("definite"):
            hint = reply.get("leader")
            if hint in addrs and hint != node:
                node = hint
            else:
                tried += 1
                node = order[tried % len(order)]
                time.sleep(0.05)
            continue
        return node, reply
    return None, None


def main(argv: Sequence[str] | None = None) -> int:
    p = _Parser(prog="python -m nodes.client", description="Talk to a running cluster.")
    p.add_argument("--cluster", required=True, help="path of cluster.json")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    sub = p.add_subparsers(dest="op", required=True)
    sub.add_parser("read").add_argument("key")
    w = sub.add_parser("write")
    w.add_argument("key")
    w.add_argument("value")
    c = sub.add_parser("cas")
    c.add_argument("key")
    c.add_argument("old")
    c.add_argument("new")
    sub.add_parser("status")
    args = p.parse_args(argv)
    try:
        cluster = load_cluster(args.cluster)
    except ConfigError as exc:
        print(f"nodes.client: {exc}", file=sys.stderr)
        return 2
    addrs = {n: cluster.nodes[n].client_bind for n in cluster.node_ids}
    if args.op == "status":
        for node, addr in addrs.items():
            reply = call(addr, {"op": "status"}, min(args.timeout, 1.0))
            print(f"{node}: {json.dumps(reply) if reply else 'no answer (down?)'}")
        return 0
    req: dict[str, Any] = {"op": args.op, "key": args.key}
    if args.op == "write":
        req["value"] = _value(args.value)
    elif args.op == "cas":
        req["expected"] = _value(args.old)
        req["value"] = _value(args.new)
    node, reply = request(addrs, req, args.timeout)
    assert not isinstance(reply, str)
    if reply is None:
        where = f" (sent to {node}; it may still take effect)" if node else ""
        print(f"no answer within {args.timeout:g} s{where}", file=sys.stderr)
        return 1
    reply.pop("id", None)
    print(json.dumps({"node": node, **reply}))
    return 0 if reply.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
