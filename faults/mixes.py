"""The bugs' demonstration mixes: ``--nemesis bug:NAME`` (docs/faults.md "Demonstrations").

Owns, for every bug of the registry (harness/bugs.py), the fault mix and run
settings written *for that bug* so it shows up within seconds: a proof that
the checker sees the bug, not that a generic search finds it. They are used
only when asked for by name, ``--nemesis bug:NAME`` (``profile``: the mix's
settings fill the options the user left at their defaults, and config.json
records what ran); ``--bug NAME`` alone only turns the bug on in the nodes.
The same spec gives correct nodes exactly the same faults and settings.

A fault mix is a list of *moves*, played as a reactive plan (``mix_plan``:
a faults.plan.ScriptPlan carried out by faults.interpret.Interpreter like
every plan): each fault window picks one move with the run's seeded rng,
holds it for a share of the interval, ends what it started, then stays calm
for the rest of the interval; every start and end is recorded in the
history. Moves:

- ``isolate-leader`` / ``isolate-one``: a symmetric partition around the
  leader / a random node;
- ``lag-then-isolate-leader``: cut off a minority of followers so they fall
  behind, then in one step let them back and cut off the leader instead, so
  the stale followers race the up-to-date ones in the election that follows
  (two of the four electors of a five-node cluster are stale);
- ``kill-leader`` / ``kill-one`` / ``kill-minority`` / ``kill-majority``:
  SIGKILL, restart at the end of the window;
- ``pause-leader``: SIGSTOP the leader, SIGCONT at the end;
- ``slow-net``: delay (and reorder) every link, so votes and accepts are
  still in flight when a kill lands;
- ``revote`` / ``repromise`` (faults/moves/revote.py): split the leader away,
  let the others elect with a chosen voter, then move that voter to the old
  leader's side through a SIGKILL, so that a vote (Raft) or promise (Paxos)
  it forgot is asked for again in the same term/ballot;
- ``figure-8`` (faults/moves/figure8.py): the paper's Figure 8 on live nodes;
- ``drift-then-isolate-leader``: the leader's clock slows down (a ``clock``
  drift, faults/clock.py: its own ticks count time ``DRIFT_RATE`` as fast),
  and while it does, the leader is cut off; the cut ends before the drift.
  A leader that trusts a lease counted in its own ticks keeps answering
  reads long after a successor took writes (``lease-read``); a clock fault
  alone cannot show it (the successor's first message deposes it), nor a
  partition alone (true clocks keep the lease shorter than an election);
- ``lose-unsynced-all`` / ``-majority`` / ``-leader`` / ``-minority``: a
  power loss (faults/disk.py: what was written and never synced is gone) of
  every node / a majority / the leader / a minority, restarted together at
  the end of the window (``no-fsync``: only a majority's loss can lose what a
  quorum acknowledged, and a whole site's loses it for sure).

Why scripted moves for ``forget-vote`` and ``forget-promise``: a forgotten
vote only matters if a second candidate of the *same* term asks the
restarted voter and wins with it; pre-vote, check-quorum leases and the log
check (the first winner's entries reach its voters one round trip after
the vote) leave random kills a window of milliseconds. A forgotten promise
needs an older ballot's Accept to reach the restarted acceptor, and a
deposed leader learns the newer ballot from the first message queued for
it. The scripts wait for those moments instead of hoping for them.

Why a scripted move for ``commit-old-term``: the flag only matters for an
ack that covers an old term's entry but not the new leader's no-op, and
only a client still waiting for that entry can see the early commit; the
entry must then be lost to a leader whose log lacks it. The mix's settings
send one entry per AppendEntries (``max_batch`` = ``max_inflight`` = 1) so
the no-op travels apart, Raft nodes keep a writer's waiter across leader
changes (nodes/raft/core.py "Client waiters"), and ``figure-8`` plays the
three steps: old entries on the old side only, one voter of the other
side's new leader moved over and given some of them but not the no-op,
then moved back to be overwritten.

Invariant: with the same seed and the same views, a mix gives the same
sequence of moves, targets and durations (everything random comes from the
plan's rng, every decision from the views).
"""

