"""A trivial protocol for testing the driver without a consensus core.

Each node is its own leader: writes become log entries, fsynced by the
driver and applied at once; reads are served from the store. Every tick it
pings each peer, so the peer sockets carry traffic. It keeps the core_api
contract (pure, effects through Ready) and snapshots every SNAPSHOT_EVERY
entries, so the driver's persist/restore and compaction run for real.

Run as a node: ``python tests/solo_core.py --id n1 --cluster PATH``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nodes.common.core_api import (
    CoreConfig,
    Entry,
    ProtocolSpec,
    Ready,
    Restored,
    Snapshot,
)
from nodes.common.kv import KVStore

SNAPSHOT_EVERY = 100


class PingCodec:
    def encode(self, msg: dict[str, Any]) -> dict[str, Any]:
        return msg

    def decode(self, obj: Any) -> dict[str, Any]:
        if not isinstance(obj, dict) or obj.get("type") != "ping":
            raise ValueError("not a ping")
        if not isinstance(obj.get("src"), str) or not isinstance(obj.get("n"), int):
            raise ValueError("bad ping fields")
        return obj

    def dest(self, msg: dict[str, Any]) -> str:
        return msg["dest"]


class SoloCore:
    def __init__(self, config: CoreConfig, restored: Restored) -> None:
        self.cfg = config
        self.kv = KVStore.restore(restored.snapshot.data) if restored.snapshot else KVStore()
        self.last = restored.snapshot.index if restored.snapshot else 0
        self.snap_index = self.last
        for e in restored.entries:
            self.kv.apply(e.data)
            self.last = e.index
        self.rd = Ready()
        self.ticks = 0
        self.pings_heard = 0

    def step(self, msg: dict[str, Any]) -> None:
        self.pings_heard += 1

    def request(self, client: bytes, req: dict[str, Any]) -> None:
        if req["op"] != "read":
            self.last += 1
            self.rd.entries.append(Entry(self.last, 1, req))
        self.rd.replies.append((client, dict(self.kv.apply(req), id=req["id"])))

    def tick(self) -> None:
        self.ticks += 1
        if self.ticks % 5 == 0:
            for p in self.cfg.peers:
                self.rd.messages.append({"type": "ping", "src": self.cfg.node_id, "dest": p,
                                         "n": self.ticks})

    def ready(self) -> Ready | None:
        rd = self.rd
        if not (rd.entries or rd.messages or rd.replies):
            return None
        if self.last - self.snap_index >= SNAPSHOT_EVERY:
            rd.snapshot = Snapshot(self.last, 1, self.kv.snapshot())
            self.snap_index = self.last
        self.rd = Ready()
        return rd

    def status(self) -> dict[str, Any]:
        return {"role": "leader", "term": 1, "leader": self.cfg.node_id,
                "commit_index": self.last, "last_applied": self.last,
                "log_len": self.last - self.snap_index, "pings_heard": self.pings_heard}


PROTOCOL = ProtocolSpec(name="solo", make_core=SoloCore, codec=PingCodec())


if __name__ == "__main__":
    import argparse

    from nodes.common.clusterfile import ConfigError, load_cluster
    from nodes.common.driver import run_node

    ap = argparse.ArgumentParser()
    ap.add_argument("--id", required=True)
    ap.add_argument("--cluster", required=True)
    a = ap.parse_args()
    try:
        c = load_cluster(a.cluster)
    except ConfigError as exc:
        print(f"{a.id}: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(run_node(PROTOCOL, c, a.id))
