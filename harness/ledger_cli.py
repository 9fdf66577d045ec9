"""`harness ledger [STORE] [--since DATE]`: what failed, how often, since when.

Thin on purpose: the ledger (its rows, signatures and summaries) is
reports/ledger.py's; this parses the arguments, syncs the ledger with the
store's run folders and prints. Exit 0, or 2 with one line when the store or
the date is wrong.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "ledger",
        help="failures grouped by signature, and each name's flake rate, from the store's ledger",
        description="Sync the store's ledger (ledger.sqlite, rebuilt from the run folders when "
        "missing or damaged) and print the failures grouped by signature (model, anomaly, "
        "bugs, shrunk fault story) with first and last seen, count and the newest report, "
        "then each run name's runs, failures and flake rate.",
    )
    p.add_argument("store", nargs="?", default="store", help="the store (default: %(default)s)")
    p.add_argument("--since", default=None, metavar="DATE",
                   help="only runs started on or after DATE (YYYY-MM-DD or ISO 8601, UTC)")
    p.set_defaults(func=main)


def _since(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since {text!r}: not a date (YYYY-MM-DD or ISO 8601)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).isoformat(timespec="seconds")


def main(args: argparse.Namespace) -> int:
    from reports import ledger

    store = Path(args.store)
    try:
        since = _since(args.since)
    except ValueError as exc:
        print(f"harness ledger: error: {exc}", file=sys.stderr)
        return 2
    if not store.is_dir():
        print(f"harness ledger: error: {store}: no such store directory", file=sys.stderr)
        return 2
    try:
        with ledger.open_ledger(store) as led:
            rows = led.rows(since)
    except ledger.LedgerError as exc:
        print(f"harness ledger: error: {exc}", file=sys.stderr)
        return 2
    print(ledger.render_text(rows))
    return 0
