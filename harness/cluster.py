"""Local process control for a cluster of nodes: start/kill/pause by PID.

This module owns the one small interface the rest of the harness uses to control
node processes (docs/node-contract.md, "The process"): ``LocalCluster`` runs every node as a
child process of this machine. A later backend (SSH to other hosts, as Jepsen
does) only has to offer the same methods; ``faults.api.ClusterHandle`` is the
part of it the nemesis relies on.

Invariants:
- Every process is signalled by the PID of a ``Popen`` we still hold and have
  not reaped, so a PID can never have been reused by an unrelated process
  (an unreaped child stays a zombie and keeps its PID). Nothing is ever found
  or killed by name.
- ``close()`` ends every process ever started here, including paused ones
  (SIGCONT before SIGTERM, SIGKILL after a grace period) and any children a
  user-supplied node command spawned.
- Node processes run in their own session, so a Ctrl-C on the terminal reaches
  only the harness, which heals faults before it ends the nodes. When started
  from the main thread they also get PR_SET_PDEATHSIG, so they die with the
  harness even if it is SIGKILLed (the node driver also watches its parent).

- Disk and clock faults (docs/disk-and-clock.md) change nothing unless asked:
  ``lazyfs=True`` mounts a lazy file system (faults/disk_mounts.py) on every
  node's data directory before the first node starts and unmounts it in
  ``close()`` after the last node is gone; ``faketime=True`` starts every node
  with libfaketime preloaded and its own timestamp file (faults/clock.py),
  removed in ``close()``. Both are owned (faults.owner), so a SIGKILLed
  harness's leftovers are removed by the next run and ``harness clean``.

cluster.json (ports, routes, options) is written and read by
nodes/common/clusterfile.py (docs/cluster-json.md), never here.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, Self

import psutil

from nodes.common.clusterfile import ConfigError, load_cluster
from nodes.common.wire import call


class ClusterError(Exception):
    """A cluster could not be started or controlled; the message is one line."""


# --- parent-death signal -------------------------------------------------------

_PR_SET_PDEATHSIG = 1
try:  # resolved in the parent, so the forked child only makes one C call
    _prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None
except (OSError, AttributeError):  # pragma: no cover - non-glibc platforms
    _prctl = None


def _die_with_parent() -> None:
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


# --- process control -------------------------------------------------------------


class LocalCluster:
    """Node processes on this machine, controlled by PID. A context manager."""

    #: Seconds a SIGTERMed process gets before SIGKILL.
    STOP_GRACE_S = 3.0

    def __init__(
        self,
        cluster_json: Path,
        command: list[str],
        log_dir: Path,
        *,
        proxy_args: list[str] | None = None,
        lazyfs: bool = False,
        faketime: bool = False,
        writeback_s: float | None = None,
    ) -> None:
        self.cluster_json = Path(cluster_json).resolve()
        self.command = list(command)
        self.proxy_args = list(proxy_args or [])  # e.g. --journal FILE --seed N
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            spec = load_cluster(self.cluster_json)
        except ConfigError as exc:
            raise ClusterError(str(exc)) from None
        self.client_addrs: dict[str, str] = {
            nid: node.client_bind for nid, node in spec.nodes.items()
        }
        self.node_ids: list[str] = list(self.client_addrs)
        self.data_dirs: dict[str, Path] = {nid: node.data_dir for nid, node in spec.nodes.items()}
        self.lazyfs = lazyfs
        self.writeback_s = writeback_s  # the lazy file systems' flusher (None: its default)
        self.faketime = faketime
        self.mounts: Any = None  # faults.disk_mounts.Mounts once mounted
        self.clocks: Any = None  # faults.clock.Clocks once made
        self.proxy_control: str | None = spec.proxy.control if spec.proxy else None
        self._procs: dict[str, subprocess.Popen] = {}
        self._paused: set[str] = set()
        self._all: list[subprocess.Popen] = []  # every process ever started, for close()
        self._logs: list[IO[bytes]] = []
        self._proxy: subprocess.Popen | None = None
        self._lock = threading.RLock()
        self._closed = False

    # context manager
    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # starting
    def _spawn(self, argv: list[str], log_name: str,
               extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.log_dir / f"{log_name}.log", "ab")  # noqa: SIM115 - closed in close()
        self._logs.append(log)
        env = dict(os.environ, PYTHONUNBUFFERED="1", **(extra_env or {}))
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                close_fds=True,
                # one prctl call, resolved before the fork; see _die_with_parent
                preexec_fn=_die_with_parent  # noqa: PLW1509
                if threading.current_thread() is threading.main_thread()
                else None,
            )
        except OSError as exc:
            raise ClusterError(f"cannot start {argv[0]}: {exc.strerror or exc}") from exc
        self._all.append(proc)
        return proc

    def start_proxy(self) -> None:
        """Start the network proxy if cluster.json asks for one (idempotent)."""
        with self._lock:
            if self.proxy_control is None or (self._proxy and self._proxy.poll() is None):
                return
            argv = [sys.executable, "-m", "faults.netproxy", "--cluster", str(self.cluster_json)]
            argv += self.proxy_args
            self._proxy = self._spawn(argv, "proxy")

    def prepare_disks(self) -> None:
        """Mount the lazy file systems and make the clock files, if asked
        (idempotent; ``start`` calls it). ClusterError (one line) if impossible."""
        with self._lock:
            if self._closed:
                raise ClusterError("cluster is closed")
            if self.lazyfs and self.mounts is None:
                from faults.disk_mounts import MountError, Mounts

                extra = {} if self.writeback_s is None else {"writeback_s": self.writeback_s}
                mounts = Mounts(self.data_dirs, self.log_dir, **extra)
                try:
                    mounts.mount_all()
                except MountError as exc:
                    raise ClusterError(str(exc)) from None
                self.mounts = mounts
            if self.faketime and self.clocks is None:
                from faults.clock import ClockError, Clocks

                try:
                    self.clocks = Clocks(self.node_ids)
                except ClockError as exc:
                    raise ClusterError(str(exc)) from None

    def start(self, node: str) -> None:
        """Start ``node`` (with its existing data directory). No-op if it runs."""
        with self._lock:
            self._check_node(node)
            if self._closed:
                raise ClusterError("cluster is closed")
            proc = self._procs.get(node)
            if proc is not None and proc.poll() is None:
                return
            self.prepare_disks()
            argv = self.command + ["--id", node, "--cluster", str(self.cluster_json)]
            env = None
            if self.clocks is not None:
                self.clocks.before_start(node)  # a drift under way goes on in the new process
                env = self.clocks.env(node)
            self._procs[node] = self._spawn(argv, node, env)
            self._paused.discard(node)

    def start_all(self) -> None:
        self.start_proxy()
        for node in self.node_ids:
            self.start(node)

    def wait_ready(self, timeout: float) -> None:
        """Return once every node answers ``status``; ClusterError if one exits or
        the deadline passes."""
        deadline = time.monotonic() + timeout
        waiting = [n for n in self.node_ids]
        while waiting:
            for node in list(waiting):
                proc = self._procs.get(node)
                if proc is None:
                    raise ClusterError(f"node {node} was never started")
                code = proc.poll()
                if code is not None:
                    raise ClusterError(
                        f"node {node} exited with code {code} before it answered status"
                        f"{self._log_tail(node)}"
                    )
                reply = call(self.client_addrs[node], {"op": "status"}, timeout=0.25)
                if reply is not None:
                    waiting.remove(node)
            if self._proxy is not None and self._proxy.poll() is not None:
                raise ClusterError(
                    f"network proxy exited with code {self._proxy.returncode}"
                    f"{self._log_tail('proxy')}"
                )
            if waiting and time.monotonic() > deadline:
                raise ClusterError(
                    f"node(s) {', '.join(waiting)} did not answer status within {timeout:g} s"
                    f" (logs in {self.log_dir})"
                )
            if waiting:
                time.sleep(0.05)

    def _log_tail(self, name: str) -> str:
        try:
            lines = (self.log_dir / f"{name}.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return f": {lines[-1].strip()}" if lines else ""

    # signals
    def kill(self, node: str) -> None:
        """SIGKILL ``node`` and wait until it is gone."""
        with self._lock:
            proc = self._live(node)
            if proc is None:
                return
            proc.kill()
            proc.wait()
            self._paused.discard(node)

    def stop(self, node: str) -> None:
        """SIGTERM ``node`` (resuming it first if paused) and wait; SIGKILL after a grace."""
        with self._lock:
            proc = self._live(node)
            if proc is None:
                return
            _terminate([proc], self.STOP_GRACE_S)
            self._paused.discard(node)

    def pause(self, node: str) -> None:
        """SIGSTOP ``node`` and wait (briefly) until the kernel shows it stopped."""
        with self._lock:
            proc = self._live(node)
            if proc is None:
                return
            proc.send_signal(signal.SIGSTOP)
            self._paused.add(node)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                try:
                    if psutil.Process(proc.pid).status() == psutil.STATUS_STOPPED:
                        return
                except psutil.Error:
                    return
                time.sleep(0.005)

    def resume(self, node: str) -> None:
        with self._lock:
            proc = self._live(node)
            if proc is not None:
                proc.send_signal(signal.SIGCONT)
            self._paused.discard(node)

    # queries
    def pid(self, node: str) -> int | None:
        proc = self._live(node)
        return proc.pid if proc is not None else None

    def is_running(self, node: str) -> bool:
        return self._live(node) is not None

    def is_paused(self, node: str) -> bool:
        return node in self._paused and self.is_running(node)

    def proxy_pid(self) -> int | None:
        return self._proxy.pid if self._proxy is not None and self._proxy.poll() is None else None

    def pids(self) -> list[int]:
        """PIDs of every process started here that is still running."""
        return [p.pid for p in self._all if p.poll() is None]

    # disk and clock faults (faults/disk.py drives these)
    def lose_unsynced(self, node: str, torn_seed: int | None = None) -> dict[str, Any]:
        """Discard what ``node`` wrote and never synced (it must be stopped):
        {"files", "bytes", "torn_bytes", "paths"}; with ``torn_seed`` a seeded
        prefix of each file's oldest unsynced write survives (a torn write).
        ClusterError without a lazy file system."""
        if self.mounts is None:
            raise ClusterError("no lazy file system (the run has no disk faults)")
        if self.is_running(node):
            raise ClusterError(f"{node} is running; its unsynced data is lost only when it is down")
        from faults.disk_mounts import MountError

        try:
            return self.mounts.lose(node, torn_seed)
        except MountError as exc:
            raise ClusterError(str(exc)) from None

    def exit_info(self, node: str) -> tuple[int | None, str]:
        """The exit code of ``node``'s last process (None while it runs or if never
        started) and the last line of its log."""
        self._check_node(node)
        proc = self._procs.get(node)
        code = proc.poll() if proc is not None else None
        return code, self._log_tail(node).removeprefix(": ")

    def sync_disk(self, node: str) -> None:
        """Make ``node``'s cached writes durable (after corrupting its files)."""
        if self.mounts is not None:
            self.mounts.sync(node)

    def _check_node(self, node: str) -> None:
        if node not in self.client_addrs:
            raise ClusterError(f"unknown node {node!r} (cluster has {', '.join(self.node_ids)})")

    def _live(self, node: str) -> subprocess.Popen | None:
        self._check_node(node)
        proc = self._procs.get(node)
        return proc if proc is not None and proc.poll() is None else None

    # ending
    def close(self) -> None:
        """End every process ever started here (nodes, proxy, their children).

        Ctrl-C and SIGTERM are held back while it runs (and delivered after),
        so an impatient second Ctrl-C cannot leave half the nodes running."""
        blocked = threading.current_thread() is threading.main_thread()
        if blocked:
            old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            with self._lock:
                self._closed = True
                _terminate([p for p in self._all if p.poll() is None], self.STOP_GRACE_S)
                self._paused.clear()
                for log in self._logs:
                    log.close()
                self._logs.clear()
                # after the nodes: nothing holds the mounts or reads the clock files now
                for owned in (self.mounts, self.clocks):
                    if owned is not None:
                        try:
                            owned.close()
                        except Exception as exc:  # noqa: BLE001 -- close the other; say why
                            print(f"harness: {exc}", file=sys.stderr)
        finally:
            if blocked:
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


