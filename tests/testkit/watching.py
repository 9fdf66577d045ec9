"""What the status watches' tests share (faults/agreement.py, election.py, durable.py).

``status_interpreter(status_of, recorded, node_ids)``: the real interpreter
(faults/interpret.py) over fake nodes whose ``status`` replies come from
``status_of(node)``; no fault runs, and every nemesis event it records goes
to ``recorded`` as ``(f, value, fields)``. Its ``view()`` asks every node, as
the hunting plan's views do, so one ``asyncio.run(nemesis.view())`` feeds the
watches once.

``zoo_shape(tmp_path, system, bugs, seed)``: the real zoo's command line in
simulation (5 nodes, the swarmed default, ``--nemesis-interval 2
--request-timeout 2``), prepared for ``harness.simrun.simulate``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from faults.api import NemesisContext
from harness import simrun
from harness.config import RunConfig


def status_interpreter(status_of: Callable[[str], dict[str, Any]],
                       recorded: list[tuple[str, Any, dict[str, Any]]],
                       node_ids: Sequence[str]) -> Any:
    from faults.interpret import Interpreter

    class Cluster:  # what the interpreter's process faults wire up; no fault runs here
        kill = start = pause = resume = staticmethod(lambda node: None)

    Cluster.node_ids = tuple(node_ids)  # type: ignore[attr-defined]

    async def status(node: str) -> dict[str, Any]:
        return status_of(node)

    async def leader() -> str | None:
        return None

    ctx = NemesisContext(cluster=Cluster(), proxy_control=None,  # type: ignore[arg-type]
                         record=lambda f, v, **kw: recorded.append((f, v, kw)),
                         rng=random.Random(1), leader=leader, interval_s=1.0, status=status)

    class Watching:  # a plan that reads statuses (as the hunting plan does) and asks for nothing
        reads_statuses = True

    return Interpreter(Watching(), ctx, None)  # type: ignore[arg-type]


def zoo_shape(tmp_path: Path, system: str, bugs: Sequence[str], seed: int) -> RunConfig:
    from harness.cli import build_parser
    from harness.run_cli import config_from_args

    argv = ["run", "--sim", "--system", system, "--nemesis-interval", "2", "--seed", str(seed),
            "--request-timeout", "2", "--store", str(tmp_path), "--no-progress"]
    for bug in bugs:
        argv += ["--bug", bug]
    return simrun.prepare(config_from_args(build_parser().parse_args(argv)))
