"""Targeted fault scripts for the bugs a random fault mix cannot reach: a vote
or promise that a node forgets when it restarts.

Owns ``revote(player, hold)``, the ``revote`` move of faults/mixes.py
(the fault mix of ``forget-vote`` and ``forget-promise``). A forgotten vote
(Raft) or promise (Paxos) is harmless unless the restarted node is asked
*again in the same term/ballot* by a rival who can win with it. Random kills
almost never land in that window: pre-vote, leases and the first winner's
AppendEntries (which makes the voter's log newer than any rival's) close it
within a round trip. The script opens it on purpose, the way a Jepsen
nemesis is written against a known failure mode:

1. Split the cluster: the current leader L in the minority M, the others
   in the majority J, which is exactly a quorum, so J's new leader W needs
   every vote of J. Only one node of J can win (``split_for_one_winner``):
   the others cannot hear each other. Without that, two of J time out
   together about every other time, split the vote and push J's term past
   the one M will try next, and then nothing of step 4 can happen. W's
   messages reach the others ``DELAY_MS`` late (Raft), so a voter hears
   from W only that long after its vote left.
2. Wait (polling ``status``) until W leads J in a newer term/ballot; V is
   one of W's voters (picked by the rng).
3. Move V to M's side in one step (the grudge also drops W's delayed
   messages still in flight), kill V and restart it at once: V has voted in
   W's term but holds none of W's entries.
4. A node with the bug forgot its vote/promise: M's candidate wins V in the
   *same* term (Raft), or the old leader's Accepts are taken again although V
   promised W a higher ballot (Paxos). Correct nodes refuse, and M elects in
   a later term / L learns the higher ballot and steps down.
5. Once V follows someone on M's side, M works with V for half the time
   left; then V becomes the bridge of a chain J - V - M, so both sides'
   leaders can reach V for the rest of the window. With the bug two leaders of one term (two values of
   one slot) now coexist and clients see their contradicting answers.

The moves are steps of a reactive plan (faults/plan.py ``Player``): a
generator that emits operations through the faults.mixes.MixPlayer helpers
and reads node status from the views the interpreter sends, so the same
interpreter carries them out as every other plan. Everything random comes
from the player's rng; the script never runs past ``hold`` seconds and
returns early (the window's end ends what it started) when a step's
condition does not come. On a
network that cannot delay messages (netns: loss only) ``revote`` rests, as
``figure-8`` does; ``repromise`` needs no delay. See docs/faults.md.
"""

from __future__ import annotations

from typing import Any

from faults.partition import Partition, cut
from faults.plan import Steps, term_of

#: Delay on W's links to the rest of J (ms, revote only): the window in which
#: V has voted but holds nothing of W's term. Polling + the kill take a few ms.
DELAY_MS = 60
#: Share of the time left after step 4 that M works with V alone.
M_SHARE = 0.5
#: Slots W of ``repromise`` must choose with V's help before V dies, and how
#: long it may take (s).
CHOSEN = 20
CHOSEN_WAIT_S = 1.0
#: Status poll period while waiting for the vote (s).
POLL_S = 0.005


def revote(p: Any, hold: float) -> Steps:
    """The ``revote`` move for Raft's votes (see the module header); ``p`` is
    a faults.mixes.MixPlayer."""
    yield from _forget_after_vote(p, hold, delay_ms=DELAY_MS, chosen=0, m_share=0.0)


def repromise(p: Any, hold: float) -> Steps:
    """The ``repromise`` move for Paxos promises (see the module header)."""
    yield from _forget_after_vote(p, hold, delay_ms=0, chosen=CHOSEN, m_share=M_SHARE)


