"""The checker's compiled helpers, and the one rule for using them.

Owns ``load(name)`` (and its hash test, ``compiled``): the C extension ``checker.<name>`` (built from
``checker/<name>.c`` by setup.py at ``pip install -e .``; optional) if it
was built from that source as it is now, else None, and then the caller
runs its pure-Python twin. Each module records the SHA-256 of the .c it was
built from (``SOURCE_SHA256``); when the file beside it has another hash,
the build is stale and is not used (one warning line says so), so an
edited source never runs as an old build. An installed copy without its
source is trusted: it was built with the package.

``CHECKER_PURE=1`` in the environment turns every compiled helper off (the
tests run each case both ways; docs/checker.md "Compiled search"), and so
does ``CONSENSUS_HARNESS_PURE=1``, the package-wide switch that nodes/_native.py
reads too, so one variable runs everything in pure Python.

Invariant: a compiled helper answers what its Python twin answers, or None
("not mine": the caller then runs the Python twin), never something else.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import warnings
from pathlib import Path
from types import ModuleType

_HERE = Path(__file__).resolve().parent


#: The environment variables that ask for the pure-Python paths only.
PURE_ENVS = ("CHECKER_PURE", "CONSENSUS_HARNESS_PURE")


def pure() -> bool:
    """Whether the environment asks for the pure-Python paths only."""
    return any(os.environ.get(v, "") not in ("", "0") for v in PURE_ENVS)


def load(name: str) -> ModuleType | None:
    """``checker.<name>`` if built, current with ``checker/<name>.c`` and not
    turned off by CHECKER_PURE; else None."""
    if pure():
        return None
    try:
        module = importlib.import_module(f"checker.{name}")
    except ImportError:
        return None  # not built (no compiler at install): the Python twin
    return compiled(module, _HERE / f"{name}.c")


def compiled(module: ModuleType, source: Path) -> ModuleType | None:
    """``module`` if it was built from ``source`` as it is now (its
    ``SOURCE_SHA256``), else None with one warning line; an installed copy
    without its source is trusted."""
    try:
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
    except OSError:
        return module
    if digest != getattr(module, "SOURCE_SHA256", None):
        # one line, located at the stale source (line 0: no code line printed under it)
        warnings.warn_explicit(f"{source.name} changed since its build: the checker uses its "
                               f"pure-Python twin (slower) until `pip install -e .` builds it "
                               f"again", RuntimeWarning, str(source), 0)
        return None
    return module
