"""The harness: runs clusters under faults, records histories, checks them, reports.

Library API (the command line and the pytest plugin use the same):

    from harness import RunConfig, run
    result = run(RunConfig(system="raft", nodes=3, time_limit=10, nemesis="kill"))
    result.verdict, result.anomalies, result.counts, result.run_dir

``result.anomalies`` name operations by id, positions in ``result.operations``
(docs/run-folder.md); exit codes are in docs/exit-codes.md.
"""

from harness.config import ConfigError, RunConfig
from harness.runner import RunError, RunResult, run, run_series

__all__ = ["ConfigError", "RunConfig", "RunError", "RunResult", "run", "run_series"]
