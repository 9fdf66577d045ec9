"""The part of a nemesis context the disk and clock actions use, for process tests.

``NemesisCtx(cluster, seed)`` stands in for the interpreter's context
(faults/interpret.py) where a test drives ``DiskActions`` or ``ClockFaults``
directly: ``cluster``, a seeded ``rng``, ``record`` (the nemesis events, kept
in ``events`` in order), and ``answers``/``status`` (a node's ``status``
reply over its client socket). ``owner_state_dir``: the fixture ``state_dir`` (import it), which gives a test
its own owner-record folder (faults/owner.py), so mounts and clock files
it leaves are its own to find. ``lazy_mount`` (import lazy_mount_fixture with it):
one node's data folder on a real lazy file system with no flusher (exact
losses), unmounted also on failure and checked to leave no mount and no
owner record; skips with the reason where FUSE is not usable.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from faults import disk_mounts, owner
from faults.lazyfs import unavailable_reason
from nodes.common.wire import call


class NemesisCtx:
    def __init__(self, cluster: Any, seed: int = 7) -> None:
        self.cluster = cluster
        self.rng = random.Random(seed)
        self.events: list[tuple[str, Any, dict]] = []

    def record(self, f: str, value: Any, **fields: Any) -> None:
        self.events.append((f, value, fields))

    async def answers(self, node: str, timeout: float) -> bool:
        return await asyncio.to_thread(self._status, node, timeout) is not None

    async def status(self, node: str) -> dict | None:
        return await asyncio.to_thread(self._status, node, 0.3)

    def _status(self, node: str, timeout: float) -> dict | None:
        return call(self.cluster.client_addrs[node], {"op": "status"}, timeout)


@pytest.fixture(name="state_dir")
def owner_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "state"
    monkeypatch.setenv(owner.STATE_DIR_ENV, str(d))
    return d


@pytest.fixture(name="lazy_mount")
def lazy_mount_fixture(tmp_path: Path, state_dir: Path,
                       no_leftovers: None) -> Iterator[tuple[disk_mounts.Mounts, Path]]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    data = tmp_path / "data" / "n1"
    data.mkdir(parents=True)
    m = disk_mounts.Mounts({"n1": data}, tmp_path, writeback_s=0)  # no flusher: exact losses
    try:
        m.mount_all()
        yield m, data
    finally:
        m.close()
    assert not [p for p in disk_mounts.mounted() if p.startswith(str(tmp_path))], \
        "a lazy file system stayed mounted"
    assert not owner.names(disk_mounts.KIND), "the owner record stayed behind"
