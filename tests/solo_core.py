"""A trivial protocol for testing the driver without a consensus core.

Each node is its own leader: writes become log entries, fsynced by the
driver and committed at once (the driver's applier applies them and answers);
reads go straight to the applier. Every fifth tick it pings each peer, so the
peer sockets carry traffic. It keeps the core_api contract
(docs/node-contract.md: pure, effects through ready/advance, snapshots taken
by the applier every ``options.snapshot_entries``), so the driver's
persist/restore and compaction run for real.

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
    SoftState,
)


class PingCodec:
    def encode(self, msg: dict[str, Any]) -> dict[str, Any]:
        return msg

    def decode(self, obj: Any) -> dict[str, Any]:
        if not isinstance(obj, dict) or obj.get("type") != "ping":
            raise ValueError("not a ping")
        if not isinstance(obj.get("src"), str) or not isinstance(obj.get("n"), int):
            raise ValueError("bad ping fields")  # noqa: TRY004 -- the Codec contract
        return obj

    def dest(self, msg: dict[str, Any]) -> str:
        return msg["dest"]


class SoloCore:
    def __init__(self, config: CoreConfig, restored: Restored) -> None:
        self.cfg = config
        self.last = restored.snapshot.index if restored.snapshot else 0
        self.snap_index = self.last
        self.rd = Ready(soft_state=SoftState("leader", config.node_id, 1))
        for e in restored.entries:  # all committed: the applier replays them
            self.rd.committed.append(e)
            self.last = e.index
        self.ticks = 0
        self.pings_heard = 0

    def step(self, msg: dict[str, Any]) -> None:
        self.pings_heard += 1

    def requests(self, batch: list[tuple[bytes, dict[str, Any]]]) -> None:
        for client, req in batch:
            self.request(client, req)

    def request(self, client: bytes, req: dict[str, Any]) -> None:
        if req["op"] == "read":
            self.rd.reads.append((client, req["id"], req["key"]))
            return
        self.last += 1
        entry = Entry(self.last, 1, req)
        self.rd.entries.append(entry)
        self.rd.waiters.append((len(self.rd.committed), (client, req["id"], 1, None)))
        self.rd.committed.append(entry)

    def tick(self) -> None:
        self.ticks += 1
        if self.ticks % 5 == 0:
            for p in self.cfg.peers:
                self.rd.messages.append({"type": "ping", "src": self.cfg.node_id, "dest": p,
                                         "n": self.ticks})

    def compact(self, snapshot: Snapshot) -> None:
        self.rd.snapshot = Snapshot(snapshot.index, 1, snapshot.data)
        self.snap_index = snapshot.index

    def ready(self) -> Ready | None:
        rd = self.rd
        if not (rd.soft_state or rd.entries or rd.messages or rd.committed or rd.reads
                or rd.snapshot):
            return None
        return rd

    def advance(self, rd: Ready) -> None:
        self.rd = Ready()

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
