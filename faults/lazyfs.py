"""The lazy file system: a FUSE passthrough that keeps unsynced writes in its own cache.

In the spirit of LazyFS (docs/disk-and-clock.md): a node's data directory is
the mount point; the files live in a *backing* folder beside it. Data written
through the mount stays in this process's cache until the file is fsynced or
fdatasynced; reads see it. The ``lose`` command (the power-loss fault)
throws away everything not synced, per file, so the backing folder is what a
disk would hold after a power cut. A SIGKILLed node loses nothing: the cache
is this process's, not the node's, as the page cache is the kernel's.

What is lazy and what is not, as LazyFS treats it: only file *data* is
cached. Creating, removing, renaming and truncating a file, and making a
folder, are applied to the backing folder at once and survive a power loss
(a directory fsync therefore has nothing left to make durable). A rename
carries the file's unsynced data to its new name; an unlink or an
``O_TRUNC`` open drops it. A clean unmount writes the cache back, so a
finished run's files are whole.

Like the kernel's flusher (``dirty_expire_centisecs``), a file whose cached
data has been dirty for ``--writeback-s`` seconds (default ``WRITEBACK_S``)
is written back without an fsync of its own: a power loss drops what was
written in the last few seconds and never synced, not everything since the
start. (A node that never fsyncs would otherwise lose even the first meta
file it wrote and refuse to start, which hides the lost writes.)

Run as ``python -m faults.lazyfs --backing DIR --mount DIR --control NAME
[--fsname NAME]`` (foreground; SIGTERM/SIGINT unmount and exit; the
mounting and its cleaning are faults/disk_mounts.py's). ``NAME`` is an abstract unix
socket (Linux: no file to leave behind) taking one JSON line per request:

    {"op": "ping"}   -> {"ok": true}
    {"op": "stats"}  -> {"ok": true, "dirty_files", "dirty_bytes", "synced_bytes", "fsyncs"}
    {"op": "lose"}   -> {"ok": true, "files": N, "bytes": B, "torn_bytes": 0, "paths": [...]}
    {"op": "lose", "torn_seed": S}  the same, but a seeded prefix of each file's
                     oldest unsynced write reached the disk (a torn write)
    {"op": "sync"}   -> {"ok": true, "files": N, "bytes": B}   (write the cache back)

Invariants:
- Writes never touch the backing file; only ``fsync``/``fdatasync`` of that
  file (or ``sync``, or a clean unmount) write its cached extents, in the
  order they were written, and then fsync the backing file.
- A file's logical size is the larger of its backing size and its cached
  extents' end; ``getattr`` reports it, so the node cannot tell.
- One lock guards the cache: FUSE runs single-threaded (``-s``), the control
  thread is the only other user.
- ``O_APPEND`` is honoured here (writes go to the logical end), since the
  backing descriptors are opened without it (``pwrite`` on an ``O_APPEND``
  descriptor would ignore its offset).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import random
import socket
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Seconds cached data may stay dirty before the flusher writes it back.
WRITEBACK_S = 3.0
#: Mount options: no kernel caching of data or attributes, so a ``lose`` is
#: seen by the next read and the next ``stat`` without invalidation calls.
MOUNT_OPTIONS = {"direct_io": True, "attr_timeout": 0, "entry_timeout": 0,
                 "negative_timeout": 0, "fsname": "lazyfs", "subtype": "lazyfs"}


def unavailable_reason() -> str | None:
    """One line why a lazy file system cannot be mounted here, else None."""
    if not sys.platform.startswith("linux"):
        return "lose-unsynced needs FUSE (Linux only)"
    if not os.path.exists("/dev/fuse"):
        return "lose-unsynced needs FUSE: /dev/fuse does not exist (modprobe fuse, or a container with --device /dev/fuse)"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "lose-unsynced needs FUSE: /dev/fuse is not readable and writable by this user"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import mfusepy  # noqa: F401
    except (ImportError, OSError) as exc:
        return f"lose-unsynced needs the FUSE 3 library and mfusepy ({exc}); apt-get install fuse3 libfuse3-3, pip install mfusepy"
    if os.geteuid() != 0 and not _which("fusermount3"):
        return "lose-unsynced needs fusermount3 to mount as a user (apt-get install fuse3)"
    return None


def _which(name: str) -> str | None:
    import shutil

    return shutil.which(name)


@dataclass(slots=True)
class _Dirty:
    """A file's unsynced data: extents in write order, and its logical size."""

    size: int
    since: float = 0.0  # monotonic time the file became dirty (the flusher's clock)
    extents: list[list[Any]] = field(default_factory=list)  # [offset, bytearray]

    def nbytes(self) -> int:
        return sum(len(e[1]) for e in self.extents)


