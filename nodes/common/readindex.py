"""Read-index bookkeeping for a leader, shared by both cores (Ongaro's thesis, 6.4).

Owns: client reads on their way from arrival to the applier. A read arrives
with a *read index* (the leader's commit index, at least the first index of
its own term), waits for the next confirmation *round* to start
(``start_round``: every read that arrived since the previous round shares it;
Raft sends the round number as ``ctx``, Paxos as ``seq``), then for a quorum
to echo that round's number (``confirm``), then for the read index to be
committed (``release``), when it goes to the applier in ``Ready.reads``.

Invariants: round numbers (``seq``) only grow; reads leave in arrival order;
a read leaves only after a round that started after it arrived was
acknowledged by a quorum, so no other leader could have committed anything
the read must see that this leader lacks.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from nodes.common.core_api import ConfirmedRead

#: (client, request id, key, read index)
Read = tuple[bytes, Any, str, int]


class ReadQueue:
    __slots__ = ("confirmed", "rounds", "seq", "unstarted")

    def __init__(self, seq: int = 0) -> None:
        self.seq = seq  # the newest round started; sent to followers
        self.unstarted: list[Read] = []
        self.rounds: deque[tuple[int, list[Read]]] = deque()
        self.confirmed: deque[Read] = deque()

    def add(self, client: bytes, rid: Any, key: str, index: int) -> None:
        self.unstarted.append((client, rid, key, index))

    def start_round(self) -> None:
        """Put the waiting reads in a new round (its messages carry ``seq``)."""
        self.seq += 1
        self.rounds.append((self.seq, self.unstarted))
        self.unstarted = []

    def oldest_round(self) -> int | None:
        return self.rounds[0][0] if self.rounds else None

    def confirm(self, upto: int) -> None:
        """Every round numbered ``upto`` or less was acknowledged by a quorum."""
        rounds = self.rounds
        while rounds and rounds[0][0] <= upto:
            self.confirmed.extend(rounds.popleft()[1])

    def release(self, committed: int, out: list[ConfirmedRead]) -> None:
        """Hand the confirmed reads whose read index is committed to ``out``."""
        confirmed = self.confirmed
        while confirmed and confirmed[0][3] <= committed:
            client, rid, key, _index = confirmed.popleft()
            out.append((client, rid, key))

    def __bool__(self) -> bool:
        return bool(self.unstarted or self.rounds or self.confirmed)

    def drain(self) -> list[Read]:
        """Every read not yet released (the leader stepped down)."""
        reads = list(self.unstarted)
        for _seq, batch in self.rounds:
            reads.extend(batch)
        reads.extend(self.confirmed)
        self.unstarted = []
        self.rounds.clear()
        self.confirmed.clear()
        return reads
