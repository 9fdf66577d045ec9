"""``harness clean``: remove what runs that died left on the machine, now.

A thin command over ``faults.cleanup.clean`` (the same cleaning every
``--net netns`` set-up does first): one line per thing removed, or
``nothing to clean``; leftovers without an owner record are named and left
alone. Exit 0, or 2 when something could not be removed (one line each).
See docs/faults.md.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from faults.cleanup import clean


def register(sub: Any) -> None:
    p = sub.add_parser(
        "clean", help="remove namespaces, rules, FUSE mounts and clock files left by runs that died",
        description="Remove what runs that were killed left on this machine (network "
        "namespaces and their nftables rules, the lazy file systems of disk faults, the "
        "timestamp files of clock faults). Only what belongs to a run whose process "
        "is provably gone is removed; a live run's is never touched.")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    done = clean()
    for line in done.removed:
        print(f"removed {line}")
    if not done.removed and not done.errors:
        print("nothing to clean")
    for thing in done.unowned:
        print(f"left alone {thing} (no owner record, so its run cannot be shown gone)")
    for err in done.errors:
        print(f"harness clean: error: {err}", file=sys.stderr)
    return 2 if done.errors else 0
