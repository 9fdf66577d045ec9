"""Maelstrom broadcast and g-set (``--workload broadcast|g-set``): a grow-only set.

Correct: a new value is acknowledged once it is in this node's own set in the
lin-kv service (tests/maelstrom_nodes/node.py ``Cell``), which no fault touches,
so it survives even a kill of every node; a (re)started node loads every node's
stored set (and answers reads with 11, temporarily-unavailable, until it has); every 0.25 s each node sends every peer the values that peer has not
confirmed, so partitioned, paused and restarted nodes catch up (a restart is a
new incarnation: its peers forget what they thought it knew).

``--bug`` (a lost broadcast): a new value is acknowledged at once and forwarded
once to the topology's neighbours (every peer for g-set, which has no topology),
fire and forget: a message lost to a
partition, or a node killed before it forwarded, loses the value for good.
"""

import sys
import uuid

from node import Cell, Node, flag

node = Node()
BUG = flag("bug")
WORKLOAD = sys.argv[sys.argv.index("--workload") + 1] if "--workload" in sys.argv else "broadcast"
ADD, FIELD, RESULT = (("broadcast", "message", "messages") if WORKLOAD == "broadcast"
                      else ("add", "element", "value"))
values: set = set()
known: dict[str, set] = {}  # peer -> values it has confirmed
incarnations: dict[str, str] = {}
me = uuid.uuid4().hex[:8]
neighbours: list[str] = []  # from topology; g-set gets none: every peer


def near() -> list[str]:
    return neighbours if WORKLOAD == "broadcast" else node.peers
cell: list[Cell] = []


def topology(msg):
    neighbours[:] = msg["body"]["topology"].get(node.id, [])
    node.reply(msg, {"type": "topology_ok"})


def learn(peer, inc, vals):
    if incarnations.get(peer) != inc:
        incarnations[peer] = inc
        known[peer] = set()
    known[peer].update(vals)
    values.update(vals)


def add(msg):
    v = msg["body"][FIELD]
    if BUG:
        values.add(v)
        for n in near():
            node.send(n, {"type": "forward", "value": v})
        node.reply(msg, {"type": f"{ADD}_ok"})
        return

    def stored():
        values.add(v)
        node.reply(msg, {"type": f"{ADD}_ok"})

    cell[0].update(v, stored)


def replicate(msg):
    b = msg["body"]
    learn(msg["src"], b["inc"], b["values"])
    node.reply(msg, {"type": "replicate_ok"})


def forward(msg):
    v = msg["body"]["value"]
    if v not in values:
        values.add(v)
        for n in near():
            if n != msg["src"]:
                node.send(n, {"type": "forward", "value": v})


def gossip():
    for peer in node.peers:
        sent = list(values - known.get(peer, set()))[:2000]
        if sent or incarnations.get(peer) is None:
            node.rpc(peer, {"type": "replicate", "values": sent, "inc": me},
                     lambda body, peer=peer, sent=sent: known.setdefault(peer, set()).update(sent))


def read(msg):
    if loading:  # a (re)started node has not restored what was stored yet
        node.error(msg, 11, "restoring the set from lin-kv")
        return
    node.reply(msg, {"type": "read_ok", RESULT: sorted(values, key=repr)})


loading: set = set()


def start():
    cell.append(Cell(node, f"set-{node.id}", [],
                     lambda old, batch: sorted(set(old) | set(batch), key=repr)))
    loading.update(node.ids)
    cell[0].load(lambda v: (values.update(v), loading.discard(node.id)))
    for n in node.peers:  # what the others stored, for a restarted node
        node.rpc("lin-kv", {"type": "read", "key": f"set-{n}"},
                 lambda body, n=n: (values.update(body.get("value") or []), loading.discard(n)))
    node.every(0.25, gossip)


node.on("topology", topology)
node.on(ADD, add)
node.on("replicate", replicate)
node.on("forward", forward)
node.on("read", read)
if not BUG:
    node.on_init = start
node.run()
