"""The hunting plan: the default nemesis (``--nemesis ""``), a seeded search that knows no bug.

Owns ``hunt_plan(rng, ...)``, a reactive plan (faults.plan.ScriptPlan) built
from principles that find consensus bugs in code the harness knows nothing
about (docs/faults.md "The hunting plan"):

- *Swarm testing* (Groce et al., 2012): the run is cut into epochs of a few
  episodes; each epoch switches on a random non-empty subset of the fault
  families below, so some epochs are free of the faults that would mask
  others (a node kept dead cannot take part in a race).
- *Time scaled to the nodes*: window lengths are drawn against the run's
  election timeout (cluster.json ``timing``): shorter than one (a leader that
  is paused and comes back before anyone notices), one to three (an election
  happens), three to eight (the cluster works without the faulted nodes).
- *Leaders first*: most families aim at the node the freshest ``status``
  replies name leader, and within an epoch they are drawn ``LEADER_WEIGHT``
  times as often as the others; some watch an election through ``ClusterView.statuses``
  and kill a node the moment it voted (or promised) in a new term, or the
  candidate itself.
- *Overlaps*: a kill or pause inside a partition, which may outlast it (a
  pause across a heal); a partition replaced by another in one step (a lagging
  minority rejoins as the leader is cut off); link faults under a kill.
- *Fast restarts*: a node killed again soon after it answers, before it can
  have caught up.
- *Quorum intersection rests on what the shared node kept*: any two
  majorities share a node, and a protocol is safe only if that node's
  votes, promises and entries survive its crash. ``shared-voter`` cuts the
  cluster so two majorities share exactly one node and crash-restarts it
  again and again (soon after each vote); ``cross-voter`` moves a node that
  just voted in a new term, through a crash, to the side that never heard
  of that term (``crash-cross`` does the same after deposing the leader by
  a crash instead of a cut, so both sides' logs end at the same index and
  two leaders of one term would write on the same indices, where the log
  check cannot tell their entries apart); ``lose-unsynced`` takes a whole
  site's power a third of the time.
- *Leader churn* (the Raft paper's Figure 8 is one such story): ``chase``
  cuts off each new leader in turn, so entries that reached only some
  nodes in one term meet leaders of later terms that lack them; half of
  its rounds cut the new leader the moment its commit index first moves
  (``first_commit``), when what it committed is on a bare majority at most.
- *Weather*: in some epochs (``WEATHER_P``) every link is slow (a share of
  the election timeout) under whatever the epoch's families do, so votes,
  promises and a new leader's first entries are still in flight when a
  crash or a cut lands.

Families: ``isolate-leader``, ``partition``, ``shift``, ``kill-leader``,
``pause-leader``, ``kill``, ``pause``, ``crash``, ``flap``, ``kill-voter``,
``shared-voter``, ``cross-voter``, ``crash-cross``, ``chase``, ``overlap``, ``net`` (those
needing a network only with one), ``lose-unsynced`` and ``clock`` (only
when the cluster was set up for them: ``kinds_available``). The settings a
run's cluster uses (timing, replication shape) are the caller's; the
simulated search swarms them per seed (harness/swarm.py).

Invariants:
- Everything random comes from ``rng``; every decision reads only the views
  the interpreter sends (faults/plan.py), so the same seed and the same views
  give the same operations, under any interpreter.
- Process faults never aim at a node another active process fault of this
  plan holds, and one episode holds at most a minority of the nodes with
  process faults, except ``crash`` (a majority or all, restarted fast: the
  durability of what nodes promised) and ``lose-unsynced`` (a majority's
  power loss is the only one that can lose what a quorum acknowledged).
- An episode's last operation ends before the next episode starts, after a
  calm of 1 to 2.5 election timeouts (the history shows recovery); an
  epoch's weather ends before the next epoch starts.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from faults import clock
from faults.partition import Partition, cut, deaf, make
from faults.plan import (
    ClusterView,
    FaultOp,
    Player,
    ScriptPlan,
    Steps,
    leader_of,
    net_profile,
    term_of,
)

#: Every family, and which need a network backend or a disk or clock kind.
FAMILIES = ("isolate-leader", "partition", "shift", "kill-leader", "pause-leader", "kill",
            "pause", "crash", "flap", "kill-voter", "shared-voter", "cross-voter", "crash-cross",
            "chase", "overlap", "net",
            "lose-unsynced", "clock")
NETWORK_FAMILIES = ("isolate-leader", "partition", "shift", "shared-voter", "cross-voter",
                    "crash-cross", "chase", "net")
#: The disk and clock kinds the hunt may use when the cluster offers them
#: (``corrupt`` stays named-only: a replica that rejoins empty can vote twice,
#: which breaks correct Raft and Paxos too).
DISK_FAMILIES = ("lose-unsynced", "clock")
#: The families aimed at the leader, drawn this many times as often as the others.
LEADER_FAMILIES = ("isolate-leader", "shift", "kill-leader", "pause-leader", "kill-voter",
                   "cross-voter", "crash-cross", "chase")
LEADER_WEIGHT = 3
#: Episodes per swarm epoch (uniform, inclusive).
EPOCH = (2, 4)
#: The nodes' default timing (nodes/common/core_api.py Timing), in ms.
DEFAULT_ELECTION_MS = (300, 600)
DEFAULT_HEARTBEAT_MS = 50
#: Share of one-way partitions.
ONEWAY_P = 0.2
#: Share of epochs with *weather*: one link-fault profile on every link, held
#: for the whole epoch under whatever its families do, its delay a share of
#: the election timeout (``WEATHER_DELAY``), so votes, promises and a new
#: leader's first entries are still in flight when a kill or a cut lands.
WEATHER_P = 0.35
WEATHER_DELAY = (0.02, 0.05, 0.15, 0.3)
#: The slow links some families bring along (``Hunter.slow_links``), as a
#: share of the election timeout: long enough that a message is still in
#: flight when a status poll (a quarter heartbeat) notices what it caused,
#: short enough that elections still finish (a round trip well under one
#: timeout).
SLOW_DELAY = (0.05, 0.15)
#: ... and at least this many times the plan's own step time (``Hunter.step_s``:
#: how stale its views are and how long an operation takes to apply, measured),
#: so a reaction that is slow on real processes still beats the message; at
#: most ``SLOW_MAX`` of the election timeout (a round trip well under one).
SLOW_REACT = 2.0
SLOW_MAX = 0.3
#: How many of the plan's latest steps ``Hunter.step_s`` looks at.
STEP_WINDOW = 16
#: Share of ``chase`` rounds that cut the new leader the moment it first
#: commits (``Hunter.first_commit``) instead of after a random wait.
FIRST_COMMIT_P = 0.5


def hunt_plan(rng: random.Random, *, interval_s: float, network: bool,
              link_faults: Sequence[str] = (),
              timing: Mapping[str, Any] | None = None,
              kinds_available: Sequence[str] = ()) -> ScriptPlan:
    """The hunting plan (see the module header). Episodes start 0.2 to 0.6
    ``interval_s`` apart, later when the last one still holds.
    ``kinds_available``: the disk and clock kinds the cluster was set up for
    (``DISK_FAMILIES`` among them join the swarm)."""
    return ScriptPlan(Hunter(rng, interval_s=interval_s, network=network,
                             link_faults=tuple(link_faults), timing=timing,
                             kinds_available=tuple(kinds_available)).script)


class Hunter(Player):
    """The state of one hunting plan: its rng, timing, the nodes its process
    faults hold, and the latest view."""

    def __init__(self, rng: random.Random, *, interval_s: float, network: bool,
                 link_faults: tuple[str, ...], timing: Mapping[str, Any] | None,
                 kinds_available: tuple[str, ...] = ()) -> None:
        super().__init__()
        if interval_s <= 0:
            raise ValueError(f"nemesis interval must be > 0 s, not {interval_s}")
        self.rng = rng
        self.interval_s = interval_s
        timing = timing or {}
        lo, hi = timing.get("election_timeout_ms", DEFAULT_ELECTION_MS)
        self.lo, self.hi = lo / 1000, hi / 1000
        self.hb = timing.get("heartbeat_ms", DEFAULT_HEARTBEAT_MS) / 1000
        self.link_faults = link_faults if network else ()
        self.families = [f for f in FAMILIES if (network or f not in NETWORK_FAMILIES)
                         and (f not in DISK_FAMILIES or f in kinds_available)]
        if not self.link_faults:
            self.families = [f for f in self.families if f != "net"]
        self.network = network
        self.held: dict[str, float] = {}  # node -> until when a process fault holds it
        self.busy_until = 0.0  # the latest planned end of an operation
        self.enabled: list[str] = []
        #: how late each latest view came after the time asked for, or how long
        #: an operation took to apply (s): 0 in simulation, a view's round of
        #: status calls and the proxy's update on real processes
        self.lags: deque[float] = deque(maxlen=STEP_WINDOW)

    def _got(self, view: ClusterView | None, at: float) -> None:
        super()._got(view, at)
        self.lags.append(max(0.0, self.view.now - at))

    def step_s(self) -> float:
        """The plan's step time: the slowest of its latest steps (a view's
        staleness or an operation's application), what a reaction costs."""
        return max(self.lags, default=0.0)

    def link_delay_s(self) -> float:
        """How long a message sent now may take at most on the open link
        faults (the weather, slow links): three times a mean delay (uniform
        delays end there, exponential ones mostly), or the uniform maximum."""
        worst = 0.0
        for op in self.open.values():
            v = op.get("value")
            if op.get("f") == "net" and isinstance(v, dict):
                worst = max(worst, v.get("delay_max_ms") or 3 * (v.get("delay_ms") or 0))
        return worst / 1000

    # --- the rhythm --------------------------------------------------------------

    def script(self, view: ClusterView) -> Steps:
        self.view = view
        rng = self.rng
        t = view.now + self.interval_s / 2
        left = 0
        weather: int | None = None
        while True:
            yield from self.until(t)
            if not self.view.node_ids:
                return
            if left == 0:
                yield from self.end(weather)
                self.enabled = self.swarm()
                left = rng.randint(*EPOCH)
                weather = yield from self.weather()
            left -= 1
            start = self.view.now
            family = rng.choices(self.enabled, [LEADER_WEIGHT if f in LEADER_FAMILIES else 1
                                                for f in self.enabled])[0]
            yield from getattr(self, family.replace("-", "_"))()
            calm = rng.uniform(1.0, 2.5) * self.hi
            t = max(start + self.interval_s * rng.uniform(0.2, 0.6), self.busy_until + calm)

    def weather(self) -> Steps:
        """Maybe (``WEATHER_P``) start this epoch's weather: a delay (with some
        loss and reordering where the network has them) on every link, held
        until the epoch ends; returns its id or None."""
        rng = self.rng
        if "delay" not in self.link_faults or rng.random() >= WEATHER_P:
            return None
        mean_ms = max(1, round(rng.choice(WEATHER_DELAY) * self.lo * 1000))
        faults: dict[str, Any] = {"delay_ms": mean_ms,
                                  "delay_dist": rng.choice(("exponential", "uniform"))}
        if faults["delay_dist"] == "uniform":
            faults["delay_max_ms"] = mean_ms * 3
        if "loss" in self.link_faults and rng.random() < 0.5:
            faults["loss"] = rng.choice((0.02, 0.05, 0.1))
        if "reorder" in self.link_faults and rng.random() < 0.5:
            faults["reorder"] = rng.choice((0.1, 0.3))
        ref = yield from self.emit("net", "all", {"links": "all", **faults})
        return ref

    def swarm(self) -> list[str]:
        """A random non-empty subset of the families (each in with p = 1/2)."""
        while True:
            chosen = [f for f in self.families if self.rng.random() < 0.5]
            if chosen:
                return chosen

    def started(self, op: FaultOp) -> None:
        now, hold = op["at"], op["hold"] or 0.0
        if op["f"] in ("kill", "pause", "lose-unsynced"):  # process-like: held nodes
            for n in op["value"]:
                self.held[n] = now + hold
        self.busy_until = max(self.busy_until, now + hold)

    # --- what the views say --------------------------------------------------------

    def free(self, nodes: Sequence[str] | None = None) -> list[str]:
        """The nodes no process fault of this plan holds now."""
        now = self.view.now
        pool = self.view.node_ids if nodes is None else nodes
        return [n for n in pool if self.held.get(n, 0.0) <= now]

    def leader(self) -> str | None:
        """The leader, if no process fault holds it; else None."""
        leader = leader_of(self.view)
        return leader if leader is not None and leader in self.free() else None

    def minority(self) -> int:
        return max(1, (len(self.view.node_ids) - 1) // 2)

    def dur(self) -> float:
        """A window: shorter than an election timeout (1/4), one to three
        timeouts (9/20), three to eight (3/10)."""
        r = self.rng.random()
        if r < 0.25:
            return self.rng.uniform(0.2, 1.0) * self.lo
        if r < 0.7:
            return self.rng.uniform(1.0, 3.0) * self.hi
        return self.rng.uniform(3.0, 8.0) * self.hi

    def restart_after(self) -> float:
        """How long a fast restart waits: under an election timeout."""
        return self.rng.uniform(0.05, 1.0) * self.lo

    def some(self, k: int, among: Sequence[str] | None = None) -> list[str]:
        pool = self.free(among)
        return sorted(self.rng.sample(pool, min(k, len(pool)))) if pool else []

    # --- partitions ----------------------------------------------------------------

    def leader_cut(self, leader: str | None = None) -> dict[str, Any] | None:
        """The leader (or ``leader``), alone or with up to a minority's worth of
        others, cut off."""
        rng, nodes = self.rng, list(self.view.node_ids)
        leader = leader or leader_of(self.view) or rng.choice(nodes)
        others = [n for n in nodes if n != leader]
        side = [leader, *rng.sample(others, rng.randrange(self.minority()))]
        rest = [n for n in nodes if n not in side]
        return self.two_sides("leader" if len(side) == 1 else "leader-minority", side, rest)

    def lag_cut(self) -> dict[str, Any]:
        """A minority of followers cut off from the rest (they fall behind)."""
        nodes = list(self.view.node_ids)
        leader = leader_of(self.view)
        followers = [n for n in nodes if n != leader]
        side = sorted(self.rng.sample(followers, min(self.minority(), len(followers))))
        return self.two_sides("followers", side, [n for n in nodes if n not in side])

    def random_cut(self) -> dict[str, Any]:
        shape = self.rng.choice(("one", "halves", "majorities-ring", "bridge"))
        oneway = self.rng.random() < ONEWAY_P
        return make(shape, list(self.view.node_ids), self.rng, oneway=oneway).value()

    def two_sides(self, shape: str, a: list[str], b: list[str]) -> dict[str, Any]:
        oneway = self.rng.random() < ONEWAY_P
        if not oneway:
            grudge = cut(a, b)
        else:
            grudge = deaf(a, b) if self.rng.random() < 0.5 else deaf(b, a)
        return Partition(shape, oneway, {k: v for k, v in grudge.items() if v}).value()

    def any_cut(self) -> dict[str, Any]:
        pick = self.rng.random()
        if pick < 0.4:
            return self.leader_cut()  # type: ignore[return-value]
        if pick < 0.7:
            return self.lag_cut()
        return self.random_cut()

    # --- families ------------------------------------------------------------------

    def isolate_leader(self) -> Steps:
        value = self.leader_cut()
        yield from self.emit("partition", value["shape"], value, self.dur())

    def partition(self) -> Steps:
        value = self.random_cut()
        yield from self.emit("partition", value["shape"], value, self.dur())

    def shift(self) -> Steps:
        """One partition replaced by another in one step, with no moment of full
        connectivity (e.g. lagging followers let back as the leader is cut off)."""
        first = self.rng.choice((self.lag_cut, self.random_cut, self.leader_cut))()
        h1 = self.rng.uniform(1.0, 6.0) * self.hi
        ref = yield from self.emit("partition", first["shape"], first, h1 + 1.0)
        yield from self.until(self.view.now + h1)
        second = self.rng.choice((self.leader_cut, self.random_cut))()
        yield from self.emit("partition", second["shape"], second, self.dur(), replaces=ref)

    def chase(self) -> Steps:
        """Leader churn (the Raft paper's Figure 8 is one such story): the
        leader is cut off with up to a minority; each time a leader of a newer
        term shows up, it is cut off in turn, in one step (the previous cut
        ends as the new one starts), either at once (its first entries still
        in flight) or after a while (it got part of its backlog out).
        Entries that reached only some nodes in one term meet leaders of
        later terms that lack them. Half the time every link is
        slow meanwhile (``slow_links``), and each new leader is cut off after
        zero to four round trips: churn faster than a leader replicates, so
        it is replaced while its first entries (and, with small batches, the
        older ones it re-sends) are still in flight. Half the rounds instead
        cut the new leader the moment it first commits (``first_commit``).
        Two to six rounds: the Figure-8 story takes three leader changes
        after the first cut."""
        rng = self.rng
        first = self.leader_cut()
        if first is None:
            return
        slow, rtt = yield from self.slow_links("chase")
        ref = yield from self.emit("partition", "chase", first, None)
        cut_leader = leader_of(self.view)
        term = max([term_of(s) for s in self.view.statuses.values() if s] or [0])
        for _ in range(rng.randint(2, 6)):
            deadline = self.view.now + 4 * self.hi
            new = None
            while self.view.now < deadline:
                yield from self.until(self.view.now + max(0.005, self.hb / 4))
                new = leader_of(self.view)
                st = self.view.statuses.get(new) if new is not None else None
                if st and new != cut_leader and term_of(st) > term:
                    break
                new = None
            if new is None:
                break
            if rng.random() < FIRST_COMMIT_P:
                yield from self.first_commit(new, rtt)
            elif rtt:
                yield from self.until(self.view.now + rng.uniform(0.0, 4.0) * rtt)
            elif rng.random() >= 0.4:
                yield from self.until(self.view.now + rng.uniform(0.1, 2.0) * self.lo)
            term = max([term_of(s) for s in self.view.statuses.values() if s] or [term])
            cut_leader = new
            nxt = self.leader_cut(new)
            ref = yield from self.emit("partition", "chase", nxt, None, replaces=ref)
        yield from self.until(self.view.now + rng.uniform(1.0, 3.0) * self.hi)
        yield from self.end(ref)
        yield from self.end(slow)

    def leader_in(self, nodes: Sequence[str], term: int, deadline: float) -> Steps:
        """Wait (until ``deadline``) for a node of ``nodes`` to lead in a term
        above ``term``; returns it, or None."""
        while self.view.now < deadline:
            for x in nodes:
                st = self.view.statuses.get(x)
                if st and st.get("role") == "leader" and term_of(st) > term:
                    return x
            yield from self.until(self.view.now + max(0.005, self.hb / 4))
        return None

    def first_commit(self, leader: str, rtt: float) -> Steps:
        """Wait until ``leader`` (just seen leading) commits for the first time
        since: its status's ``commit_index`` moves past what it was when seen
        (or it stops leading, or two election timeouts pass). Then what it
        committed is on a bare majority at most, and on slow links the rest
        is still in flight: the next leader must hold it anyway (Leader
        Completeness; Paxos's recovery of accepted values). Watched at a
        quarter of a round trip on slow links, else at the usual poll."""
        st = self.view.statuses.get(leader) or {}
        first = st.get("commit_index")
        if not isinstance(first, int):
            return  # a status without a commit index: nothing to watch
        step = max(0.005, min(self.hb / 4, rtt / 4) if rtt else self.hb / 4)
        deadline = self.view.now + 2 * self.hi
        while self.view.now < deadline:
            yield from self.until(self.view.now + step)
            st = self.view.statuses.get(leader)
            if not st or st.get("role") != "leader":
                return
            if isinstance(st.get("commit_index"), int) and st["commit_index"] > first:
                return

    def kill_leader(self) -> Steps:
        leader = self.leader() or self.rng.choice(self.free() or [None])
        if leader is not None:
            yield from self.emit("kill", "leader", [leader], self.dur())

    def pause_leader(self) -> Steps:
        leader = self.leader() or self.rng.choice(self.free() or [None])
        if leader is not None:
            yield from self.emit("pause", "leader", [leader], self.dur())

    def kill(self) -> Steps:
        nodes = self.some(self.rng.randint(1, self.minority()))
        if nodes:
            yield from self.emit("kill", "one" if len(nodes) == 1 else "minority", nodes,
                                 self.dur())

    def pause(self) -> Steps:
        nodes = self.some(self.rng.randint(1, self.minority()))
        if nodes:
            yield from self.emit("pause", "one" if len(nodes) == 1 else "minority", nodes,
                                 self.dur())

    def crash(self) -> Steps:
        """A majority or every node killed at once and restarted fast."""
        n = len(self.view.node_ids)
        k = n if self.rng.random() < 0.5 else n // 2 + 1
        nodes = self.some(k)
        if nodes:
            yield from self.emit("kill", "all" if len(nodes) == n else "majority", nodes,
                                 self.restart_after())

    def flap(self) -> Steps:
        """One node (the leader half the time) killed 2 to 4 times, each time
        again soon after it answers, before it can have caught up."""
        rng = self.rng
        node = (self.leader() if rng.random() < 0.5 else None) or rng.choice(self.free() or [None])
        if node is None:
            return
        for i in range(rng.randint(2, 4)):
            if i:
                deadline = self.view.now + 4.0
                while self.view.statuses.get(node) is None and self.view.now < deadline:
                    yield from self.until(self.view.now + max(0.01, self.hb / 2))
                yield from self.until(self.view.now + rng.uniform(0.0, 1.0) * self.lo)
            if node not in self.free():
                return
            hold = self.restart_after()
            yield from self.emit("kill", "flap", [node], hold)
            yield from self.until(self.view.now + hold)

    def kill_voter(self) -> Steps:
        """Depose the leader (cut it off, pause or kill it), watch the election,
        and kill a node the moment it voted (or promised) in a newer term, or
        the candidate itself; restart it fast."""
        rng = self.rng
        leader = self.leader()
        if leader is None:
            return
        t0 = max([term_of(s) for s in self.view.statuses.values() if s] or [0])
        how = rng.choice(("cut", "pause", "kill") if self.network else ("pause", "kill"))
        # back about when the election ends: then it can vote again too, so
        # a vote given twice can make two majorities
        hold = rng.uniform(1.0, 2.5) * self.hi
        if how == "cut":
            others = [n for n in self.view.node_ids if n != leader]
            value = self.two_sides("leader", [leader], others)
            yield from self.emit("partition", "leader", value, hold)
        else:
            yield from self.emit(how, "leader", [leader], hold)
        deadline = self.view.now + 3 * self.hi
        candidate_p = rng.random() < 0.3
        while self.view.now < deadline:
            yield from self.until(self.view.now + max(0.005, self.hb / 4))
            victim = self.voter(leader, t0, candidate_p)
            if victim is not None:
                yield from self.emit("kill", "voter", [victim], self.restart_after())
                return

    def shared_voter(self) -> Steps:
        """Two majorities that share one node S: the leader's side and a side
        without it are cut from each other, both hear S. S then crashes
        (or, where the cluster offers it, loses power) and restarts fast,
        two to four times: first at a random moment (S forgets whom it
        followed, so the other side can win it), then each time soon after
        it voted or promised in a newer term. Whether both majorities can
        decide at once rests only on what S kept (quorum intersection).
        Half the time every link is slow meanwhile (``slow_links``), so S's
        crash lands before the winner's first entry reaches it."""
        rng = self.rng
        nodes = list(self.view.node_ids)
        n = len(nodes)
        leader = leader_of(self.view) or rng.choice(nodes)
        pool = [x for x in self.free() if x != leader]
        if n < 3 or not pool:
            return
        s = rng.choice(pool)
        others = [x for x in nodes if x not in (leader, s)]
        rng.shuffle(others)
        mine = [leader, *others[: n // 2 - 1]]
        theirs = [x for x in others if x not in mine]
        hold = rng.uniform(4.0, 10.0) * self.hi
        slow, _rtt = yield from self.slow_links("shared-voter")
        ref = yield from self.emit("partition", "shared-voter", _sides("bridge", mine, theirs),
                                   None)
        end = self.view.now + hold
        power = "lose-unsynced" in self.families and rng.random() < 0.5
        for i in range(rng.randint(2, 4)):
            if i == 0:
                yield from self.until(self.view.now + rng.uniform(0.0, 1.0) * self.lo)
            else:
                yield from self.back(s, end)
                t0 = term_of(self.view.statuses.get(s) or {})
                voted = (self.view.statuses.get(s) or {}).get("voted_for")
                while self.view.now < end:
                    st = self.view.statuses.get(s)
                    if st and (term_of(st) > t0 or st.get("voted_for") not in (None, voted)):
                        break
                    yield from self.until(self.view.now + max(0.005, self.hb / 4))
            if self.view.now >= end or s not in self.free():
                break
            down = rng.uniform(0.02, 0.3) * self.lo
            yield from self.emit("lose-unsynced" if power else "kill", "shared", [s], down)
            yield from self.until(self.view.now + down)
        yield from self.until(end)
        yield from self.end(ref)
        yield from self.end(slow)

    def crash_cross(self) -> Steps:
        """``cross_voter`` deposing the leader by a crash on the majority side."""
        yield from self.cross_voter(crash=True)

    def cross_voter(self, crash: bool = False) -> Steps:
        """A voter crosses over. The cluster is cut into a majority (the new
        side) and the rest (the old side), and the leader is deposed: it is
        cut off with the old side (where it takes writes a while, a deposed
        leader that has not noticed), or, with ``crash`` (the family
        ``crash-cross``), it crashes on the new side and restarts fast, so
        the old side holds no write the new side lacks. Once the new side
        elects a leader of a newer term, one of its voters is moved to the
        old side in one step, crashing (or, where the cluster offers it,
        losing power) on the way and restarting fast. The old side is now a
        majority that never heard of the new term, with one member that
        voted (or promised) in it: whether it can be won again in that same
        term rests only on what that member kept on disk. If it can, both
        sides lead in one term; after a crash opening their logs start at
        the same index, so what each side's leader appends lands on the same
        indices (slots), where the log check cannot tell them apart, instead
        of after entries only the old side holds. Then, a third of the time
        each, the node stays, becomes the bridge both sides hear, or goes
        back (no crash) while the old side's new leader is still catching it
        up: what it took from one side meets the other side's later term;
        half of the 'back' endings go back the moment the old side's new
        leader (of any term the old side had not seen: the plan does not
        assume one leader per term) first commits (``first_commit``),
        carrying what it just committed (and perhaps not its own first
        entry) to the other side. Half the time every link is slow
        meanwhile, so the crossing node leaves with messages in flight and
        catching it up takes round trips."""
        rng = self.rng
        nodes = list(self.view.node_ids)
        n = len(nodes)
        leader = self.leader()
        if leader is None or n < 3:
            return
        others = [x for x in nodes if x != leader]
        rng.shuffle(others)
        if crash:  # the leader crashes on the majority side: the old side writes nothing
            old = sorted(others[: n - (n // 2 + 1)])
        else:  # the leader is cut off with the old side, and takes writes there a while
            old = sorted([leader, *others[: n - (n // 2 + 1) - 1]])
        new = sorted(x for x in nodes if x not in old)  # exactly a majority
        t0 = max([term_of(s) for s in self.view.statuses.values() if s] or [0])
        if crash:
            # the crash comes first and the cut once what the leader sent has
            # landed: cut first, it would go on replicating to the new side
            # alone until the crash lands (a step on real processes), and the
            # old side would lack entries the crossing voter holds
            yield from self.emit("kill", "leader", [leader], self.restart_after())
            settle = min(0.5 * self.lo, max(0.005, self.hb / 4, self.link_delay_s()))
            yield from self.until(self.view.now + settle)
        ref = yield from self.emit("partition", "cross-voter", _sides("cut", old, new), None)
        # slow links: the voter leaves with the winner's first messages in flight
        # (always for crash-cross: with no delay the winner's first entry reaches
        # every voter before any reaction, and the two logs no longer end alike)
        slow, rtt = yield from self.slow_links("cross-voter", always=crash)
        deadline = self.view.now + 4 * self.hi
        winner = None
        while winner is None and self.view.now < deadline:
            yield from self.until(self.view.now + max(0.005, self.hb / 4))
            winner = next((x for x in new if (self.view.statuses.get(x) or {}).get("role")
                           == "leader" and term_of(self.view.statuses[x] or {}) > t0), None)
        voters = []
        if winner is not None:
            tw = term_of(self.view.statuses.get(winner) or {})
            for x in self.free(new):
                st = self.view.statuses.get(x)
                if x != winner and st and term_of(st) == tw and st.get("voted_for") == winner:
                    voters.append(x)
        if not voters:
            yield from self.end(slow)
            yield from self.end(ref)
            return
        # the voter that holds least (shortest log): the one the old side, which
        # never heard of the new term, has the best chance to win again
        lens = {x: (self.view.statuses.get(x) or {}).get("log_len") for x in voters}
        if all(isinstance(n, int) for n in lens.values()):
            voters = [x for x in voters if lens[x] == min(lens.values())]  # type: ignore[type-var]
        v = rng.choice(sorted(voters))
        side = sorted([*old, v])
        rest = [x for x in nodes if x not in side]
        ref = yield from self.emit("partition", "cross-voter", _sides("cut", side, rest), None,
                                   replaces=ref)
        power = "lose-unsynced" in self.families and rng.random() < 0.5
        down = rng.uniform(0.02, 0.3) * self.lo
        yield from self.emit("lose-unsynced" if power else "kill", "crossed", [v], down)
        ending = rng.choice(("stay", "bridge", "back"))
        if ending == "back":  # back while the old side's new leader catches it up
            yield from self.back(v, self.view.now + 4 * self.hi)
            if rng.random() < FIRST_COMMIT_P:  # back the moment that leader first commits
                # the old side's new leader: any term it had not seen (t0), tw too
                # (a term has one leader only if the protocol is right)
                leader = yield from self.leader_in(side, t0, self.view.now + 4 * self.hi)
                if leader is not None:
                    yield from self.first_commit(leader, rtt)
            else:
                yield from self.until(self.view.now + rng.uniform(0.5, 2.5) * self.lo)
            ref = yield from self.emit("partition", "cross-voter", _sides("cut", old, new), None,
                                       replaces=ref)
        else:
            yield from self.until(self.view.now + down + rng.uniform(1.0, 4.0) * self.hi)
        if ending == "bridge":  # the crossed voter becomes the bridge of both sides
            ref = yield from self.emit("partition", "cross-voter",
                                       _sides("bridge", old, [x for x in new if x != v]), None,
                                       replaces=ref)
        if ending != "stay":
            yield from self.until(self.view.now + rng.uniform(1.0, 4.0) * self.hi)
        yield from self.end(slow)
        yield from self.end(ref)

    def slow_links(self, target: str, always: bool = False) -> Steps:
        """Half the time (``always``: every time; where the network can delay),
        every link slowed by a fixed delay until the caller ends it: a new
        leader's first entries, votes and acks then take that long, longer
        than the plan takes to notice and react, so a cut or crash lands while
        they are still in flight. The delay is a ``SLOW_DELAY`` share of the
        election timeout, and at least ``SLOW_REACT`` times the plan's measured
        step time (``step_s``: nothing in simulation, a view's status round and
        the proxy's update on real processes), at most ``SLOW_MAX`` of the
        timeout. Returns (its id or None, the round trip it makes, s)."""
        if "delay" not in self.link_faults or (not always and self.rng.random() >= 0.5):
            return None, 0.0
        share = self.rng.choice(SLOW_DELAY) * self.lo
        delay = min(SLOW_MAX * self.lo, max(share, SLOW_REACT * self.step_s()))
        ms = max(1, round(delay * 1000))
        ref = yield from self.emit("net", target, {"links": "all", "delay_ms": ms,
                                                   "delay_dist": "fixed"}, None)
        return ref, 2 * ms / 1000

    def back(self, node: str, deadline: float) -> Steps:
        """Wait until ``node`` answers status again (or ``deadline``)."""
        while self.view.statuses.get(node) is None and self.view.now < deadline:
            yield from self.until(self.view.now + max(0.005, self.hb / 4))

    def voter(self, old: str, t0: int, candidate: bool) -> str | None:
        """A free node other than ``old`` that voted for another node in a
        term above ``t0`` and does not lead (or, with ``candidate``, one that
        campaigns in such a term)."""
        found = []
        for n in self.free():
            s = self.view.statuses.get(n)
            if n == old or not s or term_of(s) <= t0 or s.get("role") == "leader":
                continue
            wanted = (s.get("role") == "candidate" if candidate
                      else s.get("voted_for") not in (None, n))
            if wanted:
                found.append(n)
        return self.rng.choice(sorted(found)) if found else None

    def overlap(self) -> Steps:
        """A partition or link fault, and inside it a kill or pause (of the leader
        half the time) that may outlast it."""
        rng = self.rng
        h1 = rng.uniform(1.0, 6.0) * self.hi
        if self.network and (not self.link_faults or rng.random() < 0.7):
            first = self.any_cut()
            yield from self.emit("partition", first["shape"], first, h1)
        elif self.link_faults:
            faults, links = net_profile(rng, list(self.view.node_ids), self.link_faults)
            yield from self.emit("net", "all" if links == "all" else "node",
                                 {"links": links, **faults}, h1)
        else:
            nodes = self.some(1)
            if not nodes:
                return
            yield from self.emit(rng.choice(("kill", "pause")), "one", nodes, h1)
        yield from self.until(self.view.now + rng.uniform(0.2, 1.1) * h1)
        f = rng.choice(("kill", "pause"))
        leader = self.leader() if rng.random() < 0.5 else None
        nodes = [leader] if leader is not None else self.some(1)
        if nodes:
            yield from self.emit(f, "leader" if leader else "one", nodes, self.dur())

    def net(self) -> Steps:
        faults, links = net_profile(self.rng, list(self.view.node_ids), self.link_faults)
        yield from self.emit("net", "all" if links == "all" else "node",
                             {"links": links, **faults}, self.dur())

    def lose_unsynced(self) -> Steps:
        """A power loss that can lose an acknowledged write: a third of the
        time every node (a whole site loses power: nothing that was only in
        page caches survives anywhere), a third a majority (the leader and
        enough followers to make one, or any majority: the nodes that answered
        first may be exactly those), else the leader or a minority (a
        minority cannot lose what a quorum holds, but its recovery runs).
        All restart together soon after."""
        rng = self.rng
        n = len(self.view.node_ids)
        leader = self.leader()
        free = self.free()
        pick = rng.random()
        if pick < 1 / 3 and len(free) == n:
            nodes, target = sorted(free), "all"
        elif pick < 2 / 3 and len(free) >= n // 2 + 1:
            if leader is not None and rng.random() < 0.5:
                others = [x for x in free if x != leader]
                nodes = sorted([leader, *rng.sample(others, n // 2)])
                target = "leader+majority"
            else:
                nodes, target = self.some(n // 2 + 1), "majority"
        elif leader is not None and pick < 5 / 6:
            nodes, target = [leader], "leader"
        else:
            nodes, target = self.some(rng.randint(1, self.minority())), "minority"
        if nodes:
            yield from self.emit("lose-unsynced", target, nodes, self.restart_after())

    def clock(self) -> Steps:
        """A node's clock (the leader's half the time) jumps, strobes or drifts
        for 3 to 8 election timeouts; half the time the leader is cut off for
        most of it (long enough for the others to elect and serve: a node
        whose clock is wrong believes what its own ticks say meanwhile)."""
        rng = self.rng
        fields = clock.plan_fields(rng)
        leader = self.leader()
        fields["target"] = "leader" if leader is not None and rng.random() < 0.5 else "one"
        value = clock.resolve_value(fields, list(self.view.node_ids), rng, leader)
        hold = rng.uniform(3.0, 8.0) * self.hi
        yield from self.emit("clock", fields["target"], value, hold)
        if self.network and rng.random() < 0.5:
            into = rng.uniform(0.05, 0.3) * hold
            yield from self.until(self.view.now + into)
            cut = self.leader_cut()
            yield from self.emit("partition", cut["shape"], cut,
                                 rng.uniform(0.5, 0.9) * (hold - into))


def _sides(shape: str, a: Sequence[str], b: Sequence[str]) -> dict[str, Any]:
    """A symmetric partition value: ``a`` and ``b`` cannot hear each other
    (nodes in neither hear both: a bridge)."""
    return Partition(shape, False, {k: g for k, g in cut(a, b).items() if g}).value()
