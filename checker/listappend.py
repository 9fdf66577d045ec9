"""List-append transactions, checked the way Elle does: by dependency cycles.

Owns the list-append checker (docs/checker.md "list-append"): from a paired
history of ``f: "txn"`` operations whose value is a list of micro-operations
``["append", key, value]`` and ``["r", key, list]`` (reads filled in on
``ok``), it infers each key's version order, builds the dependency graph
between transactions and names every anomaly it finds, with a sentence.

Theory (Adya's phenomena, as Elle (Kingsbury & Alvaro, VLDB 2020) infers
them from list-append histories; written here from the paper's ideas):

- Appended values are unique per key, and a read returns the whole list, so
  every read of a key is a prefix of the key's one version order. The
  longest read is that order (``O``); a read that is not a prefix of it is
  an ``incompatible-order``.
- Which transactions took effect: every ``ok`` one; an ``info`` one whose
  append some read observed (it must have committed, and atomically, so all
  its appends count); never a ``fail`` one (a read that shows its value is
  ``G1a``). An ``info`` transaction nobody observed is left out: taking
  effect would only add constraints, never remove one. ``info`` reads prove
  nothing.
- A transaction's *external* read of a key is what it saw before its own
  appends to it: the read minus the transaction's own appended suffix. A
  read that does not end with the transaction's own appends so far, or two
  external reads that differ, is ``internal`` inconsistency.
- Edges, each a "must come before" in any serial order:
  ``ww``  the writer of each version to the writer of the next, and the
  writer of the last version anybody saw to every effective writer whose
  append nobody saw (it came later);
  ``wr``  the writer of the last value of an external read to the reader;
  ``rw``  a reader to the writer of the first version it did not see (the
  next one not its own), or, when it saw the whole order, to every
  effective writer whose append nobody observed (it came later);
  ``rt``  (strict serializability) a transaction that completed to one
  invoked after it: for the components, as a chain of virtual nodes (one
  per run of completions; ``_realtime_chain``), inside a component as a
  transitive reduction (``realtime_edges``);
  ``process`` a process's consecutive transactions (session order).
  A read that is not a prefix of its key's order only gets a ``wr`` edge
  from the writer of what it saw last.
- A cycle is a contradiction. By its edges: only ``ww``: ``G0``; ``ww`` and
  ``wr``: ``G1c``; exactly one ``rw``: ``G-single``; two or more: ``G2-item``;
  a cycle that needs ``rt`` (or ``process``) edges has that suffix. A read of
  a transaction's non-final append to a key is ``G1b``.
- Which anomalies count depends on ``consistency``: ``read-committed``
  forbids G0, G1a, G1b, G1c; ``snapshot-isolation`` also G-single and
  ``lost-update`` (two writers of a key in an order no read shows, where
  either order closes a cycle without two adjacent ``rw`` edges: first
  committer wins is broken); ``serializable`` every cycle;
  ``strict-serializable`` (the default) every cycle with real-time edges
  too. Order and internal anomalies, duplicates and values nobody appended
  are anomalies under every model.

How (for a million transactions in under a minute on one core, a few GB):
the transactions live in a ``TxnTable`` (columns, no event dicts; a file
is read into it run by run); one pass (``_scan``) indexes appends and
external reads; the graph for the strongly connected components is plain
successor lists without kinds (``_graph``, iterative Tarjan in ``_sccs``);
kinds, shortest cycles and sentences are worked out only among each
component's members (``_labeled``, ``_classify``).

Invariants: transactions are named by their ``Op.id`` (``T12``), as every
anomaly in this package names operations; table rows are in invocation
order whichever way the table was built; nothing here reads a clock but
the one timing of the whole check; the result does not depend on dict or set
iteration order (every loop that decides output runs over sorted or
position-ordered data).
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from checker.history import INF, Op
from checker.model import Model

CONSISTENCY = ("strict-serializable", "serializable", "snapshot-isolation", "read-committed")

WW, WR, RW, RT, PROC = 1, 2, 4, 8, 16
EDGE_NAMES = {WW: "ww", WR: "wr", RW: "rw", RT: "rt", PROC: "process"}

# Cycle kinds each model forbids (non-cycle anomalies are forbidden by all).
_FORBIDDEN_CYCLES = {
    "read-committed": frozenset({"G0", "G1c"}),
    "snapshot-isolation": frozenset({"G0", "G1c", "G-single"}),
    "serializable": frozenset({"G0", "G1c", "G-single", "G2-item"}),
    "strict-serializable": frozenset({"G0", "G1c", "G-single", "G2-item"}),
}
_EDGES_OF = {
    "read-committed": WW | WR,
    "snapshot-isolation": WW | WR | RW,
    "serializable": WW | WR | RW,
    "strict-serializable": WW | WR | RW | RT | PROC,
}
_NO_TIME = -(1 << 62)  # an event without a time, in the compact tables


@dataclass(slots=True)
class TxnAnomaly:
    """One anomaly: its kind (``G-single``, ``G1a``, ...), a sentence, the
    transactions involved (``Op.id``), and for a cycle its edges in order."""

    kind: str
    sentence: str
    ops: list[int]
    key: Any = None
    cycle: list[dict] = field(default_factory=list)

    def to_dict(self, history: Sequence[Op] | None = None) -> dict:
        """As results.json keeps it (docs/checker.md "list-append"): ``kind``,
        ``key``, ``sentence``, ``ops`` (ids), ``prefix`` (always empty: there
        is no linearization), ``cycle`` for a cycle; with the paired history,
        ``operations`` spells the ops out as kv anomalies do."""
        d: dict[str, Any] = {"kind": self.kind, "key": self.key, "sentence": self.sentence,
                             "ops": list(self.ops), "prefix": []}
        if self.cycle:
            d["cycle"] = self.cycle
        if history is not None:
            from checker.check import op_record  # check imports this module

            d["operations"] = [op_record(history[i]) for i in self.ops if 0 <= i < len(history)]
        return d


class ListAppend(Model):
    """``MODELS["list-append"]``: the name ``--model list-append`` picks. Not
    searched: checker.check hands its histories to ``check_list_append``."""

    name = "list-append"

    def step(self, state: Any, op: Op) -> tuple[bool, Any]:
        raise ValueError("list-append is checked by dependency cycles, not by the search")


@dataclass(slots=True)
class ListAppendResult:
    valid: bool
    consistency: str
    anomalies: list[TxnAnomaly]
    txns: int
    edges: int
    seconds: float
    #: anomaly kinds found but allowed by the consistency model asked for
    allowed: dict[str, int] = field(default_factory=dict)

    @property
    def kinds(self) -> list[str]:
        return sorted({a.kind for a in self.anomalies})


# --------------------------------------------------------------------------- the table


class TxnTable:
    """The transactions of a history in compact columns: what every pass
    reads, and nothing else (no event dicts), so a million transactions fit
    in a few hundred MB. Row ``t`` is one ok or info transaction, in
    invocation order; ``ids[t]`` is its ``Op.id``. Failed transactions keep
    only their appends (``failed``: (key, value) -> Op.id), for G1a.

    Built from paired operations (``from_ops``) or event by event from a
    history file (``TxnTableBuilder``), so a file's events never all exist
    at once. ``op(t)`` gives row ``t`` back as an ``Op``."""

    __slots__ = (
        "_extra",
        "call",
        "end",
        "failed",
        "ids",
        "mops",
        "n_ops",
        "ok",
        "ops",
        "proc",
        "ret",
        "start",
    )

    def __init__(self) -> None:
        self.mops: list[list] = []  # the ok completion's micro-operations, or the invoke's
        self.ok = bytearray()
        self.proc: list[Any] = []
        self.ids = array("q")
        self.call = array("q")  # event positions (real-time order)
        self.ret = array("q")  # -1: never completed (info)
        self.start = array("q")  # event times, _NO_TIME for none
        self.end = array("q")
        self.failed: dict[tuple, int] = {}
        self.ops: Sequence[Op] | None = None  # the paired history, when built from it
        self.n_ops = 0
        # streamed rows only: t -> (invoke index, completion index, node, error)
        self._extra: list[tuple] = []

    @classmethod
    def from_ops(cls, ops: Sequence[Op]) -> TxnTable:
        tb = cls()
        tb.ops = ops
        tb.n_ops = len(ops)
        add_mops, add_ok, add_proc = tb.mops.append, tb.ok.append, tb.proc.append
        ids, call, ret, start, end = tb.ids, tb.call, tb.ret, tb.start, tb.end
        for op in ops:
            if op.f != "txn":
                continue
            if op.type == "fail":
                _add_failed(tb.failed, op.value, op.id)
                continue
            ok = op.type == "ok"
            v = op.output if ok else op.value
            add_mops(v if type(v) is list else [])
            add_ok(ok)
            add_proc(op.process)
            ids.append(op.id)
            call.append(op.call)
            ret.append(-1 if op.ret == INF else op.ret)
            start.append(_NO_TIME if op.start is None else op.start)
            end.append(_NO_TIME if op.end is None else op.end)
        return tb

    def __len__(self) -> int:
        return len(self.mops)

    def op(self, t: int) -> Op:
        """Row ``t`` as an Op (from the paired history, or rebuilt)."""
        if self.ops is not None:
            return self.ops[self.ids[t]]
        inv_index, ret_index, node, error = self._extra[t]
        ok = self.ok[t]
        mops = self.mops[t]
        invoke_value = [[m[0], m[1], None] if m[0] == "r" else m for m in mops] if ok else mops
        start = None if self.start[t] == _NO_TIME else self.start[t]
        end = None if self.end[t] == _NO_TIME else self.end[t]
        p = self.proc[t]
        inv = {"index": inv_index, "time": start, "process": p, "type": "invoke", "f": "txn",
               "value": invoke_value}
        done = None
        if self.ret[t] >= 0 or ret_index is not None:
            done = {"index": ret_index, "time": end, "process": p,
                    "type": "ok" if ok else "info", "f": "txn", "value": mops}
        ret = self.ret[t]
        return tuple.__new__(Op, (self.ids[t], p, "txn", None, invoke_value, mops,
                                  "ok" if ok else "info", self.call[t],
                                  INF if ret < 0 else ret, start, end, node, error, inv, done))

    def history(self) -> Sequence[Op | None]:
        """What ``Op.id``s index: the paired history, or a stand-in that
        rebuilds the transactions' Ops on demand (others are None)."""
        if self.ops is not None:
            return self.ops
        return _LazyHistory(self)