class LazyState:
    """The cache, apart from FUSE, so it can be tested and driven directly."""

    def __init__(self, backing: Path) -> None:
        self.root = str(Path(backing).resolve())
        self.lock = threading.Lock()
        self.dirty: dict[str, _Dirty] = {}  # mount-relative path -> unsynced data
        self.append: set[int] = set()  # descriptors opened with O_APPEND
        self.synced_bytes = 0
        self.fsyncs = 0
        self.flushed_bytes = 0  # written back by the flusher, not by an fsync

    def real(self, path: str) -> str:
        return self.root + path  # FUSE paths start with "/"

    # -- data -------------------------------------------------------------------

    def write(self, path: str, data: bytes, offset: int, fd: int) -> int:
        with self.lock:
            d = self.dirty.get(path)
            if d is None:
                d = self.dirty[path] = _Dirty(os.fstat(fd).st_size, time.monotonic())
            if fd in self.append:
                offset = d.size
            ext = d.extents
            if ext and ext[-1][0] + len(ext[-1][1]) == offset:
                ext[-1][1] += data  # the common case: an append
            else:
                ext.append([offset, bytearray(data)])
            end = offset + len(data)
            d.size = max(d.size, end)
            return len(data)

    def read(self, path: str, size: int, offset: int, fd: int) -> bytes:
        with self.lock:
            d = self.dirty.get(path)
            if d is None:
                return os.pread(fd, size, offset)
            end = min(offset + size, d.size)
            if end <= offset:
                return b""
            buf = bytearray(os.pread(fd, end - offset, offset))
            if len(buf) < end - offset:
                buf.extend(bytes(end - offset - len(buf)))
            for off, data in d.extents:
                lo, hi = max(off, offset), min(off + len(data), end)
                if lo < hi:
                    buf[lo - offset : hi - offset] = data[lo - off : hi - off]
            return bytes(buf)

    def size_of(self, path: str) -> int | None:
        d = self.dirty.get(path)
        return d.size if d is not None else None

    def fsync(self, path: str, fd: int, datasync: bool) -> None:
        with self.lock:
            self._write_back(path, fd)
            self.fsyncs += 1
        (os.fdatasync if datasync else os.fsync)(fd)

    def _write_back(self, path: str, fd: int) -> int:
        d = self.dirty.pop(path, None)
        if d is None:
            return 0
        n = 0
        for off, data in d.extents:
            os.pwrite(fd, data, off)
            n += len(data)
        self.synced_bytes += n
        return n

    def flush_older(self, age_s: float) -> int:
        """The flusher: write back every file dirty for ``age_s`` seconds or more."""
        cut = time.monotonic() - age_s
        with self.lock:
            old = [p for p, d in self.dirty.items() if d.since <= cut]
        if not old:
            return 0
        _, n = self.sync_all(old, fsync=False)
        self.flushed_bytes += n
        return n

    def sync_all(self, paths: list[str] | None = None, fsync: bool = True) -> tuple[int, int]:
        """Write every cached file (or ``paths``) back, and fsync it: (files, bytes)."""
        with self.lock:
            files = n = 0
            for path in list(self.dirty) if paths is None else paths:
                if path not in self.dirty:
                    continue
                try:
                    fd = os.open(self.real(path), os.O_WRONLY)
                except OSError:
                    self.dirty.pop(path, None)
                    continue
                try:
                    n += self._write_back(path, fd)
                    if fsync:
                        os.fsync(fd)
                finally:
                    os.close(fd)
                files += 1
            return files, n

    def lose(self, torn_seed: int | None = None) -> dict[str, Any]:
        """The power-loss fault: drop every unsynced byte. With ``torn_seed``, a
        torn write: of each file's oldest unsynced extent a seeded prefix (at
        least one byte short of it) reached the disk before the power went."""
        with self.lock:
            paths = sorted(self.dirty)
            nbytes = sum(d.nbytes() for d in self.dirty.values())
            torn = 0
            if torn_seed is not None:
                rng = random.Random(torn_seed)
                for path in paths:
                    off, data = self.dirty[path].extents[0] if self.dirty[path].extents \
                        else (0, b"")
                    if len(data) < 2:
                        continue
                    keep = rng.randrange(1, len(data))
                    try:
                        fd = os.open(self.real(path), os.O_WRONLY)
                    except OSError:
                        continue  # removed meanwhile: nothing of it can reach the disk
                    try:
                        os.pwrite(fd, bytes(data[:keep]), off)
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                    torn += keep
            self.dirty.clear()
            return {"files": len(paths), "bytes": nbytes - torn, "torn_bytes": torn,
                    "paths": paths}

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {"dirty_files": len(self.dirty),
                    "dirty_bytes": sum(d.nbytes() for d in self.dirty.values()),
                    "synced_bytes": self.synced_bytes, "fsyncs": self.fsyncs,
                    "flushed_bytes": self.flushed_bytes}

    # -- metadata (durable at once, as LazyFS treats it) ---------------------------

    def truncate(self, path: str, length: int) -> None:
        with self.lock:
            os.truncate(self.real(path), length)
            d = self.dirty.get(path)
            if d is None:
                return
            kept = []
            for off, data in d.extents:
                if off < length:
                    kept.append([off, data[: length - off]])
            d.extents = kept
            d.size = length

    def dropped(self, path: str) -> None:
        with self.lock:
            self.dirty.pop(path, None)

    def renamed(self, old: str, new: str) -> None:
        with self.lock:
            moved = {}
            for p in list(self.dirty):
                if p == new or p.startswith(new + "/"):
                    del self.dirty[p]  # replaced by the rename
            for p in list(self.dirty):
                if p == old or p.startswith(old + "/"):
                    moved[new + p[len(old):]] = self.dirty.pop(p)
            self.dirty.update(moved)


