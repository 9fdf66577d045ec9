"""The lazy file systems of one cluster: one faults.lazyfs daemon per node, owned and cleaned.

``Mounts(data_dirs, log_dir)`` mounts a lazy file system (faults/lazyfs.py)
on each node's data directory, its files kept in a *backing* folder beside
it (``data/n1`` is the mount, ``data/n1.disk`` the backing). ``lose(node)``
is the power-loss fault of that node's disk; ``close()`` unmounts all.

Invariants:
- Ownership (faults.owner, kind ``lazyfs``): before the first mount, the
  cluster claims a tag with an owner record naming every mount point; the
  record is released only once none of them is mounted. Each mount's fsname
  is ``lazyfs-<tag>``, so /proc/self/mounts says whose it is.
- ``close()`` is idempotent: SIGTERM each daemon (it writes its cache back
  and unmounts), then a lazy unmount of whatever is still mounted, then
  SIGKILL of a daemon that is still there. It runs from LocalCluster.close,
  so after Ctrl-C and SIGTERM too; daemons get a parent-death SIGTERM, so a
  SIGKILLed harness's daemons unmount themselves, and ``cleanup_stale``
  (every set-up, and ``harness clean``) detaches what is left of runs whose
  owner is provably gone.
- A mount without a record is reported (``unowned``), never removed.
"""

from __future__ import annotations

import ctypes
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from faults import owner
from faults.lazyfs import WRITEBACK_S, control, unavailable_reason

KIND = "lazyfs"
TAG = re.compile(r"[0-9a-f]{6}")
FSNAME = re.compile(r"lazyfs-([0-9a-f]{6})")
#: Seconds a daemon gets to mount, and to unmount after SIGTERM.
MOUNT_TIMEOUT_S = 10.0
UNMOUNT_GRACE_S = 5.0


class MountError(Exception):
    """A lazy file system could not be mounted or controlled; one line."""


def _pdeath_term() -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)


def mounted() -> dict[str, str]:
    """Every FUSE mount point on this machine -> its fsname (from /proc/self/mounts)."""
    found: dict[str, str] = {}
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        parts = line.split()
        if len(parts) >= 3 and parts[2].startswith("fuse"):
            found[parts[1].replace("\\040", " ")] = parts[0]
    return found


def _detach(point: str) -> None:
    """Lazily unmount ``point`` (works with a dead daemon too)."""
    for argv in (["fusermount3", "-u", "-z", point], ["umount", "-l", point]):
        if shutil.which(argv[0]) is None:
            continue
        if subprocess.run(argv, check=False, capture_output=True).returncode == 0:
            return
    if point in mounted():
        raise owner.CleanupError(f"cannot unmount {point} (needs fusermount3 or root)")


