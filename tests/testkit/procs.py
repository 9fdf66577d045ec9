"""Finding and ending, by PID, the processes a test's run left behind.

A run's node, proxy and worker processes name the run's folder on their
command line, so "the processes of this test" are those naming its tmp_path.
"""

from __future__ import annotations

import time
from pathlib import Path

import psutil


def processes_naming(path: Path) -> list[psutil.Process]:
    """Live (not zombie) processes whose command line mentions ``path``."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and any(
                    str(path) in arg for arg in proc.info["cmdline"] or ()):
                found.append(proc)
        except psutil.Error:
            pass
    return found


def end_leftovers(path: Path, within: float = 10.0) -> list[int]:
    """Wait up to ``within`` s for the processes naming ``path`` to end; kill
    (by PID) the ones that do not, and return their PIDs (empty: none left)."""
    deadline = time.monotonic() + within
    while processes_naming(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = processes_naming(path)
    for proc in left:
        try:
            proc.kill()
        except psutil.Error:
            pass
    return [p.pid for p in left]