class _LazyHistory(Sequence):
    """``history[id]`` for a streamed table: the row's Op, built when asked."""

    def __init__(self, tb: TxnTable) -> None:
        self.tb = tb
        self.row = {i: t for t, i in enumerate(tb.ids)}

    def __len__(self) -> int:
        return self.tb.n_ops

    def __getitem__(self, i: Any) -> Any:
        t = self.row.get(i)
        return None if t is None else self.tb.op(t)


def _add_failed(failed: dict[tuple, int], mops: Any, oid: int) -> None:
    for m in mops if type(mops) is list else ():
        f = _mop(m)[0]
        if f == "append":
            failed[(_hashable(m[1]), _hashable(m[2]))] = oid


class TxnTableBuilder:
    """A ``TxnTable`` from events fed one at a time, as ``checker.history.pair``
    pairs them (the same ``Op.id``s: invokes are numbered in order; a second
    invoke on an open process makes the first info; an info or unmatched
    completion ends nothing). Non-txn operations only take their ids."""

    def __init__(self) -> None:
        self.tb = TxnTable()
        self.open: dict[Any, tuple] = {}  # process -> (id, call pos, invoke event)
        self.next_id = 0
        self.pos = 0

    def feed(self, events: Iterable[dict]) -> None:
        tb = self.tb
        open_ = self.open
        pop = open_.pop
        pos, next_id = self.pos, self.next_id
        # the common row (an ok txn) is added here; the rest goes through _row
        add_mops, add_ok, add_proc, add_extra = (tb.mops.append, tb.ok.append, tb.proc.append,
                                                 tb._extra.append)
        add_id, add_call, add_ret = tb.ids.append, tb.call.append, tb.ret.append
        add_start, add_end = tb.start.append, tb.end.append
        no_time = _NO_TIME
        for ev in events:
            p = ev["process"]
            if p == "nemesis":
                pos += 1
                continue
            t = ev["type"]
            if t == "invoke":
                prev = pop(p, None)
                if prev is not None:
                    self._row(prev, None, -1)
                open_[p] = (next_id, pos, ev)
                next_id += 1
                pos += 1
                continue
            prev = pop(p, None)
            if prev is None:
                pos += 1
                continue
            inv = prev[2]
            get = ev.get
            if t == "ok" and inv.get("f") == "txn" and get("f", "txn") == "txn":
                v = get("value")
                add_mops(v if type(v) is list else [])
                add_ok(1)
                add_proc(p)
                add_id(prev[0])
                add_call(prev[1])
                add_ret(pos)
                s = inv.get("time")
                add_start(no_time if s is None else s)
                e = get("time")
                add_end(no_time if e is None else e)
                add_extra((inv.get("index"), get("index"), get("node"), get("error")))
            else:
                self._row(prev, ev, -1 if t == "info" else pos)
            pos += 1
        self.pos, self.next_id = pos, next_id
        tb.n_ops = next_id

    def _row(self, opened: tuple, done: dict | None, ret: int) -> None:
        oid, call, inv = opened
        if inv.get("f") != "txn":
            return
        tb = self.tb
        kind = "info" if done is None or done["type"] == "info" else done["type"]
        if done is not None and done.get("f") not in (None, "txn"):
            from checker.history import HistoryError

            raise HistoryError("<history>", None, f"completion f {done.get('f')!r} does not "
                               "match invoke f 'txn'")
        if kind == "fail":
            _add_failed(tb.failed, inv.get("value"), oid)
            return
        ok = kind == "ok"
        v = done.get("value") if ok else inv.get("value")
        tb.mops.append(v if type(v) is list else [])
        tb.ok.append(ok)
        tb.proc.append(inv["process"])
        tb.ids.append(oid)
        tb.call.append(call)
        tb.ret.append(ret if ok else -1)
        s = inv.get("time")
        e = done.get("time") if done is not None else None
        tb.start.append(_NO_TIME if s is None else s)
        tb.end.append(_NO_TIME if e is None else e)
        tb._extra.append((inv.get("index"), None if done is None else done.get("index"),
                          None if done is None else done.get("node"),
                          None if done is None else done.get("error")))

    def finish(self) -> TxnTable:
        """The table, its rows in invocation order (as ``from_ops`` makes them:
        rows were added as transactions completed)."""
        for opened in list(self.open.values()):
            self._row(opened, None, -1)
        self.open = {}
        tb = self.tb
        ids = tb.ids
        if any(a > b for a, b in pairwise(ids)):
            order = sorted(range(len(ids)), key=ids.__getitem__)
            tb.mops = [tb.mops[i] for i in order]
            tb.ok = bytearray(tb.ok[i] for i in order)
            tb.proc = [tb.proc[i] for i in order]
            tb._extra = [tb._extra[i] for i in order]
            for name in ("ids", "call", "ret", "start", "end"):
                col = getattr(tb, name)
                setattr(tb, name, array("q", [col[i] for i in order]))
        return tb


