"""ZeroMQ sockets and msgpack framing (docs/node-contract.md, "Sockets", "Wire format").

Owns: how a node's three kinds of socket are made and tuned, how frames are
encoded and decoded, what a well-formed client request is, and the one
synchronous client call (``call``) that the hand-held client, the harness and
the tests use to ask a node one thing.

- Peer traffic: a ROUTER bound at ``peer_bind`` receives ``[routing id, map]``;
  one DEALER per peer, connected to ``routes[self][peer]`` with routing id =
  own id, sends ``[map]``. Sends never block: a send to a peer with no
  completed connection fails at once, and a full queue fails the same way;
  either way the message is dropped, as a lossy network would. Consensus
  retransmits; a node that blocks on a dead peer would stall. ZMTP heartbeats
  (``HEARTBEAT_IVL_MS``, ``HEARTBEAT_TIMEOUT_MS``) give up on a silent peer.
- Client traffic: a ROUTER bound at ``client_bind``; a request is
  ``[client routing id, map]`` and its reply goes back to the same id.
  Batches (docs/node-contract.md, "Batches"): the driver's client ROUTER
  advertises ``X-Batch: 1`` in its ZMTP handshake (``BATCH_PROPERTY``); a
  client that saw it may send a msgpack *array* of request maps as one frame,
  and from then on gets its replies as arrays of reply maps, one frame per
  node loop pass instead of one per reply. Clients that never send an array
  see only maps.
- The driver's sockets are nodes/common/zmtp.py's (ZMTP on plain sockets in
  its own poll); ``bind_router`` and ``connect_dealer`` make the libzmq
  equivalents, for maelstrom/host.py and tests. ``LINGER 0``: on
  exit nothing unsent is worth waiting for (all durable state is already
  fsynced).
- ``MAX_MESSAGE_BYTES`` (libzmq's MAXMSGSIZE) bounds what a stranger can make
  us allocate.
- ``packb`` (a shared Packer) is for the node's one loop thread only; code that
  may run on several threads (``call``, the harness's clients) uses
  ``pack_request``, which allocates its own.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import msgpack
import zmq

from nodes.common.kv import validate_txn

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
PEER_HWM = 10_000
CLIENT_HWM = 50_000
RECONNECT_IVL_MS = 20  # a restarted peer is reached again within tens of ms
RECONNECT_IVL_MAX_MS = 200
HEARTBEAT_IVL_MS = 500
HEARTBEAT_TIMEOUT_MS = 2000

CLIENT_OPS = ("read", "write", "cas", "txn", "status")

#: ZMTP READY property of a client ROUTER whose node takes arrays of requests
#: (module header); libzmq's ZMQ_METADATA form, "name:value".
BATCH_PROPERTY = b"X-Batch"
BATCH_METADATA = BATCH_PROPERTY + b":1"

packb = msgpack.Packer(use_bin_type=True, autoreset=True).pack


def unpackb(frame: bytes) -> Any:
    """Decode one frame; raises on anything that is not exactly one msgpack value."""
    return msgpack.unpackb(frame, raw=False, strict_map_key=False, use_list=True)


def pack_request(req: dict[str, Any]) -> bytes:
    """One client request frame; safe on any thread."""
    return msgpack.packb(req, use_bin_type=True)


def decode_reply(frame: bytes) -> dict[str, Any] | None:
    """A reply frame as a map, or None if it is garbled (as good as no reply)."""
    try:
        msg = unpackb(frame)
    except (ValueError, TypeError, msgpack.UnpackException):
        return None
    return msg if isinstance(msg, dict) else None


#: Request ids of ``call``; process-wide, so two calls never share one.
_call_ids = itertools.count(1)


def call(addr: str, req: dict[str, Any], timeout: float) -> dict[str, Any] | None:
    """Send one request to ``addr`` and return the reply, or None on timeout.

    Synchronous and self-contained (its own DEALER socket); for readiness and
    status checks, the hand-held client and tests. An ``id`` is added when
    ``req`` has none. The request is queued until the connection completes,
    so a node that is still starting gets it once it binds.
    """
    req = dict(req)
    req.setdefault("id", next(_call_ids))
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(addr)
        sock.send(pack_request(req))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sock.poll(int(left * 1000) + 1):
                return None
            reply = decode_reply(sock.recv())
            if reply is not None and reply.get("id") == req["id"]:
                return reply
    finally:
        sock.close()


def bind_router(ctx: zmq.Context, addr: str, hwm: int,
                metadata: bytes | None = None) -> zmq.Socket:
    """A ROUTER bound at ``addr``; ``metadata`` (``name:value``) goes into its
    handshake with every peer (``BATCH_METADATA`` for the driver's clients)."""
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    # A restarted peer reconnects with the same routing id while its old
    # connection may not be seen dead yet (paused, partitioned): the new one
    # must win, or everything it sends would be dropped until then.
    sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
    sock.setsockopt(zmq.RCVHWM, hwm)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    if metadata is not None:
        sock.setsockopt(zmq.METADATA, metadata)
    try:
        sock.bind(addr)
    except zmq.ZMQError:
        sock.close(linger=0)  # an open socket would block ctx.term() forever
        raise
    return sock


def connect_dealer(ctx: zmq.Context, addr: str, own_id: str) -> zmq.Socket:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.ROUTING_ID, own_id.encode())
    sock.setsockopt(zmq.IMMEDIATE, 1)
    sock.setsockopt(zmq.SNDHWM, PEER_HWM)
    sock.setsockopt(zmq.RCVHWM, 16)  # nothing should ever arrive on it
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    sock.setsockopt(zmq.RECONNECT_IVL, RECONNECT_IVL_MS)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS)
    # ZMTP heartbeats close a connection whose peer stopped answering (paused
    # process, silent partition): then sends fail fast instead of queueing
    # stale messages for a burst when the fault heals.
    sock.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
    sock.connect(addr)
    return sock


