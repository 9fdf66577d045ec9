"""The ``figure-8`` move: the Raft paper's Figure 8, played on a live cluster.

Owns ``figure8(player, hold)``, the scripted move of faults/mixes.py
that exposes ``commit-old-term`` (a leader commits an earlier term's entry
once a majority stores it). The mistake only matters when the old entry is
on a majority while the new leader's no-op is not, and a later leader whose
log lacks the entry wins an election -- three coordinated steps a random
fault mix never takes. With ``max_batch`` = ``max_inflight`` = 1 (the bug's
node options) a new leader re-sends old entries one per round trip, which
opens the first window; the script opens the others by watching ``status``.

Five nodes (odd sizes in general; on an even cluster, or a network that
cannot delay messages (--net direct or netns), the move rests): the leader
L of term t, its partner P (the minority side M = L + P), and the majority
side J = {A, B, C}.

a. Partition M | J. W, the J node with the longest log, is the only one
   that can win there: the other two cannot hear each other (no split
   votes), and W's messages reach them late (``ELECT_DELAY_MS``). L's
   clients' commands (e2..) land on L and P only; the writers wait. W wins
   term t3 > t; its no-op travels late to its voters.
b. As soon as W leads, move one of its voters, V (the one whose log is
   closest to W's), to M's side in one step (the grudge also drops W's late
   messages to V): V voted in t3 but holds nothing of it, so it votes for L
   or P (L', term t4); L' re-sends what V lacks one entry at a time, late
   (``REPLICATE_DELAY_MS`` into V). The entries past the end of W's log
   (e2..) are the ones J will overwrite. With the bug L' commits them when
   V stores them, before its own no-op reaches V, and the old leader L
   (still holding their writers' waiters) answers ``ok``.
c. Once V stores up to ``OLD_ENTRIES`` of e2.. but stays ``NOOP_MARGIN``
   short of the no-op, V goes back to J's side (deaf to M; M still hears V,
   so V's last acks arrive). W's log ends in t3, V's in t: W (or its other
   voter) wins V's vote, overwrites e2.. on V and commits without them.
   Reads then miss writes that were acknowledged, and the checker says so
   (unless another unfinished write of the same key explains the value).

Correct nodes go through the very same steps safely: L' never commits an
old entry before its no-op is on a majority, so nothing acknowledged is lost
(and if the no-op did reach V, V refuses W and nothing is overwritten).

Every step waits for a condition with a deadline and returns when it does
not come (the window's end ends what it started); the whole move stays
within ``hold`` seconds. It is steps of a reactive plan (faults/plan.py
``Player``, through the faults.mixes.MixPlayer helpers): it reads node
status from the interpreter's views, and everything random comes from the
player's rng.
"""

from __future__ import annotations

import logging
from typing import Any

from faults.moves.revote import split_for_one_winner
from faults.partition import Partition, cut
from faults.plan import Steps

#: Delay on every link inside the majority side during step (a): whoever
#: wins there, its first AppendEntries reach its voters this late, while the
#: script notices the win within a few polls.
ELECT_DELAY_MS = 100
#: Delay on M's links into V during step (b): one old entry per round trip,
#: so the script sees V store old entries well before the no-op follows.
REPLICATE_DELAY_MS = 80
#: Old entries V may store before step (c) (more lost writes, easier to see),
#: and how many it must stay short of the no-op (the script's reaction time).
OLD_ENTRIES = 30
NOOP_MARGIN = 3
#: Status poll period (s).
POLL_S = 0.005

log = logging.getLogger(__name__)


def _int(status: dict[str, Any] | None, key: str) -> int:
    v = (status or {}).get(key)
    return v if isinstance(v, int) else 0


