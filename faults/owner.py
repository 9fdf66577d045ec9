"""Owner records: which process a machine-wide leftover of a run belongs to.

Some faults need things outside the run folder that outlive a SIGKILLed
harness: network namespaces and their nftables rules today (faults.netns),
FUSE mounts when disk faults come. Before creating any of them a run
*claims* a name with an owner record, ``<state dir>/<kind>-<name>.json``,
holding the claiming process's PID and start time (and what it will
create); it *releases* the record only after everything it names is gone.
So whatever exists of a run is covered by its record from the first
creation to the last removal, and the next run (or ``harness clean``) can
tell a dead run's leftovers from a live run's. See docs/faults.md.

Invariants:
- A record is written atomically and exclusively (a temporary file, then a
  hard link to the final name): a reader never sees half a record, and two
  runs never hold the same name.
- ``Owner.is_gone`` is True only when the owner is *provably* gone: the
  machine has rebooted since, or no process has its PID with its start
  time, or that process has exited (a zombie). Whatever is uncertain -- a
  record that cannot be read, a process we may not inspect, an owner in
  another PID namespace -- counts as alive, so a live run is never touched.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

#: Where owner records live: a tmpfs on Linux, so a reboot empties it (as it
#: empties every namespace and mount the records could name).
DEFAULT_STATE_DIR = Path("/run/consensus-harness")
#: Another folder for the records. Runs that use different folders never
#: clean each other's leftovers (a thing without a record here is left
#: alone); tests use it to keep their runs apart from concurrent ones.
STATE_DIR_ENV = "CONSENSUS_HARNESS_STATE_DIR"
#: Start times are kept in clock ticks by the kernel (10 ms); two processes
#: with one PID that start within one tick cannot be told apart by anyone.
START_TOLERANCE_S = 0.01


class CleanupError(Exception):
    """Leftovers cannot be inspected or removed here (e.g. not root); one line."""


#: Which boot this is, and which PID namespace this process sees.
BOOT_ID = "/proc/sys/kernel/random/boot_id"
PID_NS = "/proc/self/ns/pid"


def _read(path: str, *, link: bool = False) -> str | None:
    """The text (or link target) at ``path``, or None where there is none (not Linux)."""
    try:
        return os.readlink(path) if link else Path(path).read_text().strip()
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class Owner:
    """A process, named so that a later process with the same PID is not it."""

    pid: int
    #: psutil's create_time of the process (seconds since the epoch).
    create_time: float
    #: /proc/sys/kernel/random/boot_id when the record was made.
    boot_id: str | None = None
    #: The owner's PID namespace (a PID means nothing outside it).
    pid_ns: str | None = None

    @classmethod
    def me(cls) -> Owner:
        return cls(os.getpid(), psutil.Process().create_time(), _read(BOOT_ID),
                   _read(PID_NS, link=True))

    def is_gone(self) -> bool:
        """True only if this owner has provably ended (see the module header)."""
        boot = _read(BOOT_ID)
        if self.boot_id and boot and self.boot_id != boot:
            return True  # the machine restarted since: every process of then is gone
        if self.pid_ns and self.pid_ns != _read(PID_NS, link=True):
            return False  # its PID names another process here: we cannot tell
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > START_TOLERANCE_S:
                return True  # the PID was reused by a later process
            return proc.status() == psutil.STATUS_ZOMBIE  # exited, not yet reaped
        except psutil.NoSuchProcess:
            return True
        except psutil.Error:  # e.g. AccessDenied: not provable
            return False

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "create_time": self.create_time, "boot_id": self.boot_id,
                "pid_ns": self.pid_ns}


@dataclass(frozen=True, slots=True)
class Record:
    """One claimed name: its kind (``netns``), name (a run's tag), owner and data."""

    kind: str
    name: str
    owner: Owner
    data: dict[str, Any]

    @property
    def path(self) -> Path:
        return record_path(self.kind, self.name)


def state_dir() -> Path:
    """The folder of owner records: ``$CONSENSUS_HARNESS_STATE_DIR`` or the default."""
    return Path(os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR)


def record_path(kind: str, name: str) -> Path:
    return state_dir() / f"{kind}-{name}.json"


def claim(kind: str, name: str, data: dict[str, Any]) -> Record | None:
    """Record this process as the owner of ``kind``/``name``; None if the name
    is already claimed (by anyone, dead or alive)."""
    rec = Record(kind, name, Owner.me(), dict(data))
    folder = state_dir()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{kind}-{name}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"kind": kind, "name": name, **rec.owner.to_dict(), **data}))
    try:
        os.link(tmp, rec.path)  # atomic, and fails if the name is taken
    except FileExistsError:
        return None
    finally:
        tmp.unlink(missing_ok=True)
    return rec


def release(kind: str, name: str) -> None:
    """Drop the record of ``kind``/``name`` (its things must be gone by now)."""
    record_path(kind, name).unlink(missing_ok=True)


def read(kind: str, name: str) -> Record | None:
    """The record of ``kind``/``name``, or None if there is none or it is unreadable."""
    try:
        doc = json.loads(record_path(kind, name).read_text())
        owner = Owner(int(doc.pop("pid")), float(doc.pop("create_time")),
                      doc.pop("boot_id", None), doc.pop("pid_ns", None))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    doc.pop("kind", None)
    doc.pop("name", None)
    return Record(kind, name, owner, doc)


def names(kind: str) -> list[str]:
    """Every name of ``kind`` that has a record file, readable or not."""
    folder = state_dir()
    if not folder.is_dir():
        return []
    prefix = f"{kind}-"
    return sorted(p.stem.removeprefix(prefix) for p in folder.glob(f"{prefix}*.json"))


def stale(kind: str) -> list[Record]:
    """The records of ``kind`` whose owner is provably gone."""
    found = (read(kind, n) for n in names(kind))
    return [r for r in found if r is not None and r.owner.is_gone()]