# --------------------------------------------------------------------------- the check


class _State:
    """What the passes learn about the table (see ``_scan``)."""

    __slots__ = ("bad", "effective", "ext", "extra", "multi", "orders", "tb", "vw", "writer")

    def __init__(self, tb: TxnTable) -> None:
        self.tb = tb
        self.effective = bytearray(tb.ok)
        #: key -> {value: row of its writer}
        self.writer: dict[Any, dict[Any, int]] = {}
        #: (row, key) -> its appends to the key, for rows that append a key twice or more
        self.multi: dict[tuple[int, Any], list] = {}
        #: key -> [row, external read, row, external read, ...] (ok rows, in row order)
        self.ext: dict[Any, list] = {}
        #: key -> the same, for reads that followed the row's own appends (the whole list)
        self.extra: dict[Any, list] = {}
        #: key -> its version order (the longest read); key -> the writer of each version
        self.orders: dict[Any, list] = {}
        self.vw: dict[Any, list] = {}
        #: keys with a read that is not a prefix of their order
        self.bad: set[Any] = set()


def check_list_append(
    ops: Iterable[Op] | TxnTable, consistency: str = "strict-serializable",
    *, max_anomalies: int = 8,
) -> ListAppendResult:
    """Check the ``txn`` operations of a paired history (``checker.history.pair``),
    or a ``TxnTable``.

    Raises ValueError for an unknown ``consistency`` or a micro-operation that
    is not ``["append", k, v]`` / ``["r", k, list-or-null]``.
    """
    if consistency not in _FORBIDDEN_CYCLES:
        raise ValueError(f"unknown consistency {consistency!r} "
                         f"(expected one of {', '.join(CONSISTENCY)})")
    t0 = time.perf_counter()
    tb = ops if isinstance(ops, TxnTable) else TxnTable.from_ops(list(ops))
    st = _State(tb)
    found: list[TxnAnomaly] = []
    _scan(st, found)
    _version_orders(st, found)
    _aborted_and_intermediate(st, found)
    kinds = _EDGES_OF[consistency]
    succ, n_edges = _graph(st, kinds)
    forbidden = _FORBIDDEN_CYCLES[consistency]
    allowed: dict[str, int] = {}
    n = len(tb)
    for comp in _sccs(succ):
        members = sorted(x for x in comp if x < n)  # virtual (real-time) nodes left out
        edges = _labeled(st, members, kinds)
        a = _classify(st, edges, members)
        base = a.kind.split("-realtime")[0].split("-process")[0]
        if base in forbidden:
            found.append(a)
        else:
            allowed[a.kind] = allowed.get(a.kind, 0) + 1
            if consistency == "snapshot-isolation":
                found.extend(_si_conflicts(st, edges, members))
    # Deterministic and short: by kind, then by the transactions named.
    found.sort(key=lambda a: (_RANK.get(a.kind.split("-")[0], 9), a.kind, a.ops))
    kept = _spread(found, max_anomalies) if max_anomalies else found
    return ListAppendResult(
        valid=not found, consistency=consistency, anomalies=kept, txns=n,
        edges=n_edges, seconds=time.perf_counter() - t0, allowed=allowed,
    )


