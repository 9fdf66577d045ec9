"""Consensus nodes under test: Raft and Multi-Paxos key-value stores.

The process, its sockets, wire format, client requests and the core<->driver
contract are docs/node-contract.md; cluster.json is docs/cluster-json.md.
This package imports nothing from harness/, faults/ or reports/.
"""

from nodes import _native

_native.guard()  # compiled hot path or pure Python, decided before either can load