from __future__ import annotations

import dataclasses
import importlib
import random
from dataclasses import dataclass, field
from typing import Any

from faults import clock
from faults.partition import Partition, cut, make
from faults.plan import ClusterView, Player, ScriptPlan, Steps, leader_of
from faults.process import pick_targets

#: Prefix of a nemesis spec that names a bug's demonstration mix.
SPEC_PREFIX = "bug:"

MOVES = ("isolate-leader", "isolate-one", "lag-then-isolate-leader", "kill-leader", "kill-one",
         "kill-minority", "kill-majority", "pause-leader", "slow-net", "revote", "repromise",
         "figure-8", "drift-then-isolate-leader", "lose-unsynced-leader",
         "lose-unsynced-minority", "lose-unsynced-majority", "lose-unsynced-all")
#: Scripted moves: a coroutine ``script(nemesis, stop, hold)`` that drives its
#: own sequence of faults for at most ``hold`` seconds (module, function).
SCRIPTED = {"revote": ("faults.moves.revote", "revote"),
            "repromise": ("faults.moves.revote", "repromise"),
            "figure-8": ("faults.moves.figure8", "figure8")}
NETWORK_MOVES = ("isolate-leader", "isolate-one", "lag-then-isolate-leader", "slow-net",
                 "drift-then-isolate-leader", *SCRIPTED)
#: Moves that use a kind needing the cluster set up for it (faults/disk.py).
CLOCK_MOVES = ("drift-then-isolate-leader",)
LAZYFS_MOVES = ("lose-unsynced-leader", "lose-unsynced-minority", "lose-unsynced-majority",
                "lose-unsynced-all")
#: drift-then-isolate-leader: the leader's clock runs at this rate, and its
#: partition starts this long into the drift and ends this share of the hold
#: before the drift does.
DRIFT_RATE = 0.05
DRIFT_CUT_AFTER_S = 0.3
DRIFT_CUT_END = 0.2


class MixError(ValueError):
    """A ``bug:NAME`` spec names no mix, or needs a network the run lacks; one line."""


@dataclass(frozen=True)
class FaultMix:
    """Which faults a bug needs, and their rhythm."""

    #: Moves (see the module header), picked uniformly per window.
    moves: tuple[str, ...]
    #: A move holds for this share of the interval (uniform in [lo, hi]).
    hold: tuple[float, float] = (0.4, 0.7)

    def needs_network(self) -> bool:
        return any(m in NETWORK_MOVES for m in self.moves)

    def kinds(self) -> tuple[str, ...]:
        """The disk and clock kinds its moves use (faults.disk.needs)."""
        return ((("clock",) if any(m in CLOCK_MOVES for m in self.moves) else ())
                + (("lose-unsynced",) if any(m in LAZYFS_MOVES for m in self.moves) else ()))


@dataclass(frozen=True)
class Demo:
    """One bug's demonstration: its fault mix and the run settings it needs."""

    faults: FaultMix
    #: RunConfig fields (interval, keys, rate, timing, node_options, ...); the
    #: user's explicit options win over these.
    settings: dict[str, Any] = field(default_factory=dict)


#: A narrow election window: followers elect a successor soon after the
#: leader falls silent, while the cut-off leader's check-quorum only notices
#: after one to two election timeouts -- the window in which a deposed leader
#: still believes it leads.
FAST_ELECTIONS = {"heartbeat_ms": 30, "election_timeout_ms": [300, 330]}
#: Longer timeouts with the same narrow window: the deposed leader's grace
#: (one to two timeouts) grows faster than the election (one timeout and two
#: round trips), so it answers for longer after a successor took writes.
SLOW_STEP_DOWN = {"heartbeat_ms": 50, "election_timeout_ms": [600, 630]}
#: A wide election window: after the lost leader's lease runs out, a stale
#: follower's next try comes about as early as an up-to-date one's timeout.
WIDE_ELECTIONS = {"heartbeat_ms": 50, "election_timeout_ms": [300, 1000]}
#: Elections that finish well within a fault window, with a spread much
#: wider than an election's round trips, so that on the old leader's side one
#: candidate usually wins at the first try (on the other side the revote split
#: lets only one node win).
REVOTE = {"heartbeat_ms": 50, "election_timeout_ms": [500, 1100]}
#: Clients give up fast on a leader that cannot commit and go back to their
#: home node, which by then points them at the new leader.
QUICK_CLIENTS = {"request_timeout": 0.3, "concurrency": 25}

