"""The one compiled part of the package: checker/_edn_json.c, EDN to JSON in
one pass (issue 20). Everything else is in pyproject.toml.

The extension is optional: where it cannot be compiled (no C compiler or no
Python headers) the install still succeeds and checker/edn.py reads EDN in
pure Python. The build records the SHA-256 of the C source in the module, and
checker/edn.py uses the module only while the source beside it still has that
hash, so an edited .c never runs as an old build (re-run ``pip install -e .``).
"""

import hashlib
from pathlib import Path

from setuptools import Extension, setup

SOURCE = "checker/_edn_json.c"
digest = hashlib.sha256((Path(__file__).parent / SOURCE).read_bytes()).hexdigest()

setup(ext_modules=[Extension(
    "checker._edn_json", [SOURCE], optional=True,
    define_macros=[("SOURCE_SHA256", f'"{digest}"')],
    extra_compile_args=["-O2"],
)])