def figure8(p: Any, hold: float) -> Steps:
    """The ``figure-8`` move (see the module header); ``p`` is a faults.mixes.MixPlayer."""
    deadline = p.view.now + hold

    def left() -> float:
        return max(0.0, deadline - p.view.now)

    rng = p.rng
    nodes = list(p.view.node_ids)
    n = len(nodes)
    quorum = n // 2 + 1
    leader = p.leader()
    delays = "delay" in p.link_faults  # False without a network, or on netns
    if n < 3 or n % 2 == 0 or leader not in nodes or not delays:
        return  # rests for its window
    ls = p.status(leader)
    if not ls or ls.get("role") != "leader":
        return
    t = _int(ls, "term")
    others = sorted(x for x in nodes if x != leader)
    rng.shuffle(others)
    minority = sorted([leader, *others[: n - quorum - 1]])  # M: n - quorum nodes
    majority = sorted(others[n - quorum - 1:])  # J: exactly a quorum

    # (a) M | J; W (J's longest log) is the only J node that can win: the
    # others cannot hear each other, and W's messages reach them late.
    # (J's logs stop growing at the cut; J heard L just now, so nobody there
    # campaigns before the next step.)
    w, electors = yield from split_for_one_winner(p, minority, majority, "figure8",
                                                  ELECT_DELAY_MS)
    w_frozen: list[int] = []  # W's log length seen while it did not lead yet

    def w_leads() -> int | None:
        s = p.status(w)
        if s and s.get("role") == "leader" and _int(s, "term") > t:
            return _int(s, "term")
        if s:
            w_frozen.append(_int(s, "log_len"))
        return None

    t3 = yield from p.wait_for(w_leads, left(), POLL_S)
    if t3 is None:
        log.info("figure-8: %s was not elected in time", w)
        return
    # W's no-op follows the log it was elected with: old entries past that
    # end are the ones W's side will overwrite in (c).
    w_end = w_frozen[-1] if w_frozen else 0
    voters = []
    for x in electors:
        s = p.status(x)
        if s and s.get("voted_for") == w and _int(s, "term") == t3:
            voters.append((x, _int(s, "log_len")))
    if not voters:
        log.info("figure-8: no voter of %s (term %d) found", w, t3)
        return
    # The voter closest to W's log: it has the least to catch up on in (b).
    top = max(length for _x, length in voters)
    closest = [x for x in voters if x[1] == top]
    v, v_len = closest[rng.randrange(len(closest))]
    rest = sorted(x for x in majority if x != v)

    # (b) V joins M (W's late messages to V die with the grudge); M's links
    # into V are late, so the new leader L' re-sends old entries slowly.
    yield from p.switch(Partition("figure8-b", False, cut([*minority, v], rest)))
    yield from p.clear_links()
    yield from p.links({"delay_ms": REPLICATE_DELAY_MS, "delay_dist": "fixed"},
                       [[x, v] for x in minority])
    frozen: dict[str, int] = {}  # log length of an M node seen while it did not lead

    def m_leader() -> tuple[str, int] | None:
        for x in minority:
            s = p.status(x)
            if not s:
                continue
            if s.get("role") == "leader" and _int(s, "term") > t3:
                return x, _int(s, "term")
            if s.get("role") != "leader":
                frozen[x] = _int(s, "log_len")
        return None

    got = yield from p.wait_for(m_leader, left(), POLL_S)
    if got is None:
        log.info("figure-8: %s elected nobody with %s in time", minority, v)
        return
    new_leader, t4 = got
    noop = frozen.get(new_leader)
    if noop is None:
        log.info("figure-8: %s's log length before it led is unknown", new_leader)
        return
    noop += 1  # L' appended its no-op right after the log it was elected with
    # V stores the old entries it lacks one by one; those past W's log end
    # are the ones that get lost: let a few through, stop short of the no-op.
    first = max(v_len, w_end)
    target = min(first + OLD_ENTRIES, noop - NOOP_MARGIN)
    log.info("figure-8: %s leads term %d after entry %d, %s voted for it with %d entries; "
             "%s leads term %d, no-op at %d", w, t3, w_end, v, v_len, new_leader, t4, noop)
    if target <= first:
        return  # M holds (almost) nothing W lacks: no window this time

    def stored_old() -> int | None:
        s = p.status(v)
        if not s or _int(s, "term") != t4:
            return None
        have = _int(s, "log_len")
        return have if have >= target else None

    if (yield from p.wait_for(stored_old, left(), POLL_S)) is None:
        log.info("figure-8: %s never stored entries up to %d", v, target)
        return

    # (c) V back to J's side, deaf to M (M still hears V's last acks): a J
    # node whose log ends in t3 wins V and overwrites the old entries there.
    grudge = cut(minority, rest)
    grudge[v] = set(minority)
    yield from p.switch(Partition("figure8-c", True, grudge))
    yield from p.clear_links()
    base = {x: _int(p.status(x), "commit_index") for x in rest}

    def j_commits() -> str | None:
        for x in rest:
            s = p.status(x)
            if (s and s.get("role") == "leader" and _int(s, "term") > t4
                    and _int(s, "commit_index") > base[x]):
                return x
        return None

    won = yield from p.wait_for(j_commits, left(), 0.02)
    log.info("figure-8: %s stored old entries up to %d; %s", v, target,
             f"{won} then won and committed" if won else f"{rest} did not commit in time")
    # The window's end ends the rest: J's leader (last term > t4) keeps leading.
