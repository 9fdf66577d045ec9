"""Maelstrom echo. ``--bug``: every tenth reply carries the previous payload."""

from node import Node, flag

node = Node()
last = [None]
count = [0]


def echo(msg):
    count[0] += 1
    payload = msg["body"]["echo"]
    out = last[0] if flag("bug") and count[0] % 10 == 0 else payload
    last[0] = payload
    node.reply(msg, {"type": "echo_ok", "echo": out})


node.on("echo", echo)
node.run()