_RANK = {"duplicate": 0, "incompatible": 1, "unknown": 2, "internal": 3, "G1a": 4, "G1b": 5,
         "G0": 6, "G1c": 7, "G": 8, "lost": 9}


def _spread(found: list[TxnAnomaly], most: int) -> list[TxnAnomaly]:
    """At most ``most`` anomalies, the first of every kind before a second of
    any (a thousand order anomalies must not hide the one cycle), in
    ``found``'s order."""
    firsts: dict[str, int] = {}
    for i, a in enumerate(found):
        firsts.setdefault(a.kind, i)
    pick = sorted(firsts.values())[:most]
    chosen = set(pick)
    pick += [i for i in range(len(found)) if i not in chosen][:most - len(pick)]
    return [found[i] for i in sorted(pick)]


def _name(st: _State, t: int) -> str:
    return f"T{st.tb.ids[t]}"


def _mop(m: Any) -> tuple[str, Any, Any]:
    if not isinstance(m, (list, tuple)) or len(m) != 3:
        raise ValueError(f"not a list-append micro-operation: {m!r}")
    f, k, v = m
    if f == "append":
        if not _is_hashable(v) or not _is_hashable(k):
            raise ValueError(f"appended values and keys must be scalars, not {list(m)!r}")
        return "append", k, v
    if f == "r" or f == "read":
        if v is not None and not isinstance(v, list):
            raise ValueError(f"a read must return a list or null, not {v!r}")
        if not _is_hashable(k):
            raise ValueError(f"keys must be scalars, not {k!r}")
        return "r", k, v
    raise ValueError(f"unknown micro-operation {f!r} (expected append or r)")


def _scan(st: _State, found: list[TxnAnomaly]) -> None:
    """One pass over every row: who appended each value (and duplicates),
    internal consistency, and each ok row's external reads (what it saw
    before its own appends to the key). Info reads prove nothing."""
    writer, multi, ext, extra = st.writer, st.multi, st.ext, st.extra
    ok = st.tb.ok
    t = 0
    try:
        for t, mops in enumerate(st.tb.mops):
            okt = ok[t]
            # key -> [external read or None, own appends so far or None]; made
            # only when a row touches a key twice (most touch each key once)
            seen: dict[Any, list] | None = None
            for m in mops:
                if type(m) is not list or len(m) != 3:
                    _mop(m)  # raises (or accepts a tuple)
                f, k, v = m
                if f == "append":
                    w = writer.get(k)
                    if w is None:
                        w = writer[k] = {}
                    prev = w.get(v)
                    if prev is not None:
                        found.append(TxnAnomaly(
                            "duplicate-appends", f"{_name(st, prev)} and {_name(st, t)} both "
                            f"appended {v!r} to {_key(k)}; appended values must be unique per key",
                            sorted({st.tb.ids[prev], st.tb.ids[t]}), k))
                        continue
                    w[v] = t
                    if seen is None:
                        seen = {k: [None, [v]]}
                        continue
                    s = seen.get(k)
                    if s is None:
                        seen[k] = [None, [v]]
                    elif s[1] is None:
                        s[1] = [v]
                    else:
                        s[1].append(v)
                        multi[(t, k)] = s[1]
                    continue
                if f != "r" and f != "read":
                    _mop(m)  # raises
                if v is None or not okt:
                    if v is not None and type(v) is not list:
                        _mop(m)  # raises
                    continue
                if type(v) is not list:
                    _mop(m)  # raises
                s = seen.get(k) if seen is not None else None
                if s is None:
                    if seen is None:
                        seen = {k: [v, None]}
                    else:
                        seen[k] = [v, None]
                    er = ext.get(k)  # _push, inlined: once per read
                    if er is None:
                        ext[k] = [t, v]
                    else:
                        er.append(t)
                        er.append(v)
                    continue
                before, own = s
                if own is None:
                    if v != before:
                        found.append(_internal_twice(st, t, k, before, v))
                    continue
                n_own = len(own)
                if before is None:
                    _push(extra, k, t, v)
                    if v[len(v) - n_own:] != own:
                        found.append(TxnAnomaly(
                            "internal", f"{_name(st, t)} appended {_fmt(own)} to {_key(k)} and "
                            f"then read {_key(k)} as {_fmt(v)}, which does not end with its own "
                            "appends", [st.tb.ids[t]], k))
                        s[0] = []
                        continue
                    s[0] = before = v[:len(v) - n_own]
                    _push(ext, k, t, before)
                elif v != before + own:
                    found.append(_internal_twice(st, t, k, before + own, v))
                else:  # the whole list again, its own appends on top: an order to check
                    _push(extra, k, t, v)
    except TypeError:  # an unhashable key or appended value
        for m in st.tb.mops[t]:
            _mop(m)
        raise


def _push(reads: dict[Any, list], k: Any, t: int, v: list) -> None:
    """Add (row, read) to a key's flat list of reads."""
    rs = reads.get(k)
    if rs is None:
        reads[k] = [t, v]
    else:
        rs.append(t)
        rs.append(v)


def _internal_twice(st: _State, t: int, k: Any, expected: list, got: list) -> TxnAnomaly:
    return TxnAnomaly(
        "internal", f"{_name(st, t)} read {_key(k)} as {_fmt(expected)} (what it saw, plus its "
        f"own appends) and then as {_fmt(got)}", [st.tb.ids[t]], k)


