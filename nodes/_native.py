"""The compiled hot path: use mypyc's builds of the simulator and the cores only
while they are the build of the .py files beside them.

Owns the decision, taken once when the ``nodes`` package is first imported
(nodes/__init__.py calls ``guard()``), between the compiled extension modules
that setup.py builds at install time from ``MODULES`` and their pure-Python
sources, and the import hook that carries out a "pure" decision.

Invariants:
- All or nothing. The compiled modules call one another natively (a compiled
  RaftCore inherits the compiled Outbox, the compiled World calls into them),
  so one stale module would run old code through its compiled callers. The
  compiled set is used only when every module's .py has the sha256 the build
  recorded in ``MANIFEST``; otherwise (an edited or checked-out .py, a build
  missing one extension, no manifest, ``CONSENSUS_HARNESS_PURE=1`` or
  ``CHECKER_PURE=1``) every module in ``MODULES`` is imported from its .py;
  unless forced by the environment, one line on stderr says why.
- Nothing else changes: both sets are one source, and the compiled one gives
  byte-identical simulated histories (tests/test_native.py).
- No build, no effect: without compiled files the hook is not installed.

``STATE`` says which set is in use and why (``describe()``); benchmarks and
the test print it.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

#: The modules setup.py compiles (paths under the repository root), in build order.
MODULES = (
    "nodes/sim/world.py",
    "nodes/sim/load.py",
    "nodes/raft/core.py",
    "nodes/raft/progress.py",
    "nodes/paxos/core.py",
    "nodes/common/outbox.py",
    "nodes/common/core_api.py",
    "nodes/common/quorum.py",
    "nodes/common/readindex.py",
)
#: The build's shared library (mypyc's group), a module beside this one.
GROUP = "nodes._native_lib"
PACKAGE_DIR = Path(__file__).resolve().parent
ROOT = PACKAGE_DIR.parent
#: Written by setup.py after a build: {"modules": {path: sha256 of the .py}}.
MANIFEST = PACKAGE_DIR / "_native_manifest.json"
#: Set either to 1 to import every module from its .py even when a valid build
#: exists (CHECKER_PURE is the checker's: pure Python everywhere).
PURE_ENVS = ("CONSENSUS_HARNESS_PURE", "CHECKER_PURE")

#: {"compiled": bool, "reason": str}, set by guard().
STATE: dict[str, Any] = {"compiled": False, "reason": "not decided"}


def module_name(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def source_hashes(root: Path = ROOT, modules: Sequence[str] = MODULES) -> dict[str, str]:
    """sha256 of each module's .py, as setup.py records them."""
    return {p: hashlib.sha256((root / p).read_bytes()).hexdigest() for p in modules}


def _extension(root: Path, dotted: str) -> Path | None:
    base = root.joinpath(*dotted.split("."))
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = base.with_name(base.name + suffix)
        if candidate.exists():
            return candidate
    return None


def decide(root: Path = ROOT, modules: Sequence[str] = MODULES,
           manifest: Path | None = None, environ: dict[str, str] | None = None
           ) -> tuple[bool | None, str]:
    """(True: use the compiled set | False: import the .py files | None: there is
    no compiled file at all, nothing to do; the reason in words)."""
    env = os.environ if environ is None else environ
    manifest = MANIFEST if manifest is None else manifest
    built = [p for p in modules if _extension(root, module_name(p)) is not None]
    if not built and _extension(root, GROUP + "__mypyc") is None:
        return None, "no compiled build (pure Python)"
    forced = [v for v in PURE_ENVS if env.get(v, "") not in ("", "0")]
    if forced:
        return False, f"{forced[0]} is set: pure Python"
    missing = [p for p in modules if p not in built]
    if missing or _extension(root, GROUP + "__mypyc") is None:
        return False, f"incomplete build (no extension for {', '.join(missing) or GROUP}): pure Python"
    try:
        recorded = json.loads(manifest.read_text())["modules"]
    except (OSError, ValueError, KeyError, TypeError):
        return False, f"no readable {manifest.name}: pure Python"
    try:
        now = source_hashes(root, modules)
    except OSError as e:  # a module's .py is gone: nothing to compare the build with
        return False, f"cannot read a compiled module's source ({e}): pure Python"
    stale = [p for p, h in now.items() if recorded.get(p) != h]
    if stale:
        return False, (f"{', '.join(stale)} changed since the build: pure Python "
                       "(pip install -e . rebuilds)")
    return True, f"compiled (mypyc) {len(modules)} modules"


class _SourceFirst:
    """A meta path finder that imports ``names`` from their .py files, so no
    extension module beside them is loaded."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files

    def find_spec(self, fullname: str, path: Any = None, target: ModuleType | None = None
                  ) -> importlib.machinery.ModuleSpec | None:
        file = self.files.get(fullname)
        if file is None:
            return None
        return importlib.util.spec_from_file_location(fullname, file)


def guard() -> None:
    """Decide once (see the module header) and, for "pure", install the hook
    before any compiled module can be imported."""
    if STATE["reason"] != "not decided":
        return
    use, reason = decide()
    STATE["compiled"] = bool(use)
    STATE["reason"] = reason
    if use is False and not reason.endswith(" is set: pure Python"):
        # A build that is not the source's: say so once (the process goes on, slower).
        print(f"consensus-harness: compiled hot path not used: {reason}", file=sys.stderr)
    if use is False:
        sys.meta_path.insert(0, _SourceFirst(
            {module_name(p): ROOT / p for p in MODULES}))


def describe() -> str:
    return STATE["reason"]
