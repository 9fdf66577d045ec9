"""The Maelstrom workloads' checkers: ``check(events, cfg) -> (verdict, checker dict)``.

Owns what each Maelstrom workload promises (doc/workloads.md) and how a
history is judged against it (history shapes: maelstrom/workloads.py):

- lin-kv: our linearizability checker (checker/) on the history with
  Maelstrom's codes mapped: a read that failed with 20 (key-does-not-exist)
  read "absent" (ok, None); a cas that failed with 22 (precondition-failed)
  or 20 is the ``fail`` it already is;
- g-set and broadcast: every acknowledged value is in the final read of
  every node (after healing and a quiet period, maelstrom/final.py); a value
  missing there is *lost*, a value read that no client added is
  *unexpected* (both make the run invalid); a read that lacks a value whose
  add had completed before it began is *stale* (counted, allowed: the
  workloads are eventually consistent); and each acknowledged value's
  *visibility latency*: from its add's invocation until every later read on
  every node includes it;
- g-counter and pn-counter: every node's final read lies between the sum of
  the acknowledged adds plus the negative indeterminate ones and that sum plus
  the positive indeterminate ones;
- unique-ids: no id is returned twice;
- echo: every ``echo_ok`` carries the payload sent;
- txn-list-append: the project's Elle-style list-append checker
  (harness.workload.check_list_append: checker/listappend.py) under
  ``--consistency``, strict-serializable by default as Maelstrom's
  ``--consistency-models`` is; a ``txn_ok`` whose micro-ops do not echo the
  request's (same length, functions, keys and appended values; a list or
  ``null`` for each read) is a *wrong-txn* (invalid), and is judged as the
  ``info`` it then is (what it did is unknown).

Definite errors were recorded ``fail`` and indefinite ones (and timeouts)
``info`` by the client (maelstrom/protocol.py), so ``fail`` adds count for
nothing and ``info`` adds may or may not have happened.

The checker dict has the shape of ``CheckResult.to_dict`` (``valid``,
``model``, ``seconds``, ``anomalies`` naming operation ids of ``pair``) plus
``section``: the workload's figures for the report (maelstrom/report.py).
A node that never answered its final read makes a run ``unknown`` unless
something is already wrong.
"""

from __future__ import annotations

import bisect
import time
from collections import defaultdict
from typing import Any

from checker.history import Op, pair
from maelstrom.protocol import code_of

RENDERER = "maelstrom.report:render"
#: Examples of each kind of finding kept in results.json.
EXAMPLES = 20


def _verdict(valid: bool | None) -> str:
    return {True: "valid", False: "invalid"}.get(valid, "unknown")


def _result(model: str, valid: bool | None, began: float, anomalies: list[dict[str, Any]],
            section: dict[str, Any], ops: int, reason: str = "") -> tuple[str, dict[str, Any]]:
    d: dict[str, Any] = {"valid": valid, "model": model,
                         "seconds": round(time.perf_counter() - began, 6),
                         "anomalies": anomalies, "ops": ops,
                         "section": {"renderer": RENDERER, "workload": model, **section}}
    if reason:
        d["reason"] = reason
    return _verdict(valid), d


def _anomaly(key: Any, sentence: str, ops: list[int], kind: str) -> dict[str, Any]:
    return {"kind": kind, "key": key, "sentence": sentence, "ops": ops, "prefix": []}


def _is_final(op: Op) -> bool:
    return bool(op.complete and op.complete.get("final"))


# --- lin-kv ----------------------------------------------------------------------------