def _pairs(flat: list) -> Iterator[tuple[int, list]]:
    it = iter(flat)
    return zip(it, it)


def _version_orders(st: _State, found: list[TxnAnomaly]) -> None:
    """Each key's version order: its longest ok read, with every read a prefix of it."""
    orders, vw_of, writer = st.orders, st.vw, st.writer
    extra = st.extra
    none: list = []
    for k in [*st.ext, *(k for k in extra if k not in st.ext)]:
        er = st.ext.get(k, none)
        xr = extra.get(k, none)
        longest = max(er[1::2], key=len) if er else []
        if xr:
            long2 = max(xr[1::2], key=len)
            if len(long2) > len(longest):
                longest = long2
        orders[k] = longest
        n = len(longest)
        for rs in (er, xr):
            for t, v in _pairs(rs):
                if len(v) == n:
                    if v is longest or v == longest:
                        continue
                elif v == longest[:len(v)]:
                    continue
                lt = _reader_of_prefix(st, k, n)
                st.bad.add(k)
                found.append(TxnAnomaly(
                    "incompatible-order", f"{_name(st, t)} read {_key(k)} as {_fmt(v)} but "
                    f"{_name(st, lt)} read it as {_fmt(longest)}: neither is a prefix of the "
                    "other, so the key has no one order of versions",
                    sorted({st.tb.ids[t], st.tb.ids[lt]}), k))
                break  # one per key is enough to name it
            else:
                continue
            break
        try:
            dup = len(set(longest)) != n
        except TypeError:
            dup = len(set(map(_hashable, longest))) != n
        if dup:
            lt = _reader_of_prefix(st, k, n)
            found.append(TxnAnomaly(
                "duplicate-elements", f"{_name(st, lt)} read {_key(k)} as {_fmt(longest)}, "
                "which holds a value twice, though each value is appended once",
                [st.tb.ids[lt]], k))
        vw_of[k] = _writers_of(writer.get(k, {}), longest)


def _aborted_and_intermediate(st: _State, found: list[TxnAnomaly]) -> None:
    """G1a, G1b, values nobody appended, a transaction's appends out of its
    own order; and which info transactions took effect."""
    tb = st.tb
    ok, eff, multi = tb.ok, st.effective, st.multi
    failed = tb.failed
    multi_keys: dict[Any, list[int]] = {}
    for t, k in multi:
        multi_keys.setdefault(k, []).append(t)
    for k in sorted(st.orders, key=_sort_key):
        o = st.orders[k]
        vw = st.vw[k]
        if None in vw:
            for i, t in enumerate(vw):
                if t is not None:
                    continue
                v = o[i]
                ab = failed.get((_hashable(k), _hashable(v)))
                r = _reader_of_prefix(st, k, i + 1)
                if ab is not None:
                    found.append(TxnAnomaly(
                        "G1a", f"{_name(st, r)} read {_key(k)} as {_fmt(o[:i + 1])}, but "
                        f"T{ab} appended {v!r} and failed (aborted read)",
                        [ab, tb.ids[r]], k))
                else:
                    found.append(TxnAnomaly(
                        "unknown-value", f"{_name(st, r)} read {v!r} in {_key(k)}, which no "
                        "transaction appended", [tb.ids[r]], k))
        for t in set(vw):
            if t is not None and not ok[t]:
                eff[t] = 1  # an info transaction that was observed
        ts = multi_keys.get(k)
        if not ts:
            continue
        pos = {v: i for i, v in enumerate(o)} if _all_hashable(o) else {}
        for t in sorted(ts):
            mine = multi[(t, k)]
            at = [pos.get(v) for v in mine]
            # Its appends to k must sit together, in its order, wherever they were seen.
            seen_at = [i for i in at if i is not None]
            if seen_at and (seen_at != list(range(seen_at[0], seen_at[0] + len(seen_at)))
                            or at[:len(seen_at)] != seen_at):
                bad = seen_at[-1]
                r = _reader_of_prefix(st, k, bad + 1)
                found.append(TxnAnomaly(
                    "incompatible-order", f"{_name(st, t)} appended {_fmt(mine)} to {_key(k)} "
                    f"in that order, but {_name(st, r)} read {_key(k)} as {_fmt(o[:bad + 1])}",
                    sorted({tb.ids[t], tb.ids[r]}), k))
        for r, ext in _pairs(st.ext.get(k, ())):
            if not ext:
                continue
            last = ext[-1]
            t = st.writer.get(k, {}).get(last) if _is_hashable(last) else None
            if t is not None and t != r and (t, k) in multi and multi[(t, k)][-1] != last:
                found.append(TxnAnomaly(
                    "G1b", f"{_name(st, r)} read {_key(k)} as {_fmt(ext)}, ending with {last!r}, "
                    f"but {_name(st, t)} appended {multi[(t, k)][-1]!r} to {_key(k)} after it "
                    "(intermediate read)", [tb.ids[t], tb.ids[r]], k))


def _reader_of_prefix(st: _State, k: Any, n: int) -> int:
    """The first ok transaction whose read of ``k`` holds at least ``n`` values."""
    best = None
    for rs in (st.ext.get(k, ()), st.extra.get(k, ())):
        for t, v in _pairs(rs):
            if len(v) >= n and (best is None or t < best):
                best = t
                break
    if best is None:  # pragma: no cover
        raise AssertionError("a version with no read")
    return best


def _unseen(st: _State, k: Any) -> list[int]:
    """Effective writers of ``k`` whose append to it nobody saw, in row order."""
    w = st.writer.get(k)
    if not w:
        return []
    seen = set(st.vw.get(k, ()))
    eff = st.effective
    return sorted({t for t in w.values() if t not in seen and eff[t]})


