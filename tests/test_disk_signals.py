"""No FUSE mount and no faketime file outlives a run: Ctrl-C, SIGTERM, and SIGKILL of the harness.

Each case starts ``harness run --nemesis lose-unsynced,clock`` as a child
process with its own owner-record folder, waits until its lazy file
systems are mounted and its timestamp folder exists, signals it, and
checks what is left: after SIGINT/SIGTERM nothing at all; after SIGKILL the
daemons unmount themselves (parent-death signal) and the next cleaning
(``faults.cleanup.clean``, what the next run's set-up and ``harness clean``
do) removes the timestamp folder and the records. Processes are ended by PID
also on failure (``no_leftovers``); skips with the reason without FUSE or
libfaketime.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from faults import clock, disk_mounts, owner
from faults.cleanup import clean
from faults.disk import unavailable_reason

pytestmark = pytest.mark.timeout(180)
ROOT = Path(__file__).resolve().parents[1]


def _mounts(tmp_path: Path) -> list[str]:
    return [p for p in disk_mounts.mounted() if p.startswith(str(tmp_path))]


def _faketime_dirs(state: Path) -> list[Path]:
    return sorted(state.glob("faketime-*")) if state.is_dir() else []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_nothing_of_a_signalled_run_stays_behind(tmp_path: Path, no_leftovers: None,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 sig: signal.Signals) -> None:
    reason = unavailable_reason(["lose-unsynced", "clock"])
    if reason:
        pytest.skip(reason)
    state = tmp_path / "state"
    monkeypatch.setenv(owner.STATE_DIR_ENV, str(state))
    env = dict(os.environ, **{owner.STATE_DIR_ENV: str(state)})
    argv = [sys.executable, "-m", "harness", "run", "--nodes", "3", "--net", "direct",
            "--nemesis", "lose-unsynced,clock", "--nemesis-interval", "2", "--time-limit", "60",
            "--seed", "3", "--store", str(tmp_path / "store"), "--no-progress"]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (len(_mounts(tmp_path)) == 3 and _faketime_dirs(state)):
            assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the run never mounted its file systems"
            time.sleep(0.1)
        time.sleep(3.0)  # into the load, with faults going on
        proc.send_signal(sig)
        proc.wait(timeout=90)
        if sig == signal.SIGKILL:
            deadline = time.monotonic() + 15
            while _mounts(tmp_path) and time.monotonic() < deadline:
                time.sleep(0.1)  # the daemons' parent-death SIGTERM unmounts them
            assert _faketime_dirs(state), "a SIGKILLed harness cannot have removed its files"
            done = clean()
            assert not done.errors, done.errors
            assert any("faketime folder" in line for line in done.removed), done.removed
        assert not _mounts(tmp_path), "a lazy file system stayed mounted"
        assert not _faketime_dirs(state), "a faketime folder stayed behind"
        assert not owner.names(disk_mounts.KIND) and not owner.names(clock.KIND)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for point in _mounts(tmp_path):
            subprocess.run(["umount", "-l", point], check=False)
