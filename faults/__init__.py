"""Fault injection: process faults (kill, pause), the network proxy, the nemesis schedule.

What each fault does, how it is recorded and what it leaves behind: docs/faults.md.

- ``faults.api``: the seam (ClusterHandle, NetworkControl, NemesisContext, Nemesis);
- ``faults.schedule.build_nemesis``: the one way from ``--nemesis`` (or ``--replay``)
  to a seeded, recorded, healable nemesis;
- ``faults.plan``: fault plans, seeded generators of fault operations as data
  (RandomPlan, ReplayPlan, recorded_ops);
- ``faults.interpret``: the interpreter that carries a plan out on processes and the
  network, the recorded fault primitives, and the evidence that each fault bit;
- ``faults.mixes`` and ``faults.moves``: the bugs' demonstration mixes
  (``--nemesis bug:NAME``) and their scripted moves (revote, figure-8);
- ``faults.process``: kill/restart and pause/resume, target selection;
- ``faults.partition``: partition shapes as grudges (pure functions);
- ``faults.netproxy`` (``python -m faults.netproxy``) and ``faults.proxyctl``: the
  message-level network (``--net proxy``) and its control client;
- ``faults.netns``: kernel-level partitions in network namespaces (``--net netns``, root);
- ``faults.owner``: owner records, so what a killed run left can be told from a live run's;
- ``faults.cleanup``: the cleaners of dead runs' leftovers (``harness clean``).
"""