def _forget_after_vote(p: Any, hold: float, *, delay_ms: int, chosen: int,
                       m_share: float) -> Steps:
    """Steps 1-5 of the module header. ``delay_ms``: delay of W's messages
    inside J (step 1); ``chosen``: slots W must have chosen with V's help
    before V dies (step 2); ``m_share``: share of the time left that M works
    with V before the chain (step 5)."""
    deadline = p.view.now + hold

    def left() -> float:
        return max(0.0, deadline - p.view.now)

    rng = p.rng
    nodes = list(p.view.node_ids)
    quorum = len(nodes) // 2 + 1
    leader = p.leader()
    can_delay = "delay" in p.link_faults  # False without a network, or on netns
    if leader not in nodes or len(nodes) < 3 or not p.network or (delay_ms and not can_delay):
        return  # rests for its window
    t0 = term_of(p.status(leader))
    others = sorted(n for n in nodes if n != leader)
    rng.shuffle(others)
    majority = sorted(others[:quorum])  # J: W and its voters, exactly a quorum without L
    minority = sorted([leader, *others[quorum:]])  # M: with V, a quorum (odd sizes)
    if len(minority) + 1 < quorum or len(majority) < 2:
        return  # even cluster sizes: M + V is no quorum

    # 1. L's side | J, where only W can win (see ``split_for_one_winner``):
    # J's election succeeds at its first try, in the term right after L's,
    # which is the term M's first candidate will ask V for in step 4.
    winner, electors = yield from split_for_one_winner(p, minority, majority, "revote",
                                                       delay_ms)

    # 2. W leads J in a newer term, and V (rng order) voted for it there.
    def voted() -> tuple[str, str] | None:
        ws = p.status(winner)
        term = term_of(ws)
        if not ws or ws.get("role") != "leader" or term <= t0:
            return None
        for v in electors:
            vs = p.status(v)
            if vs and vs.get("voted_for") == winner and term_of(vs) == term:
                return winner, v
        return None

    got = yield from p.wait_for(voted, left(), POLL_S)
    if got is None:
        return
    winner, voter = got
    if chosen:
        # W chooses values with V's acceptance (and answers its clients).
        start = (p.status(winner) or {}).get("commit_index")

        def has_chosen() -> bool | None:
            now = (p.status(winner) or {}).get("commit_index")
            if isinstance(now, int) and isinstance(start, int) and now >= start + chosen:
                return True
            return None

        if (yield from p.wait_for(has_chosen, min(CHOSEN_WAIT_S, left()), 0.01)) is None:
            return
    rivals = [n for n in majority if n != voter]
    # 3. V dies first (alive on L's side, it would tell L about W and depose
    # it), joins L's side (J's late messages to it die with the grudge),
    # forgets, returns.
    yield from p.kill([voter])
    yield from p.switch(Partition("revote-move", False, cut([*minority, voter], rivals)))
    yield from p.clear_links()
    yield from p.restart()

    # 4. Wait for V to follow someone on L's side.
    def follows() -> str | None:
        leader_now = (p.status(voter) or {}).get("leader")
        return leader_now if leader_now in minority else None

    if (yield from p.wait_for(follows, left(), 0.02)) is None:
        return
    # Let L's side work with V for a share of what is left (with the bug: on
    # a vote or promise V should not have given), then
    # 5. the chain J - V - M: V hears and is heard by both sides.
    yield from p.until(p.view.now + left() * m_share)
    if left() <= 0:
        return
    yield from p.switch(Partition("revote-chain", False, cut(minority, rivals)))


def split_for_one_winner(p: Any, minority: list[str], majority: list[str], shape: str,
                         delay_ms: int) -> Steps:
    """Partition ``minority`` | ``majority`` (J) so that exactly one J node, W,
    can win J's next election; returns W and the others of J (its electors, in
    rng order). W is J's longest log (ties by the rng), so every elector
    grants it; the electors cannot hear each other, so none of them can gather
    all of J, and no split vote pushes J's term past the one right after the
    old leader's. W's messages reach the electors ``delay_ms`` late: each holds
    nothing of W's term for that long after its vote. The first event is
    ``{shape}-cut`` (the plain cut, so J's logs stop growing before they are
    compared), the second ``{shape}-split``."""
    rng = p.rng
    yield from p.partition(Partition(f"{shape}-cut", False, cut(minority, majority)))
    lengths = {x: _log_len(p.status(x)) for x in majority}
    longest = max(lengths.values())
    winner = rng.choice([x for x in majority if lengths[x] == longest])
    electors = [x for x in majority if x != winner]
    rng.shuffle(electors)
    grudge = cut(minority, majority)
    for x in electors:
        grudge[x] |= {y for y in electors if y != x}
    yield from p.switch(Partition(f"{shape}-split", False, grudge))
    if delay_ms:
        yield from p.links({"delay_ms": delay_ms, "delay_dist": "fixed"},
                           [[winner, x] for x in electors])
    return winner, electors


def _log_len(status: dict[str, Any] | None) -> int:
    v = (status or {}).get("log_len")
    return v if isinstance(v, int) else 0
