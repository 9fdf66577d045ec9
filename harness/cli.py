"""The `harness` command line: a thin dispatcher to subcommands.

Each subcommand lives in its own module, which exposes
``register(subparsers) -> None``; the parser it adds sets ``func`` to a
callable taking the parsed namespace and returning the exit code. The command
line only parses arguments into config objects and calls the same functions
the library API and the pytest plugin call.

Exit codes follow docs/exit-codes.md: 0 valid, 1 anomaly, 2 usage/config/input
error, 3 unknown. A user error is one line on stderr, never a traceback; so is
Ctrl-C that a subcommand does not handle itself ("harness X: interrupted", 3).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

# Subcommand modules, in the order `--help` lists them. A module that does not
# exist yet is skipped, so parts can land one at a time.
SUBCOMMANDS = (
    "harness.run_cli",
    "harness.check_cli",
    "reports.cli",
    "harness.clean_cli",
    "harness.ledger_cli",
    "harness.shrink_cli",
)


class UsageError(Exception):
    """A mistake the user can fix: printed as one line, exit 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="harness",
        description="Jepsen-style fault injection: run clusters under faults, "
        "check histories for linearizability, write reports.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"harness {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C in any subcommand: one line, never a traceback
        print(f"harness {args.command}: interrupted", file=sys.stderr)
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
