"""The run folder, the self-contained HTML fault report and the store index.

Public API: ``write_report(run_dir) -> Path`` draws RUN/index.html from the
run folder's files alone; ``write_store_index(store) -> Path`` draws
store/index.html; ``reports.runfolder`` owns the run folder's layout and the
results.json schema (docs/run-folder.md); ``reports.analysis.run_figures``
computes the figures results.json carries (latency, availability per fault).

Invariant: nothing under reports/ imports the harness (its runner, cluster,
bugs, config or nemesis; nor ``harness`` at all), so a run folder copied to
another machine redraws with this package and the standalone checker only.
Imports are lazy so ``import reports`` stays cheap for the harness.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["write_report", "write_store_index"]


def write_report(run_dir: Path) -> Path:
    """Draws RUN/index.html from the run folder; returns its path."""
    from reports.page import write_report as _write

    return _write(Path(run_dir))


def write_store_index(store: Path) -> Path:
    """Draws store/index.html listing every run, newest first; returns its path."""
    from reports.store_index import write_store_index as _write

    return _write(Path(store))
