"""Maelstrom g-counter and pn-counter: a state-based PN counter.

Correct: the state is one (increments, decrements) pair per node, merged by
taking the larger of each; a node's own pair lives in the lin-kv service
(tests/maelstrom_nodes/node.py ``Cell``: it survives even a kill of every
node) and an add is acknowledged once it is stored there; a (re)started node
loads every node's pair (answering reads with 11 until it has), and every 0.25 s each node sends its state to every
peer.

``--bug`` (a counter that double-counts): adds travel as deltas, re-sent every
0.1 s until the peer confirms, and the receiver adds every delta it receives,
so a delta whose confirmation is late or lost (a slow link, a paused node, a
partition that starts between the two) is counted again; a restarted node also
starts from zero.
"""

from node import Cell, Node, flag

node = Node()
BUG = flag("bug")
state: dict[str, list[int]] = {}  # node -> [P, N]
total = [0]  # the buggy counter's value
cell: list[Cell] = []


def value() -> int:
    return total[0] if BUG else sum(p - n for p, n in state.values())


def merge(other):
    for k, (p, n) in other.items():
        cur = state.setdefault(k, [0, 0])
        cur[0] = max(cur[0], p)
        cur[1] = max(cur[1], n)


def combine(old, deltas):
    p, n = old
    return [p + sum(d for d in deltas if d > 0), n - sum(d for d in deltas if d < 0)]


def add(msg):
    d = msg["body"]["delta"]
    if BUG:
        total[0] += d
        for peer in node.peers:
            send_delta(peer, d)
        node.reply(msg, {"type": "add_ok"})
        return

    def stored():
        merge({node.id: cell[0].value})
        node.reply(msg, {"type": "add_ok"})

    cell[0].update(d, stored)


def send_delta(peer, d):
    done = [False]

    def attempt():
        if not done[0]:
            node.rpc(peer, {"type": "delta", "delta": d}, lambda body: done.__setitem__(0, True))
            node.after(0.1, attempt)

    attempt()


def on_delta(msg):
    total[0] += msg["body"]["delta"]
    node.reply(msg, {"type": "delta_ok"})


def on_gossip(msg):
    merge(msg["body"]["state"])


def gossip():
    for peer in node.peers:
        node.send(peer, {"type": "gossip", "state": state})


def read(msg):
    if loading:  # a (re)started node has not restored what was stored yet
        node.error(msg, 11, "restoring the counts from lin-kv")
        return
    node.reply(msg, {"type": "read_ok", "value": value()})


loading: set = set()


def start():
    cell.append(Cell(node, f"count-{node.id}", [0, 0], combine))
    loading.update(node.ids)
    cell[0].load(lambda v: (merge({node.id: v}), loading.discard(node.id)))

    def restored(body, n):
        if body.get("type") == "read_ok":
            merge({n: body["value"]})
        loading.discard(n)

    for n in node.peers:
        node.rpc("lin-kv", {"type": "read", "key": f"count-{n}"},
                 lambda body, n=n: restored(body, n))
    node.every(0.25, gossip)


node.on("add", add)
node.on("delta", on_delta)
node.on("gossip", on_gossip)
node.on("read", read)
if not BUG:
    node.on_init = start
node.run()
