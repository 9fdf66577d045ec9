"""The driver in-process, with a scripted core: effect order and input handling.

The driver is run in a thread against real ZeroMQ sockets; the peers are
fakes that record what was sent, and the disk's fsync is slowed down so that
anything sent before it completes would be seen.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq

from nodes.common import driver as driver_mod
from nodes.common import storage as storage_mod
from nodes.common.clusterfile import load_cluster, write_cluster
from nodes.common.core_api import CoreConfig, Entry, ProtocolSpec, Ready, Restored, SoftState
from nodes.common.driver import Driver


class Codec:
    def encode(self, msg: dict) -> dict:
        return msg

    def decode(self, obj: Any) -> dict:
        if not isinstance(obj, dict) or obj.get("type") != "m":
            raise ValueError("not ours")
        return obj

    def dest(self, msg: dict) -> str:
        return msg["dest"]


class ScriptedCore:
    """Answers each write with one Ready: an entry, an early and a late peer
    message, and the entry committed with its waiter (so the applier answers
    the client); records what reached it and how the driver called it."""

    def __init__(self, config: CoreConfig, restored: Restored) -> None:
        self.requests_seen: list[dict] = []
        self.stepped: list[dict] = []
        self.ticks = 0
        self.pending: Ready | None = Ready(soft_state=SoftState("leader", "n1", 1))
        self.advanced: list[Ready] = []
        self.readies = 0

    def step(self, msg: dict) -> None:
        self.stepped.append(msg)

    def requests(self, batch: list[tuple[bytes, dict]]) -> None:
        rd = self.pending or Ready()
        if not rd.entries:
            rd = self.pending = Ready(soft_state=rd.soft_state, entries=[], early_messages=[],
                                      messages=[], committed=[], waiters=[])
        for client, req in batch:
            self.requests_seen.append(req)
            n = len(self.requests_seen)
            entry = Entry(n, 1, {"op": "write", "key": req["key"], "value": req["value"]})
            rd.entries.append(entry)
            rd.early_messages.append({"type": "m", "dest": "n2", "what": f"early{n}"})
            rd.messages.append({"type": "m", "dest": "n2", "what": f"late{n}"})
            rd.waiters.append((len(rd.committed), (client, req["id"], 1, None)))
            rd.committed.append(entry)

    def request(self, client: bytes, req: dict) -> None:
        self.requests([(client, req)])

    def tick(self) -> None:
        self.ticks += 1

    def compact(self, snapshot: object) -> None:
        raise AssertionError("no snapshot is due")

    def ready(self) -> Ready | None:
        self.readies += 1
        return self.pending  # only collects: the same Ready until advance

    def advance(self, rd: Ready) -> None:
        assert rd is self.pending, "advance must get the Ready that ready() returned"
        self.advanced.append(rd)
        self.pending = None

    def status(self) -> dict:
        return {"role": "leader", "term": 1, "leader": "n1", "commit_index": 0,
                "last_applied": 0, "log_len": len(self.requests_seen)}


class RecordingDealer:
    """A peer DEALER (nodes/common/zmtp.py Dealer) that records what it was given."""

    sock = None
    want_write = False
    version = 0

    def __init__(self, events: list[str]) -> None:
        self.events = events

    def send(self, data: bytes) -> bool:
        self.events.append("send:" + msgpack.unpackb(data)["what"])
        return True

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        return -1

    def service(self, now: int) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    events: list[str] = []
    real_sync = storage_mod.os.fdatasync

    def slow_sync(fd: int) -> None:
        time.sleep(0.2)  # a slow disk: anything sent before the fsync would show
        real_sync(fd)
        events.append("fsync")

    monkeypatch.setattr(storage_mod.os, "fdatasync", slow_sync)
    monkeypatch.setattr(driver_mod, "make_dealer", lambda addr, own: RecordingDealer(events))
    cluster = load_cluster(write_cluster(tmp_path, 2))
    cores: list[ScriptedCore] = []

    def make(config: CoreConfig, restored: Restored) -> ScriptedCore:
        cores.append(ScriptedCore(config, restored))
        return cores[0]

    with open(tmp_path / "n1.log", "w") as log:
        drv = Driver(ProtocolSpec("scripted", make, Codec()), cluster, "n1", log=log)
        result: list[int] = []
        thread = threading.Thread(target=lambda: result.append(drv.run()), daemon=True)
        thread.start()
        try:
            yield cluster, events, cores, tmp_path / "n1.log"
        finally:
            drv.stop()
            thread.join(10)
    assert result == [0]


def client(addr: str) -> zmq.Socket:
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(addr)
    return s


def recv(sock: zmq.Socket, timeout_ms: int = 10_000) -> dict:
    assert sock.poll(timeout_ms), "no reply"
    return msgpack.unpackb(sock.recv())


@pytest.mark.timeout(60)
def test_effects_run_in_ready_order_around_the_fsync(running) -> None:
    cluster, events, cores, log = running
    c = client(cluster.nodes["n1"].client_bind)
    try:
        c.send(msgpack.packb({"id": 1, "op": "write", "key": "k", "value": 1}))
        assert recv(c) == {"id": 1, "ok": True}  # from the applier, not the core
        # At the moment the reply arrived, everything before it had happened:
        # early message before the (slow) fsync, the rest after it.
        assert events[:3] == ["send:early1", "fsync", "send:late1"]
    finally:
        c.close()
    # One ready() and one advance() per batch; the soft state is logged from the Ready.
    core = cores[0]
    deadline = time.monotonic() + 10
    while len(core.advanced) < 1 or core.advanced[-1].committed == []:
        # advance() follows the replies, so it may still be on its way
        assert time.monotonic() < deadline, "the write's Ready was never advanced"
        time.sleep(0.01)
    assert core.advanced[0].soft_state == SoftState("leader", "n1", 1)
    assert core.readies >= len(core.advanced)  # idle turns collect None
    while "became leader at term 1" not in log.read_text():
        assert time.monotonic() < deadline, "the soft state was never logged"
        time.sleep(0.01)


@pytest.mark.timeout(60)
def test_status_malformed_and_garbage_never_reach_the_core(running) -> None:
    cluster, _events, cores, log = running
    c = client(cluster.nodes["n1"].client_bind)
    peer = zmq.Context.instance().socket(zmq.DEALER)
    peer.setsockopt(zmq.LINGER, 0)
    peer.setsockopt(zmq.ROUTING_ID, b"n2")
    peer.connect(cluster.nodes["n1"].peer_bind)
    try:
        c.send(msgpack.packb({"id": 7, "op": "status"}))
        st = recv(c)
        assert st["id"] == 7 and st["ok"] and st["role"] == "leader" and st["node"] == "n1"
        c.send(msgpack.packb({"id": 8, "op": "write", "key": 3, "value": 1}))
        bad = recv(c)
        assert bad["id"] == 8 and bad["error"] == "malformed" and bad["definite"] is True
        c.send(b"\xc1not msgpack")
        assert recv(c)["error"] == "malformed"
        peer.send(b"\xc1")
        peer.send(msgpack.packb({"type": "other"}))
        peer.send_multipart([b"a", b"b"])
        peer.send(msgpack.packb({"type": "m", "dest": "n1", "what": "good"}))
        deadline = time.monotonic() + 10
        while not cores[0].stepped:
            assert time.monotonic() < deadline, "a good peer message never reached the core"
            time.sleep(0.01)
        assert cores[0].stepped == [{"type": "m", "dest": "n1", "what": "good"}]
        assert cores[0].requests_seen == []  # status and malformed requests stayed in the driver
        assert cores[0].ticks > 0
    finally:
        c.close()
        peer.close()
    assert "dropped malformed input" in log.read_text()


@pytest.mark.timeout(60)
def test_a_client_that_sends_an_array_gets_its_replies_in_arrays(running) -> None:
    cluster, _events, cores, _log = running
    c = client(cluster.nodes["n1"].client_bind)
    plain = client(cluster.nodes["n1"].client_bind)
    try:
        # The handshake advertises batches (wire.BATCH_METADATA).
        c.send(msgpack.packb({"id": 1, "op": "status"}))
        recv(c)
        # One array frame: two writes for the core, a status and a malformed request
        # answered by the driver; every reply comes back, each at most once.
        c.send(msgpack.packb([{"id": 2, "op": "write", "key": "a", "value": 1},
                              {"id": 3, "op": "status"},
                              {"id": 4, "op": "write", "key": 5, "value": 1},
                              {"id": 5, "op": "write", "key": "b", "value": 2}]))
        got: dict[int, dict] = {}
        while len(got) < 4:
            assert c.poll(10_000), f"replies missing: have {sorted(got)}"
            frame = msgpack.unpackb(c.recv())
            for reply in frame if isinstance(frame, list) else [frame]:
                assert reply["id"] not in got
                got[reply["id"]] = reply
        assert got[2] == {"id": 2, "ok": True} and got[5] == {"id": 5, "ok": True}
        assert got[3]["role"] == "leader" and got[4]["error"] == "malformed"
        assert [r["id"] for r in cores[0].requests_seen] == [2, 5]
        # Replies from the core's Readies to a batching client come as arrays.
        c.send(msgpack.packb([{"id": 6, "op": "write", "key": "c", "value": 3}]))
        assert recv(c) == [{"id": 6, "ok": True}]
        # A client that never sent an array still gets maps.
        plain.send(msgpack.packb({"id": 1, "op": "write", "key": "d", "value": 4}))
        assert recv(plain) == {"id": 1, "ok": True}
        # status carries the applier's agreement chain (nodes/common/applier.py)
        plain.send(msgpack.packb({"id": 2, "op": "status"}))
        agree = recv(plain)["agree"]
        assert agree["applied"] == 4 and len(agree["hash"]) == 16 and agree["marks"] == []
    finally:
        c.close()
        plain.close()
