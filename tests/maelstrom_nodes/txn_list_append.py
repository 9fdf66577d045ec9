"""Maelstrom txn-list-append on top of the lin-kv service (doc/workloads.md).

Correct: the whole database (key -> list) is one value under the lin-kv key
``ROOT``. Transactions wait in a queue; one batch at a time is applied, in
order, to a copy of the last value this node knows, and stored by one ``cas``
from that value: every transaction of the batch takes effect at the instant
the cas does, inside its request-to-reply interval, so the history is strictly
serializable. A cas that fails (22: another node stored first) reloads the
root and applies the batch again; nothing is answered before its cas succeeded.
The state lives in the service, which faults do not touch, so kill, pause and
partitions cannot lose it. A read of a key never appended to is ``null``, as
Maelstrom says.

``--bug`` (not atomic): each micro-operation is applied on its own, a key per
lin-kv key (a read is a read, an append a read and a cas), one after the other:
another transaction's effects can fall between two micro-operations of one
transaction, which the checker names (G-single, G2-item, internal, ...).

``--stale`` (stale reads): a read-only transaction is answered at once from the
node's last known root instead of going through a cas, so it can miss what
other nodes committed before it began (G-single-realtime under
strict-serializable).
"""

from node import Body, Node, flag

ROOT = "txn-root"
node = Node()
SPLIT = flag("bug")
STALE = flag("stale")

value: dict | None = None  # the root as this node last knew it; None: being loaded
queue: list = []  # (request message, its micro-ops), waiting for the next batch
busy = False


def reply_txn(msg, mops) -> None:
    node.reply(msg, {"type": "txn_ok", "txn": mops})


def apply(state: dict, txns: list) -> tuple[dict, list]:
    """(new root, each transaction's completed micro-ops): copies only the lists touched."""
    new = dict(state)
    copied: set = set()
    done = []
    for _msg, mops in txns:
        out = []
        for f, k, v in mops:
            name = str(k)
            if f == "r":
                cur = new.get(name)
                out.append([f, k, list(cur) if cur is not None else None])
            else:
                if name not in copied:
                    copied.add(name)
                    new[name] = list(new.get(name) or [])
                new[name].append(v)
                out.append([f, k, v])
        done.append(out)
    return new, done


def load() -> None:
    def got(body: Body) -> None:
        global value
        value = body["value"] if body.get("type") == "read_ok" else {}
        flush()
    node.rpc("lin-kv", {"type": "read", "key": ROOT}, got)


def flush() -> None:
    global busy, queue
    if busy or value is None or not queue:
        return
    batch, queue = queue, []
    new, done = apply(value, batch)
    busy = True

    def stored(body: Body) -> None:
        global busy, value, queue
        busy = False
        if body.get("type") == "cas_ok":
            value = new
            for (msg, _), mops in zip(batch, done):
                reply_txn(msg, mops)
        elif body.get("code") in (20, 22):  # someone else stored first: again, on theirs
            queue = batch + queue
            value = None
            load()
            return
        else:  # the service refused: nothing happened, say so as the service did
            for msg, _ in batch:
                node.error(msg, body.get("code", 13), str(body.get("text", "")))
        flush()

    node.rpc("lin-kv", {"type": "cas", "key": ROOT, "from": value, "to": new,
                        "create_if_not_exists": True}, stored)


def txn(msg) -> None:
    mops = msg["body"]["txn"]
    if STALE and value is not None and all(f == "r" for f, _, _ in mops):
        reply_txn(msg, apply(value, [(msg, mops)])[1][0])
        return
    queue.append((msg, mops))
    flush()


# --- the buggy, non-atomic variant ----------------------------------------------------


def split_txn(msg) -> None:
    mops = msg["body"]["txn"]
    out: list = []

    def step(i: int) -> None:
        if i == len(mops):
            reply_txn(msg, out)
            return
        f, k, v = mops[i]
        key = f"list-{k}"
        if f == "r":
            def read(body: Body) -> None:
                out.append([f, k, body["value"] if body.get("type") == "read_ok" else None])
                step(i + 1)
            node.rpc("lin-kv", {"type": "read", "key": key}, read)
            return

        def append(old: list) -> None:
            def stored(body: Body) -> None:
                if body.get("type") == "cas_ok":
                    out.append([f, k, v])
                    step(i + 1)
                else:
                    fetch()
            node.rpc("lin-kv", {"type": "cas", "key": key, "from": old, "to": old + [v],
                                "create_if_not_exists": True}, stored)

        def fetch() -> None:
            node.rpc("lin-kv", {"type": "read", "key": key},
                     lambda body: append(body["value"] if body.get("type") == "read_ok" else []))
        fetch()

    step(0)


if SPLIT:
    node.on("txn", split_txn)
else:
    node.on_init = load
    node.on("txn", txn)
node.run()
