"""Multi-Paxos: the second system under test (issue 3). ``PROTOCOL`` is what
``python -m nodes paxos`` runs: the pure core plus its wire codec."""

from nodes.common.core_api import ProtocolSpec
from nodes.paxos.codec import codec
from nodes.paxos.core import make_core

PROTOCOL = ProtocolSpec("paxos", make_core, codec, term_name="ballot")

__all__ = ["PROTOCOL"]
