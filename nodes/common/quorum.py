"""Quorum arithmetic, written once for both cores.

A cluster of ``n`` nodes decides by majority: ``quorum(n) = n // 2 + 1``. The
one question both cores ask of it: given the leader's own value and each
peer's acknowledged value of some growing counter (Raft: match index, the
read round a follower echoed; Paxos: the read round), what is the largest
value a quorum has reached? Any two quorums intersect, which is what makes a
value reached by one of them safe to act on.
"""

from __future__ import annotations


def quorum(nodes: int) -> int:
    """Votes needed among ``nodes`` voters (the leader included)."""
    return nodes // 2 + 1


def quorum_value(own: int, peers: list[int], need: int) -> int:
    """The largest v such that ``need`` nodes (this one, holding ``own``,
    counted) hold a value >= v; ``own`` if ``need`` is 1 (a lone node).
    ``peers`` must be a fresh list: it is sorted in place (no copy on the
    leader's hot path)."""
    if need <= 1:
        return own
    peers.append(own)
    peers.sort(reverse=True)
    return peers[need - 1]
