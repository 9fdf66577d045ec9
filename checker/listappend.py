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
  invoked after it, as a transitive reduction (``realtime_edges``);
  ``process`` a process's consecutive transactions (session order).
- A cycle is a contradiction. By its edges: only ``ww``: ``G0``; ``ww`` and
  ``wr``: ``G1c``; exactly one ``rw``: ``G-single``; two or more: ``G2-item``;
  a cycle that needs ``rt`` (or ``process``) edges has that suffix. A read of
  a transaction's non-final append to a key is ``G1b``.
- Which anomalies count depends on ``consistency``: ``read-committed``
  forbids G0, G1a, G1b, G1c; ``snapshot-isolation`` also G-single;
  ``serializable`` every cycle; ``strict-serializable`` (the default) every
  cycle with real-time edges too. Order and internal anomalies, duplicates
  and values nobody appended are anomalies under every model.

Invariants: transactions are named by their ``Op.id`` (``T12``), as every
anomaly in this package names operations; nothing here reads a clock but
the one timing of the whole check; the result does not depend on dict or set
iteration order (every loop that decides output runs over sorted or
position-ordered data).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from checker.history import Op
from checker.model import Model

CONSISTENCY = ("strict-serializable", "serializable", "snapshot-isolation", "read-committed")

WW, WR, RW, RT, PROC = 1, 2, 4, 8, 16
EDGE_NAMES = {WW: "ww", WR: "wr", RW: "rw", RT: "rt", PROC: "process"}
_ORDER_EDGES = WW | WR | RT | PROC  # everything but anti-dependencies

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


class _Txns:
    """The transactions of a history, in the form the passes share."""

    __slots__ = (
        "appends_of",
        "effective",
        "ext_reads",
        "final",
        "mops",
        "ok",
        "ops",
        "reads",
        "version_writers",
        "writer",
    )

    def __init__(self, ops: Sequence[Op]) -> None:
        self.ops = ops
        #: per transaction: its micro-operations (the completion's for ok)
        self.mops: list[list] = []
        self.ok: list[bool] = []
        for op in ops:
            v = op.output if op.type == "ok" else op.value
            self.mops.append(v if isinstance(v, list) else [])
            self.ok.append(op.type == "ok")
        self.effective: list[bool] = list(self.ok)
        #: key -> {value: writer}; key -> {writer: its final value appended}
        self.writer: dict[Any, dict[Any, int]] = {}
        self.final: dict[Any, dict[int, Any]] = {}
        #: writer -> [(key, value), ...] in the transaction's order
        self.appends_of: dict[int, list[tuple[Any, Any]]] = {}
        #: key -> [(reader, external list)], ok transactions only, in op order
        self.ext_reads: dict[Any, list[tuple[int, list]]] = {}
        #: key -> every ok read of it (full lists, for the version order)
        self.reads: dict[Any, list[tuple[int, list]]] = {}
        #: key -> the writer of each version in its order (None: nobody appended it)
        self.version_writers: dict[Any, list[int | None]] = {}


def check_list_append(
    ops: Iterable[Op], consistency: str = "strict-serializable",
    *, max_anomalies: int = 8,
) -> ListAppendResult:
    """Check the ``txn`` operations of a paired history (``checker.history.pair``).

    Raises ValueError for an unknown ``consistency`` or a micro-operation that
    is not ``["append", k, v]`` / ``["r", k, list-or-null]``.
    """
    if consistency not in _FORBIDDEN_CYCLES:
        raise ValueError(f"unknown consistency {consistency!r} "
                         f"(expected one of {', '.join(CONSISTENCY)})")
    t0 = time.perf_counter()
    txn_ops = [op for op in ops if op.f == "txn" and op.type != "fail"]
    failed = [op for op in ops if op.f == "txn" and op.type == "fail"]
    tx = _Txns(txn_ops)
    found: list[TxnAnomaly] = []
    _index_appends(tx, failed, found)
    _read_pass(tx, found)
    orders = _version_orders(tx, found)
    _aborted_and_intermediate(tx, failed, orders, found)
    edges = _dependency_graph(tx, orders, _EDGES_OF[consistency])
    n_edges = sum(len(a) for a in edges if a)
    forbidden = _FORBIDDEN_CYCLES[consistency]
    allowed: dict[str, int] = {}
    comps = _sccs(edges)
    for comp in comps:
        a = _classify(tx, orders, edges, comp)
        base = a.kind.split("-realtime")[0].split("-process")[0]
        if base in forbidden:
            found.append(a)
        else:
            allowed[a.kind] = allowed.get(a.kind, 0) + 1
            if consistency == "snapshot-isolation":
                found.extend(_si_conflicts(tx, orders, edges, comp))
    # Deterministic and short: by kind, then by the transactions named.
    found.sort(key=lambda a: (_RANK.get(a.kind.split("-")[0], 9), a.kind, a.ops))
    kept = found[:max_anomalies] if max_anomalies else found
    return ListAppendResult(
        valid=not found, consistency=consistency, anomalies=kept, txns=len(txn_ops),
        edges=n_edges, seconds=time.perf_counter() - t0, allowed=allowed,
    )


