"""Findings from fault evidence: what the nodes' own behaviour under a fault proves.

Owns ``durability(events)``, ``diverged(events)``, ``two_leaders(events)`` and
``lost_state(events)`` (the anomalies the evidence of a run's faults, the
replicas' agreement reports, the nodes' won terms and their restored states
prove, in results.json's anomaly form), ``found(events)`` (all four) and
``apply(verdict, checker, events)`` (the verdict and checker dict with them
added), which harness/workload.py's
``check`` calls for every run, real or simulated, so the verdict, the report,
the ledger's signature and the shrinker's "same kind" all see them.

A finding is a proof, never a guess. Each carries ``finding``, the short
lower-case headline the report shows ("not durable", "replicas diverged"),
``kind``, ``sentence``, ``time``, ``node`` (the first node concerned),
optionally ``nodes``, and ``ops: []``. The kinds:

- ``refused-after-power-loss`` / ``refused-after-crash``: a node that was
  killed (``kill``) or lost its power (``lose-unsynced``) and, started again
  on what its disk still held, exited instead of serving (``refused``: exit 2
  with one line; ``crashed``: any other exit). ``kill`` loses nothing a
  process wrote, and ``lose-unsynced`` loses only what was never fsynced, so a
  node that syncs what it acknowledged and voted always comes back: its own
  recovery rejecting its own files means it relied on data it never made
  durable (or its recovery is wrong). No knowledge of any bug is needed.
- ``replicas-diverged``: an ``agreement-end`` event (faults/agreement.py):
  two nodes, or two incarnations of one node, reported different agreement
  hashes for one log index or slot, i.e. they applied different commands by
  that index. Correct replicas never do (state machine safety), whatever
  the faults; the history cannot always show it (a lost write on a hot key
  is explained by any timed-out write of the same value). One finding per
  index: the watch's events for one index (one per pair of incarnations)
  become one finding whose sentence groups the replicas by the hash they
  reported, so a report shows one section per bad index, not per pair. A
  node's own proof (an applier made to apply another command at an index it
  had applied, evidence ``rewrote``) is told as such.

- ``two-leaders``: an ``election-end`` event (faults/election.py): two nodes
  each reported, in their ``status``, that they became leader of one Raft
  term. Raft elects at most one leader per term (Election Safety), whatever
  the faults: some node voted twice in that term, or a candidate counted a
  vote it never got. One finding per term. The history may never show it
  (the second leader's writes can fail or go unread).

- ``durable-state-lost``: a ``durable-end`` event (faults/durable.py): a
  node restarted from a term and vote (Raft) or a promised ballot (Paxos)
  below what an earlier incarnation of it reported in ``status``. Both are
  kept on disk before a node answers anything, and a restart keeps what was
  fsynced, so the node acted on state it never made durable (or restored the
  wrong state). One finding per node; the history may never show it (a
  forgotten vote matters only if it is cast again in the same term).

Invariant: a node damaged by ``corrupt`` whose repair did not bring it back
is excluded from then on, since its refusal is the corruption's, not a
broken durability contract. A node is reported once, at its first finding.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from faults.agreement import EVENT as AGREEMENT_EVENT
from faults.durable import EVENT as DURABLE_EVENT
from faults.election import EVENT as ELECTION_EVENT

#: The fault whose end carries the restart's outcome -> the finding's kind. These
#: kinds begin ``refused-after-``, the prefix older reports/witness.py knew a
#: finding by; it reads ``finding`` now (reports may not import faults/).
KINDS = {"lose-unsynced-end": ("refused-after-power-loss", "losing power (lose-unsynced)"),
         "kill-end": ("refused-after-crash", "being killed")}


def durability(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The durability anomalies ``events``' fault evidence proves, in order."""
    out: list[dict[str, Any]] = []
    done: set[str] = set()
    for ev in events:
        if ev.get("process") != "nemesis":
            continue
        f = ev.get("f")
        evidence = ev.get("evidence")
        if not isinstance(evidence, dict):
            continue
        if f == "corrupt-end":
            repair = evidence.get("repair")
            if evidence.get("outcome") != "recovered" and repair != "restored":
                value = ev.get("value")
                nodes = value.get("nodes") if isinstance(value, dict) else None
                done.update(str(n) for n in nodes or [])
            continue
        if f not in KINDS:
            continue
        kind, how = KINDS[str(f)]
        exits: dict[str, tuple[Any, str]] = {}
        for node, line in (evidence.get("refused") or {}).items():
            exits[str(node)] = (2, str(line))
        for node, info in (evidence.get("crashed") or {}).items():
            info = info if isinstance(info, dict) else {}
            exits[str(node)] = (info.get("exit_code"), str(info.get("line") or ""))
        for node in sorted(exits):
            if node in done:
                continue
            done.add(node)
            code, line = exits[node]
            at = ev.get("time")
            when = f" at {at / 1e9:.1f} s" if isinstance(at, (int, float)) else ""
            out.append({
                "finding": "not durable", "kind": kind, "key": None, "node": node, "time": at,
                "exit_code": code, "line": line, "ops": [], "prefix": [],
                "sentence": (
                    f"{node} {'refused' if code == 2 else 'failed'} to start after {how}{when}"
                    + (f": \"{line}\"" if line else "")
                    + f" (exit {code if code is not None else '?'}). That fault keeps "
                    "everything a node fsynced, so a node that syncs what it acknowledged "
                    "and voted always comes back; this one relied on data it never made "
                    "durable."),
            })
    return out