#: Reads are what reveal a lost or stale value; three in four operations read.
READ_HEAVY = ["read", "read", "read", "write"]

MIXES: dict[str, Demo] = {
    "stale-read": Demo(
        FaultMix(("isolate-leader",), hold=(0.6, 0.7)),
        {"nemesis_interval": 2.2, "keys": 2, "rate": 500.0, "ops": READ_HEAVY,
         "timing": SLOW_STEP_DOWN, **QUICK_CLIENTS}),
    "early-ack": Demo(
        FaultMix(("isolate-leader", "kill-leader"), hold=(0.4, 0.6)),
        {"nemesis_interval": 1.5, "keys": 2, "rate": 400.0, "ops": ["read", "write"],
         "timing": FAST_ELECTIONS}),
    "no-adopt": Demo(
        FaultMix(("pause-leader",), hold=(0.5, 0.7)),
        {"nemesis_interval": 1.2, "keys": 2, "rate": 500.0, "ops": ["read", "write"],
         "timing": FAST_ELECTIONS, **QUICK_CLIENTS}),
    "forget-promise": Demo(
        FaultMix(("repromise",), hold=(0.85, 0.9)),
        {"nemesis_interval": 6.0, "keys": 20, "rate": 500.0, "ops": ["read", "write"],
         "timing": REVOTE, "request_timeout": 1.0, "concurrency": 25}),
    "forget-vote": Demo(
        FaultMix(("revote",), hold=(0.85, 0.9)),
        {"nemesis_interval": 6.0, "keys": 2, "rate": 500.0, "ops": ["read", "write"],
         "timing": REVOTE, **QUICK_CLIENTS}),
    "no-log-check": Demo(
        FaultMix(("lag-then-isolate-leader",), hold=(0.7, 0.85)),
        {"nemesis_interval": 2.5, "keys": 2, "rate": 500.0, "ops": ["read", "write"],
         "timing": WIDE_ELECTIONS, **QUICK_CLIENTS}),
    "lease-read": Demo(
        FaultMix(("drift-then-isolate-leader",), hold=(0.55, 0.65)),
        {"nemesis_interval": 5.0, "keys": 2, "rate": 500.0, "ops": READ_HEAVY,
         **QUICK_CLIENTS}),
    "no-fsync": Demo(
        # Short power losses of the whole site or a majority, 3 s apart: the
        # flusher writes data back 3-3.75 s after it got dirty (faults/lazyfs.py),
        # so each loss throws away what the last seconds acknowledged, and the
        # vote an election after the previous loss wrote; a node that then finds
        # an empty meta and refuses to start is itself the finding
        # (faults/findings.py), and the lost writes are read back otherwise.
        FaultMix(("lose-unsynced-all", "lose-unsynced-majority"), hold=(0.05, 0.1)),
        {"nemesis_interval": 3.0, "keys": 2, "rate": 500.0, "ops": ["read", "write"]}),
    # The transaction bugs (workload list-append): fault-free runs already show
    # txn-split; a cut-off leader keeps answering read-only transactions from
    # its own log until check-quorum (txn-dirty-read).
    "txn-split": Demo(
        FaultMix(("isolate-leader",), hold=(0.4, 0.6)),
        {"workload": "list-append", "nemesis_interval": 3.0, "keys": 4, "rate": 400.0,
         "concurrency": 10}),
    "txn-dirty-read": Demo(
        FaultMix(("isolate-leader",), hold=(0.6, 0.7)),
        {"workload": "list-append", "nemesis_interval": 2.2, "keys": 4, "rate": 500.0,
         "timing": SLOW_STEP_DOWN, **QUICK_CLIENTS}),
    "commit-old-term": Demo(
        FaultMix(("figure-8",), hold=(0.75, 0.9)),
        # One entry per AppendEntries, one in flight: a new leader re-sends
        # old entries one per round trip, apart from its no-op (faults/moves/figure8.py).
        # Writers wait out the three steps; many clients leave many entries behind.
        {"nemesis_interval": 7.0, "keys": 8, "rate": 250.0, "ops": ["read", "write"],
         "concurrency": 30, "request_timeout": 6.0,
         "timing": {"heartbeat_ms": 50, "election_timeout_ms": [300, 600]},
         "node_options": {"max_batch": 1, "max_inflight": 1}}),
}