def _graph(st: _State, kinds: int) -> tuple[list[list[int]], int]:
    """The dependency graph as successor lists (no kinds: the strongly
    connected components need none), with real time as a chain of virtual
    nodes: one per run of completions, each completion -> its node -> the
    next node, and a node -> every transaction invoked after it. A path
    a -> ... -> b through them exists iff ``a`` completed before ``b`` was
    invoked, with 2 edges per completion and 1 per invocation instead of
    one per such pair. Rows are 0..n-1; virtual nodes follow."""
    tb = st.tb
    n = len(tb)
    succ: list[list[int]] = [[] for _ in range(n)]
    eff = st.effective
    vw_of = st.vw
    none: list = []
    for k, w in st.writer.items():
        vw = vw_of.get(k, none)
        nv = len(vw)
        unseen = None
        if kinds & WW:
            last = None
            for a, b in pairwise(vw):
                if a is not None and b is not None and a != b:
                    succ[a].append(b)
            if nv and vw[-1] is not None:
                last = vw[-1]
                unseen = _unseen(st, k)
                for b in unseen:  # an append nobody saw comes after every one seen
                    if b != last:
                        succ[last].append(b)
        er = st.ext.get(k)
        if not er:
            continue
        wr, rw = kinds & WR, kinds & RW
        bad = k in st.bad
        order = st.orders.get(k, none)
        for r, ext in _pairs(er):
            m = len(ext)
            if bad and ext != order[:m]:
                # not a prefix of the order (reported): it saw what it saw
                # last, but its place among the versions says nothing
                a = _writer_of(w, ext[-1]) if wr and m else None
                if a is not None and a != r:
                    succ[a].append(r)
                continue
            if wr and m and m <= nv:
                a = vw[m - 1]
                if a is not None and a != r:
                    succ[a].append(r)
            if rw:
                i = m
                while i < nv and vw[i] == r:
                    i += 1  # its own appends follow what it saw
                if i < nv:
                    b = vw[i]
                    if b is not None:
                        succ[r].append(b)
                    continue
                if unseen is None:
                    unseen = _unseen(st, k)
                sr = succ[r]
                for b in unseen:
                    if b != r:
                        sr.append(b)
    if kinds & RT:
        _realtime_chain(tb, eff, succ)
    if kinds & PROC:
        last_of: dict[Any, int] = {}
        proc = tb.proc
        for t in range(n):
            if eff[t]:
                p = proc[t]
                prev = last_of.get(p)
                if prev is not None:
                    succ[prev].append(t)
                last_of[p] = t
    return succ, sum(map(len, succ))


def _realtime_chain(tb: TxnTable, eff: bytearray, succ: list[list[int]]) -> None:
    n = len(tb)
    call, ret = tb.call, tb.ret
    size = max(max(call, default=0), max(ret, default=0)) + 1
    at: list[int | None] = [None] * size  # event position -> row (invoke) or ~row (completion)
    for t in range(n):
        if eff[t]:
            at[call[t]] = t
            if ret[t] >= 0:
                at[ret[t]] = ~t
    cur = -1  # the newest virtual node
    fresh = False  # whether it has been linked to an invocation yet
    new = succ.append
    for x in at:
        if x is None:
            continue
        if x >= 0:
            if cur >= 0:
                succ[cur].append(x)
                fresh = False
            continue
        if cur < 0 or not fresh:
            v = len(succ)
            new([])
            if cur >= 0:
                succ[cur].append(v)
            cur, fresh = v, True
        succ[~x].append(cur)


def _sccs(succ: list[list[int]]) -> list[list[int]]:
    """Strongly connected components with more than one node (iterative Tarjan)."""
    n = len(succ)
    index = [-1] * n
    low = [0] * n
    on = bytearray(n)
    stack: list[int] = []
    out: list[list[int]] = []
    counter = 0
    for root in range(n):
        if index[root] != -1 or not succ[root]:
            continue
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on[root] = 1
        work = [(root, iter(succ[root]))]
        while work:
            v, it = work[-1]
            for w in it:
                if index[w] == -1:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on[w] = 1
                    work.append((w, iter(succ[w])))
                    break
                if on[w] and index[w] < low[v]:
                    low[v] = index[w]
            else:
                work.pop()
                lv = low[v]
                if work:
                    u = work[-1][0]
                    low[u] = min(low[u], lv)
                if lv == index[v]:
                    w = stack.pop()
                    on[w] = 0
                    if w != v:
                        comp = [w]
                        while w != v:
                            w = stack.pop()
                            on[w] = 0
                            comp.append(w)
                        out.append(sorted(comp))
    return out


def _labeled(st: _State, members: list[int], kinds: int) -> dict[int, dict[int, int]]:
    """The dependency edges among ``members`` with their kinds (bits):
    ``edges[a][b]``. The same derivation as ``_graph``, limited to the keys
    the members touch; real time and process order become direct edges
    between members (a path of them through others is the same order)."""
    tb = st.tb
    mem = set(members)
    edges: dict[int, dict[int, int]] = {}

    def add(a: int, b: int, kind: int) -> None:
        if a in mem and b in mem and a != b:
            d = edges.get(a)
            if d is None:
                edges[a] = {b: kind}
            else:
                d[b] = d.get(b, 0) | kind

    keys = sorted({m[1] for t in members for m in tb.mops[t] if type(m) in (list, tuple)
                   and len(m) == 3 and _is_hashable(m[1])}, key=_sort_key)
    none: list = []
    for k in keys:
        vw = st.vw.get(k, none)
        nv = len(vw)
        unseen = _unseen(st, k)
        if kinds & WW:
            for a, b in pairwise(vw):
                if a is not None and b is not None:
                    add(a, b, WW)
            if nv and vw[-1] is not None:
                for b in unseen:
                    add(vw[-1], b, WW)
        order = st.orders.get(k, none)
        w = st.writer.get(k, {})
        for r, ext in _pairs(st.ext.get(k, none)):
            if r not in mem:
                continue
            m = len(ext)
            if k in st.bad and ext != order[:m]:  # as in _graph
                a = _writer_of(w, ext[-1]) if kinds & WR and m else None
                if a is not None:
                    add(a, r, WR)
                continue
            if kinds & WR and m and m <= nv and vw[m - 1] is not None:
                add(vw[m - 1], r, WR)
            if kinds & RW:
                i = m
                while i < nv and vw[i] == r:
                    i += 1
                if i < nv:
                    if vw[i] is not None:
                        add(r, vw[i], RW)
                    continue
                for b in unseen:
                    add(r, b, RW)
    if kinds & RT:
        eff = st.effective
        for a, b in realtime_edges([tb.op(t) for t in members], [bool(eff[t]) for t in members]):
            add(members[a], members[b], RT)
    if kinds & PROC:
        last: dict[Any, int] = {}
        for t in members:
            p = tb.proc[t]
            if p in last:
                add(last[p], t, PROC)
            last[p] = t
    return edges


