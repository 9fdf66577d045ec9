"""Targeted fault scripts for the bugs a random fault mix cannot reach: a vote
or promise that a node forgets when it restarts.

Owns ``revote(nemesis, stop, hold)``, the ``revote`` move of faults/mixes.py
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

Everything random comes from ``ctx.rng``; every fault is recorded through
the FaultActions helpers; the script never runs past ``hold`` seconds and
returns early (the caller heals) when a step's condition does not come. On a
network that cannot delay messages (netns: loss only) ``revote`` rests, as
``figure-8`` does; ``repromise`` needs no delay. See docs/faults.md.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faults.api import link_faults_of
from faults.interpret import sleep_unless
from faults.partition import Partition, cut

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


async def revote(nem: Any, stop: asyncio.Event, hold: float) -> None:
    """The ``revote`` move for Raft's votes (see the module header)."""
    await _forget_after_vote(nem, stop, hold, delay_ms=DELAY_MS, chosen=0, m_share=0.0)


async def repromise(nem: Any, stop: asyncio.Event, hold: float) -> None:
    """The ``repromise`` move for Paxos promises (see the module header)."""
    await _forget_after_vote(nem, stop, hold, delay_ms=0, chosen=CHOSEN, m_share=M_SHARE)


async def _forget_after_vote(nem: Any, stop: asyncio.Event, hold: float, *, delay_ms: int,
                             chosen: int, m_share: float) -> None:
    """Steps 1-5 of the module header; ``nem`` is a faults.mixes.MixNemesis.
    ``delay_ms``: delay of W's messages inside J (step 1); ``chosen``: slots W must have
    chosen with V's help before V dies (step 2); ``m_share``: share of the
    time left that M works with V before the chain (step 5)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + hold
    rng = nem.ctx.rng
    nodes = list(nem.ctx.cluster.node_ids)
    quorum = len(nodes) // 2 + 1
    leader = await nem._leader()
    can_delay = "delay" in link_faults_of(nem.net)  # False without a network, or on netns
    if leader not in nodes or len(nodes) < 3 or nem.net is None or (delay_ms and not can_delay):
        await rest_until(stop, deadline)
        return
    t0 = term_of(await nem.status(leader))
    others = sorted(n for n in nodes if n != leader)
    rng.shuffle(others)
    majority = sorted(others[:quorum])  # J: W and its voters, exactly a quorum without L
    minority = sorted([leader, *others[quorum:]])  # M: with V, a quorum (odd sizes)
    if len(minority) + 1 < quorum or len(majority) < 2:
        await rest_until(stop, deadline)  # even cluster sizes: M + V is no quorum
        return

    # 1. L's side | J, where only W can win (see ``split_for_one_winner``):
    # J's election succeeds at its first try, in the term right after L's,
    # which is the term M's first candidate will ask V for in step 4.
    winner, electors = await split_for_one_winner(nem, minority, majority, "revote", delay_ms)

    # 2. W leads J in a newer term, and V (rng order) voted for it there.
    async def voted() -> tuple[str, str] | None:
        ws = await nem.status(winner)
        term = term_of(ws)
        if not ws or ws.get("role") != "leader" or term <= t0:
            return None
        found = await asyncio.gather(*(nem.status(n) for n in electors))
        for v, vs in zip(electors, found):
            if vs and vs.get("voted_for") == winner and term_of(vs) == term:
                return winner, v
        return None

    got = await nem.wait_for(stop, deadline - loop.time(), voted, poll=POLL_S)
    if got is None:
        return
    winner, voter = got
    if chosen:
        # W chooses values with V's acceptance (and answers its clients).
        start = (await nem.status(winner) or {}).get("commit_index")

        async def has_chosen() -> bool | None:
            now = (await nem.status(winner) or {}).get("commit_index")
            if isinstance(now, int) and isinstance(start, int) and now >= start + chosen:
                return True
            return None

        if await nem.wait_for(stop, min(CHOSEN_WAIT_S, deadline - loop.time()), has_chosen,
                              poll=0.01) is None:
            return
    rivals = [n for n in majority if n != voter]
    # 3. V dies first (alive on L's side, it would tell L about W and depose
    # it), joins L's side (J's late messages to it die with the grudge),
    # forgets, returns.
    await nem.procs.kill([voter])
    await nem.switch_partition(Partition("revote-move", False, cut([*minority, voter], rivals)))
    await nem.clear_links()
    await nem.procs.restart()

    # 4. Wait for V to follow someone on L's side.
    async def follows() -> str | None:
        leader_now = (await nem.status(voter) or {}).get("leader")
        return leader_now if leader_now in minority else None

    if await nem.wait_for(stop, max(0.0, deadline - loop.time()), follows, poll=0.02) is None:
        return
    # Let L's side work with V for a share of what is left (with the bug: on
    # a vote or promise V should not have given), then
    # 5. the chain J - V - M: V hears and is heard by both sides.
    await rest_until(stop, loop.time() + (deadline - loop.time()) * m_share)
    if stop.is_set() or loop.time() >= deadline:
        return
    await nem.switch_partition(Partition("revote-chain", False, cut(minority, rivals)))
    await rest_until(stop, deadline)


async def split_for_one_winner(nem: Any, minority: list[str], majority: list[str], shape: str,
                               delay_ms: int) -> tuple[str, list[str]]:
    """Partition ``minority`` | ``majority`` (J) so that exactly one J node, W,
    can win J's next election; returns W and the others of J (its electors, in
    rng order). W is J's longest log (ties by ``ctx.rng``), so every elector
    grants it; the electors cannot hear each other, so none of them can gather
    all of J, and no split vote pushes J's term past the one right after the
    old leader's. W's messages reach the electors ``delay_ms`` late: each holds
    nothing of W's term for that long after its vote. The first event is
    ``{shape}-cut`` (the plain cut, so J's logs stop growing before they are
    compared), the second ``{shape}-split``."""
    rng = nem.ctx.rng
    await nem.apply_partition(Partition(f"{shape}-cut", False, cut(minority, majority)))
    found = await asyncio.gather(*(nem.status(x) for x in majority))
    lengths = {x: _log_len(s) for x, s in zip(majority, found)}
    longest = max(lengths.values())
    winner = rng.choice([x for x in majority if lengths[x] == longest])
    electors = [x for x in majority if x != winner]
    rng.shuffle(electors)
    grudge = cut(minority, majority)
    for x in electors:
        grudge[x] |= {y for y in electors if y != x}
    await nem.switch_partition(Partition(f"{shape}-split", False, grudge))
    if delay_ms:
        await nem.apply_links({"delay_ms": delay_ms, "delay_dist": "fixed"},
                              [[winner, x] for x in electors])
    return winner, electors


def term_of(status: dict[str, Any] | None) -> int:
    """A ``status`` reply's term: Raft's term or Paxos's promised ballot round
    (0 when the node says neither)."""
    term = (status or {}).get("term", (status or {}).get("ballot"))
    return term if isinstance(term, int) else 0


def _log_len(status: dict[str, Any] | None) -> int:
    v = (status or {}).get("log_len")
    return v if isinstance(v, int) else 0


async def rest_until(stop: asyncio.Event, deadline: float) -> None:
    """Sleep until ``deadline`` (loop time) unless ``stop`` is set."""
    await sleep_unless(stop, deadline - asyncio.get_running_loop().time())
