"""Raft: a durable, linearizable key-value store (see core.py for the protocol).

``PROTOCOL`` is what ``python -m nodes raft`` runs: the pure core, built from
a CoreConfig and the Restored data directory, and its wire codec.
"""

from nodes.common.core_api import ProtocolSpec
from nodes.raft.codec import codec
from nodes.raft.core import RaftCore, make_core

PROTOCOL = ProtocolSpec("raft", make_core, codec)

__all__ = ["PROTOCOL", "RaftCore", "make_core"]
