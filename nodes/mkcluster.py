"""``python -m nodes.mkcluster --nodes 3 --dir DIR [--net direct|proxy]``: write DIR/cluster.json.

For starting a cluster by hand (README). Free ports on 127.0.0.1 and data
directories under DIR/data/<id> come from ``nodes.common.clusterfile.write_cluster``,
the same function the harness uses (docs/cluster-json.md); this prints the
path and the commands that start each node.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from nodes.common.clusterfile import write_cluster


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    p = _Parser(prog="python -m nodes.mkcluster", description="Write a cluster.json.")
    p.add_argument("--nodes", type=int, default=3, help="number of nodes (default 3)")
    p.add_argument("--dir", required=True, help="folder for cluster.json and data/")
    p.add_argument("--net", choices=("direct", "proxy"), default="direct")
    p.add_argument("--system", choices=("raft", "paxos"), default="raft",
                   help="only for the printed start commands")
    args = p.parse_args(argv)
    if args.nodes < 1:
        p.error("--nodes must be at least 1")
    try:
        path = write_cluster(Path(args.dir), args.nodes, net=args.net)
    except OSError as exc:
        print(f"nodes.mkcluster: cannot write to {args.dir}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    for i in range(1, args.nodes + 1):
        print(f"  python -m nodes {args.system} --id n{i} --cluster {shlex.quote(str(path))} &")
    return 0


if __name__ == "__main__":
    sys.exit(main())