_RANK = {"duplicate": 0, "incompatible": 1, "unknown": 2, "internal": 3, "G1a": 4, "G1b": 5,
         "G0": 6, "G1c": 7, "G": 8}


def _name(tx: _Txns, t: int) -> str:
    return f"T{tx.ops[t].id}"


def _mop(m: Any) -> tuple[str, Any, Any]:
    if not isinstance(m, (list, tuple)) or len(m) != 3:
        raise ValueError(f"not a list-append micro-operation: {m!r}")
    f, k, v = m
    if f == "append":
        return "append", k, v
    if f == "r" or f == "read":
        if v is not None and not isinstance(v, list):
            raise ValueError(f"a read must return a list or null, not {v!r}")
        return "r", k, v
    raise ValueError(f"unknown micro-operation {f!r} (expected append or r)")


def _index_appends(tx: _Txns, failed: Sequence[Op], found: list[TxnAnomaly]) -> None:
    writer, final, appends_of = tx.writer, tx.final, tx.appends_of
    for t, mops in enumerate(tx.mops):
        mine: list[tuple[Any, Any]] = []
        for m in mops:
            if type(m) is not list or len(m) != 3:
                _mop(m)  # raises
            f, k, v = m
            if f != "append":
                if f != "r" or not (v is None or type(v) is list):
                    _mop(m)  # "read", or raises on anything malformed
                continue
            if not _is_hashable(v) or not _is_hashable(k):
                raise ValueError(f"appended values and keys must be scalars, not {m!r}")
            w = writer.get(k)
            if w is None:
                w = writer[k] = {}
                final[k] = {}
            prev = w.get(v)
            if prev is not None:
                found.append(TxnAnomaly(
                    "duplicate-appends", f"{_name(tx, prev)} and {_name(tx, t)} both appended "
                    f"{v!r} to {_key(k)}; appended values must be unique per key",
                    sorted({tx.ops[prev].id, tx.ops[t].id}), k))
                continue
            w[v] = t
            final[k][t] = v
            mine.append((k, v))
        if mine:
            appends_of[t] = mine
    for op in failed:  # only validated here; their values are looked up in _aborted...
        for m in op.value if isinstance(op.value, list) else []:
            _mop(m)


