"""File corruption of a stopped node's data directory (the ``corrupt`` fault's damage).

``corrupt_dir(data_dir, rng, mode, which)`` damages one data file, as
Jepsen's file-corruption nemesis does:

- ``flip``: flips 1 to 8 random bits at random places of the file;
- ``truncate``: cuts 1 byte to half the file off its end (a torn tail);
- ``zero``: overwrites a range of 1 to 512 bytes with zeros;

in a ``random`` data file or the ``newest`` one (by modification time).
``damage_files`` does the same to file contents in memory (the simulator's
disk); ``corrupt_dir`` reads the files, damages through the same functions
and writes the result back.
Data files are every non-empty regular file of the folder except the
node's ``LOCK`` and leftover ``*.tmp`` files. The damage is fsynced, and a
copy of the file as it was is kept (``save_as``) so an operator's repair can
put it back (docs/disk-and-clock.md "corrupt").

Invariants: the folder's owner is stopped (the caller kills it first);
everything random comes from ``rng``; the returned dict says exactly what
changed (file, mode, offset, length, bytes before and after).
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

MODES = ("flip", "truncate", "zero")
WHICH = ("random", "newest")
SKIP = ("LOCK",)


def data_files(data_dir: Path) -> list[Path]:
    d = Path(data_dir)
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir()
                  if p.is_file() and p.name not in SKIP and not p.name.endswith(".tmp")
                  and p.stat().st_size > 0)


def pick(files: dict[str, int], rng: random.Random, which: str) -> str:
    """The file to damage among ``files`` (name -> mtime, non-empty ones only):
    ``newest`` by mtime (ties: the greater name), else a seeded choice."""
    names = sorted(files)
    if which == "newest":
        return max(names, key=lambda n: (files[n], n))
    return rng.choice(names)


def damage_bytes(blob: bytes, rng: random.Random, mode: str) -> tuple[bytes, dict[str, Any]]:
    """``blob`` damaged by ``mode`` (non-empty), and what was done."""
    if mode not in MODES:
        raise ValueError(f"unknown corruption {mode!r} (choose from {', '.join(MODES)})")
    size = len(blob)
    out = bytearray(blob)
    done: dict[str, Any] = {"mode": mode, "size_before": size}
    if mode == "flip":
        flips = []
        for _ in range(rng.randint(1, 8)):
            at, bit = rng.randrange(size), rng.randrange(8)
            out[at] ^= 1 << bit
            flips.append([at, bit])
        done["flips"] = flips
    elif mode == "truncate":
        cut = rng.randint(1, max(1, size // 2))
        del out[size - cut:]
        done.update(offset=size - cut, length=cut)
    else:
        length = rng.randint(1, min(512, size))
        at = rng.randrange(size - length + 1)
        out[at:at + length] = bytes(length)
        done.update(offset=at, length=length)
    done["size_after"] = len(out)
    return bytes(out), done


def damage_files(files: dict[str, bytes], mtimes: dict[str, int], rng: random.Random,
                 mode: str, which: str) -> tuple[dict[str, Any], bytes | None, bytes | None]:
    """The damage ``corrupt_dir`` does, on file contents (name -> bytes): (what
    was done, the chosen file's bytes before and after). The simulator's disk
    (nodes/sim/disk.py) corrupts through this; ``file`` None: no data file."""
    if mode not in MODES:
        raise ValueError(f"unknown corruption {mode!r} (choose from {', '.join(MODES)})")
    present = {n: mtimes.get(n, 0) for n, b in files.items()
               if b and n not in SKIP and not n.endswith(".tmp")}
    if not present:
        return {"file": None, "mode": mode}, None, None
    name = pick(present, rng, which)
    before = files[name]
    after, done = damage_bytes(before, rng, mode)
    return {"file": name, **done}, before, after


def corrupt_dir(data_dir: Path, rng: random.Random, mode: str, which: str,
                save_as: Path | None = None) -> dict[str, Any]:
    """Damage one data file of ``data_dir``; what was done (``file`` None: no data file)."""
    if mode not in MODES:
        raise ValueError(f"unknown corruption {mode!r} (choose from {', '.join(MODES)})")
    paths = {p.name: p for p in data_files(data_dir)}
    if not paths:
        return {"file": None, "mode": mode}
    name = pick({n: p.stat().st_mtime_ns for n, p in paths.items()}, rng, which)
    path = paths[name]
    if save_as is not None:
        shutil.copyfile(path, save_as)
    after, done = damage_bytes(path.read_bytes(), rng, mode)
    with open(path, "r+b") as f:
        f.write(after)
        f.truncate(len(after))
        f.flush()
        os.fsync(f.fileno())
    return {"file": name, **done}
