"""Maelstrom g-counter and pn-counter: a state-based PN counter.

Correct: the state is one (increments, decrements) pair per node incarnation
(a restarted node counts under a new one), merged by taking the larger of each;
an add is acknowledged once a majority holds the new pair, and every 0.25 s
each node sends its whole state to every peer.

``--bug`` (a counter that double-counts): adds travel as deltas, re-sent every
0.1 s until the peer confirms, and the receiver adds every delta it receives,
so a delta whose confirmation is late or lost (a slow link, a paused node, a
partition that starts between the two) is counted again; a restarted node also
starts from zero.
"""

import uuid

from node import Node, flag

node = Node()
BUG = flag("bug")
me = uuid.uuid4().hex[:8]
state: dict[str, list[int]] = {}  # entry -> [P, N]
total = [0]  # the buggy counter's value


def entry() -> str:
    return f"{node.id}:{me}"


def value() -> int:
    return total[0] if BUG else sum(p - n for p, n in state.values())


def merge(other):
    for k, (p, n) in other.items():
        cur = state.setdefault(k, [0, 0])
        cur[0] = max(cur[0], p)
        cur[1] = max(cur[1], n)


def add(msg):
    d = msg["body"]["delta"]
    if BUG:
        total[0] += d
        for peer in node.peers:
            send_delta(peer, d)
        node.reply(msg, {"type": "add_ok"})
        return
    cur = state.setdefault(entry(), [0, 0])
    if d >= 0:
        cur[0] += d
    else:
        cur[1] -= d
    snapshot = {entry(): list(cur)}
    acks = {node.id}
    answered = [False]

    def cb(body, peer):
        acks.add(peer)
        if not answered[0] and len(acks) > len(node.ids) // 2:
            answered[0] = True
            node.reply(msg, {"type": "add_ok"})

    if len(node.ids) == 1:
        node.reply(msg, {"type": "add_ok"})
    for peer in node.peers:
        node.rpc(peer, {"type": "merge", "state": snapshot}, lambda body, peer=peer: cb(body, peer))


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


def on_merge(msg):
    merge(msg["body"]["state"])
    node.reply(msg, {"type": "merge_ok"})


def on_gossip(msg):
    merge(msg["body"]["state"])


def gossip():
    for peer in node.peers:
        node.send(peer, {"type": "gossip", "state": state})


def read(msg):
    node.reply(msg, {"type": "read_ok", "value": value()})


node.on("add", add)
node.on("delta", on_delta)
node.on("merge", on_merge)
node.on("gossip", on_gossip)
node.on("read", read)
if not BUG:
    node.on_init = lambda: node.every(0.25, gossip)
node.run()