def _read_pass(tx: _Txns, found: list[TxnAnomaly]) -> None:
    """Internal consistency, and each ok transaction's external reads."""
    ext_reads, reads = tx.ext_reads, tx.reads
    ok = tx.ok
    for t, mops in enumerate(tx.mops):
        if not ok[t]:
            continue  # info reads prove nothing
        # key -> [external read or None, own appends so far]; most transactions
        # touch a key once, and that path allocates nothing but the record.
        state: dict[Any, list] = {}
        for m in mops:
            f, k, v = m
            st = state.get(k)
            if f == "append":
                if st is None:
                    state[k] = [None, [v]]
                else:
                    st[1].append(v)
                continue
            if v is None:
                continue  # an ok read with no value: nothing to learn
            rs = reads.get(k)
            if rs is None:
                reads[k] = [(t, v)]
            else:
                rs.append((t, v))
            if st is None:
                state[k] = [v, []]
                er = ext_reads.get(k)
                if er is None:
                    ext_reads[k] = [(t, v)]
                else:
                    er.append((t, v))
                continue
            ext, own = st
            n_own = len(own)
            if ext is None:
                if v[-n_own:] != own:
                    found.append(TxnAnomaly(
                        "internal", f"{_name(tx, t)} appended {_fmt(own)} to {_key(k)} and then "
                        f"read {_key(k)} as {_fmt(v)}, which does not end with its own appends",
                        [tx.ops[t].id], k))
                    st[0] = []
                    continue
                st[0] = ext = v[:len(v) - n_own]
                er = ext_reads.get(k)
                if er is None:
                    ext_reads[k] = [(t, ext)]
                else:
                    er.append((t, ext))
            elif v != ext + own:
                found.append(TxnAnomaly(
                    "internal", f"{_name(tx, t)} read {_key(k)} as {_fmt(ext + own)} (what it saw, "
                    f"plus its own appends) and then as {_fmt(v)}", [tx.ops[t].id], k))


def _version_orders(tx: _Txns, found: list[TxnAnomaly]) -> dict[Any, list]:
    """Each key's version order: its longest ok read, with every read a prefix of it."""
    orders: dict[Any, list] = {}
    for k, rs in tx.reads.items():
        longest_t, longest = rs[0]
        for t, v in rs:
            if len(v) > len(longest):
                longest_t, longest = t, v
        orders[k] = longest
        reported = False
        for t, v in rs:
            if not reported and longest[:len(v)] != v:
                found.append(TxnAnomaly(
                    "incompatible-order", f"{_name(tx, t)} read {_key(k)} as {_fmt(v)} but "
                    f"{_name(tx, longest_t)} read it as {_fmt(longest)}: neither is a prefix "
                    "of the other, so the key has no one order of versions",
                    sorted({tx.ops[t].id, tx.ops[longest_t].id}), k))
                reported = True  # one per key is enough to name it
        if len(set(map(_hashable, longest))) != len(longest):
            found.append(TxnAnomaly(
                "duplicate-elements", f"{_name(tx, longest_t)} read {_key(k)} as {_fmt(longest)}, "
                "which holds a value twice, though each value is appended once",
                [tx.ops[longest_t].id], k))
    return orders


def _aborted_and_intermediate(
    tx: _Txns, failed: Sequence[Op], orders: dict[Any, list], found: list[TxnAnomaly],
) -> None:
    """G1a, G1b, values nobody appended, a transaction's appends out of its
    own order; and which info transactions took effect."""
    aborted: dict[tuple, int] = {}
    for op in failed:
        for m in op.value if isinstance(op.value, list) else []:
            if m[0] == "append":
                aborted[(_hashable(m[1]), _hashable(m[2]))] = op.id
    for k in sorted(orders, key=_sort_key):
        o = orders[k]
        w = tx.writer.get(k, {})
        fin = tx.final.get(k, {})
        vw = tx.version_writers[k] = _writers_of(w, o)
        for i, v in enumerate(o):
            t = vw[i]
            if t is None:
                ab = aborted.get((_hashable(k), _hashable(v)))
                r = _reader_of_prefix(tx, k, i + 1)
                if ab is not None:
                    found.append(TxnAnomaly(
                        "G1a", f"{_name(tx, r)} read {_key(k)} as {_fmt(o[:i + 1])}, but "
                        f"T{ab} appended {v!r} and failed (aborted read)", [ab, tx.ops[r].id], k))
                else:
                    found.append(TxnAnomaly(
                        "unknown-value", f"{_name(tx, r)} read {v!r} in {_key(k)}, which no "
                        "transaction appended", [tx.ops[r].id], k))
                continue
            if not tx.ok[t]:
                tx.effective[t] = True  # an info transaction that was observed
            # Its earlier appends to k must sit right before this one.
            mine = [vv for kk, vv in tx.appends_of[t] if kk == k]
            j = mine.index(v)
            if j and (i == 0 or o[i - 1] != mine[j - 1]):
                r = _reader_of_prefix(tx, k, i + 1)
                found.append(TxnAnomaly(
                    "incompatible-order", f"{_name(tx, t)} appended {_fmt(mine)} to {_key(k)} in "
                    f"that order, but {_name(tx, r)} read {_key(k)} as {_fmt(o[:i + 1])}",
                    sorted({tx.ops[t].id, tx.ops[r].id}), k))
        for r, ext in tx.ext_reads.get(k, ()):
            if not ext:
                continue
            last = ext[-1]
            t = w.get(last) if _is_hashable(last) else None
            if t is not None and t != r and fin.get(t) != last:
                found.append(TxnAnomaly(
                    "G1b", f"{_name(tx, r)} read {_key(k)} as {_fmt(ext)}, ending with {last!r}, "
                    f"but {_name(tx, t)} appended {fin[t]!r} to {_key(k)} after it "
                    "(intermediate read)", [tx.ops[t].id, tx.ops[r].id], k))