def _terminate(procs: list[subprocess.Popen], grace: float) -> None:
    """SIGCONT + SIGTERM each process (and its descendants), SIGKILL what remains
    after ``grace`` seconds, and reap them all."""
    kids: list[psutil.Process] = []
    for proc in procs:
        try:
            kids.extend(psutil.Process(proc.pid).children(recursive=True))
        except psutil.Error:
            pass
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            proc.send_signal(signal.SIGTERM)
    for kid in kids:
        try:
            kid.send_signal(signal.SIGCONT)
            kid.terminate()
        except psutil.Error:
            pass
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    alive = wait_gone(kids, deadline)
    for kid in alive:
        try:
            kid.kill()
        except psutil.Error:
            pass


def wait_gone(procs: list[psutil.Process], deadline: float) -> list[psutil.Process]:
    """Wait until each of ``procs`` (not our children) has exited, or ``deadline``;
    returns those still running. An exited process whose new parent has not
    reaped it yet (a zombie: an orphan waits for init) is gone: psutil's
    ``wait_procs`` would wait for the reaping, seconds where init reaps late."""
    alive = list(procs)
    while alive:
        still = []
        for proc in alive:
            try:
                if proc.status() != psutil.STATUS_ZOMBIE:
                    still.append(proc)
            except psutil.Error:
                pass  # gone
        alive = still
        if not alive or time.monotonic() >= deadline:
            break
        time.sleep(0.01)
    return alive