def malformed(req_id: Any, why: str) -> dict[str, Any]:
    """The reply to a request we could not accept. ``definite``: it had no effect."""
    return {
        "id": req_id if isinstance(req_id, int) and not isinstance(req_id, bool) else None,
        "ok": False,
        "error": "malformed",
        "definite": True,
        "reason": why,
    }


def validate_request(obj: Any) -> tuple[dict[str, Any] | None, str]:
    """A clean client request (only the keys its op uses), or (None, why not).

    Shape (docs/node-contract.md, "Client requests"): ``id`` int; ``op`` in
    read/write/cas/txn/status; ``key`` str for read/write/cas; ``value`` for
    write and cas; ``expected`` for cas; ``txn`` for txn (nodes/common/kv.py)."""
    if not isinstance(obj, dict):
        return None, "request is not a map"
    req_id = obj.get("id")
    if not isinstance(req_id, int) or isinstance(req_id, bool):
        return None, "id must be an integer"
    op = obj.get("op")
    if op == "status":
        return {"id": req_id, "op": "status"}, ""
    if op == "txn":
        return validate_txn(obj)
    if op not in CLIENT_OPS:
        return None, "op must be one of read, write, cas, txn, status"
    key = obj.get("key")
    if not isinstance(key, str):
        return None, "key must be a string"
    # A map with exactly the keys its op uses is already clean: it is returned as
    # it is (the decoder made it; nobody else holds it), without a copy per request.
    if op == "read":
        return (obj if len(obj) == 3 else {"id": req_id, "op": "read", "key": key}), ""
    if "value" not in obj:
        return None, f"{op} needs a value"
    if op == "write":
        return (obj if len(obj) == 4
                else {"id": req_id, "op": "write", "key": key, "value": obj["value"]}), ""
    if "expected" not in obj:
        return None, "cas needs expected"
    return (obj if len(obj) == 5
            else {"id": req_id, "op": "cas", "key": key, "value": obj["value"],
                  "expected": obj["expected"]}), ""