def _reader_of_prefix(tx: _Txns, k: Any, n: int) -> int:
    """The first ok transaction whose read of ``k`` holds at least ``n`` values."""
    for t, v in tx.reads[k]:
        if len(v) >= n:
            return t
    raise AssertionError("a version with no read")  # pragma: no cover


def _dependency_graph(tx: _Txns, orders: dict[Any, list], kinds: int) -> list[dict[int, int] | None]:
    """Adjacency ``edges[a] = {b: kind bits}`` over effective transactions."""
    n = len(tx.ops)
    edges: list[dict[int, int] | None] = [None] * n
    eff = tx.effective

    def add(a: int, b: int, kind: int) -> None:
        d = edges[a]
        if d is None:
            edges[a] = {b: kind}
        else:
            d[b] = d.get(b, 0) | kind

    ext_reads = tx.ext_reads
    none: list = []
    for k in sorted(tx.writer, key=_sort_key):
        w = tx.writer[k]
        vw = tx.version_writers.get(k, none)  # the writer of each version, in order
        nv = len(vw)
        unseen: list[int] | None = None  # effective writers nobody saw, when needed
        if kinds & WW:
            a = None
            for b in vw:
                if a is not None and b is not None and a != b:
                    add(a, b, WW)
                a = b
            if a is not None:
                # An append nobody saw comes after every version somebody saw.
                seen = set(vw)
                unseen = sorted(t for t in w.values() if t not in seen and eff[t])
                for b in unseen:
                    if b != a:
                        add(a, b, WW)
        for r, ext in ext_reads.get(k, none):
            m = len(ext)
            if m and kinds & WR and m <= nv:
                a = vw[m - 1]
                if a is not None and a != r:
                    add(a, r, WR)
            if kinds & RW:
                i = m
                while i < nv and vw[i] == r:
                    i += 1  # its own appends follow what it saw
                if i < nv:
                    b = vw[i]
                    if b is not None:
                        add(r, b, RW)
                    continue
                if unseen is None:
                    seen = set(vw)
                    unseen = sorted(t for t in w.values() if t not in seen and eff[t])
                for b in unseen:
                    if b != r:
                        add(r, b, RW)
    if kinds & RT:
        for a, b in realtime_edges(tx.ops, eff):
            add(a, b, RT)
    if kinds & PROC:
        last: dict[Any, int] = {}
        for t, op in enumerate(tx.ops):
            if not eff[t]:
                continue
            p = op.process
            prev = last.get(p)
            if prev is not None:
                add(prev, t, PROC)
            last[p] = t
    return edges


def realtime_edges(ops: Sequence[Op], effective: Sequence[bool]) -> list[tuple[int, int]]:
    """Edges a -> b where ``a`` completed before ``b`` was invoked, reduced:
    when ``b`` completes, every ``a`` it came after is covered by ``b`` for
    whatever is invoked later, so only the frontier of completions is linked."""
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


