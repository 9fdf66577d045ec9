"""The Multi-Paxos core: proposer, acceptor and learner of one node, as a pure state machine.

Owns the protocol of Lamport, "Paxos Made Simple" (section 2 for one slot,
section 3 for the replicated log with a stable leader), with no I/O and no
store: the driver feeds ``step``/``requests``/``tick``, collects ``ready()``,
carries it out (the applier, nodes/common/applier.py, applies the chosen
slots) and calls ``advance`` (docs/node-contract.md, "The core and the driver").

Roles and what each keeps:

- Acceptor: ``promised`` (the highest ballot promised; durable in Ready.meta)
  and, per slot, the accepted (ballot, value) (durable as a log Entry: index =
  slot, term = ballot round, data = [round, node, value, chosen]).
- Learner: ``commit`` (every slot up to it is known chosen), ``applied`` (the
  slots up to it were handed to the applier in ``Ready.committed``, in slot
  order).
- Proposer/leader: a ballot ``(round, node)`` that won phase 1 once for all
  slots past its ``commit``; then phase 2 per batch of commands, pipelined.

Invariants (and why they give safety):

1. An acceptor promises or accepts ballot b only if b >= promised, and the
   promise/accept is durable before the reply leaves (the Ready order: meta
   and entries are fsynced before messages). Hence a reply is never
   contradicted by a restarted acceptor.
2. A new leader proposes, for each slot past its commit, the value of the
   highest-ballot proposal reported by a majority of promises (a value
   reported as chosen wins outright), and a no-op where none was reported.
   With invariant 1 this is exactly P2c of the paper: once a value is chosen
   in a slot, every higher ballot proposes that same value there.
3. A leader proposes at most one value per slot per ballot, so a follower
   that accepted slot s in ballot b and hears from b's leader "chosen up to
   c >= s" knows its own value is the chosen one. Slots it cannot learn that
   way arrive as chosen values in a ``Learn`` (or a snapshot).
4. Only chosen slots are applied, in order; snapshots cover only applied
   slots, so compacting the log never drops acceptor state that an
   unchosen slot still needs.

Reads: ``read_mode`` "log" puts reads in the log like writes; "index" (the
default, nodes/common/options.py) confirms leadership with a majority round
(the acceptors echo the leader's ``seq`` only while they have promised
nothing higher) and hands the read to the applier once everything the leader
proposed before it is chosen (nodes/common/readindex.py).

Known-bug flags (cluster.json options.bugs, all off by default), each
changing only what its name says: ``stale-read`` (a leader answers reads from
its own state at once), ``early-ack`` (a write is acknowledged once in the
leader's own log), ``no-adopt`` (a new leader proposes its own command or a
no-op instead of the adopted value), ``forget-promise`` (the promised ballot
is kept only in memory), ``txn-split`` (a transaction's micro-operations are
proposed in one slot each, the next once the previous one is chosen and
applied, so other commands interleave; the applier joins their results).

Transactions (``op: "txn"``, nodes/common/kv.py) take one slot each, like a
write: applied whole at one slot on every replica, as linearizable as the log.
"""

from __future__ import annotations

from typing import Any

from nodes.common.applier import unknown_outcome
from nodes.common.core_api import ClientRequest, CoreConfig, Entry, Restored, Snapshot, Waiter
from nodes.common.kv import check_command, split_txn
from nodes.common.lease import Lease
from nodes.common.outbox import Outbox
from nodes.common.quorum import quorum, quorum_value
from nodes.common.readindex import ReadQueue
from nodes.paxos.codec import ballot_of
from nodes.paxos.messages import (
    ZERO_BALLOT,
    Accept,
    Accepted,
    Ballot,
    Learn,
    Prepare,
    Promise,
    PromiseEntry,
    Value,
)

FOLLOWER = "follower"
CANDIDATE = "candidate"
LEADER = "leader"

#: At most this many entries per retransmitted Accept or per Learn.
MAX_BATCH = 1024
#: Client requests a candidate holds while phase 1 runs (beyond: not_leader).
MAX_QUEUED = 10_000


class Slot:
    """One slot's acceptor record plus what this node's learner knows of it."""

    __slots__ = ("ballot", "chosen", "value")

    def __init__(self, ballot: Ballot, value: Value, chosen: bool) -> None:
        self.ballot = ballot
        self.value = value
        self.chosen = chosen


