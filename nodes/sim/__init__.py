"""The seeded simulator: cores on a simulated network, disks and clients, in one process.

``SimNet`` (nodes/sim/net.py) runs any core of ``nodes`` under a schedule
drawn from one seeded ``random.Random``; ``history`` (nodes/sim/clients.py)
turns its clients' operations into a checkable history. Product code: the
tests drive it with Hypothesis rules (tests/simnet.py), and ``harness run
--sim`` is to build on it. It imports nothing from the harness.
"""

from nodes.sim.clients import history
from nodes.sim.disk import Disk
from nodes.sim.net import FAST_TIMING, MakeCore, Observer, Request, SimError, SimNet

__all__ = ["FAST_TIMING", "Disk", "MakeCore", "Observer", "Request", "SimError", "SimNet",
           "history"]
