"""Fixtures shared by several test modules, so that test modules never import each other.

- ``no_leftovers``: after the test, every process whose command line names the
  test's ``tmp_path`` (node, proxy, harness of that run) must be gone; any that
  is not is killed by PID and the test fails.
- ``netns_usable``: skips (with the reason) unless network namespaces and
  nftables can be used here; as root on Debian it installs nftables first.
- Hypothesis runs with no time-based checks (no ``deadline``, no
  ``too_slow`` health check): the suite shares 2 cores with whatever else
  runs, so a slow draw says nothing about the code under test.

Plain helpers live in ``tests/testkit/``; ``testkit.livecluster`` also
provides the ``cluster`` and ``netns_cluster`` fixtures (a live three-node
Raft cluster behind the proxy or in network namespaces), loaded as a plugin.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from testkit.procs import end_leftovers

pytest_plugins = ["testkit.livecluster"]

settings.register_profile("shared-machine", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("shared-machine")


@pytest.fixture
def no_leftovers(tmp_path: Path) -> Iterator[None]:
    """Ends (by PID) any process of this test's run that outlives it, and fails then."""
    yield
    left = end_leftovers(tmp_path)
    assert not left, f"processes of the run were left running: {left}"


def _netns_reason() -> str | None:
    from faults.netns import unavailable_reason

    if sys.platform.startswith("linux") and os.geteuid() == 0 and shutil.which("nft") is None:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "-q", "nftables"]
        if subprocess.run(cmd, env=env, capture_output=True, timeout=300,
                          check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True,
                           timeout=300, check=False)
            subprocess.run(cmd, env=env, capture_output=True, timeout=300, check=False)
    return unavailable_reason()


@pytest.fixture(scope="session")
def netns_usable() -> None:
    """Skip unless ``--net netns`` can work here (root, ip, nft)."""
    reason = _netns_reason()
    if reason:
        pytest.skip(reason)
