"""Install-time build of the compiled hot path (nodes/_native.py), for setup.py.

setup.py loads this file by path (the build environment has none of the
package's dependencies, so it must not import the package) and passes
``extensions()`` and ``BuildExt`` to setuptools. Owns: which command lines
compile (only those that build: metadata queries would run mypy for nothing),
the mypyc call, and the manifest of source hashes written after a build.

Never fails an install: mypy missing from the build environment, a type
error mypyc refuses, or a C compiler error leave a pure-Python install (one
warning line); nodes/_native.py then finds no complete build and imports the
.py files. ``CONSENSUS_HARNESS_PURE=1`` (or ``CHECKER_PURE=1``) at install
skips the compile.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent.parent
_SRC = (ROOT / "nodes" / "_native.py").read_text()
_ns: dict[str, Any] = {}
# nodes/_native.py's MODULES and GROUP, read without importing the package
exec(_SRC[_SRC.index("MODULES = ("):_SRC.index("PACKAGE_DIR =")], _ns)  # noqa: S102
MODULES: tuple[str, ...] = _ns["MODULES"]
GROUP: str = _ns["GROUP"]
MANIFEST = "nodes/_native_manifest.json"
#: setup.py commands that build extensions (pip's metadata hooks run others).
BUILDING = {"build", "build_ext", "bdist_wheel", "editable_wheel", "develop", "install"}


#: path -> sha256 of the .py that extensions() compiled
_COMPILED: dict[str, str] = {}


def _hashes() -> dict[str, str]:
    return {p: hashlib.sha256((ROOT / p).read_bytes()).hexdigest() for p in MODULES}


def _warn(msg: str) -> None:
    print(f"consensus-harness: {msg}; the simulator stays pure Python", file=sys.stderr)


def _pure_requested() -> bool:
    return any(os.environ.get(v, "") not in ("", "0")
               for v in ("CONSENSUS_HARNESS_PURE", "CHECKER_PURE"))


def extensions() -> list[Any]:
    """mypyc's extension modules for ``MODULES`` (each optional), or []."""
    if _pure_requested() or not BUILDING.intersection(sys.argv[1:]):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _warn("mypyc (the mypy package) is not in the build environment")
        return []
    cwd = os.getcwd()
    try:
        os.chdir(ROOT)  # mypyc names the modules by their paths from the root
        # Only MODULES are checked: the modules they import are read for their
        # types (silent), as the build environment lacks their dependencies.
        flags = ["--ignore-missing-imports", "--follow-imports=silent"]
        exts = list(mypycify([*flags, *MODULES], opt_level="3", group_name=GROUP))
    except BaseException as e:  # noqa: BLE001 -- mypy reports type errors by SystemExit
        _warn(f"mypyc refused the hot path ({type(e).__name__}: {e})")
        return []
    finally:
        os.chdir(cwd)
    _COMPILED.update(_hashes())  # what was compiled, for the manifest
    for ext in exts:
        ext.optional = True  # a C compiler error is a warning, not a failed install
    return exts


class BuildExt(build_ext):
    """setuptools' build_ext, then the manifest of what was compiled (the
    sha256 of each module's .py) beside the built package."""

    def run(self) -> None:
        # No manifest while extensions are being replaced: a process starting
        # meanwhile imports pure Python instead of a half-written library.
        (ROOT / MANIFEST).unlink(missing_ok=True)
        super().run()
        names = {GROUP + "__mypyc", *(p.removesuffix(".py").replace("/", ".") for p in MODULES)}
        if not _COMPILED or not names <= {ext.name for ext in self.extensions}:
            return  # not our build (or mypyc gave nothing): no manifest, pure Python
        text = json.dumps({"modules": _COMPILED}, indent=1, sort_keys=True) + "\n"
        targets = [ROOT / MANIFEST] if self.inplace or getattr(self, "editable_mode", False) else []
        if self.build_lib:
            targets.append(Path(self.build_lib) / MANIFEST)
        for path in targets:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
