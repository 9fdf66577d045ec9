"""The Raft consensus core: a pure, deterministic state machine (core_api.Core).

Implements Raft (Ongaro & Ousterhout, "In Search of an Understandable
Consensus Algorithm", 2014; Ongaro's thesis for pre-vote, check-quorum and
read-index) for the key-value commands of nodes/common/kv.py. No sockets,
clock, global random or store: the driver feeds ``step``/``requests``/``tick``,
collects ``ready()``, carries it out (persist + fsync, apply committed
entries through nodes/common/applier.py, messages, replies) and calls
``advance`` (docs/node-contract.md, "The core and the driver").

Theory of operation
- Election (paper 5.2, thesis 9.6): a follower that hears no leader for a
  randomized timeout (drawn from ``CoreConfig.rng``, in ticks) first runs a
  *pre-vote* round at ``term + 1`` without changing its term; only with a
  quorum of pre-votes does it become a candidate. A node that heard from a
  leader within the minimum election timeout ignores (pre-)vote requests for a
  higher term (the leader lease), and a leader that has not heard from a
  quorum within that timeout steps down (*check-quorum*). Together these keep
  a node that was partitioned away from disrupting the cluster when it
  returns: it cannot win a pre-vote, so it never bumps its term.
- Replication (5.3): the leader appends client commands to its log and
  sends every follower all entries it lacks, in batches of up
  to ``max_batch`` entries, with up to ``max_inflight`` messages in flight per
  follower (pipelining, etcd's "replicate" state). Appends leave as inputs
  arrive -- once per ``requests`` batch, and after a follower's reply frees
  room -- never from ``ready()``. A follower whose log
  diverges is probed one message at a time, and its reject carries a
  (hint_index, hint_term) so the leader skips a whole term per round trip.
  A follower whose next entry was compacted away gets InstallSnapshot.
- Commit (5.4.2): the leader commits index N only when a quorum stores N and
  N's term is the leader's current term; earlier entries commit with it. A
  new leader appends a no-op so that this happens promptly.
- Reads use *read-index* by default (thesis 6.4): the leader notes its commit
  index (at least its no-op's index) as the read index, confirms it still
  leads with one heartbeat round (a quorum echoing a round number ``ctx``
  sent after the read arrived), waits until the read index is committed and
  hands the read to the applier (``Ready.reads``), which answers from its
  state. Why not through the log: a read then costs no log entry, no fsync
  on any node and no apply on followers, and one heartbeat
  round confirms every read that arrived before it (reads batch for free),
  while being just as linearizable. ``options.read_mode = "log"`` appends
  reads to the log instead (the simpler, slower textbook approach).
- Durability: ``Ready.meta`` carries {"term", "vote"} whenever either
  changed; ``Ready.entries`` every entry appended since the previous
  ``ready()`` (so the driver commits them with one fsync); ``truncate_from``
  a conflicting suffix a follower dropped. Votes, acks and replies leave in
  the same Ready, after the fsync. The leader's AppendEntries go in
  ``Ready.early_messages``: they claim nothing about its own disk, so the
  driver may send them before its fsync and the leader's disk write overlaps
  the followers' (thesis 10.2.1). A leader counts its own log towards a
  quorum at once: the driver handles no input (so no follower ack) before
  that fsync is done, and the replies it releases wait for it too.
- Snapshots: the applier takes one every ``snapshot_entries`` applied
  entries and hands it to ``compact``; the core fills in its term, drops those
  entries from memory and emits it as ``Ready.snapshot`` to be saved.

Invariants (checked by tests/test_raft_core*.py over random schedules):
at most one leader per term; logs that agree on (index, term) agree on every
earlier entry; a committed entry is in every later leader's log; replicas
apply the same command at each index. A client hears ``ok`` only once its
command is committed and applied (or, for a read, confirmed as above).

Client waiters (``pending``: log index -> ``core_api.Waiter``): a node
that put a client's command into its log as leader keeps the waiter until
that index is applied or leaves its log, also after it stops leading (as
etcd's server waits for its proposal's index to be applied, whoever leads).
At commit the waiter travels with its entry in ``Ready.committed``; the
applier answers it: the entry is the client's own iff it has the term it
was appended in (Log Matching), then ``ok`` with the result, else an
outcome-unknown error. A suffix a follower truncates, or a log a snapshot
install replaces, answers its waiters outcome-unknown at once: the entry
may still commit elsewhere (Figure 8), so never ``definite``. Only reads
waiting for read-index confirmation are answered (definitely) at step-down.
This is also what makes an early commit (BUG commit-old-term) visible to a
client: the old term's writer is still waiting when its entry commits.

Transactions (``op: "txn"``, nodes/common/kv.py): one log entry each, like
a write, so the applier applies the whole transaction at one index (atomic on
every replica) and its reads are as linearizable as the log.

Known-bug flags (``options.bugs``; off by default; each breaks only what its
name says): stale-read, forget-vote, no-log-check, commit-old-term, early-ack,
txn-split (a transaction's micro-operations become one log entry each, the
next proposed when the previous one commits, as a client running them one
after another would, so other commands interleave; the applier joins their
results, see ``kv.split_txn``), txn-dirty-read (a leader answers a read-only transaction at
once from its log including entries not yet committed: a shadow store,
``dirty``, that applies each entry when it enters the leader's log).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from nodes.common.applier import unknown_outcome
from nodes.common.core_api import ClientRequest, CoreConfig, Entry, Restored, Snapshot, Waiter
from nodes.common.kv import KVStore, split_txn
from nodes.common.lease import Lease
from nodes.common.outbox import Outbox
from nodes.common.quorum import quorum, quorum_value
from nodes.common.readindex import ReadQueue
from nodes.raft.messages import (
    AppendEntries,
    AppendReply,
    Heartbeat,
    HeartbeatReply,
    InstallSnapshot,
    PreVote,
    PreVoteReply,
    RequestVote,
    RequestVoteReply,
    SnapshotReply,
)
from nodes.raft.progress import PROBE, REPLICATE, SNAPSHOT, Progress

FOLLOWER = "follower"
PRE_CANDIDATE = "pre-candidate"
CANDIDATE = "candidate"
LEADER = "leader"
#: How many won terms ``status`` reports (``led``): the harness asks for status
#: several times a second and a node wins a term far less often.
LED_KEEP = 8

BUGS = frozenset(("stale-read", "forget-vote", "no-log-check", "commit-old-term", "early-ack",
                  "txn-split", "txn-dirty-read", "lease-read"))

_NOT_LEADER_DEFINITE = {"ok": False, "error": "not_leader", "definite": True}


class RaftCore(Outbox):
    """One Raft node's consensus state (see the module header)."""

    def __init__(self, config: CoreConfig, restored: Restored) -> None:
        self.id = config.node_id
        self.peers = tuple(p for p in config.peers if p != config.node_id)
        self._peer_set = frozenset(self.peers)
        self.quorum = quorum(len(self.peers) + 1)
        self.rng = config.rng
        timing = config.timing
        self.heartbeat_ticks = timing.ticks(timing.heartbeat_ms)
        lo, hi = timing.election_timeout_ms
        self.election_min = timing.ticks(lo)
        self.election_max = max(self.election_min, timing.ticks(hi))

        options = config.parsed()
        self.read_index = options.read_mode == "index"
        self.max_batch = options.max_batch
        self.max_inflight = options.max_inflight
        bugs = options.bugs
        self.bug_stale_read = "stale-read" in bugs
        self.bug_forget_vote = "forget-vote" in bugs
        self.bug_no_log_check = "no-log-check" in bugs
        self.bug_commit_old_term = "commit-old-term" in bugs
        self.bug_early_ack = "early-ack" in bugs
        self.bug_txn_split = "txn-split" in bugs
        self.bug_txn_dirty_read = "txn-dirty-read" in bugs
        # BUG lease-read: reads under a lease counted in our own ticks (nodes/common/lease.py).
        self.lease = Lease(max(1, self.election_min - 2)) if "lease-read" in bugs else None
        # BUG txn-dirty-read: a leader's store with every entry of its log applied.
        self.dirty: KVStore | None = None
        # BUG txn-split: index of a part in our log -> (client, request id, parts after it)
        self.split_next: dict[int, tuple[bytes, Any, list[dict[str, Any]]]] = {}

        # Durable state, as restored.
        meta = restored.meta or {}
        self.term: int = int(meta.get("term") or 0)
        self.vote: str | None = meta.get("vote")
        # What this incarnation found on its disk, as its status says: the
        # harness holds it against what earlier incarnations reported
        # (faults/durable.py: term and vote never go back across a restart).
        self.restored: dict[str, Any] = {"term": self.term, "vote": self.vote}
        snap = restored.snapshot
        self.snapshot: Snapshot | None = snap
        self.snap_index = snap.index if snap else 0
        self.snap_term = snap.term if snap else 0
        self.log: list[Entry] = [e for e in restored.entries if e.index > self.snap_index]
        for k, e in enumerate(self.log):
            if e.index != self.snap_index + 1 + k:
                raise ValueError(
                    f"restored log has a gap: entry {e.index} where {self.snap_index + 1 + k} "
                    "was expected")

        # Volatile state.
        self.commit_index = self.snap_index
        self.last_applied = self.snap_index
        self.role = FOLLOWER
        self.leader: str | None = None
        self.votes: set[str] = set()
        # The terms this incarnation won, newest last (at most LED_KEEP): its
        # status reports them, so the harness can hold every node's claims
        # side by side (faults/election.py: one leader per term).
        self.led: list[int] = []
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.timeout = self._random_timeout()
        self.ticks = 0
        self.progress: dict[str, Progress] = {}
        self.term_start_index = 0  # index of this leader's no-op
        # log index -> (client, request id, term appended in, None); see "Client waiters"
        self.pending: dict[int, Waiter] = {}
        self.reads = ReadQueue()  # read-index (nodes/common/readindex.py)

        # Effects for the next Ready (the leader's AppendEntries go in out_early).
        self._init_outbox(self.snap_index)

        self._handlers: dict[type, Callable[[Any], None]] = {
            PreVote: self._on_prevote,
            PreVoteReply: self._on_prevote_reply,
            RequestVote: self._on_vote,
            RequestVoteReply: self._on_vote_reply,
            AppendEntries: self._on_append,
            AppendReply: self._on_append_reply,
            Heartbeat: self._on_heartbeat,
            HeartbeatReply: self._on_heartbeat_reply,
            InstallSnapshot: self._on_snapshot,
            SnapshotReply: self._on_snapshot_reply,
        }

    # ------------------------------------------------------------------ log

    @property
    def last_index(self) -> int:
        return self.snap_index + len(self.log)

    def term_at(self, index: int) -> int | None:
        """The term of the entry at ``index``; None if compacted away or absent."""
        if index == self.snap_index:
            return self.snap_term
        off = index - self.snap_index - 1
        if 0 <= off < len(self.log):
            return self.log[off].term
        return None

    def _last_term(self) -> int:
        return self.log[-1].term if self.log else self.snap_term

    def _up_to_date(self, last_index: int, last_term: int) -> bool:
        """Is a candidate's log at least as up to date as ours (paper 5.4.1)?"""
        my_term = self._last_term()
        return last_term > my_term or (last_term == my_term and last_index >= self.last_index)

    def _append(self, entries: Sequence[Entry]) -> None:
        self.log.extend(entries)
        self.out_entries.extend(entries)

    def _truncate(self, index: int) -> None:
        """Drop our entries at and after ``index`` (a follower's conflicting suffix)."""
        if self.pending:
            self._release_waiters(lambda i: i >= index)
        if index <= self.commit_index:
            # Never with correct elections (Leader Completeness): only a leader
            # elected without the log check (BUG no-log-check) can contradict
            # our committed prefix. We follow the paper's receiver rule as a
            # naive node would; what we applied from those entries stays applied.
            self.commit_index = self.last_applied = index - 1
        del self.log[index - self.snap_index - 1:]
        if self.out_truncate is None or index < self.out_truncate:
            self.out_truncate = index
        self.out_entries = [e for e in self.out_entries if e.index < index]

    def _find_conflict_by_term(self, index: int, term: int) -> int:
        """The largest index <= ``index`` whose term is <= ``term`` (or the
        snapshot index, below which we know nothing): where two logs that
        disagree at ``index`` may still agree (etcd's fast backtracking)."""
        index = min(index, self.last_index)
        while index > self.snap_index:
            t = self.term_at(index)
            if t is not None and t <= term:
                return index
            index -= 1
        return self.snap_index

    # ----------------------------------------------------------- role changes

    def _random_timeout(self) -> int:
        return self.rng.randint(self.election_min, self.election_max)

    def _save_meta(self) -> None:
        """Term and vote changed: save them with the next Ready."""
        # BUG forget-vote: the vote never reaches the disk.
        self.out_meta = {"term": self.term, "vote": None if self.bug_forget_vote else self.vote}

    def _set_term(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = None
            self._save_meta()

    def _become_follower(self, term: int, leader: str | None) -> None:
        if self.role == LEADER:
            self._abandon_clients(leader)
        self._set_term(term)
        self.role = FOLLOWER
        self.leader = leader
        self.election_elapsed = 0
        self.timeout = self._random_timeout()
        self.progress = {}
        self.dirty = None
        self.split_next = {}  # the rest of a split transaction is never proposed

    def _pre_campaign(self) -> None:
        """Election timeout: ask for pre-votes at term + 1 (thesis 9.6)."""
        self.role = PRE_CANDIDATE
        self.leader = None
        self.votes = {self.id}
        self.election_elapsed = 0
        self.timeout = self._random_timeout()
        if len(self.votes) >= self.quorum:
            self._campaign()
            return
        term, li, lt = self.term + 1, self.last_index, self._last_term()
        for p in self.peers:
            self.out_messages.append(PreVote(self.id, p, term, li, lt))

    def _campaign(self) -> None:
        self._set_term(self.term + 1)
        self.vote = self.id
        self._save_meta()
        self.role = CANDIDATE
        self.leader = None
        self.votes = {self.id}
        self.election_elapsed = 0
        self.timeout = self._random_timeout()
        if len(self.votes) >= self.quorum:
            self._become_leader()
            return
        term, li, lt = self.term, self.last_index, self._last_term()
        for p in self.peers:
            self.out_messages.append(RequestVote(self.id, p, term, li, lt))

    def _become_leader(self) -> None:
        self.role = LEADER
        self.leader = self.id
        self.led.append(self.term)
        if len(self.led) > LED_KEEP:
            del self.led[0]
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        nxt = self.last_index + 1
        self.progress = {p: Progress(nxt) for p in self.peers}
        if self.lease is not None:  # BUG lease-read: a new term earns its own lease
            self.lease = Lease(self.lease.length)
        # The no-op: lets this leader commit (and so learn the commit index
        # and serve reads) without waiting for a client write (paper 8).
        noop = Entry(nxt, self.term, None)
        self._append([noop])
        self.term_start_index = nxt
        if self.bug_txn_dirty_read:
            snap = self.snapshot
            self.dirty = KVStore.restore(snap.data) if snap is not None else KVStore()
            for e in self.log:
                if e.data is not None:
                    self.dirty.apply(e.data)
        self._maybe_commit()
        self._replicate(False)

    def _abandon_clients(self, leader: str | None) -> None:
        """We stopped leading: answer the reads waiting for read-index
        confirmation (a read never takes effect, so definitely). Commands in
        our log keep their waiters (see "Client waiters")."""
        hint = {"leader": leader} if leader is not None else {}
        error = "not_leader" if leader is not None else "unavailable"
        replies = self.out_replies
        for client, rid, _key, _index in self.reads.drain():
            replies.append((client, {"id": rid, "ok": False, "error": error, "definite": True,
                                     **hint}))

    def _release_waiters(self, dropped: Callable[[int], bool]) -> None:
        """Answer (outcome unknown) every waiter whose index ``dropped(index)``."""
        pending = self.pending
        for i in [i for i in pending if dropped(i)]:
            client, rid, _term, _cmd = pending.pop(i)
            self.out_replies.append((client, unknown_outcome(rid, self.leader, self.id)))

    # ----------------------------------------------------------------- inputs

    def tick(self) -> None:
        self.ticks += 1
        self.election_elapsed += 1
        if self.role == LEADER:
            if self.election_elapsed >= self.election_min:
                self.election_elapsed = 0
                self._check_quorum()
                if self.role != LEADER:
                    return
            self.heartbeat_elapsed += 1
            if self.heartbeat_elapsed >= self.heartbeat_ticks:
                self.heartbeat_elapsed = 0
                self._broadcast_heartbeat()
        elif self.election_elapsed >= self.timeout:
            self._pre_campaign()

    def _check_quorum(self) -> None:
        """Step down if a quorum has not been heard from for an election timeout."""
        active = 1
        for pr in self.progress.values():
            if pr.active:
                active += 1
            pr.active = False
        if active < self.quorum:
            self._become_follower(self.term, None)

    def requests(self, batch: list[tuple[bytes, ClientRequest]]) -> None:
        """One loop turn's client requests: appended together, then ONE append
        per follower (and one read-index round) for all of them."""
        one = self._request
        for client, req in batch:
            one(client, req)
        if self.role == LEADER:
            new_round = bool(self.reads.unstarted)
            if new_round:
                self.reads.start_round()
                if self.lease is not None:
                    self.lease.sent(self.reads.seq, self.ticks)
                if not self.peers:
                    self._confirm_reads()
            if self.peers:
                self._replicate(new_round)
            else:
                self._maybe_commit()

    def _request(self, client: bytes, req: ClientRequest) -> None:
        if self.role != LEADER:
            reply = dict(_NOT_LEADER_DEFINITE, id=req["id"])
            if self.leader is not None:
                reply["leader"] = self.leader
            self.out_replies.append((client, reply))
            return
        op = req["op"]
        if op == "read" and self.lease is not None and self.lease.holds(self.ticks):
            # BUG lease-read: answered without a round while our lease holds.
            self.reads.confirmed.append((client, req["id"], req["key"],
                                         max(self.commit_index, self.term_start_index)))
            self.reads.release(self.last_applied, self.out_reads)
            return
        # The read index: our commit index, at least our no-op's (thesis 6.4).
        if op == "read" and self._take_read(client, req,
                                            max(self.commit_index, self.term_start_index)):
            return
        if op == "txn" and (self.bug_txn_split or self.bug_txn_dirty_read) and \
                self._buggy_txn(client, req):
            return
        index = self.snap_index + len(self.log) + 1
        entry = Entry(index, self.term, req)
        self.log.append(entry)
        self.out_entries.append(entry)
        if self.dirty is not None:
            self.dirty.apply(req)
        if self.bug_early_ack and op == "write":
            # BUG early-ack: acknowledge once the write is in our own log.
            self.out_replies.append((client, {"id": req["id"], "ok": True}))
        else:
            self.pending[index] = (client, req["id"], self.term, None)

    def _buggy_txn(self, client: bytes, req: ClientRequest) -> bool:
        """The txn bugs; True if the request is taken care of here."""
        if self.dirty is not None and all(m[0] == "r" for m in req["txn"]):
            # BUG txn-dirty-read: answered from our log, committed or not.
            reply = dict(self.dirty.apply_txn(req["txn"]), id=req["id"])
            self.out_replies.append((client, reply))
            return True
        if not self.bug_txn_split or len(req["txn"]) < 2:
            return False
        self._append_part(client, req["id"], split_txn(req))
        return True

    def _append_part(self, client: bytes, rid: Any, parts: list[dict[str, Any]]) -> None:
        """BUG txn-split: the first of ``parts`` goes into our log with the
        client's waiter; the rest wait until it commits."""
        index = self.snap_index + len(self.log) + 1
        entry = Entry(index, self.term, parts[0])
        self.log.append(entry)
        self.out_entries.append(entry)
        self.pending[index] = (client, rid, self.term, None)
        if len(parts) > 1:
            self.split_next[index] = (client, rid, parts[1:])

    def _propose_next_parts(self, upto: int) -> None:
        """BUG txn-split: each split transaction whose part committed (at or
        below ``upto``) proposes its next part now."""
        due = sorted(i for i in self.split_next if i <= upto)
        if not due:
            return
        for i in due:
            client, rid, rest = self.split_next.pop(i)
            self._append_part(client, rid, rest)
        if self.peers:
            self._replicate(False)
        else:
            self._maybe_commit()

    def step(self, msg: Any) -> None:
        if msg.dest != self.id or msg.src not in self._peer_set:
            return
        kind = type(msg)
        term = msg.term
        if term > self.term:
            # Leader lease (check-quorum): while we hear from a leader, a
            # higher-term candidate is a disrupted node, not a successor.
            if ((kind is PreVote or kind is RequestVote) and self.leader is not None
                    and self.election_elapsed < self.election_min):
                return
            if kind is PreVote or (kind is PreVoteReply and msg.granted):
                pass  # pre-votes never change terms
            elif kind is AppendEntries or kind is Heartbeat or kind is InstallSnapshot:
                self._become_follower(term, msg.src)
            else:
                self._become_follower(term, None)
        elif term < self.term:
            # A stale leader learns our term from the reply and steps down; a
            # stale pre-candidate learns it from the rejection.
            if kind is AppendEntries or kind is Heartbeat:
                self.out_messages.append(HeartbeatReply(self.id, msg.src, self.term, 0))
            elif kind is PreVote:
                self.out_messages.append(PreVoteReply(self.id, msg.src, self.term, False))
            return
        self._handlers[kind](msg)
        if self.role == LEADER and kind is not AppendEntries and kind is not Heartbeat:
            pr = self.progress.get(msg.src)
            # The reply may have freed room (or asked for a resend, or a probe).
            if pr is not None and (pr.state != REPLICATE or pr.resend
                                   or pr.next <= self.snap_index + len(self.log)):
                self._send_appends(msg.src, pr)

    # -------------------------------------------------------------- elections

    def _grant(self, msg: PreVote | RequestVote, pre: bool) -> bool:
        can_vote = (
            self.vote == msg.src
            or (self.vote is None and self.leader is None)
            or (pre and msg.term > self.term)
        )
        if not can_vote:
            return False
        # BUG no-log-check: skip the election restriction (paper 5.4.1).
        return self.bug_no_log_check or self._up_to_date(msg.last_index, msg.last_term)

    def _on_prevote(self, msg: PreVote) -> None:
        if self._grant(msg, True):
            self.out_messages.append(PreVoteReply(self.id, msg.src, msg.term, True))
        else:
            self.out_messages.append(PreVoteReply(self.id, msg.src, self.term, False))

    def _on_vote(self, msg: RequestVote) -> None:
        if self._grant(msg, False):
            if self.vote != msg.src:
                self.vote = msg.src
                self._save_meta()
            self.election_elapsed = 0
            self.out_messages.append(RequestVoteReply(self.id, msg.src, self.term, True))
        else:
            self.out_messages.append(RequestVoteReply(self.id, msg.src, self.term, False))

    def _on_prevote_reply(self, msg: PreVoteReply) -> None:
        if self.role != PRE_CANDIDATE or msg.term != self.term + 1 or not msg.granted:
            return
        self.votes.add(msg.src)
        if len(self.votes) >= self.quorum:
            self._campaign()

    def _on_vote_reply(self, msg: RequestVoteReply) -> None:
        if self.role != CANDIDATE or not msg.granted:
            return
        self.votes.add(msg.src)
        if len(self.votes) >= self.quorum:
            self._become_leader()

    # ----------------------------------------------------------- follower side

    def _heard_leader(self, leader: str) -> None:
        if self.role != FOLLOWER:
            self._become_follower(self.term, leader)
        self.leader = leader
        self.election_elapsed = 0

    def _on_append(self, msg: AppendEntries) -> None:
        if self.role == LEADER:
            return  # cannot happen: one leader per term
        # _heard_leader(msg.src), inlined on the two messages every follower gets most
        if self.role != FOLLOWER:
            self._become_follower(self.term, msg.src)
        self.leader = msg.src
        self.election_elapsed = 0
        prev = msg.prev_index
        if prev < self.snap_index:
            # A delayed duplicate from before our snapshot: all that is settled.
            self.out_messages.append(AppendReply(self.id, msg.src, self.term, True, self.commit_index,
                                          0, 0, msg.ctx))
            return
        if self.term_at(prev) != msg.prev_term:
            hint = self._find_conflict_by_term(min(prev, self.last_index), msg.prev_term)
            self.out_messages.append(AppendReply(self.id, msg.src, self.term, False, prev, hint,
                                          self.term_at(hint) or 0, msg.ctx))
            return
        entries = msg.entries
        last_new = prev + len(entries)
        if entries:
            if prev == self.snap_index + len(self.log):
                self._append(entries)  # the common case: a pure extension
            else:
                for k, e in enumerate(entries):
                    t = self.term_at(e.index)
                    if t != e.term:
                        if t is not None:
                            self._truncate(e.index)
                        self._append(entries[k:])
                        break
        commit = min(msg.commit, last_new)
        if commit > self.commit_index:
            self._commit_to(commit)
        self.out_messages.append(AppendReply(self.id, msg.src, self.term, True, last_new, 0, 0, msg.ctx))

    def _on_heartbeat(self, msg: Heartbeat) -> None:
        if self.role == LEADER:
            return
        if self.role != FOLLOWER:  # _heard_leader(msg.src), inlined (see _on_append)
            self._become_follower(self.term, msg.src)
        self.leader = msg.src
        self.election_elapsed = 0
        # The leader caps ``commit`` at what it knows we store, so it is safe.
        commit = min(msg.commit, self.snap_index + len(self.log))
        if commit > self.commit_index:
            self._commit_to(commit)
        self.out_messages.append(HeartbeatReply(self.id, msg.src, self.term, msg.ctx))

    def _on_snapshot(self, msg: InstallSnapshot) -> None:
        if self.role == LEADER:
            return
        self._heard_leader(msg.src)
        snap = msg.snapshot
        if snap.index > self.commit_index:
            if self.term_at(snap.index) == snap.term:
                # We already hold the snapshot's last entry: just commit up to it.
                self._commit_to(snap.index)
            else:
                self._install(snap)
        self.out_messages.append(SnapshotReply(self.id, msg.src, self.term, self.commit_index, msg.ctx))

    def _install(self, snap: Snapshot) -> None:
        """Replace our whole state by a leader's snapshot (paper 7); the
        applier replaces the store (``Ready.restore``)."""
        try:
            KVStore.restore(snap.data)
        except ValueError:
            return  # undecodable: keep our state; the leader will resend
        if self.pending:
            # Whether our entries made it into the snapshot is unknowable.
            self._release_waiters(lambda i: True)
        self.log = []
        self.out_entries = []
        cut = self.snap_index + 1  # remove every entry we had after the old snapshot
        if self.out_truncate is None or cut < self.out_truncate:
            self.out_truncate = cut
        self.snapshot = snap
        self.out_snapshot = snap
        self.out_restore = True
        self.snap_index = snap.index
        self.snap_term = snap.term
        self.commit_index = self.last_applied = snap.index

    # ------------------------------------------------------------- leader side

    def _on_append_reply(self, msg: AppendReply) -> None:
        pr = self.progress.get(msg.src) if self.role == LEADER else None
        if pr is None:
            return
        pr.active = True
        if msg.success:
            index = msg.index
            if index > self.snap_index + len(self.log):
                return  # acks what we never sent: not from a sane peer of this term
            if index > pr.match:
                pr.match = index
                if pr.next <= index:
                    pr.next = index + 1
                if pr.state != REPLICATE:
                    pr.state = REPLICATE
                    pr.inflight.clear()
                else:
                    inflight = pr.inflight
                    while inflight and inflight[0] <= index:
                        inflight.popleft()
                self._maybe_commit()
            elif pr.state == PROBE:
                pr.paused = False
        else:
            rejected = msg.index
            if pr.state == REPLICATE:
                if rejected <= pr.match:
                    self._ack_ctx(pr, msg.ctx)
                    return  # stale
            elif pr.next - 1 != rejected:
                self._ack_ctx(pr, msg.ctx)
                return  # stale
            probe = self._find_conflict_by_term(msg.hint_index, msg.hint_term)
            pr.to_probe(max(pr.match + 1, min(rejected, probe + 1)))
        self._ack_ctx(pr, msg.ctx)

    def _on_heartbeat_reply(self, msg: HeartbeatReply) -> None:
        pr = self.progress.get(msg.src) if self.role == LEADER else None
        if pr is None:
            return
        pr.active = True
        if pr.match < self.snap_index + len(self.log):
            if pr.state == PROBE:
                pr.paused = False
            elif pr.state == REPLICATE:
                # No ack since the last heartbeat round may mean lost appends:
                # free a slot and probe with an append from ``next``; a gap
                # makes the follower reject and we fall back to probing.
                if len(pr.inflight) >= self.max_inflight:
                    pr.inflight.popleft()
                pr.resend = True
        self._ack_ctx(pr, msg.ctx)

    def _on_snapshot_reply(self, msg: SnapshotReply) -> None:
        pr = self.progress.get(msg.src) if self.role == LEADER else None
        if pr is None:
            return
        pr.active = True
        if msg.index > self.last_index:
            return  # acks what we never sent: not from a sane peer of this term
        if msg.index > pr.match:
            pr.match = msg.index
            self._maybe_commit()
        pr.to_probe(pr.match + 1)
        self._ack_ctx(pr, msg.ctx)

    def _maybe_commit(self) -> None:
        # Our own log counts at once (see "Durability").
        n = quorum_value(self.snap_index + len(self.log),
                         [pr.match for pr in self.progress.values()], self.quorum)
        if n <= self.commit_index:
            return
        # Paper 5.4.2: only an entry of our own term commits by counting replicas.
        # BUG commit-old-term: count replicas of earlier terms' entries too (Figure 8).
        if self.term_at(n) == self.term or self.bug_commit_old_term:
            self._commit_to(n)

    def _commit_to(self, index: int) -> None:
        """Hand the entries up to ``index`` to the applier, each with its waiter."""
        self.commit_index = index
        pending = self.pending
        out = self.out_committed
        log = self.log
        base = self.snap_index + 1
        if pending:
            pop = pending.pop
            waiters = self.out_waiters
            for i in range(self.last_applied + 1, index + 1):
                waiter = pop(i, None)
                if waiter is not None:
                    waiters.append((len(out), waiter))
                out.append(log[i - base])
        else:
            out.extend(log[self.last_applied + 1 - base:index + 1 - base])
        self.last_applied = index
        if self.reads.confirmed:
            self.reads.release(index, self.out_reads)
        if self.split_next:
            self._propose_next_parts(index)

    def compact(self, snapshot: Snapshot) -> None:
        """The applier's snapshot of everything up to ``snapshot.index``: drop
        those entries and save it (with its term) in the next Ready."""
        index = snapshot.index
        if index <= self.snap_index or index > self.last_applied:
            return  # stale (a leader's snapshot overtook it) or not ours to take
        snap = Snapshot(index, self.term_at(index) or 0, snapshot.data)
        del self.log[: index - self.snap_index]
        self.snap_index, self.snap_term = index, snap.term
        self.snapshot = snap
        self.out_snapshot = snap

    # --------------------------------------------------------------- read-index

    def _ack_ctx(self, pr: Progress, ctx: int) -> None:
        if ctx > pr.ctx:
            pr.ctx = ctx
            oldest = self.reads.oldest_round()
            if oldest is not None and ctx >= oldest:
                self._confirm_reads()

    def _confirm_reads(self) -> None:
        reads = self.reads
        upto = quorum_value(reads.seq, [pr.ctx for pr in self.progress.values()], self.quorum)
        reads.confirm(upto)
        if self.lease is not None:
            self.lease.confirmed(upto)
        if reads.confirmed:
            reads.release(self.last_applied, self.out_reads)

    # ----------------------------------------------------------------- sending

    def _broadcast_heartbeat(self) -> None:
        if self.lease is not None:  # BUG lease-read: every heartbeat is a round it can count
            self.reads.start_round()
            self.lease.sent(self.reads.seq, self.ticks)
        commit, term, ctx = self.commit_index, self.term, self.reads.seq
        for p, pr in self.progress.items():
            self.out_messages.append(Heartbeat(self.id, p, term, min(pr.match, commit), ctx))

    def _send_appends(self, peer: str, pr: Progress) -> bool:
        """Send ``peer`` what it lacks, within its flow control; True if sent."""
        if pr.next <= self.snap_index:
            if pr.state == SNAPSHOT and self.ticks - pr.snap_tick < self.election_min:
                return False
            pr.state = SNAPSHOT
            pr.snap_tick = self.ticks
            assert self.snapshot is not None
            self.out_messages.append(InstallSnapshot(self.id, peer, self.term, self.snapshot,
                                              self.reads.seq))
            return True
        last = self.snap_index + len(self.log)
        if pr.state == PROBE:
            if pr.paused or (pr.next > last and pr.match >= last):
                return False
            self.out_early.append(self._append_msg(peer, pr.next, last))
            pr.paused = True
            return True
        if pr.state != REPLICATE:
            return False
        sent = False
        inflight = pr.inflight
        while pr.next <= last and len(inflight) < self.max_inflight:
            msg = self._append_msg(peer, pr.next, last)
            self.out_early.append(msg)
            pr.next += len(msg.entries)
            inflight.append(pr.next - 1)
            sent = True
        if pr.resend and not sent:
            self.out_early.append(self._append_msg(peer, pr.next, pr.next - 1))
            sent = True
        pr.resend = False
        return sent

    def _append_msg(self, peer: str, start: int, last: int) -> AppendEntries:
        end = min(last, start + self.max_batch - 1)
        base = self.snap_index + 1
        prev = start - 1
        # term_at(prev), inlined: _send_appends sends only from past the snapshot
        assert self.snap_index <= prev <= self.snap_index + len(self.log)
        prev_term = self.snap_term if prev < base else self.log[prev - base].term
        return AppendEntries(self.id, peer, self.term, prev, prev_term,
                             self.log[start - base:end - base + 1], self.commit_index,
                             self.reads.seq)

    # ------------------------------------------------------------------ output

    def _replicate(self, new_round: bool) -> None:
        """Send every follower what it lacks; with ``new_round``, a heartbeat
        carrying the new read round to those that got no append."""
        hb = None
        for p, pr in self.progress.items():
            if not self._send_appends(p, pr) and new_round:
                if hb is None:
                    hb = (self.term, self.commit_index, self.reads.seq)
                self.out_messages.append(Heartbeat(self.id, p, hb[0], min(pr.match, hb[1]), hb[2]))

    # ------------------------------------------------------------------ output

    def status(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "term": self.term,
            "voted_for": self.vote,
            "leader": self.leader,
            "commit_index": self.commit_index,
            "last_applied": self.applied_index,
            "log_len": self.last_index,
            "led": list(self.led),
            "restored": self.restored,
        }


def make_core(config: CoreConfig, restored: Restored) -> RaftCore:
    return RaftCore(config, restored)