def mix_name(spec: str) -> str | None:
    """``"bug:stale-read"`` -> ``"stale-read"``; None for any other spec."""
    spec = (spec or "").strip().lower()
    return spec[len(SPEC_PREFIX):] if spec.startswith(SPEC_PREFIX) else None


def get_demo(name: str) -> Demo:
    try:
        return MIXES[name]
    except KeyError:
        raise MixError(f"unknown bug {name!r} (known: {', '.join(MIXES)})") from None


def get_mix(spec: str) -> FaultMix:
    """The fault mix a ``bug:NAME`` spec names."""
    return get_demo(mix_name(spec) or "").faults


def check_spec(spec: str, *, network: bool) -> None:
    """MixError if a ``bug:NAME`` spec names no mix or needs a network the run lacks."""
    name = mix_name(spec)
    if name is None:
        return
    if get_demo(name).faults.needs_network() and not network:
        raise MixError(f"the fault mix bug:{name} partitions the network; "
                       "it needs --net proxy or --net netns, not --net direct")


def profile(config: Any) -> Any:
    """``config`` (a RunConfig) with the ``--nemesis bug:NAME`` mix's settings in
    every place the user left the default; any other config as it is (``--bug``
    alone changes nothing here)."""
    name = mix_name(config.nemesis)
    demo = MIXES.get(name) if name is not None else None
    if demo is None:
        return config  # validate() / check_spec() say what is wrong
    defaults = type(config)()
    changes: dict[str, Any] = {"nemesis": SPEC_PREFIX + name}
    for key, value in demo.settings.items():
        if getattr(config, key) == getattr(defaults, key):
            changes[key] = value
    return dataclasses.replace(config, **changes)


def settings_for(name: str) -> dict[str, Any]:
    """The RunConfig fields a run of bug ``name``'s mix uses (nemesis included),
    for running correct nodes under exactly the same faults."""
    return {"nemesis": SPEC_PREFIX + name, **get_demo(name).settings}


# --- the plan ------------------------------------------------------------------------


def mix_plan(mix: FaultMix, rng: random.Random, *, interval_s: float,
             link_faults: tuple[str, ...] = ()) -> ScriptPlan:
    """A FaultMix as a reactive plan (faults/plan.py), carried out by the
    interpreter: after half an interval of calm, every ``interval_s`` one move
    (rng) held ``hold`` of the interval, then everything it started ends."""
    if interval_s <= 0:
        raise MixError(f"nemesis interval must be > 0 s, not {interval_s}")
    return ScriptPlan(MixPlayer(mix, rng, interval_s, link_faults).script)


