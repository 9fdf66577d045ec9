"""The harness's DEALER: nodes/common/zmtp.py ``Dealer``, ZMTP 3.0 in a plain socket.

The harness's operation engine (harness/client.py ``Pipeline``) talks to the
nodes' client ROUTERs with it (docs/node-contract.md, "Sockets"). Why not
libzmq here: every ``zmq_send`` hands one message to libzmq's I/O thread and
wakes it, and every poll is another syscall; at tens of thousands of
operations a second that was most of a worker's CPU. With ``Dealer`` the
frames queued during one pass of the worker's loop leave in ONE ``send`` and
the replies that arrived come in with one ``recv``. The class lives with the
nodes' wire because the node driver uses the same DEALER for its peers; its
invariants are in that module's header.
"""

from __future__ import annotations

from nodes.common.zmtp import Dealer as Connection
from nodes.common.zmtp import parse_address

__all__ = ["Connection", "parse_address"]
