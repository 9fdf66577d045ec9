"""The seeded simulators: cores on a simulated network, disks and clients, in one process.

``World`` (nodes/sim/world.py) is the time-driven cluster behind ``harness
run --sim``: an event heap in simulated ns, the driver's rules, the proxy's
network, kill/restart from ``Disk``, pause; ``SimLoad`` (nodes/sim/load.py)
its clients. ``SimNet`` (nodes/sim/net.py) is the step-driven one the core
tests drive with Hypothesis rules (tests/simnet.py); ``history``
(nodes/sim/clients.py) turns its requests into a checkable history. Both
reach cores only through nodes/common/core_api.py and import nothing from
the harness (docs/simulation.md).
"""

from nodes.sim.clients import history
from nodes.sim.disk import Disk
from nodes.sim.net import FAST_TIMING, MakeCore, Observer, Request, SimError, SimNet
from nodes.sim.world import World

__all__ = ["FAST_TIMING", "Disk", "MakeCore", "Observer", "Request", "SimError", "SimNet",
           "World", "history"]
