"""Maelstrom lin-kv on top of the lin-kv service: every operation is passed to the
service (linearizable) and its answer, errors 20 and 22 included, passed back.

``--bug`` (stale reads): the node remembers the last value it wrote or read for a
key and answers reads from that memory, so it misses other nodes' writes.
"""

from node import Node, flag

node = Node()
BUG = flag("bug")
cache: dict = {}


def passthrough(msg, remember=None):
    b = dict(msg["body"])
    b.pop("msg_id", None)

    def cb(reply):
        out = {k: v for k, v in reply.items() if k not in ("msg_id", "in_reply_to")}
        if remember is not None and reply.get("type") != "error":
            remember(reply)
        node.reply(msg, out)

    node.rpc("lin-kv", b, cb)


def read(msg):
    key = msg["body"]["key"]
    if BUG and key in cache:
        node.reply(msg, {"type": "read_ok", "value": cache[key]})
        return
    passthrough(msg, lambda r: cache.__setitem__(key, r["value"]))


def write(msg):
    b = msg["body"]
    passthrough(msg, lambda r: cache.__setitem__(b["key"], b["value"]))


def cas(msg):
    b = msg["body"]
    passthrough(msg, lambda r: cache.__setitem__(b["key"], b["to"]))


node.on("read", read)
node.on("write", write)
node.on("cas", cas)
node.run()
