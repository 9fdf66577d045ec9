"""The harness: runs clusters under faults, records histories, checks them, reports.

Library API (the command line and the pytest plugin use the same):

    from harness import RunConfig, run
    result = run(RunConfig(system="raft", nodes=3, time_limit=10, nemesis="kill"))
    result.verdict, result.anomalies, result.counts, result.run_dir

``result.anomalies`` name operations by id, positions in ``result.operations``
(docs/run-folder.md); exit codes are in docs/exit-codes.md.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# Loaded on first use, so that ``python -m harness.workers`` (a worker process)
# and ``python -m harness.X`` in general do not import the runner first: the
# module would then exist twice (RuntimeWarning) and every worker start would
# pay for the whole harness.
_EXPORTS = {
    "ConfigError": "harness.config",
    "RunConfig": "harness.config",
    "RunError": "harness.runner",
    "RunResult": "harness.runner",
    "run": "harness.runner",
    "run_series": "harness.runner",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    return getattr(import_module(module), name)
