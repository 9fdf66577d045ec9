"""Partition shapes: pure functions from node ids and a seeded rng to a grudge.

A grudge maps each node to the set of nodes it cannot hear from (Jepsen's
word). The proxy drops a message src -> dest when ``src in grudge[dest]``;
netns installs the same as drop rules in dest's namespace.

Shapes (docs/faults.md "Partitions"):
- ``one``: a random node is cut off from all others;
- ``halves``: a random minority (n // 2 nodes) and the majority;
- ``majorities-ring``: every node sees a majority (itself included), and no
  two nodes see the same majority;
- ``bridge``: two halves that share one node, which sees everybody;
- ``leader``: like ``one``, aimed at the current leader.

Symmetric: both sides of every cut are deaf to each other. One-way: only
one direction of each cut is deaf (for two-sided shapes the rng picks which
side; for ring and bridge, the deaf direction is set by a shuffled order), so
messages still flow the other way.

Invariants: the result depends only on the arguments (same ids, same rng
state -> same grudge); no node has a grudge against itself; every node id in
the result is one of ``nodes``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

Grudge = dict[str, set[str]]

SHAPES = ("one", "halves", "majorities-ring", "bridge", "leader")


@dataclass(frozen=True)
class Partition:
    shape: str
    oneway: bool
    grudge: Grudge = field(default_factory=dict)

    def value(self) -> dict:
        """The nemesis event value (docs/faults.md): lists, sorted, only non-empty."""
        return {
            "shape": self.shape,
            "oneway": self.oneway,
            "grudge": {n: sorted(s) for n, s in sorted(self.grudge.items()) if s},
        }


def cut(side_a: Sequence[str], side_b: Sequence[str]) -> Grudge:
    """Every node of each side is deaf to every node of the other."""
    g: Grudge = {}
    for a in side_a:
        g.setdefault(a, set()).update(b for b in side_b if b != a)
    for b in side_b:
        g.setdefault(b, set()).update(a for a in side_a if a != b)
    return g


def deaf(listeners: Sequence[str], speakers: Sequence[str]) -> Grudge:
    """``listeners`` cannot hear ``speakers``; the other direction stays open."""
    return {x: {s for s in speakers if s != x} for x in listeners}


def _two_sides(a: list[str], b: list[str], oneway: bool, rng: random.Random) -> Grudge:
    if not oneway:
        return cut(a, b)
    return deaf(a, b) if rng.random() < 0.5 else deaf(b, a)


def one(nodes: Sequence[str], rng: random.Random, oneway: bool = False) -> Grudge:
    loner = rng.choice(list(nodes))
    return isolate(nodes, loner, rng, oneway)


def isolate(nodes: Sequence[str], node: str, rng: random.Random, oneway: bool = False) -> Grudge:
    others = [n for n in nodes if n != node]
    return _two_sides([node], others, oneway, rng)


def halves(nodes: Sequence[str], rng: random.Random, oneway: bool = False) -> Grudge:
    shuffled = list(nodes)
    rng.shuffle(shuffled)
    k = len(shuffled) // 2
    return _two_sides(shuffled[:k], shuffled[k:], oneway, rng)


def majorities_ring(nodes: Sequence[str], rng: random.Random, oneway: bool = False) -> Grudge:
    """Arrange the nodes on a shuffled ring; each sees the nearest majority.

    With n >= 4 each node sees its ``d`` neighbours on either side, where
    2d + 1 is the smallest odd count that is a majority; with n = 3 no
    symmetric choice exists, so each node sees itself and its successor.
    """
    ring = list(nodes)
    rng.shuffle(ring)
    n = len(ring)
    if n < 3:
        return {}
    majority = n // 2 + 1
    d = majority // 2
    if 2 * d + 1 < n:
        views = [{ring[(i + k) % n] for k in range(-d, d + 1)} for i in range(n)]
    else:
        views = [{ring[(i + k) % n] for k in range(majority)} for i in range(n)]
    g = {ring[i]: set(ring) - views[i] for i in range(n)}
    if oneway:
        pos = {x: i for i, x in enumerate(ring)}
        g = {x: {s for s in srcs if pos[s] > pos[x]} for x, srcs in g.items()}
    return g


def bridge(nodes: Sequence[str], rng: random.Random, oneway: bool = False) -> Grudge:
    """Two halves joined by one node that hears and is heard by both."""
    shuffled = list(nodes)
    rng.shuffle(shuffled)
    if len(shuffled) < 3:
        return {}
    mid = len(shuffled) // 2
    left, right = shuffled[:mid], shuffled[mid + 1:]
    if not oneway:
        return cut(left, right)
    return deaf(left, right) if rng.random() < 0.5 else deaf(right, left)


def make(
    shape: str,
    nodes: Sequence[str],
    rng: random.Random,
    *,
    oneway: bool = False,
    leader: str | None = None,
) -> Partition:
    """Build a partition of the named shape. ``leader`` feeds the ``leader``
    shape; without one known, that shape isolates a random node instead."""
    fns: dict[str, Callable[..., Grudge]] = {
        "one": one,
        "halves": halves,
        "majorities-ring": majorities_ring,
        "bridge": bridge,
    }
    if shape == "leader":
        g = isolate(nodes, leader, rng, oneway) if leader in nodes else one(nodes, rng, oneway)
    elif shape in fns:
        g = fns[shape](nodes, rng, oneway)
    else:
        raise ValueError(f"unknown partition shape {shape!r} (shapes: {', '.join(SHAPES)})")
    return Partition(shape, oneway, {k: v for k, v in g.items() if v})


def can_hear(grudge: Grudge, dest: str, src: str) -> bool:
    return src not in grudge.get(dest, ())


def components_seen(grudge: Grudge, nodes: Sequence[str]) -> dict[str, set[str]]:
    """For each node, the nodes it hears from (itself included)."""
    return {x: {s for s in nodes if s == x or can_hear(grudge, x, s)} for x in nodes}
