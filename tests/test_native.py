"""The compiled hot path is used only while it is the build of its sources (nodes/_native.py).

``decide`` is checked on a tree of stand-in files (an extension's presence is
all it reads); the import hook on a copy of the ``nodes`` package whose
"extensions" are garbage, so importing any of them instead of its .py fails
loudly. That the compiled and the pure paths give the same bytes is
tests/test_sim_determinism.py (its second process runs pure Python).
"""

from __future__ import annotations

import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from nodes import _native

ROOT = Path(__file__).resolve().parent.parent
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def _tree(tmp: Path, *, with_ext: bool = True, manifest: bool = True) -> Path:
    """A stand-in tree: every MODULES .py (copied), its "extension", the group
    library and a manifest of the copies' hashes."""
    for p in _native.MODULES:
        (tmp / p).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / p, tmp / p)
        if with_ext:
            (tmp / p).with_name(Path(p).stem + SUFFIX).write_bytes(b"not an extension")
    if with_ext:
        group = tmp.joinpath(*_native.GROUP.split("."))
        group.with_name(group.name + "__mypyc" + SUFFIX).write_bytes(b"not an extension")
    if manifest:
        (tmp / "nodes" / "_native_manifest.json").write_text(
            json.dumps({"modules": _native.source_hashes(tmp)}))
    return tmp / "nodes" / "_native_manifest.json"


def test_a_build_is_used_only_while_every_source_has_the_hash_it_was_built_from(
        tmp_path: Path) -> None:
    manifest = _tree(tmp_path)
    assert _native.decide(tmp_path, manifest=manifest, environ={}) == (
        True, f"compiled (mypyc) {len(_native.MODULES)} modules")
    # one edited source turns the whole group off
    edited = tmp_path / "nodes" / "common" / "quorum.py"
    edited.write_text(edited.read_text() + "\n# edited\n")
    use, reason = _native.decide(tmp_path, manifest=manifest, environ={})
    assert use is False and "nodes/common/quorum.py changed since the build" in reason


def test_a_missing_extension_or_manifest_or_the_pure_switch_means_pure_python(
        tmp_path: Path) -> None:
    manifest = _tree(tmp_path)
    for env in ("CONSENSUS_HARNESS_PURE", "CHECKER_PURE"):
        use, reason = _native.decide(tmp_path, manifest=manifest, environ={env: "1"})
        assert use is False and env in reason
    (tmp_path / "nodes" / "sim" / ("world" + SUFFIX)).unlink()
    use, reason = _native.decide(tmp_path, manifest=manifest, environ={})
    assert use is False and "incomplete build" in reason and "nodes/sim/world.py" in reason
    other = tmp_path / "other"
    manifest = _tree(other, manifest=False)
    use, reason = _native.decide(other, manifest=manifest, environ={})
    assert use is False and "_native_manifest.json" in reason
    (other / "nodes" / "_native_manifest.json").write_text(
        json.dumps({"modules": _native.source_hashes(other)}))
    (other / "nodes" / "raft" / "progress.py").unlink()
    use, reason = _native.decide(other, manifest=manifest, environ={})
    assert use is False and "cannot read" in reason
    bare = tmp_path / "bare"
    manifest = _tree(bare, with_ext=False, manifest=False)
    assert _native.decide(bare, manifest=manifest, environ={})[0] is None


def test_a_stale_build_imports_the_whole_group_from_source_with_one_warning_line(
        tmp_path: Path) -> None:
    """A copy of the package with garbage "extensions" beside every compiled
    module and a manifest that one edit no longer matches: every module must
    come from its .py (loading a garbage extension would fail), and stderr
    says why in one line."""
    shutil.copytree(ROOT / "nodes", tmp_path / "nodes",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "_native_manifest.json"))
    _tree(tmp_path)
    raft = tmp_path / "nodes" / "raft" / "core.py"
    raft.write_text(raft.read_text() + "\n# edited after the build\n")
    code = ("import nodes.sim.world, nodes.raft.core, nodes.paxos.core, nodes.common.outbox\n"
            "from nodes import _native\n"
            "print(nodes.sim.world.__file__, nodes.raft.core.__file__, _native.STATE['compiled'])")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    for var in _native.PURE_ENVS:
        env.pop(var, None)
    out = subprocess.run([sys.executable, "-c", code], check=False, env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    world, core, compiled = out.stdout.split()
    assert world == str(tmp_path / "nodes" / "sim" / "world.py")
    assert core == str(raft)
    assert compiled == "False"
    warnings = [line for line in out.stderr.splitlines() if "consensus-harness:" in line]
    assert len(warnings) == 1, out.stderr
    assert "nodes/raft/core.py changed since the build" in warnings[0]
