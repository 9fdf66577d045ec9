"""Maelstrom unique-ids: ``node id - incarnation - counter`` (a restarted node is a
new incarnation, so its counter may start again). ``--bug``: the counter alone, so
two nodes (or one node after a restart) hand out the same ids."""

import itertools
import uuid

from node import Node, flag

node = Node()
counter = itertools.count()
incarnation = uuid.uuid4().hex[:8]


def generate(msg):
    n = next(counter)
    node.reply(msg, {"type": "generate_ok",
                     "id": n if flag("bug") else f"{node.id}-{incarnation}-{n}"})


node.on("generate", generate)
node.run()
