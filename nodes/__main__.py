"""``python -m nodes {raft|paxos} --id ID --cluster PATH``: run one node.

Thin: parses the command line, loads cluster.json, finds
``nodes.<system>.PROTOCOL`` and hands them to the driver. Any user error
(bad flag, unknown system, bad cluster file, id not in the cluster) is one
line on stderr and exit 2 (docs/node-contract.md, "The process").
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from nodes.common.clusterfile import ConfigError, load_cluster
from nodes.common.core_api import ProtocolSpec

SYSTEMS = ("raft", "paxos")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def load_protocol(system: str) -> ProtocolSpec:
    """``nodes.<system>.PROTOCOL``; ValueError (one line) if there is none."""
    if system not in SYSTEMS:
        raise ValueError(f"unknown system {system!r} (expected one of {', '.join(SYSTEMS)})")
    module = importlib.import_module(f"nodes.{system}")
    spec = getattr(module, "PROTOCOL", None)
    if not isinstance(spec, ProtocolSpec):
        raise ValueError(f"nodes.{system} does not provide a PROTOCOL yet")  # noqa: TRY004
    return spec


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(prog="python -m nodes", description="Run one consensus node.")
    parser.add_argument("system", help="raft or paxos")
    parser.add_argument("--id", required=True, help="this node's id in cluster.json")
    parser.add_argument("--cluster", required=True, help="path of cluster.json")
    args = parser.parse_args(argv)
    try:
        if args.system not in SYSTEMS:
            raise ValueError(
                f"unknown system {args.system!r} (expected one of {', '.join(SYSTEMS)})"
            )
        cluster = load_cluster(args.cluster)
        if args.id not in cluster.nodes:
            raise ValueError(
                f"not a node of {args.cluster} (it has {', '.join(cluster.node_ids)})"
            )
        spec = load_protocol(args.system)
    except (ValueError, ConfigError) as exc:
        print(f"{args.id}: {exc}", file=sys.stderr)
        return 2
    from nodes.common.driver import run_node  # after validation: zmq loads only when needed

    return run_node(spec, cluster, args.id)


if __name__ == "__main__":
    sys.exit(main())
