"""Where a sweep's runs execute: local processes, or a Dask distributed cluster.

Owns ``executor_for(cfg)``, the one choice between them, for `harness run
--test-count N` (real or ``--sim``), the library API (``run_series(config,
executor=...)`` takes any ``concurrent.futures.Executor``) and the pytest
plugin:

- no ``cfg.scheduler``: a ``ProcessPoolExecutor`` of ``cfg.workers`` processes
  (default: the machine's cores);
- ``cfg.scheduler``: the executor of a ``distributed.Client`` connected to that
  running scheduler. A task is one seed; it runs its own cluster (real runs:
  its own free ports) on its worker's machine and writes its run folder into
  ``cfg.store``, which every worker must reach (a shared path: we chose one
  store over copying folders back, so a failing seed's folder is where the
  report links expect it). A worker that dies loses no seed: Dask runs its
  tasks again elsewhere, and the sweep counts each seed once, by seed.

Invariant: without the ``[dask]`` extra, asking for a scheduler is one line
(``ExecutorError``) naming the extra; nothing imports ``distributed`` unless a
scheduler is asked for.
"""

from __future__ import annotations

import os
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any

#: Seconds to wait for a Dask scheduler to answer.
CONNECT_TIMEOUT_S = 15.0


class ExecutorError(Exception):
    """The sweep cannot get an executor (one line)."""


class DaskExecutor(Executor):
    """A Dask client's executor that also closes its client."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._inner = client.get_executor(pure=False)

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        return self._inner.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        try:
            self._inner.shutdown(wait=wait)
        finally:
            self.client.close()


def dask_executor(address: str, timeout: float = CONNECT_TIMEOUT_S) -> DaskExecutor:
    """An executor on the Dask scheduler at ``address``; ExecutorError when the extra
    is missing or the scheduler does not answer."""
    try:
        from distributed import Client
    except ImportError:
        raise ExecutorError("--scheduler needs Dask: pip install 'consensus-harness[dask]' "
                            "(or '.[dask]' in a checkout)") from None
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ExecutorError(f"--scheduler {address}: no Dask scheduler answers ({exc})") from None
    return DaskExecutor(client)


def executor_for(cfg: Any) -> Executor:
    """The executor ``cfg`` asks for (see the module header)."""
    if getattr(cfg, "scheduler", None):
        return dask_executor(cfg.scheduler)
    return ProcessPoolExecutor(max_workers=cfg.workers or os.cpu_count() or 1)
