"""The compiled parts of the package; everything else is in pyproject.toml.

Each is an optional C extension with a pure-Python twin: where it cannot be
compiled (no C compiler or no Python headers) the install still succeeds and
the package runs in pure Python. Each build records the SHA-256 of its C
source in the module (``SOURCE_SHA256``); the Python side uses the module only
while the source beside it still has that hash, so an edited .c never runs as
an old build (re-run ``pip install -e .``).

- checker/_edn_json.c: EDN to JSON in one pass (checker/edn.py, issue 20).
- checker/_search.c: the linearizability search for table steps
  (checker/search.py, issue 20).
- checker/_pair.c: pairing event dicts into operations (checker/history.py).
- checker/_registers.c: the register compile's per-operation passes
  (checker/registers.py).
- nodes/_native_build.py: mypyc's build of the simulator and the cores
  (issue 15), guarded the same way across the whole group by nodes/_native.py.
"""

import hashlib
import sys
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).parent


def extension(name: str, source: str) -> Extension:
    """``name`` built from the C file ``source``, optional, with its hash."""
    digest = hashlib.sha256((ROOT / source).read_bytes()).hexdigest()
    return Extension(name, [source], optional=True, extra_compile_args=["-O2"],
                     define_macros=[("SOURCE_SHA256", f'"{digest}"')])


def native_build() -> tuple[list[Any], type]:
    """nodes/_native_build.py (simspeed): mypyc's extensions of the simulator and
    the cores, and the build_ext that writes their hash manifest; loaded by path
    (the build environment lacks the package's dependencies). Whatever goes
    wrong there, the C extensions above still build: ([], build_ext)."""
    try:
        spec = spec_from_file_location("_native_build", ROOT / "nodes" / "_native_build.py")
        assert spec is not None and spec.loader is not None
        mod = module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod.extensions(), mod.BuildExt
    except Exception as e:  # noqa: BLE001
        print(f"consensus-harness: nodes/_native_build.py failed ({e}); "
              "the simulator stays pure Python", file=sys.stderr)
        return [], build_ext


native_extensions, native_build_ext = native_build()
setup(cmdclass={"build_ext": native_build_ext}, ext_modules=[
    extension("checker._edn_json", "checker/_edn_json.c"),
    extension("checker._search", "checker/_search.c"),
    extension("checker._pair", "checker/_pair.c"),
    extension("checker._registers", "checker/_registers.c"),
    *native_extensions,
])