def _sccs(edges: list[dict[int, int] | None]) -> list[list[int]]:
    """Strongly connected components with more than one node (iterative Tarjan)."""
    n = len(edges)
    index = [-1] * n
    low = [0] * n
    on = [False] * n
    stack: list[int] = []
    out: list[list[int]] = []
    counter = 0
    for root in range(n):
        if index[root] != -1 or not edges[root]:
            continue
        work = [(root, iter(edges[root]))]  # type: ignore[arg-type]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on[root] = True
        while work:
            v, it = work[-1]
            pushed = False
            for w in it:
                if index[w] == -1:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on[w] = True
                    ew = edges[w]
                    work.append((w, iter(ew) if ew else iter(())))
                    pushed = True
                    break
                if on[w] and index[w] < low[v]:
                    low[v] = index[w]
            if pushed:
                continue
            work.pop()
            if work:
                u = work[-1][0]
                low[u] = min(low[u], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on[w] = False
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def _bfs_path(edges: list[dict[int, int] | None], members: set[int], src: int, dst: int,
              mask: int) -> list[int] | None:
    """Shortest path src -> dst over edges whose kinds meet ``mask``, inside ``members``."""
    if src == dst:
        return [src]
    parent = {src: src}
    frontier = [src]
    while frontier:
        nxt = []
        for v in frontier:
            for w, kind in sorted(edges[v].items()) if edges[v] else ():
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


def _cycle_through(edges: list[dict[int, int] | None], members: set[int], a: int, b: int,
                   mask: int) -> list[int] | None:
    """A shortest cycle a -> b -> ... -> a with the closing path over ``mask``."""
    path = _bfs_path(edges, members, b, a, mask)
    return None if path is None else [a] + path[:-1]


def _classify(tx: _Txns, orders: dict[Any, list], edges: list[dict[int, int] | None],
              comp: list[int]) -> TxnAnomaly:
    """The weakest anomaly in one strongly connected component, with its cycle."""
    members = set(comp)
    inner = [(a, b, kind) for a in comp for b, kind in sorted(edges[a].items())  # type: ignore[union-attr]
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
    return _explain_cycle(tx, orders, edges, cycle)


def _si_conflicts(tx: _Txns, orders: dict[Any, list], edges: list[dict[int, int] | None],
                  comp: list[int]) -> list[TxnAnomaly]:
    """Snapshot isolation's first committer wins, for appends whose order no
    read shows: of two effective transactions that both appended to a key,
    one must have committed before the other started, which orders them as a
    ww edge. If either order closes a cycle with no two adjacent
    anti-dependencies (forbidden under snapshot isolation), they lost an
    update. Only transactions of one strongly connected component can be so
    stuck (each order needs a path back), so only ``comp`` is searched."""
    members = set(comp)
    eff = tx.effective
    out: list[TxnAnomaly] = []
    for k in sorted(tx.writer, key=_sort_key):
        seen = set(tx.version_writers.get(k, ()))
        u = sorted({t for t in tx.writer[k].values() if t in members and t not in seen and eff[t]})
        for i, a in enumerate(u):
            for b in u[i + 1:]:
                back = _si_path(edges, members, b, a)  # forbids a before b
                if back is None:
                    continue
                fwd = _si_path(edges, members, a, b)  # forbids b before a
                if fwd is None:
                    continue
                A, B = _name(tx, a), _name(tx, b)
                why = []
                for path in (back, fwd):
                    for x, y in pairwise(path):
                        kind = _edge_kind_on_cycle(edges[x][y])  # type: ignore[index]
                        why.append(_explain_edge(tx, orders, x, y, kind)[0])
                out.append(TxnAnomaly(
                    "lost-update", f"{A} and {B} both appended to {_key(k)}, and no read shows "
                    f"which went first; under snapshot isolation the first committed before the "
                    f"other began. But {'; '.join(why)}: either order closes a cycle with no two "
                    "adjacent anti-dependencies, so one of them lost the other's update",
                    sorted({tx.ops[a].id, tx.ops[b].id}), k))
                return out  # one per component is enough to name it
    return out


def _si_path(edges: list[dict[int, int] | None], members: set[int], src: int,
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
            for w, bits in sorted(edges[v].items()) if edges[v] else ():
                if w not in members:
                    continue
                steps = []
                if bits & ~RW:
                    steps.append((w, False))
                elif not after_rw:
                    steps.append((w, True))
                for st in steps:
                    if st in parent:
                        continue
                    parent[st] = state
                    if w == dst:
                        path = [st]
                        while path[-1] != start:
                            path.append(parent[path[-1]])
                        return [p[0] for p in reversed(path)]
                    nxt.append(st)
        frontier = nxt
    return None


def _edge_kind_on_cycle(kinds: int, want_cheapest: bool = True) -> int:
    for k in (WW, WR, PROC, RT, RW):  # name the edge by its strongest reason
        if kinds & k:
            return k
    raise AssertionError("an edge with no kind")  # pragma: no cover


def _explain_cycle(tx: _Txns, orders: dict[Any, list], edges: list[dict[int, int] | None],
                   cycle: list[int]) -> TxnAnomaly:
    steps: list[dict] = []
    words: list[str] = []
    n_rw = 0
    used = 0
    for a, b in zip(cycle, cycle[1:] + cycle[:1]):
        kind = _edge_kind_on_cycle(edges[a][b])  # type: ignore[index]
        used |= kind
        n_rw += kind == RW
        text, key, value = _explain_edge(tx, orders, a, b, kind)
        steps.append({"from": tx.ops[a].id, "to": tx.ops[b].id, "kind": EDGE_NAMES[kind],
                      "key": key, "value": value, "why": text})
        words.append(text)
    if n_rw == 0:
        base = "G0" if not used & WR else "G1c"
    else:
        base = "G-single" if n_rw == 1 else "G2-item"
    kind_name = base + ("-realtime" if used & RT else "-process" if used & PROC else "")
    sentence = "; ".join(words) + f": a cycle, {kind_name}"
    return TxnAnomaly(kind_name, sentence[0].upper() + sentence[1:],
                      [tx.ops[t].id for t in cycle], steps[0]["key"], steps)


def _explain_edge(tx: _Txns, orders: dict[Any, list], a: int, b: int,
                  kind: int) -> tuple[str, Any, Any]:
    A, B = _name(tx, a), _name(tx, b)
    if kind == WW:
        for k, v in tx.appends_of.get(a, ()):
            o = orders.get(k, [])
            w = tx.writer[k]
            for i in range(len(o) - 1):
                if o[i] == v and w.get(o[i + 1]) == b:
                    return ((f"{A} appended {v!r} to {_key(k)} and {B} appended {o[i + 1]!r} right "
                            f"after it, so {A} < {B}"), k, o[i + 1])
    if kind == WR:
        for k, _v in tx.appends_of.get(a, ()):
            for r, ext in tx.ext_reads.get(k, ()):
                if r == b and ext and tx.writer[k].get(ext[-1]) == a:
                    return ((f"{A} appended {ext[-1]!r} to {_key(k)} and {B} read {_key(k)} as "
                            f"{_fmt(ext)}, with it, so {A} < {B}"), k, ext[-1])
    if kind == RW:
        for k, v in tx.appends_of.get(b, ()):
            for r, ext in tx.ext_reads.get(k, ()):
                if r == a and v not in ext:
                    return ((f"{A} read {_key(k)} as {_fmt(ext)}, without {v!r}, which {B} "
                            f"appended, so {A} < {B}"), k, v)
    if kind == RT:
        oa, ob = tx.ops[a], tx.ops[b]
        return ((f"{A} completed{_at(oa.end)} before {B} was invoked{_at(ob.start)}, "
                f"so {A} < {B}"), None, None)
    if kind == PROC:
        return (f"{A} and then {B} ran on process {tx.ops[a].process!r}, so {A} < {B}",
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


def _is_hashable(v: Any) -> bool:
    return not isinstance(v, (list, dict))


def _hashable(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((str(k), _hashable(x)) for k, x in v.items()))
    return v


def _key(k: Any) -> str:
    """A key in a sentence: a plain name as it is (x, k12), anything else as repr."""
    return k if isinstance(k, str) and k.isidentifier() else repr(k)


def _sort_key(k: Any) -> tuple[str, str]:
    return (type(k).__name__, str(k))