class PaxosCore(Outbox):
    """One Multi-Paxos node. See the module header for the rules it keeps."""

    def __init__(self, cfg: CoreConfig, restored: Restored) -> None:
        self.id = cfg.node_id
        self.peers = cfg.peers
        self.quorum = quorum(len(cfg.peers) + 1)
        self.rng = cfg.rng
        opts = cfg.parsed()
        bugs = opts.bugs
        self.bug_stale_read = "stale-read" in bugs
        self.bug_early_ack = "early-ack" in bugs
        self.bug_no_adopt = "no-adopt" in bugs
        self.bug_forget_promise = "forget-promise" in bugs
        self.bug_txn_split = "txn-split" in bugs
        # BUG txn-split: slot of a part -> (client, request id, parts after it)
        self.split_next: dict[int, tuple[bytes, Any, list[dict[str, Any]]]] = {}
        self.read_index = opts.read_mode == "index"
        t = cfg.timing
        self.hb_ticks = t.ticks(t.heartbeat_ms)
        lo, hi = t.election_timeout_ms
        self.el_lo = t.ticks(lo)
        self.el_hi = max(self.el_lo, t.ticks(hi))
        # A leader that has not heard from a majority for this long steps down
        # (it cannot commit anything anyway; clients should go elsewhere).
        self.check_quorum_ticks = 2 * self.el_hi
        # BUG lease-read: reads under a lease counted in our own ticks (nodes/common/lease.py).
        self.lease = Lease(max(1, self.el_lo - 2)) if "lease-read" in bugs else None
        # ... and their read index: what is chosen, at least what this ballot adopted
        # (as raft's max(commit_index, term_start_index)), never its own open proposals.
        self.lease_base = 0

        # Acceptor + learner state.
        self.promised: Ballot = ZERO_BALLOT
        #: The promised ballot's round: Paxos's term, in soft states and status (kept
        #: with ``promised``, not a property: Outbox.ready reads it every flush).
        self.term = 0
        self.log: dict[int, Slot] = {}
        self.snapshot: Snapshot | None = None
        self.snap_index = 0
        self.commit = 0
        self.applied = 0

        # Proposer state.
        self.role = FOLLOWER
        self.leader: str | None = None
        self.ballot: Ballot = ZERO_BALLOT  # our own ballot while candidate/leader
        self.max_round = 0
        self.next_slot = 1
        self.from_slot = 1
        self.promises: dict[str, tuple[PromiseEntry, ...]] = {}
        self.queued: list[tuple[bytes, ClientRequest]] = []
        self.acks: dict[int, set[str]] = {}  # unchosen slots proposed in our ballot
        self.born: dict[int, int] = {}  # slot -> tick it was (re)sent, for retransmission
        # slot -> (client or None under BUG early-ack, request id, None, command)
        self.pending: dict[int, Waiter] = {}
        self.reads = ReadQueue()  # read-index; its seq is the round our Accepts carry
        self.peer_seq: dict[str, int] = {}
        self.peer_heard: dict[str, int] = {}
        self.catchup: dict[str, tuple[int, int]] = {}  # peer -> (sent up to, at tick)
        self.new_entries: list[tuple[int, Value]] = []

        # Timers, in ticks.
        self.now = 0
        self.hb_elapsed = 0
        self.election_elapsed = 0
        self.election_timeout = self._random_timeout()

        # Effects of the current batch (nodes/common/outbox.py). The leader's
        # Accepts go in out_early: they claim nothing about our own disk, so
        # they may leave before our fsync and the two disk writes (ours, the
        # acceptors') overlap. Our own acceptance is counted only with acks,
        # which the driver reads after that fsync.
        self._init_outbox(0)

        self._restore(restored)
        # What this incarnation found on its disk, as its status says: the
        # harness holds it against what earlier incarnations promised
        # (faults/durable.py: a promise never goes back across a restart).
        self.restored: dict[str, Any] = {"ballot": [self.promised[0], self.promised[1]]}

    # ------------------------------------------------------------------ restart

    def _restore(self, restored: Restored) -> None:
        """Rebuild acceptor and learner state from disk. Raises ValueError
        (one line) on data no Paxos node of ours wrote."""
        meta = restored.meta
        if meta is not None:
            try:
                promised = ballot_of(meta.get("promised"))
            except ValueError:
                raise ValueError(f"meta holds no Paxos ballot: {meta!r}"[:200]) from None
            if not self.bug_forget_promise:
                self.promised = promised
                self.term = promised[0]
        if restored.snapshot is not None:
            snap = restored.snapshot
            self.snapshot = snap
            self.snap_index = self.commit = self.applied = self.applied_index = snap.index
        top_round = self.promised[0]
        for e in restored.entries:
            if e.index <= self.snap_index:
                continue
            try:
                r, n, value, chosen = e.data
                ballot = ballot_of([r, n])
                check_command(value)
            except (TypeError, ValueError):
                raise ValueError(f"log entry {e.index} is not a Paxos slot: {e.data!r}"[:200]
                                 ) from None
            self.log[e.index] = Slot(ballot, value, bool(chosen))
            top_round = max(top_round, ballot[0])
        self.max_round = top_round
        self._advance_commit()

    # ------------------------------------------------------------------ inputs

    def tick(self) -> None:
        self.now += 1
        if self.role == LEADER:
            self.hb_elapsed += 1
            if self.hb_elapsed >= self.hb_ticks:
                self.hb_elapsed = 0
                if not self._has_quorum_contact():
                    self._become_follower(None)
                    return
                self._heartbeat()
        else:
            self.election_elapsed += 1
            if self.election_elapsed >= self.election_timeout:
                self._campaign()

    def step(self, msg: Any) -> None:
        kind = type(msg)
        if kind is Accept:
            self._on_accept(msg)
        elif kind is Accepted:
            self._on_accepted(msg)
        elif kind is Prepare:
            self._on_prepare(msg)
        elif kind is Promise:
            self._on_promise(msg)
            if self.role == LEADER and (self.new_entries or self.reads.unstarted):
                self._flush_leader()  # we just won phase 1: send what we adopted
        elif kind is Learn:
            self._on_learn(msg)

    def requests(self, batch: list[tuple[bytes, ClientRequest]]) -> None:
        """One loop turn's client requests: proposed together, then ONE Accept
        per peer (carrying at most one new read round) for all of them."""
        one = self._request
        for client, req in batch:
            one(client, req)
        if self.role == LEADER:
            self._flush_leader()

    def _request(self, client: bytes, req: ClientRequest) -> None:
        if self.role != LEADER:
            if self.role == CANDIDATE and len(self.queued) < MAX_QUEUED:
                self.queued.append((client, req))
            else:
                self._reply_not_leader(client, req, definite=True)
            return
        op = req["op"]
        if op == "read":
            if self.lease is not None and self.lease.holds(self.now):
                # BUG lease-read: answered without a round while our lease holds.
                self.reads.confirmed.append((client, req["id"], req["key"],
                                             max(self.commit, self.lease_base)))
                self.reads.release(self.applied, self.out_reads)
                return
            # The read index: everything we proposed before it.
            if self._take_read(client, req, self.next_slot - 1):
                return
            cmd: dict[str, Any] = {"op": "read", "key": req["key"]}
        elif op == "write":
            cmd = {"op": "write", "key": req["key"], "value": req.get("value")}
        elif op == "txn":
            cmd = {"op": "txn", "txn": req["txn"]}
            if self.bug_txn_split and len(cmd["txn"]) > 1:
                # BUG txn-split: one slot per micro-operation, one after another.
                self._propose_part(client, req["id"], split_txn(cmd))
                return
        else:
            cmd = {"op": "cas", "key": req["key"], "value": req.get("value"),
                   "expected": req.get("expected")}
        slot = self.next_slot
        self.next_slot = slot + 1
        if self.bug_early_ack and op == "write":
            # BUG early-ack: acknowledged once in our own log (fsynced with this
            # Ready), before any other acceptor has it.
            self.out_replies.append((client, {"id": req["id"], "ok": True}))
            self.pending[slot] = (None, req["id"], None, cmd)
        else:
            self.pending[slot] = (client, req["id"], None, cmd)
        self._propose(slot, cmd)  # last: a one-node cluster applies it at once

    def _propose_part(self, client: bytes, rid: Any, parts: list[dict[str, Any]]) -> None:
        """BUG txn-split: propose the first of ``parts`` with the client's
        waiter; the rest wait until it is applied."""
        slot = self.next_slot
        self.next_slot = slot + 1
        self.pending[slot] = (client, rid, None, parts[0])
        if len(parts) > 1:
            self.split_next[slot] = (client, rid, parts[1:])
        self._propose(slot, parts[0])

    def status(self) -> dict[str, Any]:
        # "ballot" is the promised ballot's round: an int, so the harness can
        # order it like Raft's term; "ballot_node" completes the ballot.
        return {
            "role": self.role,
            "ballot": self.promised[0],
            "ballot_node": self.promised[1],
            # The node whose ballot we promised: like Raft's vote for a term.
            "voted_for": self.promised[1] if self.promised[0] else None,
            "leader": self.leader,
            "commit_index": self.commit,
            "last_applied": self.applied_index,
            "log_len": len(self.log),
            "restored": self.restored,
        }

    # ------------------------------------------------------------------ acceptor

    def _set_promised(self, ballot: Ballot) -> None:
        self.promised = ballot
        self.term = ballot[0]
        self.max_round = max(self.max_round, ballot[0])
        if not self.bug_forget_promise:
            self.out_meta = {"promised": [ballot[0], ballot[1]]}

    def _persist(self, slot: int, rec: Slot) -> None:
        b = rec.ballot
        self.out_entries.append(Entry(slot, b[0], [b[0], b[1], rec.value, rec.chosen]))

    def _on_prepare(self, m: Prepare) -> None:
        self.max_round = max(self.max_round, m.ballot[0])
        if m.ballot < self.promised:
            self.out_messages.append(
                Promise(self.id, m.src, m.ballot, False, self.promised, (), self.commit, None))
            return
        if m.ballot > self.promised:
            if self._leader_is_fresh() and m.src != self.leader:
                # A live leader still holds a majority: ignore a disruptive
                # candidate (it times out and retries) rather than depose it.
                return
            if self.role != FOLLOWER:
                self._become_follower(None)
            self._set_promised(m.ballot)
            self.leader = None
            self._reset_election_timer()
        accepted = tuple(
            PromiseEntry(s, rec.ballot, rec.value, rec.chosen)
            for s, rec in self.log.items()
            if s >= m.from_slot
        )
        snap = self.snapshot if self.snap_index >= m.from_slot else None
        self.out_messages.append(
            Promise(self.id, m.src, m.ballot, True, self.promised, accepted, self.commit, snap))

    def _leader_is_fresh(self) -> bool:
        if self.role == LEADER:
            return self._has_quorum_contact(self.el_lo)
        return self.leader is not None and self.election_elapsed < self.el_lo

    def _on_accept(self, m: Accept) -> None:
        ballot = m.ballot
        self.max_round = max(self.max_round, ballot[0])
        if ballot < self.promised:
            self.out_messages.append(
                Accepted(self.id, m.src, ballot, False, self.promised, (), self.commit, 0, False))
            return
        if ballot > self.promised:
            if self.role != FOLLOWER:
                self._become_follower(None)
            self._set_promised(ballot)
        elif self.role != FOLLOWER:
            # Our own ballot is never sent to us; equal ballots from another
            # node cannot happen. A candidate that promised this ballot to
            # another node already stepped down in _on_prepare.
            self._become_follower(None)
        self.leader = m.src
        self._reset_election_timer()
        log = self.log
        slots = []
        for s, v in m.entries:
            slots.append(s)
            if s <= self.snap_index:
                continue
            rec = log.get(s)
            if rec is not None and (rec.chosen or rec.ballot == ballot):
                continue
            rec = Slot(ballot, v, False)
            log[s] = rec
            self._persist(s, rec)
        self._learn_upto(ballot, m.commit)
        self.out_messages.append(
            Accepted(self.id, m.src, ballot, True, self.promised, tuple(slots), self.commit,
                     m.seq, self.commit < m.commit))

    def _on_learn(self, m: Learn) -> None:
        # Chosen values are facts whatever the sender's ballot (Paxos safety),
        # so a Learn is taken from anyone.
        if m.snapshot is not None and m.snapshot.index > self.commit:
            self._install_snapshot(m.snapshot)
        log = self.log
        for s, v in m.entries:
            if s <= self.commit:
                continue
            rec = log.get(s)
            if rec is not None and rec.chosen:
                continue
            rec = Slot(rec.ballot if rec is not None else ZERO_BALLOT, v, True)
            log[s] = rec
            self._persist(s, rec)
        self._advance_commit()
        ok = m.ballot >= self.promised
        self.out_messages.append(
            Accepted(self.id, m.src, m.ballot, ok, self.promised, (), self.commit, 0,
                     self.commit < m.commit))

    # ------------------------------------------------------------------ learner

    def _learn_upto(self, ballot: Ballot, commit: int) -> None:
        """Mark chosen the slots up to ``commit`` we accepted in ``ballot`` (invariant 3)."""
        log = self.log
        s = self.commit + 1
        while s <= commit:
            rec = log.get(s)
            if rec is None:
                break
            if not rec.chosen:
                if rec.ballot != ballot:
                    break
                rec.chosen = True
            s += 1
        self._advance_commit()

    def _advance_commit(self) -> None:
        log = self.log
        c = self.commit
        while True:
            rec = log.get(c + 1)
            if rec is None or not rec.chosen:
                break
            c += 1
        if c != self.commit:
            self.commit = c
            self._apply()

    def _apply(self) -> None:
        """Hand the newly chosen slots, in order, to the applier with their waiters
        (a waiter whose slot was chosen with another value hears "unknown")."""
        log = self.log
        pending = self.pending
        out = self.out_committed
        while self.applied < self.commit:
            s = self.applied + 1
            self.applied = s
            waiter = pending.pop(s, None) if pending else None
            if waiter is not None and waiter[0] is not None:  # None: BUG early-ack answered it
                self.out_waiters.append((len(out), waiter))
            out.append(Entry(s, 0, log[s].value))
        if self.split_next:
            due = sorted(i for i in self.split_next if i <= self.applied)
            for i in due:
                client, rid, rest = self.split_next.pop(i)
                if self.role == LEADER:
                    self._propose_part(client, rid, rest)
            if due and self.role == LEADER:
                self._flush_leader()
        reads = self.reads
        if reads.unstarted or reads.rounds or reads.confirmed:  # bool(reads), without the call
            self._serve_reads()

    def _reply_lost(self, client: bytes, req_id: int) -> None:
        # Our slot was chosen with a value we cannot tell from ours (a snapshot).
        self.out_replies.append((client, unknown_outcome(req_id, self.leader, self.id)))

    def compact(self, snapshot: Snapshot) -> None:
        """The applier's snapshot of every slot up to ``snapshot.index``: drop
        those slots and save it in the next Ready."""
        if self.snap_index < snapshot.index <= self.applied:
            self._compact(Snapshot(snapshot.index, 0, snapshot.data))

    def _compact(self, snap: Snapshot) -> None:
        self.snapshot = snap
        self.snap_index = snap.index
        self.out_snapshot = snap
        log = self.log
        for s in [s for s in log if s <= snap.index]:
            del log[s]
            self.acks.pop(s, None)
            self.born.pop(s, None)
        if self.out_entries:  # records of slots the snapshot now holds need no writing
            self.out_entries = [e for e in self.out_entries if e.index > snap.index]

    def _install_snapshot(self, snap: Snapshot) -> None:
        """Jump the learner to a peer's snapshot (all of it is chosen); the
        applier replaces the store (``Ready.restore``)."""
        self.commit = self.applied = snap.index
        for s in [s for s in self.pending if s <= snap.index]:
            # Applied inside the snapshot: we cannot tell whether it was ours.
            client, req_id, _term, _cmd = self.pending.pop(s)
            if client is not None:
                self._reply_lost(client, req_id)
        self._compact(snap)
        self.out_restore = True
        self._advance_commit()

    # ------------------------------------------------------------------ proposer

    def _random_timeout(self) -> int:
        # rng.randint(el_lo, el_hi), drawn the same way (randrange's own path for a
        # positive width) without its two layers of argument checks: this runs for
        # every Accept a follower takes.
        return self.el_lo + self.rng._randbelow(self.el_hi - self.el_lo + 1)  # type: ignore[attr-defined]

    def _reset_election_timer(self) -> None:
        self.election_elapsed = 0
        self.election_timeout = self._random_timeout()

    def _has_quorum_contact(self, window: int | None = None) -> bool:
        w = self.check_quorum_ticks if window is None else window
        fresh = 1 + sum(1 for p in self.peers if self.now - self.peer_heard.get(p, -w) < w)
        return fresh >= self.quorum

    def _campaign(self) -> None:
        """Phase 1 for every slot past our commit, with a ballot above all we have seen."""
        if self.role != FOLLOWER:
            self._become_follower(None, keep_queue=True)
        self.role = CANDIDATE
        self.max_round = max(self.max_round, self.promised[0]) + 1
        ballot = (self.max_round, self.id)
        self._set_promised(ballot)
        self.ballot = ballot
        self.leader = None
        self.from_slot = self.commit + 1
        own = tuple(
            PromiseEntry(s, rec.ballot, rec.value, rec.chosen)
            for s, rec in self.log.items()
            if s >= self.from_slot
        )
        self.promises = {self.id: own}
        self._reset_election_timer()
        for p in self.peers:
            self.out_messages.append(Prepare(self.id, p, ballot, self.from_slot))
        if len(self.promises) >= self.quorum:
            self._become_leader()

    def _on_promise(self, m: Promise) -> None:
        if not m.ok:
            self.max_round = max(self.max_round, m.promised[0])
            if self.role == CANDIDATE and m.ballot == self.ballot and m.promised > self.ballot:
                self._become_follower(None)
            return
        if self.role != CANDIDATE or m.ballot != self.ballot:
            return
        if m.snapshot is not None and m.snapshot.index > self.commit:
            self._install_snapshot(m.snapshot)
        self.promises[m.src] = m.accepted
        if len(self.promises) >= self.quorum:
            self._become_leader()

    def _become_leader(self) -> None:
        """Adopt the highest-ballot value of every reported slot (invariant 2)."""
        self.role = LEADER
        self.leader = self.id
        self.hb_elapsed = 0
        self.acks = {}
        self.born = {}
        self.pending = {}
        self.split_next = {}
        self.reads = ReadQueue()
        if self.lease is not None:  # BUG lease-read: a new ballot earns its own lease
            self.lease = Lease(self.lease.length)
        self.peer_seq = {p: 0 for p in self.peers}
        self.peer_heard = {p: self.now for p in self.peers}
        self.catchup = {}
        base = self.commit
        best: dict[int, PromiseEntry] = {}
        for entries in self.promises.values():
            for e in entries:
                if e.slot <= base:
                    continue
                cur = best.get(e.slot)
                if cur is None or (not cur.chosen and (e.chosen or e.ballot > cur.ballot)):
                    best[e.slot] = e
        self.promises = {}
        top = max(best) if best else base
        queued, self.queued = self.queued, []
        own_values = [q for q in queued if q[1]["op"] != "read"] if self.bug_no_adopt else []
        for s in range(base + 1, top + 1):
            got = best.get(s)
            if got is not None and got.chosen:
                rec = self.log.get(s)
                if rec is None or not rec.chosen:
                    rec = Slot(got.ballot, got.value, True)
                    self.log[s] = rec
                    self._persist(s, rec)
            elif got is not None and got.value is not None and not self.bug_no_adopt:
                self._propose(s, got.value)
            elif got is not None and self.bug_no_adopt and own_values:
                # BUG no-adopt: our own client's command replaces the value
                # some acceptor reported for this slot.
                client, req = own_values.pop(0)
                queued.remove((client, req))
                self.next_slot = s  # request() proposes at next_slot
                self.role = LEADER
                self._request(client, req)
            else:
                self._propose(s, None)
        self.next_slot = top + 1
        self.lease_base = top
        self._advance_commit()
        for client, req in queued:
            self._request(client, req)

    def _propose(self, slot: int, value: Value) -> None:
        """Accept ``value`` in ``slot`` ourselves (durable in this Ready) and send it."""
        rec = self.log.get(slot)
        if rec is not None and rec.chosen:
            return
        rec = Slot(self.ballot, value, False)
        self.log[slot] = rec
        self._persist(slot, rec)
        if self.quorum <= 1:
            rec.chosen = True
            self._advance_commit()
            return
        self.acks[slot] = set()
        self.born[slot] = self.now
        self.new_entries.append((slot, value))

    def _flush_leader(self) -> None:
        """Send this batch's proposals (and a read confirmation round) to every peer."""
        reads = self.reads
        if reads.unstarted:
            reads.start_round()
            if self.lease is not None:
                self.lease.sent(reads.seq, self.now)
        elif not self.new_entries:
            if reads:
                self._serve_reads()
            return
        entries = tuple(self.new_entries)
        self.new_entries = []
        self.hb_elapsed = 0
        seq = reads.seq
        for p in self.peers:
            self.out_early.append(Accept(self.id, p, self.ballot, entries, self.commit, seq))
        if reads:
            self._serve_reads()

    def _heartbeat(self) -> None:
        """Heartbeat every peer, re-sending the proposals it has not acknowledged
        within a heartbeat interval (younger ones are most likely in flight)."""
        if self.lease is not None:  # BUG lease-read: every heartbeat is a round it can count
            self.reads.start_round()
            self.lease.sent(self.reads.seq, self.now)
        old = self.now - self.hb_ticks
        born = self.born
        stale = [s for s in self.acks if born[s] <= old]
        for p in self.peers:
            resend = []
            for s in stale:
                if p not in self.acks[s]:
                    resend.append((s, self.log[s].value))
                    if len(resend) >= MAX_BATCH:
                        break
            self.out_early.append(
                Accept(self.id, p, self.ballot, tuple(resend), self.commit, self.reads.seq))

    def _on_accepted(self, m: Accepted) -> None:
        if not m.ok:
            self.max_round = max(self.max_round, m.promised[0])
            if self.role == LEADER and m.promised > self.ballot:
                self._become_follower(None)
            return
        if self.role != LEADER or m.ballot != self.ballot:
            return
        src = m.src
        self.peer_heard[src] = self.now
        if m.seq > self.peer_seq.get(src, 0):
            self.peer_seq[src] = m.seq
        acks = self.acks
        log = self.log
        need = self.quorum - 1
        advanced = False
        for s in m.slots:
            a = acks.get(s)
            if a is None:
                continue
            a.add(src)
            if len(a) >= need:
                del acks[s]
                del self.born[s]
                log[s].chosen = True
                if s == self.commit + 1:
                    advanced = True
        if advanced:
            self._advance_commit()
        if m.stuck:
            self._catch_up(src, m.commit)
        reads = self.reads
        if reads.unstarted or reads.rounds or reads.confirmed:  # bool(reads), without the call
            self._serve_reads()

    def _catch_up(self, peer: str, peer_commit: int) -> None:
        """Send chosen values (or our snapshot) a lagging peer cannot learn by ballot."""
        sent_upto, sent_at = self.catchup.get(peer, (-1, -self.hb_ticks))
        if peer_commit < sent_upto and self.now - sent_at < 2 * self.hb_ticks:
            return  # the previous chunk is still on its way
        snap = None
        start = peer_commit + 1
        if start <= self.snap_index:
            snap = self.snapshot
            start = self.snap_index + 1
        end = min(self.commit, start + MAX_BATCH - 1)
        log = self.log
        entries = tuple((s, log[s].value) for s in range(start, end + 1))
        self.catchup[peer] = (end, self.now)
        self.out_messages.append(Learn(self.id, peer, self.ballot, entries, snap, self.commit))

    def _serve_reads(self) -> None:
        """Release the index reads whose majority round came back and whose slots are chosen."""
        if self.role != LEADER:
            return
        reads = self.reads
        peer_seq = self.peer_seq
        upto = quorum_value(reads.seq, [peer_seq.get(p, 0) for p in self.peers], self.quorum)
        reads.confirm(upto)
        if self.lease is not None:
            self.lease.confirmed(upto)
        reads.release(self.applied, self.out_reads)

    def _become_follower(self, leader: str | None, keep_queue: bool = False) -> None:
        """Give up leading/campaigning; tell waiting clients where to go."""
        if self.role == LEADER:
            for client, req_id, _term, _cmd in self.pending.values():
                if client is not None:
                    # The command may still be chosen later: not definite.
                    self.out_replies.append((client, {"id": req_id, "ok": False,
                                                      "error": "not_leader", "leader": leader}))
            for client, rid, _key, _index in self.reads.drain():
                self._reply_not_leader(client, {"id": rid}, definite=True)
        if not keep_queue:
            for client, req in self.queued:
                self._reply_not_leader(client, req, definite=True)
            self.queued = []
        self.pending = {}
        self.split_next = {}  # the rest of a split transaction is never proposed
        self.reads = ReadQueue()
        self.acks = {}
        self.born = {}
        self.new_entries = []
        self.out_early = []  # Accepts of a ballot we no longer lead
        self.promises = {}
        self.role = FOLLOWER
        self.leader = leader
        self._reset_election_timer()

    def _reply_not_leader(self, client: bytes, req: ClientRequest, definite: bool) -> None:
        reply: dict[str, Any] = {"id": req["id"], "ok": False, "error": "not_leader"}
        if definite:
            reply["definite"] = True
        if self.leader is not None and self.leader != self.id:
            reply["leader"] = self.leader
        self.out_replies.append((client, reply))


def make_core(cfg: CoreConfig, restored: Restored) -> PaxosCore:
    return PaxosCore(cfg, restored)