class Mounts:
    """The lazy file systems of one cluster (see the module header)."""

    def __init__(self, data_dirs: dict[str, Path], log_dir: Path,
                 writeback_s: float = WRITEBACK_S) -> None:
        self.writeback_s = writeback_s
        self.data_dirs = {n: Path(d).resolve() for n, d in data_dirs.items()}
        self.log_dir = Path(log_dir)
        self.tag = ""
        self._procs: dict[str, subprocess.Popen] = {}
        self._logs: list[IO[bytes]] = []
        self._closed = False

    def backing(self, node: str) -> Path:
        d = self.data_dirs[node]
        return d.with_name(d.name + ".disk")

    def control_name(self, node: str) -> str:
        return f"{self.tag}-{node}"

    def mount_all(self) -> None:
        reason = unavailable_reason()
        if reason:
            raise MountError(reason)
        for line in cleanup_stale():
            print(f"harness: removed {line}", file=sys.stderr)
        points = [str(d) for d in self.data_dirs.values()]
        for _ in range(20):
            tag = secrets.token_hex(3)
            if owner.claim(KIND, tag, {"mounts": points}) is not None:
                self.tag = tag
                break
        else:  # pragma: no cover - 20 collisions of 24 random bits
            raise MountError("could not claim a lazyfs tag")
        try:
            for node in self.data_dirs:
                self._mount(node)
            for node in self.data_dirs:
                self._wait(node)
        except BaseException:
            self.close()
            raise

    def _mount(self, node: str) -> None:
        point, back = self.data_dirs[node], self.backing(node)
        back.mkdir(parents=True, exist_ok=True)
        point.mkdir(parents=True, exist_ok=True)
        for entry in point.iterdir():  # files made before the mount move under it
            entry.rename(back / entry.name)
        log = open(self.log_dir / f"lazyfs-{node}.log", "ab")  # noqa: SIM115 - closed in close()
        self._logs.append(log)
        argv = [sys.executable, "-m", "faults.lazyfs", "--backing", str(back),
                "--mount", str(point), "--control", self.control_name(node),
                "--fsname", f"lazyfs-{self.tag}", "--writeback-s", str(self.writeback_s)]
        main = threading.current_thread() is threading.main_thread()
        try:
            self._procs[node] = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True,
                preexec_fn=_pdeath_term if main else None)  # noqa: PLW1509 - one prctl call
        except OSError as exc:
            raise MountError(f"cannot start the lazy file system: {exc.strerror or exc}") from None

    def _wait(self, node: str) -> None:
        proc, point = self._procs[node], str(self.data_dirs[node])
        deadline = time.monotonic() + MOUNT_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                tail = _tail(self.log_dir / f"lazyfs-{node}.log")
                raise MountError(f"lazy file system of {node} exited with code "
                                 f"{proc.returncode}{': ' + tail if tail else ''}")
            if os.path.ismount(point):
                try:
                    control(self.control_name(node), "ping", timeout=1.0)
                    return
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise MountError(f"lazy file system of {node} did not mount {point} "
                                 f"within {MOUNT_TIMEOUT_S:g} s")
            time.sleep(0.02)

    # -- faults -------------------------------------------------------------------------

    def lose(self, node: str, torn_seed: int | None = None) -> dict[str, Any]:
        """Discard ``node``'s unsynced data: {"files", "bytes", "torn_bytes", "paths"}
        (``torn_seed``: a torn write, faults/lazyfs.py ``LazyState.lose``)."""
        try:
            return control(self.control_name(node), "lose", torn_seed=torn_seed)
        except (OSError, ValueError) as exc:
            raise MountError(str(exc)) from None

    def stats(self, node: str) -> dict[str, Any]:
        try:
            return control(self.control_name(node), "stats")
        except (OSError, ValueError) as exc:
            raise MountError(str(exc)) from None

    def sync(self, node: str) -> dict[str, Any]:
        """Write ``node``'s cache back (used after corrupting a stopped node's files)."""
        try:
            return control(self.control_name(node), "sync")
        except (OSError, ValueError) as exc:
            raise MountError(str(exc)) from None

    # -- ending ---------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        procs = [p for p in self._procs.values() if p.poll() is None]
        for p in procs:
            p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + UNMOUNT_GRACE_S
        for p in procs:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        errors = []
        live = mounted()
        for point in map(str, self.data_dirs.values()):
            if live.get(point) == f"lazyfs-{self.tag}":
                try:
                    _detach(point)
                except owner.CleanupError as exc:
                    errors.append(str(exc))
        for p in self._procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        for log in self._logs:
            log.close()
        self._logs.clear()
        if self.tag and not errors:
            owner.release(KIND, self.tag)
        if errors:
            raise MountError("; ".join(errors))


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


# --- leftovers of dead runs (faults/cleanup.py CLEANERS) -------------------------------------


def sweep(kind: str, tag: re.Pattern[str], remove: Callable[[owner.Record], list[str]]) -> list[str]:
    """For each record of ``kind`` whose owner is provably gone: ``remove`` what it
    names (a description per thing removed), then drop the record. One line per
    thing removed, saying whose it was. (The clock files' cleaner uses it too.)"""
    lines = []
    for rec in owner.stale(kind):
        if not tag.fullmatch(rec.name) or owner.read(kind, rec.name) != rec:
            continue  # not ours, or another cleaner got there first
        why = f"(left by run {rec.name}, whose process {rec.owner.pid} is gone)"
        lines += [f"{thing} {why}" for thing in remove(rec)]
        owner.release(kind, rec.name)
        lines.append(f"owner record {rec.path} {why}")
    return lines


def cleanup_stale() -> list[str]:
    """Unmount what runs whose owner is provably gone left mounted, and drop their
    records; one line per thing removed."""

    def unmount(rec: owner.Record) -> list[str]:
        live, done = mounted(), []
        for point in rec.data.get("mounts") or []:
            if live.get(point) == f"lazyfs-{rec.name}":
                _detach(point)
                done.append(f"lazyfs mount {point}")
        return done

    return sweep(KIND, TAG, unmount)


def unowned() -> list[str]:
    """Lazy file systems mounted without an owner record: reported, never removed."""
    claimed = set(owner.names(KIND))
    return [f"lazyfs mount {point}" for point, fs in sorted(mounted().items())
            if (m := FSNAME.fullmatch(fs)) and m.group(1) not in claimed]