def _operations(state: LazyState) -> Any:
    """The mfusepy Operations over ``state`` (imported late: only the mount needs it)."""
    import mfusepy as fuse

    real = state.real

    def _err(exc: OSError) -> fuse.FuseOSError:
        return fuse.FuseOSError(exc.errno or errno.EIO)

    class LazyOps(fuse.Operations):
        use_ns = True

        def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
            try:
                st = os.fstat(fh) if fh is not None else os.lstat(real(path))
            except OSError as exc:
                raise _err(exc) from None
            attrs = {"st_mode": st.st_mode, "st_nlink": st.st_nlink, "st_uid": st.st_uid,
                     "st_gid": st.st_gid, "st_size": st.st_size, "st_ino": st.st_ino,
                     "st_atime": st.st_atime_ns, "st_mtime": st.st_mtime_ns,
                     "st_ctime": st.st_ctime_ns}
            size = state.size_of(path)
            if size is not None:
                attrs["st_size"] = size
            return attrs

        def access(self, path: str, amode: int) -> int:
            if not os.access(real(path), amode):
                raise fuse.FuseOSError(errno.EACCES)
            return 0

        def readdir(self, path: str, fh: int) -> list[str]:
            try:
                return [".", "..", *os.listdir(real(path))]
            except OSError as exc:
                raise _err(exc) from None

        def _open(self, path: str, flags: int, mode: int = 0o644) -> int:
            want = (flags & ~(os.O_APPEND | os.O_ACCMODE | os.O_TRUNC)) | os.O_RDWR
            try:
                fd = os.open(real(path), want, mode)
            except OSError as exc:
                if exc.errno not in (errno.EACCES, errno.EPERM):
                    raise _err(exc) from None
                try:  # a read-only file: keep the caller's access mode
                    fd = os.open(real(path), flags & ~(os.O_APPEND | os.O_TRUNC), mode)
                except OSError as exc2:
                    raise _err(exc2) from None
            if flags & os.O_TRUNC:
                state.truncate(path, 0)
            if flags & os.O_APPEND:
                state.append.add(fd)
            return fd

        def open(self, path: str, flags: int) -> int:
            return self._open(path, flags)

        def create(self, path: str, mode: int, flags: int) -> int:
            return self._open(path, flags | os.O_CREAT, mode)

        def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
            try:
                return state.read(path, size, offset, fh)
            except OSError as exc:
                raise _err(exc) from None

        def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
            try:
                return state.write(path, data, offset, fh)
            except OSError as exc:
                raise _err(exc) from None

        def truncate(self, path: str, length: int, fh: int | None = None) -> int:
            try:
                state.truncate(path, length)
            except OSError as exc:
                raise _err(exc) from None
            return 0

        def fsync(self, path: str, datasync: int, fh: int) -> int:
            try:
                state.fsync(path, fh, bool(datasync))
            except OSError as exc:
                raise _err(exc) from None
            return 0

        def flush(self, path: str, fh: int) -> int:
            return 0

        def release(self, path: str, fh: int) -> int:
            state.append.discard(fh)
            os.close(fh)
            return 0

        def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
            return 0  # metadata is durable at once (module header)

        def unlink(self, path: str) -> int:
            try:
                os.unlink(real(path))
            except OSError as exc:
                raise _err(exc) from None
            state.dropped(path)
            return 0

        def rename(self, old: str, new: str) -> int:
            try:
                os.rename(real(old), real(new))
            except OSError as exc:
                raise _err(exc) from None
            state.renamed(old, new)
            return 0

        def mkdir(self, path: str, mode: int) -> int:
            try:
                os.mkdir(real(path), mode)
            except OSError as exc:
                raise _err(exc) from None
            return 0

        def rmdir(self, path: str) -> int:
            try:
                os.rmdir(real(path))
            except OSError as exc:
                raise _err(exc) from None
            return 0

        def chmod(self, path: str, mode: int) -> int:
            os.chmod(real(path), mode)
            return 0

        def chown(self, path: str, uid: int, gid: int) -> int:
            os.chown(real(path), uid, gid)
            return 0

        def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
            if times is None:
                os.utime(real(path))
            else:
                os.utime(real(path), ns=times)
            return 0

        def statfs(self, path: str) -> dict[str, Any]:
            sv = os.statvfs(real(path))
            return {k: getattr(sv, k) for k in (
                "f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree",
                "f_files", "f_flag", "f_frsize", "f_namemax")}

        def destroy(self, path: str) -> None:
            state.sync_all()  # a clean unmount: the cache reaches the disk

    return LazyOps()


