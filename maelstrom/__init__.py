"""Maelstrom nodes under real faults (docs/maelstrom.md).

- ``host``: the process the harness starts per node; it becomes the Maelstrom
  program and forks the adapter that keeps our node contract;
- ``services``: lin-kv, seq-kv, lww-kv and lin-tso for one run;
- ``protocol``: ids, error codes and the translation of replies;
- ``workloads``, ``checkers``, ``final``: the generators, checkers and
  after-healing reads that harness/workload.py names;
- ``report``: the workload's verdict section of the report.

Depends on ``nodes`` (cluster.json, the wire), ``checker`` and, for the
clients, ``harness``; nothing in ``nodes`` or ``checker`` depends on it.
"""
