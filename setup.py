"""The compiled parts of the package; everything else is in pyproject.toml.

Each is an optional C extension with a pure-Python twin: where it cannot be
compiled (no C compiler or no Python headers) the install still succeeds and
the package runs in pure Python. Each build records the SHA-256 of its C
source in the module (``SOURCE_SHA256``); the Python side uses the module only
while the source beside it still has that hash, so an edited .c never runs as
an old build (re-run ``pip install -e .``).

- checker/_edn_json.c: EDN to JSON in one pass (checker/edn.py, issue 20).
"""

import hashlib
from pathlib import Path

from setuptools import Extension, setup

ROOT = Path(__file__).parent


def extension(name: str, source: str) -> Extension:
    """``name`` built from the C file ``source``, optional, with its hash."""
    digest = hashlib.sha256((ROOT / source).read_bytes()).hexdigest()
    return Extension(name, [source], optional=True, extra_compile_args=["-O2"],
                     define_macros=[("SOURCE_SHA256", f'"{digest}"')])


setup(ext_modules=[
    extension("checker._edn_json", "checker/_edn_json.c"),
])
