"""The self-contained HTML fault report and the store index.

Public API (/work/interfaces.md): ``write_report(run_dir) -> Path`` draws
RUN/index.html; ``write_store_index(store) -> Path`` draws store/index.html;
``reports.analysis.availability(events) -> list`` gives availability per
fault window. Imports are lazy so ``import reports`` stays cheap for the harness.
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