class MixPlayer(Player):
    """One move at a time from a FaultMix; the helpers the scripted moves
    (faults/moves/) use: ``partition``, ``switch``, ``links``, ``clear_links``,
    ``kill``, ``restart``, ``leader``."""

    def __init__(self, mix: FaultMix, rng: random.Random, interval_s: float,
                 link_faults: tuple[str, ...]) -> None:
        super().__init__()
        self.mix = mix
        self.rng = rng
        self.interval_s = interval_s
        self.link_faults = link_faults
        self.network = bool(link_faults)

    def script(self, view: ClusterView) -> Steps:
        self.view = view
        rng = self.rng
        t = view.now + self.interval_s / 2
        while True:
            yield from self.until(t)
            if not self.view.node_ids:
                return
            start = self.view.now
            move = rng.choice(self.mix.moves)
            hold = self.interval_s * rng.uniform(*self.mix.hold)
            yield from self.move(move, hold)
            yield from self.until(start + hold)
            yield from self.end_all()
            t = start + self.interval_s

    # --- moves ------------------------------------------------------------------

    def move(self, move: str, hold: float) -> Steps:
        rng, nodes = self.rng, list(self.view.node_ids)
        leader = self.leader()
        kind, _, target = move.partition("-")
        if move == "drift-then-isolate-leader":
            yield from self.emit("clock", "leader", clock.resolve_value(
                {"target": "leader", "mode": "drift", "rate": DRIFT_RATE}, nodes, rng, leader))
            yield from self.until(self.view.now + DRIFT_CUT_AFTER_S)
            cut_hold = max(0.0, hold * (1 - DRIFT_CUT_END) - DRIFT_CUT_AFTER_S)
            yield from self.emit("partition", "leader",
                                 make("leader", nodes, rng, leader=leader).value(), cut_hold)
        elif move == "lag-then-isolate-leader":
            # Followers lag for the first half, the leader is cut off after.
            others = [n for n in nodes if n != leader]
            laggers = sorted(rng.sample(others, max(1, (len(nodes) - 1) // 2)))
            rest = [n for n in nodes if n not in laggers]
            shape = ("one" if len(laggers) == 1 else
                     "halves" if len(laggers) == len(nodes) // 2 else "cut")
            yield from self.partition(Partition(shape, False, {
                k: v for k, v in cut(laggers, rest).items() if v}))
            yield from self.until(self.view.now + hold / 2)
            yield from self.end_all()
            yield from self.partition(make("leader", nodes, rng, leader=leader))
        elif move in SCRIPTED:
            module, fn = SCRIPTED[move]
            yield from getattr(importlib.import_module(module), fn)(self, hold)
        elif kind == "isolate":
            yield from self.partition(make(target, nodes, rng,
                                           leader=leader if target == "leader" else None))
        elif move in LAZYFS_MOVES:
            yield from self.emit("lose-unsynced", target.removeprefix("unsynced-"),
                                 pick_targets(target.removeprefix("unsynced-"), nodes, rng,
                                              leader))
        elif kind in ("kill", "pause"):
            yield from self.emit(kind, target, pick_targets(target, nodes, rng, leader))
        elif move == "slow-net":
            if "delay" not in self.link_faults:
                return  # a loss-only backend (netns) cannot slow links down
            faults: dict[str, Any] = {"delay_ms": rng.choice((20, 50, 100)),
                                      "delay_dist": "exponential"}
            if "reorder" in self.link_faults:
                faults["reorder"] = 0.3
            yield from self.links(faults, "all")
        else:  # pragma: no cover - FaultMix moves are fixed in this module
            raise ValueError(f"unknown move {move!r}")

    # --- helpers for the moves --------------------------------------------------

    def leader(self) -> str | None:
        return leader_of(self.view)

    def _open(self, f: str) -> int | None:
        return next((ref for ref, op in reversed(self.open.items()) if op["f"] == f), None)

    def partition(self, p: Partition) -> Steps:
        """Start partition ``p`` (held until the window ends or it is switched)."""
        yield from self.emit("partition", p.shape, p.value())

    def switch(self, p: Partition) -> Steps:
        """Replace the open partition by ``p`` in one step (no moment of full
        connectivity between the two)."""
        yield from self.emit("partition", p.shape, p.value(), replaces=self._open("partition"))

    def links(self, faults: dict[str, Any], links: Any) -> Steps:
        yield from self.emit("net", "all" if links == "all" else "links",
                             {"links": links, **faults})

    def clear_links(self) -> Steps:
        yield from self.end_all("net")

    def kill(self, nodes: list[str]) -> Steps:
        yield from self.emit("kill", sorted(nodes), sorted(nodes))

    def restart(self) -> Steps:
        """Start again every node this window killed."""
        yield from self.end_all("kill")
