"""Workloads: what the clients invoke, and which checker judges the history.

Owns ``WORKLOADS`` (name -> ``Workload``), the one place a ``--workload`` name
is turned into a generator and a checker, for real runs (harness/workers.py,
harness/runner.py) and simulated ones alike.

- ``generator``: ``"module:attr"`` of a class with ``OpGenerator``'s interface
  (harness/generator.py): built as ``cls(seed, slot, keys=, ops=, concurrency=,
  rate=, seen=, **options)``, then ``next_op() -> Invocation``, ``observe(op,
  outcome, value)``, ``first_delay()``, ``gap()``.
- ``check``: ``"module:attr"`` of ``check(events, cfg) -> (verdict, checker
  dict)``; verdict is ``valid`` / ``invalid`` / ``unknown`` and the dict is
  ``CheckResult.to_dict(...)`` or of the same shape (``valid``, ``anomalies``, ...).
- ``final``: ``"module:attr"`` of what the clients do after healing, or None:
  ``final(cfg, settings, recorder, first_process, timeout) -> list[str]``
  (notes for results.json). The kv one reads every key back, so the last writes
  are judged; others may read every node (g-set, broadcast, counters).

Invariant: modules are imported by name when used, so a workload's code is
loaded only by the runs that ask for it, and the registry imports nothing.
"""

from __future__ import annotations

import gc
import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Workload:
    name: str
    #: One line for --help and the report.
    doc: str
    generator: str
    check: str
    final: str | None = "harness.workload:final_kv_reads"
    #: Kinds of system it runs on (``maelstrom`` for Maelstrom nodes); None = raft, paxos
    #: or any node command that keeps our node contract.
    systems: tuple[str, ...] | None = None


WORKLOADS: dict[str, Workload] = {w.name: w for w in (
    Workload("kv", "read, write and cas on a few keys; checked for linearizability",
             "harness.generator:OpGenerator", "harness.workload:check_kv"),
    Workload("list-append", "transactions of appends and reads over keys that rotate; "
             "checked Elle-style against --consistency",
             "harness.txnload:TxnGenerator", "harness.workload:check_list_append",
             final=None),
    # Maelstrom's workloads (maelstrom/; docs/maelstrom.md), for --system maelstrom:CMD.
    *(Workload(name, doc, f"maelstrom.workloads:{gen}", f"maelstrom.checkers:{chk}",
               final=f"maelstrom.final:{fin}", systems=("maelstrom",))
      for name, doc, gen, chk, fin in (
        ("lin-kv", ("Maelstrom lin-kv: read, write, cas on integer keys; linearizability "
         "(code 20 on a read = absent, 22 on a cas = fail)"),
         "LinKvGenerator", "check_lin_kv", "final_lin_kv"),
        ("g-set", ("Maelstrom g-set: add and read; every acknowledged add read by every node "
         "after healing"), "GSetGenerator", "check_set", "final_every_node"),
        ("broadcast", ("Maelstrom broadcast: topology, broadcast and read; every acknowledged "
         "message read by every node after healing"), "BroadcastGenerator", "check_set",
         "final_every_node"),
        ("g-counter", ("Maelstrom g-counter: add and read; final reads between the acknowledged "
         "sum and it plus the indeterminate adds"), "GCounterGenerator", "check_counter",
         "final_every_node"),
        ("pn-counter", "Maelstrom pn-counter: add (negative too) and read; as g-counter",
         "PNCounterGenerator", "check_counter", "final_every_node"),
        ("unique-ids", "Maelstrom unique-ids: generate; no id returned twice",
         "UniqueIdsGenerator", "check_unique_ids", "final_none"),
        ("echo", "Maelstrom echo: every echo_ok carries the payload sent",
         "EchoGenerator", "check_echo", "final_none"),
        ("txn-list-append", ("Maelstrom txn-list-append: txn requests of appends and reads; "
         "Elle-style list-append checker under --consistency (strict-serializable)"),
         "TxnListAppendGenerator", "check_txn_list_append", "final_none"),
    )),
)}

#: Workloads that exist in name only, with the one line that says so.
NOT_THERE_YET: dict[str, str] = {}


def get(name: str) -> Workload:
    try:
        return WORKLOADS[name]
    except KeyError:
        raise ValueError(f"unknown workload {name!r} (choose from {', '.join(WORKLOADS)})") from None


def fits(name: str, system_kind: str) -> bool:
    """Whether workload ``name`` runs on a system of kind ``system_kind`` (``maelstrom``
    or ``node``: raft, paxos or a node command)."""
    systems = get(name).systems
    return system_kind in systems if systems is not None else system_kind == "node"


def _load(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def generator_class(name: str) -> Any:
    """The generator class of workload ``name`` (see the module header)."""
    return _load(get(name).generator)


def check(events: list[dict[str, Any]], cfg: Any) -> tuple[str, dict[str, Any] | None]:
    """(verdict, checker dict) of ``events`` under ``cfg.workload``'s checker, with
    what the faults' evidence proves on its own (faults/findings.py)."""
    from faults import findings

    try:
        verdict, checker = _load(get(getattr(cfg, "workload", "kv")).check)(events, cfg)
        return findings.apply(verdict, checker, events)
    finally:
        # The checker builds a history's objects with the collector paused
        # (checker/history.py no_gc) and they join the oldest generation, which
        # CPython's thresholds then never collect in full, garbage included: a
        # process that checks run after run (a sweep's worker, the shrinker) grew
        # about 3.6 MB per 20 s simulated run (450 MB after 120 runs). One full
        # collection per check keeps it flat (39 MB) at about 3% of a simulated
        # run's CPU.
        gc.collect()


def final(name: str) -> Any:
    """The after-healing step of workload ``name`` (see the module header), or None."""
    ref = get(name).final
    return _load(ref) if ref else None


def final_kv_reads(cfg: Any, settings: Any, recorder: Any, first_process: int,
                   timeout: float) -> list[str]:
    """Read every key once more, from any node that answers (harness/workers.py)."""
    from harness.generator import key_names
    from harness.workers import final_reads

    ok = final_reads(key_names(cfg.keys), settings, recorder, first_process, timeout)
    if all(ok.values()):
        return []
    return ["final reads failed for " + ", ".join(k for k, good in ok.items() if not good)]


def _verdict(valid: bool | None) -> str:
    return {True: "valid", False: "invalid"}.get(valid, "unknown")


def check_kv(events: list[dict[str, Any]], cfg: Any) -> tuple[str, dict[str, Any] | None]:
    from checker import check_events

    # every_key: the report names the earliest anomaly over all keys (check_ops
    # orders them by the stuck operation), not the first key tried
    result = check_events(events, model="kv", time_limit=cfg.check_time_limit, every_key=True)
    return _verdict(result.valid), result.to_dict()


def check_list_append(events: list[dict[str, Any]],
                      cfg: Any) -> tuple[str, dict[str, Any] | None]:
    from checker import check_events

    result = check_events(events, model="list-append", consistency=cfg.consistency,
                          time_limit=cfg.check_time_limit)
    return _verdict(result.valid), result.to_dict()


def options(cfg: Any) -> dict[str, Any]:
    """The generator keyword options ``cfg`` gives its workload (beyond the common ones)."""
    if getattr(cfg, "workload", "kv") in ("list-append", "txn-list-append"):
        return {"txn_length": cfg.txn_length}
    return {}
