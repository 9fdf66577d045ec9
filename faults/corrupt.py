"""File corruption of a stopped node's data directory (the ``corrupt`` fault's damage).

``corrupt_dir(data_dir, rng, mode, which)`` damages one data file, as
Jepsen's file-corruption nemesis does:

- ``flip``: flips 1 to 8 random bits at random places of the file;
- ``truncate``: cuts 1 byte to half the file off its end (a torn tail);
- ``zero``: overwrites a range of 1 to 512 bytes with zeros;

in a ``random`` data file or the ``newest`` one (by modification time).
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


def corrupt_dir(data_dir: Path, rng: random.Random, mode: str, which: str,
                save_as: Path | None = None) -> dict[str, Any]:
    """Damage one data file of ``data_dir``; what was done (``file`` None: no data file)."""
    if mode not in MODES:
        raise ValueError(f"unknown corruption {mode!r} (choose from {', '.join(MODES)})")
    files = data_files(data_dir)
    if not files:
        return {"file": None, "mode": mode}
    if which == "newest":
        path = max(files, key=lambda p: (p.stat().st_mtime_ns, p.name))
    else:
        path = rng.choice(files)
    size = path.stat().st_size
    if save_as is not None:
        shutil.copyfile(path, save_as)
    done: dict[str, Any] = {"file": path.name, "mode": mode, "size_before": size}
    with open(path, "r+b") as f:
        if mode == "flip":
            flips = []
            for _ in range(rng.randint(1, 8)):
                at, bit = rng.randrange(size), rng.randrange(8)
                f.seek(at)
                b = f.read(1)[0]
                f.seek(at)
                f.write(bytes((b ^ (1 << bit),)))
                flips.append([at, bit])
            done["flips"] = flips
        elif mode == "truncate":
            cut = rng.randint(1, max(1, size // 2))
            f.truncate(size - cut)
            done.update(offset=size - cut, length=cut)
        else:
            length = rng.randint(1, min(512, size))
            at = rng.randrange(size - length + 1)
            f.seek(at)
            f.write(bytes(length))
            done.update(offset=at, length=length)
        f.flush()
        os.fsync(f.fileno())
    done["size_after"] = path.stat().st_size
    return done
