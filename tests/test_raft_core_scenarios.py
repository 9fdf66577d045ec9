"""Raft core scenarios, scripted message by message on the simulated network.

The paper's Figure 8, pre-vote and check-quorum, snapshots and
InstallSnapshot, restart from the disk, client replies on leadership changes,
batching and pipelining, and one targeted test per known-bug flag showing
that the flag changes exactly the behaviour its name says.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from testkit.raftkit import (
    RaftInvariants,
    deliver_where,
    elect,
    has_index_from,
    new_net,
    raft,
    settle,
)

from nodes.common.applier import Applier
from nodes.common.core_api import CoreConfig, Entry, Restored, Snapshot, Timing
from nodes.raft import PROTOCOL, make_core
from nodes.raft.core import RaftCore
from nodes.raft.messages import (
    AppendEntries,
    InstallSnapshot,
    PreVote,
    RequestVote,
    RequestVoteReply,
)
from nodes.sim import FAST_TIMING, SimError, SimNet


def figure8(bugs: list[str]) -> tuple[SimNet, RaftInvariants]:
    """Raft paper, Figure 8, with no-op entries. Returns after step (c)."""
    net, inv = new_net(8, 5, bugs=bugs, max_batch=1)
    n1, n2, n3, n4, n5 = net.ids
    # Term 1: n1 leads and its no-op (index 1) reaches everyone.
    elect(net, n1, [n2, n3, n4, n5])
    net.deliver_all()
    assert raft(net, n1).commit_index == 1
    # (a) a write at index 2 (term 1) reaches n2 only; then n1 crashes.
    net.propose(n1, {"op": "write", "key": "x", "value": "a"})
    deliver_where(net, lambda s, d, m: {s, d} == {n1, n2})
    assert raft(net, n2).term_at(2) == 1
    net.crash(n1)
    # (b) n5 wins term 2 with n3 and n4; its no-op lands at index 2 in its log only.
    elect(net, n5, [n3, n4])
    assert raft(net, n5).term_at(2) == 2 and raft(net, n3).last_index == 1
    net.crash(n5)
    net.in_flight.clear()
    # (c) n1 restarts, wins a later term with n2 and n3 and copies index 2
    # (term 1) to n3 and n4, but its own no-op at index 3 reaches no one.
    net.restart(n1)
    elect(net, n1, [n2, n3])
    term = raft(net, n1).term
    assert term >= 3 and raft(net, n1).term_at(3) == term

    def keep(s: str, d: str, m: Any) -> bool:
        if not {s, d} <= {n1, n2, n3, n4}:
            return False
        # Drop an append that would land index 3 (one its receiver cannot reject).
        return not (has_index_from(m, 3) and raft(net, d).last_index >= m.prev_index)

    for _ in range(6):
        deliver_where(net, keep)
        net.tick(n1)
    # Index 2 (term 1) is on a majority, and n1 knows it (it counts n3 and n4).
    assert raft(net, n3).term_at(2) == 1 and raft(net, n4).term_at(2) == 1
    assert all(raft(net, i).last_index == 2 for i in (n2, n3, n4))
    return net, inv


def figure8_step_d(net: SimNet) -> None:
    """(d) n1 crashes; n5 wins with n2, n3, n4 and replicates its index 2."""
    n1, n2, n3, n4, n5 = net.ids
    net.crash(n1)
    net.restart(n5)
    elect(net, n5, [n2, n3, n4])
    for _ in range(10):
        net.deliver_all()
        net.tick(n5)


def test_figure8_leader_does_not_commit_an_old_term_entry_by_counting() -> None:
    net, _inv = figure8(bugs=[])
    n1 = net.ids[0]
    # A majority stores index 2 and n1 knows it, but its term (1) is not n1's:
    # no commit (n1 restarted, so it has not even learnt index 1 is committed).
    assert raft(net, n1).progress["n3"].match == 2 and raft(net, n1).progress["n4"].match == 2
    assert raft(net, n1).commit_index < 2
    figure8_step_d(net)  # n5 legally overwrites index 2: it was never committed
    assert raft(net, "n3").term_at(2) == 2
    settle(net)


def test_figure8_commit_old_term_bug_commits_then_loses_the_entry() -> None:
    net, _inv = figure8(bugs=["commit-old-term"])
    n1 = net.ids[0]
    assert raft(net, n1).commit_index == 2  # the bug: committed by counting replicas
    assert net.kv(n1).data == {"x": "a"}
    with pytest.raises(SimError, match="leader completeness|state machine safety"):
        figure8_step_d(net)


# -------------------------------------------------- pre-vote and check-quorum


def stable_leader(seed: int = 1, n: int = 3, **options: Any) -> tuple[SimNet, str]:
    net, _inv = new_net(seed, n, **options)
    assert net.run_until(lambda: len(net.leaders()) == 1)
    net.run_until(lambda: False, 5)  # let the no-op commit everywhere
    return net, net.leaders()[0]


def test_isolated_node_rejoining_does_not_disturb_the_leader() -> None:
    net, leader = stable_leader()
    term = raft(net, leader).term
    loner = next(i for i in net.ids if i != leader)
    net.isolate(loner)
    net.run_until(lambda: False, 200)  # the loner times out again and again
    assert raft(net, loner).role == "pre-candidate"
    assert raft(net, loner).term == term, "pre-vote must not bump the term of a lone node"
    net.heal()
    net.run_until(lambda: False, 100)
    assert net.leaders() == [leader]
    assert all(raft(net, i).term == term for i in net.ids)
    assert raft(net, loner).leader == leader


def test_node_in_leader_lease_ignores_higher_term_vote_requests() -> None:
    net, leader = stable_leader()
    follower = next(i for i in net.ids if i != leader)
    other = next(i for i in net.ids if i not in (leader, follower))
    core = raft(net, follower)
    term = core.term
    core.step(RequestVote(other, follower, term + 5, 10**6, term + 4))
    assert core.term == term and core.ready() is None  # ignored: it hears its leader


def test_leader_cut_from_quorum_steps_down_and_majority_elects_new_leader() -> None:
    net, leader = stable_leader()
    term = raft(net, leader).term
    w = net.propose(leader, {"op": "write", "key": "x", "value": 1})
    r = net.propose(leader, {"op": "read", "key": "x"})
    net.isolate(leader)
    net.run_until(lambda: raft(net, leader).role != "leader", 100)
    assert raft(net, leader).role != "leader", "check-quorum: a leader without a quorum steps down"
    # The write may still commit under a new leader: its writer keeps waiting.
    assert w is not None and w.reply is None
    # A read waiting for read-index confirmation never takes effect: definite.
    assert r is not None and r.reply is not None and r.reply["definite"] is True
    others = [i for i in net.ids if i != leader]
    assert net.run_until(lambda: any(raft(net, i).role == "leader" for i in others), 300)
    new = next(i for i in others if raft(net, i).role == "leader")
    assert raft(net, new).term > term
    net.heal()
    net.run_until(lambda: raft(net, leader).leader == new, 300)
    assert raft(net, leader).term == raft(net, new).term
    # The new leader's log overwrote the write, which only the old leader had:
    # its writer hears an outcome-unknown error (never "definite").
    assert net.run_until(lambda: w.reply is not None, 300)
    assert w.reply is not None and not w.reply["ok"]
    assert w.reply["error"] in ("not_leader", "unavailable") and "definite" not in w.reply


def test_follower_redirects_clients_with_a_definite_not_leader() -> None:
    net, leader = stable_leader()
    follower = next(i for i in net.ids if i != leader)
    r = net.propose(follower, {"op": "write", "key": "x", "value": 1})
    assert r is not None and r.reply is not None
    assert {k: v for k, v in r.reply.items() if k != "id"} == {
        "ok": False, "error": "not_leader", "definite": True, "leader": leader}


# ------------------------------------------------ replication and durability


def test_group_commit_and_batching_one_ready_one_append_per_follower() -> None:
    net, leader = stable_leader()
    core = raft(net, leader)
    net.deliver_all()
    net.propose_batch(leader, [{"op": "write", "key": f"k{k}", "value": k} for k in range(100)],
                      flush=False)
    rd = core.ready()
    assert rd is not None
    assert [e.index for e in rd.entries] == list(range(core.last_index - 99, core.last_index + 1))
    # Appends claim nothing about the leader's disk: they may leave before its fsync.
    appends = [m for m in rd.early_messages if isinstance(m, AppendEntries)]
    assert not any(isinstance(m, AppendEntries) for m in rd.messages)
    assert sorted(m.dest for m in appends) == sorted(i for i in net.ids if i != leader)
    assert all(len(m.entries) == 100 for m in appends)
    assert not rd.replies  # nothing is acknowledged before a quorum stores it


def test_pipelining_keeps_several_appends_in_flight() -> None:
    net, leader = stable_leader()
    net.deliver_all()
    for k in range(5):
        net.propose(leader, {"op": "write", "key": "k", "value": k})
    follower = next(i for i in net.ids if i != leader)
    to_follower = [m for s, d, m in net.in_flight if d == follower and isinstance(m, AppendEntries)]
    assert len(to_follower) == 5  # one per flush, none waiting for an ack
    assert [m.prev_index for m in to_follower] == sorted(m.prev_index for m in to_follower)


def test_fast_backtracking_skips_a_divergent_term_in_one_round_trip() -> None:
    """A follower holding 50 entries of a stale term costs one reject, not 50."""
    net, _inv = new_net(3, 3)
    for i in net.ids:
        net.crash(i)
    net.in_flight.clear()
    w = {"op": "write", "key": "k", "value": 0}
    current = [Entry(1, 1, None)] + [Entry(i, 3, w) for i in range(2, 61)]
    stale = [Entry(1, 1, None)] + [Entry(i, 2, w) for i in range(2, 52)]
    for node, log in (("n1", current), ("n2", stale), ("n3", current)):
        disk = net.nodes[node].disk
        disk.meta = {"term": 3, "vote": None}
        disk.entries = {e.index: e for e in log}
    rejects: list[Any] = []
    net.observers.append(lambda n, node, rd: rejects.extend(
        m for m in (rd.messages if rd else []) if getattr(m, "success", True) is False))
    for i in net.ids:
        net.restart(i)
    assert net.run_until(lambda: raft(net, "n2").last_index == 61, 300)
    assert raft(net, "n2").term_at(2) == 3
    assert len(rejects) == 1, rejects


def test_restart_restores_term_vote_log_and_state() -> None:
    net, leader = stable_leader()
    for k in range(10):
        w = net.propose(leader, {"op": "write", "key": "x", "value": k})
    net.run_until(lambda: w is not None and w.reply is not None)
    follower = next(i for i in net.ids if i != leader)
    net.run_until(lambda: raft(net, follower).commit_index == raft(net, leader).commit_index)
    before = raft(net, follower)
    term, vote, last = before.term, before.vote, before.last_index
    net.crash(follower)
    net.restart(follower)
    after = raft(net, follower)
    assert (after.term, after.vote, after.last_index) == (term, vote, last)
    assert after.commit_index == 0  # commit is volatile: learnt again from the leader
    net.run_until(lambda: raft(net, follower).last_applied == raft(net, leader).commit_index)
    assert net.kv(follower).data == {"x": 9}


def test_snapshot_compacts_and_install_snapshot_catches_up_a_far_follower() -> None:
    net, leader = stable_leader(snapshot_entries=10)
    laggard = next(i for i in net.ids if i != leader)
    net.crash(laggard)
    for k in range(60):
        net.propose(leader, {"op": "write", "key": f"k{k % 7}", "value": k})
        net.tick_all()
        net.deliver_all()
    lead = raft(net, leader)
    assert lead.snap_index >= 50 and len(lead.log) < 20
    assert net.nodes[leader].disk.snapshot is not None
    assert min(net.nodes[leader].disk.entries, default=lead.snap_index + 1) > lead.snap_index
    snapshots: list[InstallSnapshot] = []
    net.observers.append(lambda n, node, rd: snapshots.extend(
        m for m in (rd.messages if rd else []) if isinstance(m, InstallSnapshot)))
    net.restart(laggard)
    assert net.run_until(lambda: raft(net, laggard).last_applied == lead.commit_index, 200)
    assert snapshots and snapshots[0].dest == laggard
    assert net.kv(laggard).data == net.kv(lead.id).data
    # Restart from snapshot plus log gives the same state.
    net.crash(laggard)
    net.restart(laggard)
    core = raft(net, laggard)
    applier = net.nodes[laggard].applier
    assert core.snap_index > 0 and applier is not None and applier.applied == core.snap_index
    assert net.kv(laggard).data  # the store comes back from the snapshot, not from replay
    net.run_until(lambda: raft(net, laggard).last_applied == lead.commit_index, 200)
    assert net.kv(laggard).data == net.kv(lead.id).data


def test_restored_snapshot_sets_state_and_rejects_gaps() -> None:
    cfg = CoreConfig("n1", ("n2", "n3"), Timing(), {}, random.Random(1))
    snap = Snapshot(5, 2, b"\x81\xa1x\x07")  # {"x": 7}
    core = make_core(cfg, Restored({"term": 3, "vote": "n2"}, snap,
                                   [Entry(6, 3, {"op": "write", "key": "y", "value": 1})]))
    assert (core.term, core.vote, core.snap_index, core.last_index) == (3, "n2", 5, 6)
    assert Applier("n1", snap, 10_000).kv.data == {"x": 7} and core.last_applied == 5
    with pytest.raises(ValueError, match="gap"):
        make_core(cfg, Restored(None, snap, [Entry(7, 3, None)]))


def test_read_mode_log_appends_reads_and_read_index_does_not() -> None:
    for mode, grows in (("index", False), ("log", True)):
        net, leader = stable_leader(read_mode=mode)
        before = raft(net, leader).last_index
        r = net.propose(leader, {"op": "read", "key": "x"})
        assert r is not None
        assert net.run_until(lambda r=r: r.reply is not None)
        assert r.reply == {"ok": True, "value": None, "id": r.req["id"]}
        assert (raft(net, leader).last_index > before) is grows


def test_read_index_waits_for_a_quorum_round() -> None:
    net, leader = stable_leader()
    net.deliver_all()
    net.isolate(leader)
    r = net.propose(leader, {"op": "read", "key": "x"})
    net.deliver_all()
    assert r is not None and r.reply is None  # no quorum confirmed leadership yet
    net.heal()
    net.tick(leader)
    net.deliver_all()
    assert r.reply is not None and r.reply["ok"]


# ------------------------------------------------------------------ bug flags


def partitioned_old_leader(bugs: list[str]) -> tuple[SimNet, str, str]:
    """n-leader writes x=1; then it is cut off (and not ticked, so it still
    believes it leads) while the others elect a new leader that writes x=2."""
    net, leader = stable_leader(bugs=bugs)
    w = net.propose(leader, {"op": "write", "key": "x", "value": 1})
    net.run_until(lambda: w is not None and w.reply is not None)
    net.isolate(leader)
    others = [i for i in net.ids if i != leader]
    elect(net, others[0], others[1:])
    new = others[0]
    w2 = net.propose(new, {"op": "write", "key": "x", "value": 2})
    deliver_where(net, lambda s, d, m: s in others and d in others)
    net.tick(new)
    deliver_where(net, lambda s, d, m: s in others and d in others)
    assert w2 is not None and w2.reply is not None and w2.reply["ok"]
    assert raft(net, leader).role == "leader"
    return net, leader, new


@pytest.mark.parametrize("bugs", [[], ["stale-read"]])
def test_stale_read_flag_answers_from_a_deposed_leader(bugs: list[str]) -> None:
    net, old, _new = partitioned_old_leader(bugs)
    r = net.propose(old, {"op": "read", "key": "x"})
    assert r is not None
    if bugs:
        assert r.reply is not None and r.reply["value"] == 1  # stale: x is 2 by now
    else:
        assert r.reply is None  # waits for a heartbeat round it cannot win


@pytest.mark.parametrize("bugs", [[], ["early-ack"]])
def test_early_ack_flag_acknowledges_before_a_quorum_and_loses_the_write(bugs: list[str]) -> None:
    net, leader = stable_leader(bugs=bugs)
    net.isolate(leader)
    w = net.propose(leader, {"op": "write", "key": "x", "value": 1})
    assert w is not None
    if not bugs:
        assert w.reply is None
        return
    assert w.reply is not None and w.reply["ok"]  # acknowledged with no follower holding it
    net.deliver_all()  # its appends are lost on the cut links
    net.crash(leader)
    net.heal()
    others = [i for i in net.ids if i != leader]
    assert net.run_until(lambda: any(raft(net, i).role == "leader" for i in others), 300)
    new = next(i for i in others if raft(net, i).role == "leader")
    r = net.propose(new, {"op": "read", "key": "x"})
    assert net.run_until(lambda: r is not None and r.reply is not None)
    assert r is not None and r.reply is not None and r.reply["value"] is None  # the ack'd write is gone


def vote_core(bugs: list[str], restored: Restored | None = None) -> RaftCore:
    cfg = CoreConfig("n1", ("n2", "n3"), FAST_TIMING, {"bugs": bugs}, random.Random(1))
    return make_core(cfg, restored or Restored())


def granted(core: RaftCore) -> list[bool]:
    rd = core.ready()
    assert rd is not None
    return [m.granted for m in rd.messages if isinstance(m, RequestVoteReply)]


@pytest.mark.parametrize("bugs", [[], ["forget-vote"]])
def test_forget_vote_flag_lets_a_restarted_node_vote_twice_in_a_term(bugs: list[str]) -> None:
    core = vote_core(bugs)
    core.step(RequestVote("n2", "n1", 5, 0, 0))
    rd = core.ready()
    assert rd is not None and rd.meta is not None
    assert [m.granted for m in rd.messages] == [True]
    assert rd.meta["term"] == 5
    restarted = vote_core(bugs, Restored(rd.meta, None, []))
    restarted.step(RequestVote("n3", "n1", 5, 0, 0))
    assert granted(restarted) == ([True] if bugs else [False])


@pytest.mark.parametrize("bugs", [[], ["no-log-check"]])
def test_no_log_check_flag_grants_votes_to_a_stale_log(bugs: list[str]) -> None:
    log = [Entry(1, 1, None), Entry(2, 2, {"op": "write", "key": "x", "value": 1})]
    core = vote_core(bugs, Restored({"term": 2, "vote": None}, None, log))
    core.step(RequestVote("n2", "n1", 3, 1, 1))  # candidate lacks our term-2 entry
    assert granted(core) == ([True] if bugs else [False])
    core2 = vote_core(bugs, Restored({"term": 2, "vote": None}, None, log))
    core2.step(PreVote("n2", "n1", 3, 1, 1))
    rd = core2.ready()
    assert rd is not None and [m.granted for m in rd.messages] == ([True] if bugs else [False])


@pytest.mark.parametrize("bugs", [[], ["no-log-check"]])
def test_no_log_check_flag_lets_a_stale_node_win_and_erase_committed_writes(
        bugs: list[str]) -> None:
    net, leader = stable_leader(bugs=bugs)
    stale, other = (i for i in net.ids if i != leader)
    net.crash(stale)
    w = net.propose(leader, {"op": "write", "key": "x", "value": 1})
    assert net.run_until(lambda: w is not None and w.reply is not None)
    assert w is not None and w.reply is not None and w.reply["ok"]  # committed on leader+other
    net.crash(leader)
    net.restart(stale)
    if not bugs:
        with pytest.raises(AssertionError, match="could not win"):
            elect(net, stale, [other])  # other's log is more up to date: no vote
        return
    net.observers.clear()  # the safety checker would stop us here; watch the damage instead
    elect(net, stale, [other])
    r = net.propose(stale, {"op": "read", "key": "x"})
    for _ in range(10):
        deliver_where(net, lambda s, d, m: {s, d} == {stale, other})
        net.tick(stale)
    assert r is not None and r.reply is not None
    assert r.reply["value"] is None  # the acknowledged write x=1 is gone
    assert raft(net, other).term_at(2) == raft(net, stale).term  # overwritten on other too


def test_bug_flags_are_off_by_default() -> None:
    core = vote_core([])
    assert not (core.bug_stale_read or core.bug_forget_vote or core.bug_no_log_check
                or core.bug_commit_old_term or core.bug_early_ack)


# ------------------------------------------------------------------- codec


def all_messages() -> list[Any]:
    from nodes.raft import messages as m
    e = [Entry(4, 2, {"op": "write", "key": "k", "value": [1, "x"]}), Entry(5, 2, None)]
    return [
        m.PreVote("n1", "n2", 3, 4, 2), m.PreVoteReply("n2", "n1", 3, True),
        m.RequestVote("n1", "n2", 3, 4, 2), m.RequestVoteReply("n2", "n1", 3, False),
        m.AppendEntries("n1", "n2", 3, 3, 1, e, 2, 7),
        m.AppendReply("n2", "n1", 3, False, 3, 1, 1, 7),
        m.Heartbeat("n1", "n2", 3, 2, 8), m.HeartbeatReply("n2", "n1", 3, 8),
        m.InstallSnapshot("n1", "n2", 3, Snapshot(9, 2, b"\x80"), 9),
        m.SnapshotReply("n2", "n1", 3, 9, 9),
    ]


def test_codec_round_trips_every_message_through_msgpack() -> None:
    import msgpack
    codec = PROTOCOL.codec
    for msg in all_messages():
        wire = msgpack.unpackb(msgpack.packb(codec.encode(msg), use_bin_type=True), raw=False)
        assert wire["type"] and wire["src"] == msg.src and wire["dest"] == msg.dest
        back = codec.decode(wire)
        assert back == msg and codec.dest(back) == msg.dest


@pytest.mark.parametrize("bad", [
    None, [], "append", {"type": "nope"}, {"type": ["list"]},
    {"type": "heartbeat", "src": "n1", "dest": "n2", "term": -1, "commit": 0, "ctx": 0},
    {"type": "heartbeat", "src": "n1", "dest": "n2", "term": True, "commit": 0, "ctx": 0},
    {"type": "heartbeat", "src": 1, "dest": "n2", "term": 1, "commit": 0, "ctx": 0},
    {"type": "heartbeat", "src": "n1", "dest": "n2", "term": 1, "commit": 0},
    {"type": "vote_reply", "src": "n1", "dest": "n2", "term": 1, "granted": 1},
    {"type": "append", "src": "n1", "dest": "n2", "term": 1, "prev_index": 0, "prev_term": 0,
     "entries": [[1, {"op": "delete", "key": "k"}]], "commit": 0, "ctx": 0},
    {"type": "append", "src": "n1", "dest": "n2", "term": 1, "prev_index": 0, "prev_term": 0,
     "entries": [[1]], "commit": 0, "ctx": 0},
    {"type": "append", "src": "n1", "dest": "n2", "term": 1, "prev_index": 0, "prev_term": 0,
     "entries": {"a": 1}, "commit": 0, "ctx": 0},
    {"type": "snapshot", "src": "n1", "dest": "n2", "term": 1,
     "snapshot": [1, 1, "not bytes"], "ctx": 0},
    {"type": "snapshot", "src": "n1", "dest": "n2", "term": 1,
     "snapshot": [1, 1, b"\xc1 not a key-value map"], "ctx": 0},
])
def test_codec_rejects_malformed_maps(bad: Any) -> None:
    with pytest.raises(ValueError):
        PROTOCOL.codec.decode(bad)


# ---------------------------------------------------------- hostile input


def test_well_typed_nonsense_from_peers_never_crashes_a_core() -> None:
    """The codec stops malformed maps; a well-typed message with absurd
    numbers (an ack of entries never sent, a reject hint far past our log, an
    undecodable snapshot) must be survivable too, by leader and follower."""
    from nodes.raft import messages as m

    rng = random.Random(7)
    for round_ in range(40):
        net, leader = stable_leader(seed=round_)
        target = raft(net, leader if round_ % 2 else net.ids[net.ids.index(leader) - 1])
        for _ in range(60):
            src = rng.choice(target.peers)
            # Mostly the current term (acted on); rarely a higher one (deposes).
            r = rng.random()
            term = max(0, target.term + (1 if r < 0.02 else -1 if r < 0.1 else 0))

            def num() -> int:
                return rng.choice((0, 1, 2, 3, rng.randrange(20), 2**62))

            snap = Snapshot(num(), rng.randrange(3), rng.choice((b"", b"\x81\xa1k\x01", b"\xc1")))
            msg = rng.choice((
                m.AppendReply(src, target.id, term, rng.random() < 0.5, num(), num(), num(), num()),
                m.HeartbeatReply(src, target.id, term, num()),
                m.SnapshotReply(src, target.id, term, num(), num()),
                m.Heartbeat(src, target.id, term, num(), num()),
                m.AppendEntries(src, target.id, term, num(), num(), [], num(), num()),
                m.InstallSnapshot(src, target.id, term, snap, num()),
                m.PreVote(src, target.id, term, num(), num()),
                m.RequestVote(src, target.id, term, num(), num()),
            ))
            target.step(msg)
            target.tick()
            rd = target.ready()
            if rd is not None:
                target.advance(rd)