def lin_kv_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The history with code 20 on a read as an ok read of nothing (one event per event,
    so operation ids stay those of the recorded history)."""
    out: list[dict[str, Any]] = []
    for ev in events:
        if ev.get("type") == "fail" and ev.get("f") == "read" and code_of(ev.get("error")) == 20:
            ev = {**ev, "type": "ok", "value": None}
        out.append(ev)
    return out


def check_lin_kv(events: list[dict[str, Any]], cfg: Any) -> tuple[str, dict[str, Any]]:
    from checker import check_events

    began = time.perf_counter()
    mapped = lin_kv_events(events)
    absent = sum(1 for a, b in zip(events, mapped) if a is not b)
    result = check_events(mapped, model="kv", time_limit=getattr(cfg, "check_time_limit", None),
                          every_key=True)
    d = result.to_dict()
    ops = pair(mapped)
    codes: dict[str, int] = defaultdict(int)
    for op in ops:
        if op.type != "ok" and op.error:
            codes[str(op.error)] += 1
    d["section"] = {"renderer": RENDERER, "workload": "lin-kv", "absent_reads": absent,
                    "errors": dict(sorted(codes.items())),
                    "seconds": round(time.perf_counter() - began, 6)}
    return _verdict(result.valid), d


# --- g-set and broadcast ---------------------------------------------------------------


def check_set(events: list[dict[str, Any]], cfg: Any) -> tuple[str, dict[str, Any]]:
    began = time.perf_counter()
    ops = pair(events)
    workload = getattr(cfg, "workload", "g-set")
    adds = [o for o in ops if o.f in ("add", "broadcast")]
    reads = [o for o in ops if o.f == "read" and o.type == "ok"]
    attempted = {_h(o.value): o for o in adds}
    acked = {_h(o.value): o for o in adds if o.type == "ok"}
    info = {_h(o.value) for o in adds if o.type == "info"}
    anomalies: list[dict[str, Any]] = []
    # unexpected: read, never added
    unexpected: dict[Any, Op] = {}
    for r in reads:
        for v in _elements(r.output):
            if v not in attempted and v not in unexpected:
                unexpected[v] = r
    for v, r in list(unexpected.items())[:EXAMPLES]:
        anomalies.append(_anomaly(workload, f"node {r.node} read {v!r}, which no client added",
                                  [r.id], "unexpected"))
    # the final read of each node
    finals: dict[str, Op] = {}
    for r in reads:
        if _is_final(r) and r.node is not None:
            finals[r.node] = r
    nodes = sorted({str(n) for n in _nodes(events)} | set(finals))
    unread = [n for n in nodes if n not in finals]
    lost: dict[Any, list[str]] = {}
    for n, r in finals.items():
        have = set(_elements(r.output))
        for v in acked:
            if v not in have:
                lost.setdefault(v, []).append(n)
    lost_first = sorted(lost.items(), key=lambda kv: acked[kv[0]].start or 0)[:EXAMPLES]
    for v, where in lost_first:
        add = acked[v]
        ids = [add.id] + [finals[n].id for n in sorted(where)]
        anomalies.append(_anomaly(
            workload, f"{add.f} of {v!r} was acknowledged (by {add.node}), but the final read of "
                      f"{', '.join(sorted(where))} after healing does not have it", ids, "lost"))
    stale, latencies, never = _staleness(reads, acked)
    lat_sorted = sorted(latencies.values())
    section = {
        "attempted": len(attempted), "acknowledged": len(acked), "indeterminate": len(info),
        "lost": [{"value": v, "nodes": sorted(w), "op": acked[v].id} for v, w in lost_first],
        "lost_count": len(lost),
        "unexpected": [{"value": v, "node": r.node, "op": r.id}
                       for v, r in list(unexpected.items())[:EXAMPLES]],
        "unexpected_count": len(unexpected),
        "stale_reads": stale["count"], "stale_examples": stale["examples"],
        "final_reads": {n: len(_elements(r.output)) for n, r in sorted(finals.items())},
        "unread_nodes": unread,
        "never_stable": never,
        "visible_only_finally": stale["late"],
        "visibility_ms": _percentiles(lat_sorted),
    }
    bad = bool(lost or unexpected)
    valid = False if bad else (None if unread or not finals else True)
    reason = ""
    if valid is None:
        reason = ("no node answered a final read" if not finals else
                  f"no final read from {', '.join(unread)}")
    return _result(workload, valid, began, anomalies, section, len(ops), reason)


def _h(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def _elements(v: Any) -> list[Any]:
    return [_h(x) for x in v] if isinstance(v, list) else []


def _nodes(events: list[dict[str, Any]]) -> set[Any]:
    return {e["node"] for e in events if e.get("node") is not None and e.get("process") != "nemesis"}


def _staleness(reads: list[Op], acked: dict[Any, Op]
               ) -> tuple[dict[str, Any], dict[Any, float], int]:
    """(stale reads, value -> visibility latency in ms, values never stable everywhere)."""
    by_node: dict[Any, list[Op]] = defaultdict(list)
    for r in reads:
        by_node[r.node].append(r)
    done_order = sorted(acked.values(), key=lambda o: o.end or 0)
    invoke_order = sorted(acked.values(), key=lambda o: o.start or 0)
    stale_count = 0
    examples: list[dict[str, Any]] = []
    stable_from: dict[Any, float] = {}  # value -> latest per-node start of stable visibility
    unstable: set[Any] = set()
    late: set[Any] = set()
    for node, rs in by_node.items():
        rs.sort(key=lambda o: o.start or 0)
        last_missing: dict[Any, int] = {}
        di = ii = 0
        done: set[Any] = set()
        invoked: set[Any] = set()
        for i, r in enumerate(rs):
            while di < len(done_order) and (done_order[di].end or 0) < (r.start or 0):
                done.add(_h(done_order[di].value))
                di += 1
            while ii < len(invoke_order) and (invoke_order[ii].start or 0) < (r.start or 0):
                invoked.add(_h(invoke_order[ii].value))
                ii += 1
            have = set(_elements(r.output))
            missing_done = done - have
            if missing_done and not _is_final(r):
                stale_count += 1
                if len(examples) < EXAMPLES:
                    examples.append({"op": r.id, "node": node, "missing": len(missing_done),
                                     "example": next(iter(missing_done))})
            for v in invoked - have:
                last_missing[v] = i
        starts = [r.start or 0 for r in rs]
        # the final reads (after the load, healing and a quiet period) settle what is lost,
        # not how fast a value spread: a value first seen everywhere there has no latency
        during = sum(1 for r in rs if not _is_final(r))
        for v, add in acked.items():
            if v in last_missing:
                j = last_missing[v] + 1
            else:  # never missing here: visible from the first read after its add began
                j = bisect.bisect_left(starts, add.start or 0)
            if j >= len(rs):
                unstable.add(v)
            elif j >= during:
                late.add(v)
            else:
                stable_from[v] = max(stable_from.get(v, starts[j]), starts[j])
    latencies = {v: max(0.0, (t - (acked[v].start or 0)) / 1e6)
                 for v, t in stable_from.items() if v not in unstable and v not in late}
    return ({"count": stale_count, "examples": examples, "late": len(late - unstable)},
            latencies, len(unstable))


def _percentiles(xs: list[float]) -> dict[str, float | None]:
    if not xs:
        return {"p50": None, "p95": None, "max": None}

    def at(q: float) -> float:
        return round(xs[min(len(xs) - 1, int(q * len(xs)))], 1)
    return {"p50": at(0.5), "p95": at(0.95), "max": round(xs[-1], 1)}


# --- counters --------------------------------------------------------------------------


def check_counter(events: list[dict[str, Any]], cfg: Any) -> tuple[str, dict[str, Any]]:
    began = time.perf_counter()
    ops = pair(events)
    workload = getattr(cfg, "workload", "g-counter")
    adds = [o for o in ops if o.f == "add"]
    acked = sum(o.value for o in adds if o.type == "ok" and isinstance(o.value, int))
    pos = sum(o.value for o in adds if o.type == "info" and isinstance(o.value, int) and o.value > 0)
    neg = sum(o.value for o in adds if o.type == "info" and isinstance(o.value, int) and o.value < 0)
    lo, hi = acked + neg, acked + pos
    finals: dict[str, Op] = {}
    for o in ops:
        if o.f == "read" and o.type == "ok" and _is_final(o) and o.node is not None:
            finals[o.node] = o
    nodes = sorted({str(n) for n in _nodes(events)} | set(finals))
    unread = [n for n in nodes if n not in finals]
    anomalies: list[dict[str, Any]] = []
    rows = []
    for n, r in sorted(finals.items()):
        v = r.output
        ok = isinstance(v, int) and lo <= v <= hi
        rows.append({"node": n, "value": v, "ok": ok, "op": r.id})
        if not ok:
            what = ("more than" if isinstance(v, int) and v > hi else "less than") \
                if isinstance(v, int) else "not an integer, unlike"
            anomalies.append(_anomaly(workload, (
                f"the final read of {n} is {v!r}, {what} every possible total: the acknowledged "
                f"adds sum to {acked}, the indeterminate ones can make it {lo}..{hi}"), [r.id],
                "wrong-total"))
    section = {"acknowledged_sum": acked, "low": lo, "high": hi,
               "adds": {t: sum(1 for o in adds if o.type == t) for t in ("ok", "fail", "info")},
               "final_reads": rows, "unread_nodes": unread}
    valid = False if anomalies else (None if unread or not finals else True)
    reason = "" if valid is not None else (
        "no node answered a final read" if not finals else f"no final read from {', '.join(unread)}")
    return _result(workload, valid, began, anomalies, section, len(ops), reason)


# --- unique-ids and echo ---------------------------------------------------------------


def check_unique_ids(events: list[dict[str, Any]], cfg: Any) -> tuple[str, dict[str, Any]]:
    began = time.perf_counter()
    ops = pair(events)
    seen: dict[Any, Op] = {}
    dups: list[tuple[Any, Op, Op]] = []
    count = 0
    for o in ops:
        if o.f != "generate" or o.type != "ok":
            continue
        count += 1
        key = _h(o.output)
        first = seen.get(key)
        if first is None:
            seen[key] = o
        else:
            dups.append((key, first, o))
    anomalies = [_anomaly("ids", f"id {v!r} was returned twice: by {a.node} and by {b.node}",
                          [b.id, a.id], "duplicate") for v, a, b in dups[:EXAMPLES]]
    missing = sum(1 for o in ops if o.f == "generate" and o.type == "ok" and o.output is None)
    section = {"generated": count, "distinct": len(seen), "duplicates": len(dups),
               "examples": [{"id": v, "ops": [a.id, b.id], "nodes": [a.node, b.node]}
                            for v, a, b in dups[:EXAMPLES]],
               "without_id": missing}
    valid = False if dups else (None if missing else True)
    reason = "" if valid is not None else f"{missing} generate_ok replies recorded no id"
    return _result("unique-ids", valid, began, anomalies, section, len(ops), reason)


def check_echo(events: list[dict[str, Any]], cfg: Any) -> tuple[str, dict[str, Any]]:
    began = time.perf_counter()
    ops = pair(events)
    bad = [o for o in ops if o.f == "echo" and o.type == "ok" and o.output != o.key]
    count = sum(1 for o in ops if o.f == "echo" and o.type == "ok")
    anomalies = [_anomaly(o.key, f"{o.node} answered echo {o.key!r} with {o.output!r}",
                          [o.id], "wrong-echo") for o in bad[:EXAMPLES]]
    section = {"echoed": count, "wrong": len(bad),
               "examples": [{"sent": o.key, "got": o.output, "node": o.node, "op": o.id}
                            for o in bad[:EXAMPLES]]}
    return _result("echo", not bad, began, anomalies, section, len(ops))


# --- txn-list-append ----------------------------------------------------------------


def _echoes(asked: Any, got: Any) -> str:
    """Why the ``txn_ok`` micro-ops ``got`` are not a completion of ``asked`` ("" if
    they are)."""
    if not isinstance(got, list):
        return f"its txn is {got!r}, not a list of micro-operations"
    if not isinstance(asked, list) or len(got) != len(asked):
        return f"it has {len(got)} micro-operations for the {len(asked or [])} asked"
    for i, (a, g) in enumerate(zip(asked, got)):
        if not (isinstance(g, list) and len(g) == 3):
            return f"micro-operation {i} is {g!r}, not [f, key, value]"
        if g[0] != a[0] or g[1] != a[1]:
            return f"micro-operation {i} is {g!r} for the {a!r} asked"
        if a[0] == "append" and g[2] != a[2]:
            return f"micro-operation {i} appends {g[2]!r}, not the {a[2]!r} asked"
        if a[0] == "r" and not isinstance(g[2], list):
            return f"micro-operation {i} read {g[2]!r}, not a list"
    return ""


def check_txn_list_append(events: list[dict[str, Any]], cfg: Any
                          ) -> tuple[str, dict[str, Any]]:
    from checker.history import HistoryError
    from harness.workload import check_list_append

    began = time.perf_counter()
    ops = pair(events)
    wrong: dict[int, tuple[Op, str]] = {}  # id(completion event) -> (op, why)
    codes: dict[str, int] = defaultdict(int)
    counts = {"ok": 0, "fail": 0, "info": 0}
    for o in ops:
        if o.f != "txn":
            continue
        counts[o.type] = counts.get(o.type, 0) + 1
        if o.type != "ok" and o.error:
            codes[str(o.error)] += 1
        if o.type == "ok" and o.complete is not None:
            why = _echoes(o.value, o.output)
            if why:
                wrong[id(o.complete)] = (o, why)
    mapped = events
    if wrong:  # judged as what they are: it is unknown what those transactions did
        mapped = [{**ev, "type": "info", "value": wrong[id(ev)][0].value} if id(ev) in wrong
                  else ev for ev in events]
    consistency = getattr(cfg, "consistency", None) or "strict-serializable"
    anomalies = [_anomaly(None, f"{o.node} answered txn T{o.id} with a txn_ok that does not "
                                f"echo its request: {why}", [o.id], "wrong-txn")
                 for o, why in list(wrong.values())[:EXAMPLES]]
    try:
        _, d = check_list_append(mapped, _Consistency(cfg, consistency))
    except HistoryError as exc:
        d = {"valid": None, "model": "list-append", "anomalies": [], "reason": str(exc)}
    assert d is not None
    valid = False if wrong else d.get("valid")
    if valid and not counts["ok"]:  # nothing was judged: no verdict either way
        valid = None
        d["reason"] = "no transaction completed ok"
    d["valid"] = valid
    d["anomalies"] = anomalies + list(d.get("anomalies") or [])
    kinds: dict[str, int] = defaultdict(int)
    for a in d["anomalies"]:
        kinds[str(a.get("kind"))] += 1
    d["section"] = {"renderer": RENDERER, "workload": "txn-list-append",
                    "consistency": consistency, "txns": counts,
                    "errors": dict(sorted(codes.items())), "wrong_replies": len(wrong),
                    "anomaly_kinds": dict(sorted(kinds.items())),
                    "seconds": round(time.perf_counter() - began, 6)}
    return _verdict(valid), d


class _Consistency:
    """``cfg`` as check_list_append reads it, with the consistency model settled."""

    def __init__(self, cfg: Any, consistency: str) -> None:
        self.consistency = consistency
        self.check_time_limit = getattr(cfg, "check_time_limit", None)

