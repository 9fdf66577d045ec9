"""Read-index bookkeeping for a Raft leader (Ongaro's thesis, section 6.4).

Owns: client reads on their way from arrival to reply. A read arrives with a
*read index* (the leader's commit index, at least its no-op's index), waits
for the next heartbeat *round* to start (``start_round``: every read that
arrived since the previous round shares it), then for a quorum to echo that
round's number (``confirm``), then for the state machine to apply the read
index (``serve``).

Invariants: round numbers (``seq``) only grow; reads leave in arrival order;
a read is answered only after a round that started after it arrived was
acknowledged by a quorum, so no other leader could have committed anything
the read must see that this leader lacks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from nodes.common.kv import KVStore

#: (client, request id, key, read index)
Read = tuple[bytes, Any, str, int]


class ReadQueue:
    __slots__ = ("confirmed", "rounds", "seq", "unstarted")

    def __init__(self, seq: int = 0) -> None:
        self.seq = seq  # the newest round started; sent as ``ctx`` to followers
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

    def confirm(self, acknowledged: Callable[[int], bool]) -> None:
        """Move every round a quorum ``acknowledged`` to the confirmed reads."""
        rounds = self.rounds
        while rounds and acknowledged(rounds[0][0]):
            self.confirmed.extend(rounds.popleft()[1])

    def serve(self, applied: int, kv: KVStore, replies: list[tuple[bytes, dict[str, Any]]]) -> None:
        """Answer the confirmed reads whose read index is applied."""
        confirmed = self.confirmed
        while confirmed and confirmed[0][3] <= applied:
            client, rid, key, _index = confirmed.popleft()
            reply = kv.read(key)
            reply["id"] = rid
            replies.append((client, reply))

    def drain(self) -> list[Read]:
        """Every read not yet answered (the leader stepped down)."""
        reads = list(self.unstarted)
        for _seq, batch in self.rounds:
            reads.extend(batch)
        reads.extend(self.confirmed)
        self.unstarted = []
        self.rounds.clear()
        self.confirmed.clear()
        return reads
