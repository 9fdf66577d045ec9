"""Fault injection: process faults (kill, pause), the network proxy, the nemesis schedule.

- ``faults.api``: the seam (ClusterHandle, NetworkControl, NemesisContext, Nemesis);
- ``faults.schedule.build_nemesis``: ``--nemesis`` -> a seeded, recorded, healable nemesis;
- ``faults.process``: kill/restart and pause/resume, target selection;
- ``faults.partition``: partition shapes as grudges (pure functions);
- ``faults.netproxy`` (``python -m faults.netproxy``) and ``faults.proxyctl``: the
  message-level network (``--net proxy``) and its control client;
- ``faults.netns``: kernel-level partitions in network namespaces (``--net netns``, root).
"""
