"""BUG lease-read: a leader's read lease, counted in its own ticks (docs/node-contract.md "Bug flags").

Owns the one lease both cores use when ``lease-read`` is on. Each heartbeat
round is remembered with the tick it was sent at (``sent``); once a quorum
has acknowledged a round (``confirmed``), the leader trusts that no other
leader can be elected before ``length`` of its own ticks have passed since
that send -- ``length`` is just under the shortest election timeout, and a
follower waits at least that long after hearing the round before it
campaigns -- and answers reads at once, without a round, while the lease
``holds``. That is only true if every node's clock runs at the same rate:
a leader whose clock runs slow (or jumps back) keeps answering after
another leader took over. The mistake is trusting the clocks; nothing here
is wrong under that assumption.

Invariant: rounds are confirmed in ``seq`` order, so the newest confirmed
round's send tick is the start of the lease.
"""

from __future__ import annotations

from collections import deque


class Lease:
    __slots__ = ("_sent", "length", "until")

    def __init__(self, length: int) -> None:
        self.length = length
        self.until = -1  # the first tick at which the lease no longer holds
        self._sent: deque[tuple[int, int]] = deque()  # (round seq, tick sent)

    def sent(self, seq: int, now: int) -> None:
        self._sent.append((seq, now))

    def confirmed(self, upto: int) -> None:
        """A quorum acknowledged every round numbered ``upto`` or less."""
        sent = self._sent
        start = None
        while sent and sent[0][0] <= upto:
            start = sent.popleft()[1]
        if start is not None:
            self.until = max(self.until, start + self.length)

    def holds(self, now: int) -> bool:
        return now < self.until