def realtime_edges(ops: Sequence[Op], effective: Sequence[bool]) -> list[tuple[int, int]]:
    """Edges a -> b (positions in ``ops``) where ``a`` completed before ``b``
    was invoked, reduced: when ``b`` completes, every ``a`` it came after is
    covered by ``b`` for whatever is invoked later, so only the frontier of
    completions is linked."""
    events: list[tuple[float, int, int]] = []
    for t, op in enumerate(ops):
        if not effective[t]:
            continue
        events.append((op.call, 1, t))
        if op.type == "ok":
            events.append((op.ret, 0, t))
    events.sort()
    frontier: dict[int, None] = {}  # insertion-ordered set
    preds: dict[int, tuple[int, ...]] = {}
    out: list[tuple[int, int]] = []
    for _pos, kind, t in events:
        if kind == 1:
            ps = tuple(frontier)
            preds[t] = ps
            out.extend((a, t) for a in ps)
        else:
            for a in preds.pop(t, ()):
                frontier.pop(a, None)
            frontier[t] = None
    return out


def _bfs_path(edges: dict[int, dict[int, int]], members: set[int], src: int, dst: int,
              mask: int) -> list[int] | None:
    """Shortest path src -> dst over edges whose kinds meet ``mask``, inside ``members``."""
    if src == dst:
        return [src]
    parent = {src: src}
    frontier = [src]
    while frontier:
        nxt = []
        for v in frontier:
            for w, kind in sorted(edges.get(v, {}).items()):
                if kind & mask and w in members and w not in parent:
                    parent[w] = v
                    if w == dst:
                        path = [w]
                        while path[-1] != src:
                            path.append(parent[path[-1]])
                        return path[::-1]
                    nxt.append(w)
        frontier = nxt
    return None


def _cycle_through(edges: dict[int, dict[int, int]], members: set[int], a: int, b: int,
                   mask: int) -> list[int] | None:
    """A shortest cycle a -> b -> ... -> a with the closing path over ``mask``."""
    path = _bfs_path(edges, members, b, a, mask)
    return None if path is None else [a] + path[:-1]


def _classify(st: _State, edges: dict[int, dict[int, int]], comp: list[int]) -> TxnAnomaly:
    """The weakest anomaly in one strongly connected component, with its cycle."""
    members = set(comp)
    inner = [(a, b, kind) for a in comp for b, kind in sorted(edges.get(a, {}).items())
             if b in members]
    cycle: list[int] | None = None
    for extra in (0, RT | PROC):
        # G0: ww only; G1c: ww and wr; G-single: one rw closed by non-rw edges.
        for mask, need in ((WW | extra, WW | extra), (WW | WR | extra, WR)):
            for a, b, kind in inner:
                if kind & need and kind & mask:
                    cycle = _cycle_through(edges, members, a, b, mask)
                    if cycle:
                        break
            if cycle:
                break
        if cycle:
            break
        for a, b, kind in inner:
            if kind & RW:
                cycle = _cycle_through(edges, members, a, b, WW | WR | extra)
                if cycle:
                    break
        if cycle:
            break
    if cycle is None:  # every cycle here needs two or more anti-dependencies
        a, b, _ = next((e for e in inner if e[2] & RW), inner[0])
        cycle = _cycle_through(edges, members, a, b, WW | WR | RW | RT | PROC)
        assert cycle is not None, "a strongly connected component without a cycle"
    return _explain_cycle(st, edges, cycle)


def _si_conflicts(st: _State, edges: dict[int, dict[int, int]],
                  comp: list[int]) -> list[TxnAnomaly]:
    """Snapshot isolation's first committer wins, for appends whose order no
    read shows: of two effective transactions that both appended to a key,
    one must have committed before the other started, which orders them as a
    ww edge. If either order closes a cycle with no two adjacent
    anti-dependencies (forbidden under snapshot isolation), they lost an
    update. Only transactions of one strongly connected component can be so
    stuck (each order needs a path back), so only ``comp`` is searched."""
    members = set(comp)
    tb = st.tb
    keys = sorted({m[1] for t in comp for m in tb.mops[t] if m[0] == "append"}, key=_sort_key)
    for k in keys:
        u = [t for t in _unseen(st, k) if t in members]
        for i, a in enumerate(u):
            for b in u[i + 1:]:
                back = _si_path(edges, members, b, a)  # forbids a before b
                if back is None:
                    continue
                fwd = _si_path(edges, members, a, b)  # forbids b before a
                if fwd is None:
                    continue
                A, B = _name(st, a), _name(st, b)
                why = []
                for path in (back, fwd):
                    for x, y in pairwise(path):
                        kind = _edge_kind_on_cycle(edges[x][y])
                        why.append(_explain_edge(st, x, y, kind)[0])
                return [TxnAnomaly(
                    "lost-update", f"{A} and {B} both appended to {_key(k)}, and no read shows "
                    f"which went first; under snapshot isolation the first committed before the "
                    f"other began. But {'; '.join(why)}: either order closes a cycle with no two "
                    "adjacent anti-dependencies, so one of them lost the other's update",
                    sorted({tb.ids[a], tb.ids[b]}), k)]  # one per component names it
    return []


