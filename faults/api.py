"""The seam between the nemesis and the rest of the harness.

Owns three names that ``harness run`` and ``faults/`` agree on:

- ``ClusterHandle``: the process control the nemesis needs (signals, restarts,
  liveness). ``harness.cluster.LocalCluster`` satisfies it; a later SSH
  backend can too, without the nemesis changing.
- ``NemesisContext``: everything a nemesis may touch. Faults are chosen only
  from ``rng`` (the run's seed), recorded only through ``record`` and aimed at
  the leader only through ``leader`` -- so the same seed gives the same fault
  schedule and every fault appears in the history.
- ``NetworkControl``: where partitions and link faults go (the proxy, or
  kernel rules in network namespaces).
- ``Nemesis``: ``run(stop)`` injects faults until ``stop`` is set; ``heal()``
  undoes every fault still active and records its ``-end`` event. After
  ``heal()`` no node is paused or dead because of the nemesis, and the proxy
  (if any) has no grudge and no link faults.

Nemesis events (docs/faults.md): ``record(KIND, V)`` when a fault starts and
``record(KIND + "-end", V)`` with the same V when it is healed; KIND in
``kill``, ``pause``, ``partition``, ``net``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class ClusterHandle(Protocol):
    """Process control over the node processes of one run."""

    @property
    def node_ids(self) -> Sequence[str]:
        """Every node id of the cluster, in cluster.json order."""
        ...

    def kill(self, node: str) -> None:
        """SIGKILL the node's process and wait until it is gone."""
        ...

    def start(self, node: str) -> None:
        """Start the node (again), with the same data directory."""
        ...

    def pause(self, node: str) -> None:
        """SIGSTOP the node's process."""
        ...

    def resume(self, node: str) -> None:
        """SIGCONT the node's process."""
        ...

    def pid(self, node: str) -> int | None:
        """The node's current process id, or None when it is not running."""
        ...

    def is_running(self, node: str) -> bool:
        """True while the node's process exists (a paused process is running)."""
        ...


#: Every kind of link fault (docs/faults.md "Link faults"). A backend that can
#: apply fewer lists its own in a ``link_faults`` attribute (netns: loss only).
LINK_FAULTS = ("loss", "delay", "duplicate", "reorder")


@runtime_checkable
class NetworkControl(Protocol):
    """Where partitions and link faults are applied: the proxy's control socket
    (``faults.proxyctl.ProxyControl``) or the kernel (``faults.netns.NetnsNetwork``).
    Blocking calls; the nemesis runs them off the event loop. ``link_faults_of``
    says which link faults one can apply."""

    def set_grudge(self, grudge: dict[str, Any]) -> Any:
        """Replace the grudge: ``grudge[dest]`` = nodes ``dest`` cannot hear from."""
        ...

    def set_links(self, faults: dict[str, Any] | None, links: Any = "all") -> Any:
        """Set link faults (loss, delay_ms, ...) on ``"all"`` links or [(src, dest)]."""
        ...

    def heal(self) -> Any:
        """Clear the grudge and every link fault."""
        ...


def link_faults_of(net: NetworkControl | None) -> tuple[str, ...]:
    """The link faults ``net`` can apply: its ``link_faults``, else all of
    ``LINK_FAULTS``; none without a backend."""
    if net is None:
        return ()
    return tuple(getattr(net, "link_faults", LINK_FAULTS))


@dataclass
class NemesisContext:
    """What a nemesis may use. Everything random comes from ``rng``."""

    cluster: ClusterHandle
    #: The proxy's control address (cluster.json proxy.control), or None when
    #: the run has no proxy (``--net direct``): partition/net faults are then
    #: unavailable unless another backend (netns) provides them.
    proxy_control: str | None
    #: Writes one nemesis event to the history: record(f, value, **fields), the
    #: fields (``at``, ``target``, ``evidence``) written beside ``value``.
    record: Callable[..., None]
    rng: random.Random
    #: The current leader's node id as the nodes' ``status`` says, or None.
    leader: Callable[[], Awaitable[str | None]]
    #: Seconds between the start of one fault window and the next.
    interval_s: float
    #: Network faults backend. None: a ProxyControl on ``proxy_control`` when
    #: that is set; otherwise partition/net faults are unavailable. ``--net
    #: netns`` runs pass their ``faults.netns.NetnsNetwork`` here.
    network: NetworkControl | None = None
    #: One node's fresh ``status`` reply (None if dead, paused or silent), for
    #: nemeses that wait for a node to reach a state (e.g. to have voted).
    #: None when the harness offers no such query.
    status: Callable[[str], Awaitable[dict[str, Any] | None]] | None = None
    #: answers(node, timeout) -> True when the node answers a ``status`` request
    #: sent now (also while the harness believes it paused): the evidence of a
    #: pause (docs/faults.md "Evidence"). None: no such query, pauses go unproven.
    answers: Callable[[str, float], Awaitable[bool]] | None = None
    #: The nodes' timing (cluster.json ``timing``: heartbeat_ms,
    #: election_timeout_ms); None: read it from the cluster handle's
    #: ``cluster_json`` if it has one, else the nodes' defaults.
    timing: dict[str, Any] | None = None


class Nemesis(Protocol):
    """Injects faults on a seeded schedule and heals them."""

    async def run(self, stop: asyncio.Event) -> None:
        """Inject faults (start, wait, end; then calm) until ``stop`` is set.
        Returns promptly once ``stop`` is set; faults still active stay active
        until ``heal()``."""
        ...

    async def heal(self) -> None:
        """Undo every active fault and record its ``-end`` event. Idempotent."""
        ...