# --- the control channel --------------------------------------------------------------


def _address(name: str) -> str:
    return "\0consensus-harness-lazyfs-" + name


def _serve(state: LazyState, name: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(_address(name))
    sock.listen(8)

    def loop() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                try:
                    req = json.loads(conn.makefile("rb").readline() or b"{}")
                    reply = _handle(state, req)
                except Exception as exc:  # noqa: BLE001 -- a bad request gets an answer, not a crash
                    reply = {"ok": False, "error": str(exc)}
                try:
                    conn.sendall(json.dumps(reply).encode() + b"\n")
                except OSError:
                    pass

    threading.Thread(target=loop, name="lazyfs-control", daemon=True).start()
    return sock


def _flusher(state: LazyState, age_s: float) -> None:
    def loop() -> None:
        while True:
            time.sleep(max(0.05, age_s / 4))
            try:
                state.flush_older(age_s)
            except OSError:
                pass  # a file removed meanwhile: its data is gone with it

    threading.Thread(target=loop, name="lazyfs-flusher", daemon=True).start()


def _handle(state: LazyState, req: dict[str, Any]) -> dict[str, Any]:
    op = req.get("op")
    if op == "ping":
        return {"ok": True, "pid": os.getpid()}
    if op == "stats":
        return {"ok": True, **state.stats()}
    if op == "lose":
        seed = req.get("torn_seed")
        return {"ok": True, **state.lose(seed if isinstance(seed, int) else None)}
    if op == "sync":
        files, n = state.sync_all()
        return {"ok": True, "files": files, "bytes": n}
    return {"ok": False, "error": f"unknown op {op!r}"}


def control(name: str, op: str, timeout: float = 5.0, **fields: Any) -> dict[str, Any]:
    """Send one request to the lazy file system ``name``; OSError if it does not answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(_address(name))
        sock.sendall(json.dumps({"op": op, **fields}).encode() + b"\n")
        line = sock.makefile("rb").readline()
    if not line:
        raise OSError(f"lazyfs {name}: no reply to {op}")
    reply = json.loads(line)
    if not reply.get("ok"):
        raise OSError(f"lazyfs {name}: {op} failed: {reply.get('error')}")
    return reply


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m faults.lazyfs", description=__doc__.split("\n")[0])
    ap.add_argument("--backing", required=True, help="the folder that holds the files")
    ap.add_argument("--mount", required=True, help="the mount point (the node's data directory)")
    ap.add_argument("--control", required=True, help="name of the control socket")
    ap.add_argument("--fsname", default="lazyfs", help="the name /proc/self/mounts shows")
    ap.add_argument("--writeback-s", type=float, default=WRITEBACK_S,
                    help="seconds before dirty data is written back unasked (0: never)")
    args = ap.parse_args(argv)
    reason = unavailable_reason()
    if reason:
        print(reason, file=sys.stderr)
        return 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mfusepy as fuse
    backing, mount = Path(args.backing), Path(args.mount)
    if not backing.is_dir() or not mount.is_dir():
        print(f"lazyfs: {backing} and {mount} must both be folders", file=sys.stderr)
        return 2
    state = LazyState(backing)
    try:
        sock = _serve(state, args.control)
    except OSError as exc:
        print(f"lazyfs: control socket {args.control}: {exc}", file=sys.stderr)
        return 2
    if args.writeback_s > 0:
        _flusher(state, args.writeback_s)
    try:
        fuse.FUSE(_operations(state), str(mount), foreground=True, nothreads=True,
                  **{**MOUNT_OPTIONS, "fsname": args.fsname})
    except RuntimeError as exc:
        print(f"lazyfs: cannot mount {mount}: {exc}", file=sys.stderr)
        return 2
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