def _si_path(edges: dict[int, dict[int, int]], members: set[int], src: int,
             dst: int) -> list[int] | None:
    """A shortest path src -> dst inside ``members`` with no two adjacent rw
    edges (its first edge may be rw: it follows a ww edge into ``src``)."""
    start = (src, False)
    parent: dict[tuple[int, bool], tuple[int, bool]] = {start: start}
    frontier = [start]
    while frontier:
        nxt = []
        for state in frontier:
            v, after_rw = state
            for w, bits in sorted(edges.get(v, {}).items()):
                if w not in members:
                    continue
                if bits & ~RW:
                    step = (w, False)
                elif not after_rw:
                    step = (w, True)
                else:
                    continue
                if step in parent:
                    continue
                parent[step] = state
                if w == dst:
                    path = [step]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [p[0] for p in reversed(path)]
                nxt.append(step)
        frontier = nxt
    return None


def _edge_kind_on_cycle(kinds: int) -> int:
    for k in (WW, WR, PROC, RT, RW):  # name the edge by its strongest reason
        if kinds & k:
            return k
    raise AssertionError("an edge with no kind")  # pragma: no cover


def _explain_cycle(st: _State, edges: dict[int, dict[int, int]],
                   cycle: list[int]) -> TxnAnomaly:
    steps: list[dict] = []
    words: list[str] = []
    n_rw = 0
    used = 0
    ids = st.tb.ids
    for a, b in zip(cycle, cycle[1:] + cycle[:1]):
        kind = _edge_kind_on_cycle(edges[a][b])
        used |= kind
        n_rw += kind == RW
        text, key, value = _explain_edge(st, a, b, kind)
        steps.append({"from": ids[a], "to": ids[b], "kind": EDGE_NAMES[kind],
                      "key": key, "value": value, "why": text})
        words.append(text)
    if n_rw == 0:
        base = "G0" if not used & WR else "G1c"
    else:
        base = "G-single" if n_rw == 1 else "G2-item"
    kind_name = base + ("-realtime" if used & RT else "-process" if used & PROC else "")
    sentence = "; ".join(words) + f": a cycle, {kind_name}"
    return TxnAnomaly(kind_name, sentence[0].upper() + sentence[1:],
                      [ids[t] for t in cycle], steps[0]["key"], steps)


def _appends(st: _State, t: int) -> list[tuple[Any, Any]]:
    return [(m[1], m[2]) for m in st.tb.mops[t] if m[0] == "append"]


def _explain_edge(st: _State, a: int, b: int, kind: int) -> tuple[str, Any, Any]:
    A, B = _name(st, a), _name(st, b)
    if kind == WW:
        for k, v in _appends(st, a):
            o = st.orders.get(k, [])
            w = st.writer.get(k, {})
            for i in range(len(o) - 1):
                if o[i] == v and w.get(o[i + 1]) == b:
                    return ((f"{A} appended {v!r} to {_key(k)} and {B} appended {o[i + 1]!r} "
                            f"right after it, so {A} < {B}"), k, o[i + 1])
        for k, v in _appends(st, b):
            if b in _unseen(st, k) and st.vw.get(k) and st.vw[k][-1] == a:
                last = st.orders[k][-1]
                return ((f"{A} appended {last!r} to {_key(k)}, the last value anybody read, and "
                         f"{B} appended {v!r}, which nobody read, so after it: {A} < {B}"), k, v)
    if kind == WR:
        for k, _v in _appends(st, a):
            for r, ext in _pairs(st.ext.get(k, ())):
                if r == b and ext and st.writer[k].get(ext[-1]) == a:
                    return ((f"{A} appended {ext[-1]!r} to {_key(k)} and {B} read {_key(k)} as "
                            f"{_fmt(ext)}, with it, so {A} < {B}"), k, ext[-1])
    if kind == RW:
        for k, v in _appends(st, b):
            for r, ext in _pairs(st.ext.get(k, ())):
                if r == a and v not in ext:
                    return ((f"{A} read {_key(k)} as {_fmt(ext)}, without {v!r}, which {B} "
                            f"appended, so {A} < {B}"), k, v)
    if kind == RT:
        oa, ob = st.tb.op(a), st.tb.op(b)
        return ((f"{A} completed{_at(oa.end)} before {B} was invoked{_at(ob.start)}, "
                f"so {A} < {B}"), None, None)
    if kind == PROC:
        return (f"{A} and then {B} ran on process {st.tb.proc[a]!r}, so {A} < {B}",
                None, None)
    return f"{A} < {B} ({EDGE_NAMES[kind]})", None, None  # pragma: no cover


def _at(t: Any) -> str:
    return f" at {t / 1e9:.3f} s" if isinstance(t, (int, float)) else ""


def _fmt(v: list) -> str:
    return "[" + " ".join(map(repr, v)) + "]"


def _writers_of(w: dict[Any, int], order: list) -> list[int | None]:
    """The writer of each value of ``order`` (None for a value nobody appended)."""
    try:
        return [w.get(v) for v in order]
    except TypeError:  # a list or map read back where values are scalars
        return [w.get(v) if _is_hashable(v) else None for v in order]


def _writer_of(w: dict[Any, int], v: Any) -> int | None:
    try:
        return w.get(v)
    except TypeError:
        return None


def _all_hashable(o: list) -> bool:
    try:
        set(o)
    except TypeError:
        return False
    return True


def _is_hashable(v: Any) -> bool:
    return not isinstance(v, (list, dict))


def _hashable(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((str(k), _hashable(x)) for k, x in v.items()))
    return v


def _key(k: Any) -> str:
    """A key in a sentence: a plain name as it is (x, k12), anything else
    after the word "key" (key 1, key 'a b'), so a number reads as a key."""
    return k if isinstance(k, str) and k.isidentifier() else f"key {k!r}"


def _sort_key(k: Any) -> tuple[str, str]:
    return (type(k).__name__, str(k))