def _paired(events: list[dict[str, Any]], f: str) -> Iterator[
        tuple[dict[str, Any], dict[str, Any], dict[str, Any], list[dict[str, Any]]]]:
    """The well-formed watch events ``f`` of ``events`` (faults/agreement.py,
    faults/election.py): each with its value, evidence and its two reports."""
    for ev in events:
        if ev.get("process") != "nemesis" or ev.get("f") != f:
            continue
        value, evidence = ev.get("value"), ev.get("evidence")
        if not isinstance(value, dict) or not isinstance(evidence, dict):
            continue
        reports = [r for r in evidence.get("reports") or [] if isinstance(r, dict)]
        if len(reports) == 2:
            yield ev, value, evidence, reports


def diverged(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The replicas-diverged anomalies of ``events``' agreement events: one per
    log index, in the order each index was first seen. The watch records one
    event per pair of incarnations, so one bad index can give several; here
    they become one finding that groups the replicas by the hash they
    reported there (which side applied what)."""
    order: list[Any] = []
    by_index: dict[Any, list[dict[str, Any]]] = {}
    for ev, value, evidence, reports in _paired(events, AGREEMENT_EVENT):
        index = value.get("index")
        if index not in by_index:
            order.append(index)
            by_index[index] = []
        by_index[index].append({"time": ev.get("time"), "reports": reports,
                                "rewrote": evidence.get("rewrote") is True})
    return [_divergence(index, by_index[index]) for index in order]


def _divergence(index: Any, seen: list[dict[str, Any]]) -> dict[str, Any]:
    """One index's finding from its agreement events (each: time, two reports)."""
    groups: dict[str, list[tuple[str, str]]] = {}  # hash -> [(node, pid)], first seen first
    for one in seen:
        for r in one["reports"]:
            member = (str(r.get("node")), str(r.get("pid")))
            group = groups.setdefault(str(r.get("hash")), [])
            if member not in group:
                group.append(member)
    pids: dict[str, set[str]] = {}
    for group in groups.values():
        for node, pid in group:
            pids.setdefault(node, set()).add(pid)

    def label(node: str, pid: str) -> str:
        # a node's pid matters only when two of its incarnations disagree
        return f"{node} (pid {pid})" if len(pids[node]) > 1 else node

    times = [one["time"] for one in seen if isinstance(one["time"], (int, float))]
    at = min(times) if times else None
    when = f" (seen at {at / 1e9:.1f} s)" if at is not None else ""
    first = seen[0]["reports"][0]
    nodes = sorted(pids)
    sides = [(h, [label(*m) for m in group]) for h, group in groups.items()]
    rewritten = [one["reports"] for one in seen if one["rewrote"]]
    if rewritten:
        a, b = rewritten[0]
        what = (f"{a.get('node')} (pid {a.get('pid')}) applied one command at log index "
                f"{index} and was later made to apply another there{when}: its agreement "
                f"hashes there are {a.get('hash')}, then {b.get('hash')}.")
        if len(sides) > 2 or len(seen) > 1:
            what += " Reports there: " + "; ".join(
                f"{', '.join(names)} (hash {h})" for h, names in sides) + "."
    elif len(sides) == 2 and all(len(names) == 1 for _, names in sides):
        (ha, (a,)), (hb, (b,)) = sides
        what = (f"{a} and {b} applied different commands by log index {index}{when}: their "
                f"agreement hashes there are {ha} and {hb}.")
    else:
        what = (f"By log index {index}{when} the replicas applied {len(sides)} different "
                "sequences of commands: " + "; ".join(
                    f"{', '.join(names)} (hash {h})" for h, names in sides) + ".")
    return {
        "finding": "replicas diverged", "kind": "replicas-diverged", "key": None,
        "node": str(first.get("node")), "nodes": nodes,
        "index": index, "time": at, "ops": [], "prefix": [],
        "sentence": (
            what + " Correct replicas apply the same command at every index whatever the "
            "faults, so one of them applied an entry that was never committed, or lost one "
            "that was."),
    }


def two_leaders(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The two-leaders anomalies of ``events``' election events, one per term
    (the watch records one per term), in the order they were seen."""
    out: list[dict[str, Any]] = []
    for ev, value, _evidence, reports in _paired(events, ELECTION_EVENT):
        term, at = value.get("term"), ev.get("time")
        when = f" (seen at {at / 1e9:.1f} s)" if isinstance(at, (int, float)) else ""
        a, b = (f"{r.get('node')} (pid {r.get('pid')})" for r in reports)
        out.append({
            "finding": "two leaders in one term", "kind": "two-leaders", "key": None,
            "node": str(reports[0].get("node")),
            "nodes": sorted({str(r.get("node")) for r in reports}),
            "term": term, "time": at, "ops": [], "prefix": [],
            "sentence": (
                f"{a} and {b} both became leader of term {term}{when}, each by its own "
                "status. Raft elects at most one leader per term whatever the faults (a "
                "candidate needs a majority and a node votes once per term), so some node "
                "voted twice in that term, or a candidate counted a vote it never got."),
        })
    return out


def _said(state: dict[str, Any]) -> str:
    """A durable state of faults/durable.py's evidence, in words."""
    if "ballot" in state:
        b = state.get("ballot") or [None, None]
        return f"ballot ({b[0]}, {b[1] or '-'})"
    vote = state.get("vote")
    return f"term {state.get('term')} " + (f"with its vote for {vote}" if vote else "with no vote")


def lost_state(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The durable-state-lost anomalies of ``events``' durable events: one per
    node, at its first, in the order seen. A node a ``corrupt`` fault damaged
    before is left out from then on (it may come back from a repaired file)."""
    out: list[dict[str, Any]] = []
    done: set[str] = set()  # reported, or damaged by corrupt
    for ev in events:
        if ev.get("process") != "nemesis":
            continue
        if ev.get("f") == "corrupt":
            value = ev.get("value")
            nodes = value.get("nodes") if isinstance(value, dict) else None
            done.update(str(n) for n in nodes or [])
            continue
        for _ev, value, _evidence, reports in _paired([ev], DURABLE_EVENT):
            node = str(value.get("node"))
            if node in done:
                continue
            done.add(node)
            at = ev.get("time")
            when = f" (seen at {at / 1e9:.1f} s)" if isinstance(at, (int, float)) else ""
            before, after = reports
            out.append({
                "finding": "durable state lost", "kind": "durable-state-lost", "key": None,
                "node": node, "time": at, "ops": [], "prefix": [],
                "before": value.get("before"), "after": value.get("after"),
                "sentence": (
                    f"{node} (pid {before.get('pid')}) reported {_said(before)}, but restarted "
                    f"(pid {after.get('pid')}) it began from {_said(after)}{when}. "
                    + ("An acceptor keeps its promise on disk before it answers"
                       if "ballot" in before else
                       "Raft keeps its term and vote on disk before it answers")
                    + ", and a restart keeps everything a node fsynced, so it acted on "
                    "state it never made durable, or restored the wrong state."),
            })
    return out


def found(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every finding ``events`` prove: the durability ones, the divergences,
    the unsafe elections, then the durable states lost."""
    return durability(events) + diverged(events) + two_leaders(events) + lost_state(events)


class FindingWatch:
    """The first finding of a history read in pieces (a run's follower, real or
    simulated): ``feed`` takes the newly recorded events and returns the first
    finding once one is proven, else None. ``found`` reads a nemesis event in the
    light of the earlier ones (a node a corrupt fault damaged is excluded), so it
    sees every nemesis event so far; there are few per run."""

    def __init__(self) -> None:
        self.first: dict[str, Any] | None = None
        self._nemesis: list[dict[str, Any]] = []

    def feed(self, events: list[dict[str, Any]]) -> dict[str, Any] | None:
        if self.first is None:
            fresh = [e for e in events if e.get("process") == "nemesis"]
            if fresh:
                self._nemesis += fresh
                proved = found(self._nemesis)
                if proved:
                    self.first = proved[0]
        return self.first


def apply(verdict: str, checker: dict[str, Any] | None,
          events: list[dict[str, Any]]) -> tuple[str, dict[str, Any] | None]:
    """``verdict`` and ``checker`` with the durability findings of ``events`` added.

    A finding makes the run invalid whatever the history's check said. It comes
    after the checker's own anomalies (a witness in the history says more), and
    first when the history alone passed or could not be decided."""
    proved = found(events)
    if not proved:
        return verdict, checker
    out = dict(checker or {"model": "findings"})
    out["anomalies"] = list(out.get("anomalies") or []) + proved
    out["valid"] = False
    out["findings"] = len(proved)
    return "invalid", out
