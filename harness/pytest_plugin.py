"""pytest plugin: chaos tests written as ordinary pytest tests.

Loaded through the ``pytest11`` entry point (installing the package is enough).
It owns how a test's options become a ``RunConfig``, how a run's outcome is
shown to pytest (failure messages, report sections, junit properties, the
end-of-session table) and nothing else: every run goes through
``harness.runner.run``, the same function ``harness run`` calls.

What a test gets:

- fixture ``chaos``: runs the test's configured chaos run during setup and
  returns a ``ChaosResult`` (verdict, anomalies, counts, availability,
  run_dir, report, plus ``assert_valid()`` / ``assert_anomaly()``);
- fixture ``chaos_runner``: a ``ChaosRunner`` for tests that run more than
  once (``run(**options)``, ``find_anomaly(attempts)``, ``config()``);
- marker ``@pytest.mark.chaos(**options)``: RunConfig field names (system,
  nodes, time_limit, nemesis, nemesis_interval, seed, rate, keys, ops, bugs,
  ...) plus ``bug="name"`` as a short form of ``bugs=["name"]``;
- options ``--chaos-time-limit``, ``--chaos-seed``, ``--chaos-store``,
  ``--chaos-nodes``, ``--chaos-system``, ``--chaos-nemesis``,
  ``--chaos-nemesis-interval``, ``--chaos-rate``, ``--chaos-net``, ``--chaos-sim``
  (every run simulated: ``sim=True``, which a marker may also ask for).

Where a run's options come from, later wins:
1. RunConfig's defaults (with the live progress line off);
2. the ``chaos`` markers: module, class, the test's own, its ``pytest.param``
   marks (the most specific last);
3. ``--chaos-*`` options given on the command line: the session-wide knob a
   nightly job turns (longer runs, more nodes) without editing tests;
4. values the test is parametrised with whose names are options (``system``,
   ``nemesis``, ``seed``, ``bug``, ...): they are the test's identity;
5. keyword arguments of ``chaos_runner.run(...)``.

Invariants:
- Importing this module imports only the standard library and pytest: it is
  loaded into every pytest session of every project that installs us, so a
  half-finished harness must not break unrelated test runs.
- Runs of one session never share a folder: the run name is the test's name
  and the default store is under pytest's per-session (per-xdist-worker)
  basetemp; ports are picked free by the runner. So ``pytest -n N`` is safe.
- Every process a run starts is ended by PID before the fixture returns (the
  runner's guarantee); an interrupted run (Ctrl-C) stops the session.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from harness.config import RunConfig
    from harness.runner import RunResult

#: (command-line flag, RunConfig field, type, help)
CLI_OPTIONS: tuple[tuple[str, str, type, str], ...] = (
    ("--chaos-time-limit", "time_limit", float,
     "seconds of load and faults in every chaos run (overrides markers)"),
    ("--chaos-seed", "seed", int,
     "seed of every chaos run not parametrised over seed (default: random, in the report)"),
    ("--chaos-nodes", "nodes", int, "cluster size of every chaos run (overrides markers)"),
    ("--chaos-system", "system", str,
     "raft, paxos or a node command, for every chaos run not parametrised over system"),
    ("--chaos-nemesis", "nemesis", str,
     "nemesis spec for every chaos run not parametrised over nemesis, e.g. partition or none"),
    ("--chaos-nemesis-interval", "nemesis_interval", float,
     "seconds between fault windows in every chaos run"),
    ("--chaos-rate", "rate", float, "total operations per second in every chaos run"),
    ("--chaos-net", "net", str, "proxy, direct or netns for every chaos run"),
    ("--chaos-workers", "workers", int,
     "runs at once in a chaos_runner.sweep (default: the cores for sim, else one at a time)"),
    ("--chaos-scheduler", "scheduler", str,
     "a Dask scheduler address: chaos_runner.sweep sends its seeds there (pip install '.[dask]')"),
)

#: Marker/parameter spellings that are not RunConfig fields.
ALIASES = {"bug": "bugs"}



class ChaosOptionError(ValueError):
    """A marker, parameter or run() argument names no run option; one line."""


RUNS_KEY = pytest.StashKey[list["ChaosResult"]]()
SHOWN_KEY = pytest.StashKey[int]()


# --- options ---------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaos", "consensus-harness chaos tests")
    for flag, dest, kind, text in CLI_OPTIONS:
        metavar = {int: "N", float: "SECONDS" if "interval" in dest or "time" in dest else "N"}
        group.addoption(flag, dest="chaos_" + dest, type=kind, default=None,
                        metavar=metavar.get(kind, dest.upper()), help=text)
    group.addoption(
        "--chaos-sim", dest="chaos_sim", action="store_true", default=None,
        help="simulate every chaos run (the same cores, faults, checker and report, in one "
        "process, deterministic from the seed) instead of starting node processes")
    group.addoption(
        "--chaos-store", dest="chaos_store", default=None, metavar="DIR",
        help="where chaos run folders go (default: a 'chaos' folder in pytest's basetemp, "
        "per xdist worker)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "chaos(**options): options of the test's chaos run (RunConfig fields such as system, "
        "nodes, time_limit, nemesis, seed; bug='name' turns on a known bug)")
    if not hasattr(config, "workerinput"):  # an xdist worker leaves the table to the controller
        config.pluginmanager.register(ChaosSummary(), "chaos-summary")


def _option_names() -> set[str]:
    from harness.config import RunConfig

    return {f.name for f in fields(RunConfig)}


def normalise(options: dict[str, Any], where: str) -> dict[str, Any]:
    """Options with aliases resolved and friendly spellings (``"read,write"``,
    ``bug="x"``) turned into RunConfig's types; ChaosOptionError names ``where``."""
    known = _option_names()
    out: dict[str, Any] = {}
    for name, value in options.items():
        field_name = ALIASES.get(name, name)
        # test_count belongs to `harness run`; a test repeats by parametrising over seed.
        if field_name not in known or field_name in ("test_count", "progress"):
            allowed = ", ".join(sorted((known - {"test_count", "progress"}) | set(ALIASES)))
            raise ChaosOptionError(f"{where}: unknown chaos option {name!r} (known: {allowed})")
        if field_name in ("bugs", "ops") and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        elif field_name in ("bugs", "ops"):
            value = list(value)
        out[field_name] = value
    return out


# --- results -----------------------------------------------------------------------


class ChaosResult:
    """One chaos run's outcome: a ``RunResult`` with pytest-friendly messages.

    Every RunResult attribute reads through (verdict, valid, anomalies, counts,
    availability, run_dir, report, config, results, exit_code, interrupted).
    ``repr`` is one line naming the verdict, the first anomaly and the report,
    so a plain ``assert chaos.valid`` already says what went wrong.
    """

    def __init__(self, run: RunResult, test: str = "") -> None:
        self.run = run
        self.test = test

    def __getattr__(self, name: str) -> Any:
        run = self.__dict__.get("run")  # absent while copy/pickle builds the object
        if run is None:
            raise AttributeError(name)
        return getattr(run, name)

    @property
    def report_path(self) -> Path:
        """The HTML report, or the run folder when no report was written."""
        return Path(self.run.report) if self.run.report else Path(self.run.run_dir)

    @property
    def label(self) -> str:
        c = self.run.config
        bugs = f", bug {','.join(c.bugs)}" if c.bugs else ""
        return (f"{c.system_name()} x{c.nodes}, nemesis {c.nemesis or 'default'}, "
                f"seed {c.seed}{bugs}")

    def first_anomaly(self) -> str | None:
        from harness.runner import describe

        for anomaly in self.run.anomalies:
            return describe(anomaly)
        return None

    def __repr__(self) -> str:
        what = self.first_anomaly() or "; ".join(self.run.results.get("notes") or []) or "-"
        return f"<chaos run {self.label}: {self.run.verdict.upper()}, {what}, report {self.report_path}>"

    def explain(self, *, title: bool = True) -> str:
        """Several lines: the runner's summary, then how to repeat the run."""
        from harness.runner import summary

        lines = [f"chaos run ({self.label})"] if title else []
        lines.append(summary(self.run))
        command = self.run.results.get("command")
        if command:
            lines.append(f"repeat: {command}")
        return "\n".join(lines)

    def assert_valid(self) -> ChaosResult:
        """Fail the test unless the checker found the history linearizable."""
        __tracebackhide__ = True
        if self.run.verdict == "valid":
            return self
        if self.run.verdict == "invalid":
            head = f"{self.first_anomaly() or 'the checker found an anomaly'}"
        elif self.run.interrupted:
            head = "the run was interrupted before it could finish"
        else:
            head = "the checker could not decide (verdict unknown)"
        raise AssertionError(f"{head}\nreport: {self.report_path}\n{self.brief()}")

    def assert_anomaly(self) -> ChaosResult:
        """Fail the test unless the checker found an anomaly (a known bug was caught)."""
        __tracebackhide__ = True
        if self.run.verdict == "invalid":
            return self
        c = self.run.counts
        raise AssertionError(
            f"expected an anomaly but the verdict is {self.run.verdict} "
            f"({c.get('ok', 0)} ok, {c.get('fail', 0)} fail, {c.get('info', 0)} info)\n"
            f"report: {self.report_path}\n{self.brief()}")

    def brief(self) -> str:
        """The tail of a failure message: what ran, and how to run it again."""
        c = self.run.counts
        counts = f"{c.get('ok', 0)} ok, {c.get('fail', 0)} fail, {c.get('info', 0)} info"
        lines = [f"chaos run: {self.label}; {counts}"]
        lines += [f"note: {note}" for note in self.run.results.get("notes") or []]
        command = self.run.results.get("command")
        if command:
            lines.append(f"repeat: {command}")
        return "\n".join(lines)


# --- running -------------------------------------------------------------------------


@dataclass(repr=False)
class ChaosRunner:
    """Builds a test's RunConfig from its layers and runs it; keeps its results."""

    item: pytest.Item
    store: Path
    layers: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"<chaos_runner of {self.item.name}: {len(self.item.stash.get(RUNS_KEY, []))} runs>"

    def config(self, **overrides: Any) -> RunConfig:
        """The RunConfig a ``run(**overrides)`` would use (nothing is started)."""
        from harness.config import RunConfig

        merged: dict[str, Any] = {}
        for _where, layer in self.layers:
            merged.update(layer)
        merged.update(normalise(overrides, f"{self.item.nodeid}: chaos_runner.run"))
        merged.setdefault("store", str(self.store))
        merged.setdefault("name", run_name(self.item.name))
        merged["progress"] = False
        return RunConfig(**merged)

    def run(self, **overrides: Any) -> ChaosResult:
        """Run once and return the result (attached to the test's report)."""
        __tracebackhide__ = True
        from harness.runner import RunError, run

        cfg = self._config_or_fail(overrides)
        try:
            result = ChaosResult(run(cfg), self.item.nodeid)
        except RunError as exc:
            pytest.fail(f"chaos run could not start: {exc}", pytrace=False)
        self._record(result)
        if result.interrupted:
            raise KeyboardInterrupt  # Ctrl-C during a run ends the session, as elsewhere
        return result

    def sweep(self, count: int, executor: Any = None, **overrides: Any) -> list[ChaosResult]:
        """Run seeds seed .. seed+count-1, as ``harness run --test-count`` does, and return
        every result in seed order (each attached to the test's report).

        ``executor`` is any ``concurrent.futures.Executor`` (a Dask client's executor
        included); without one, ``--chaos-workers`` / ``--chaos-scheduler`` or the markers'
        ``workers`` / ``scheduler`` choose, as on the command line (harness/sweep.py)."""
        __tracebackhide__ = True
        from harness.runner import RunError, run_series

        if count < 1:
            raise ValueError(f"sweep needs at least one seed, not {count}")
        cfg = dataclasses.replace(self._config_or_fail(overrides), test_count=count)
        results: list[ChaosResult] = []
        try:
            for run in run_series(cfg, executor=executor):
                result = ChaosResult(run, self.item.nodeid)
                self._record(result)
                results.append(result)
                if result.interrupted:
                    raise KeyboardInterrupt
        except RunError as exc:
            pytest.fail(f"chaos sweep could not start: {exc}", pytrace=False)
        return results

    def find_anomaly(self, attempts: int = 3, **overrides: Any) -> ChaosResult:
        """Run with seeds seed, seed+1, ... until the checker finds an anomaly.

        For tests that expect a known bug to be caught: real processes make
        timing differ from run to run, so one seed may miss a short window.
        Fails (naming every run's report) if no attempt finds one."""
        __tracebackhide__ = True
        if attempts < 1:
            raise ValueError(f"find_anomaly needs at least one attempt, not {attempts}")
        base = self._config_or_fail(overrides).resolved()
        tried: list[ChaosResult] = []
        for i in range(attempts):
            result = self.run(**{**overrides, "seed": base.seed + i})
            if result.verdict == "invalid":
                return result
            tried.append(result)
        reports = "\n".join(f"  {r.label}: {r.verdict}, report {r.report_path}" for r in tried)
        raise AssertionError(f"no anomaly in {attempts} runs:\n{reports}")

    def _config_or_fail(self, overrides: dict[str, Any]) -> RunConfig:
        __tracebackhide__ = True
        try:
            return self.config(**overrides)
        except ChaosOptionError as exc:
            pytest.fail(str(exc), pytrace=False)

    def _record(self, result: ChaosResult) -> None:
        self.item.stash.setdefault(RUNS_KEY, []).append(result)
        # user_properties travel with every report (xdist included) into --junitxml.
        props = self.item.user_properties
        props.append(("chaos_report", str(result.report_path)))
        props.append(("chaos_run_dir", str(result.run_dir)))
        props.append(("chaos_verdict", result.verdict))
        props.append(("chaos_seed", result.config.seed))
        anomaly = result.first_anomaly()
        if anomaly:
            props.append(("chaos_anomaly", anomaly))


def run_name(test_name: str) -> str:
    """A folder name for a test: ``test_x[raft-partition-1]`` stays readable."""
    name = re.sub(r"[^A-Za-z0-9._+\[\],=-]+", "-", test_name).strip("-.") or "chaos"
    return name[:120]


def _marker_layers(item: pytest.Item) -> list[tuple[str, dict[str, Any]]]:
    """The ``chaos`` markers from the farthest node to the closest: module,
    class, the test's decorators (the top one last), then the marks of its
    ``pytest.param``, so the most specific one is applied last and wins."""
    layers = []
    for node in item.listchain():
        for marker in node.own_markers:
            if marker.name != "chaos":
                continue
            if marker.args:
                raise ChaosOptionError(
                    f"{item.nodeid}: @pytest.mark.chaos takes keyword options only, "
                    f"e.g. chaos(system='raft', nemesis='partition')")
            layers.append(("marker", normalise(dict(marker.kwargs),
                                               f"{item.nodeid}: chaos marker")))
    return layers


def _cli_layer(config: pytest.Config) -> dict[str, Any]:
    given = {dest: config.getoption("chaos_" + dest) for _f, dest, _k, _h in CLI_OPTIONS}
    if config.getoption("chaos_sim"):
        given["sim"] = True
    return {k: v for k, v in given.items() if v is not None}


def _param_layer(item: pytest.Item) -> dict[str, Any]:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return {}
    known = _option_names() | set(ALIASES)
    params = {k: v for k, v in callspec.params.items() if k in known}
    return normalise(params, f"{item.nodeid}: parameters")


@pytest.fixture(scope="session")
def chaos_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The store of this session's chaos runs (``--chaos-store`` or basetemp/chaos)."""
    given = request.config.getoption("chaos_store")
    if given:
        return (request.config.invocation_params.dir / given).resolve()
    return tmp_path_factory.getbasetemp() / "chaos"


@pytest.fixture
def chaos_runner(request: pytest.FixtureRequest, chaos_store: Path) -> ChaosRunner:
    """Runs chaos tests configured by marker, parameters and ``--chaos-*`` options."""
    item = request.node
    try:
        cli = _cli_layer(request.config)
        params = _param_layer(item)
        # A test parametrised over an option keeps that value whatever the command line says.
        cli = {k: v for k, v in cli.items() if k not in params}
        layers = _marker_layers(item) + [("command line", cli), ("parameters", params)]
    except ChaosOptionError as exc:
        pytest.fail(str(exc), pytrace=False)
    return ChaosRunner(item, chaos_store, layers)


@pytest.fixture
def chaos(chaos_runner: ChaosRunner) -> ChaosResult:
    """The result of this test's chaos run (run once, during setup)."""
    return chaos_runner.run()


# --- reporting -------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    report = yield
    runs = item.stash.get(RUNS_KEY, [])
    shown = item.stash.get(SHOWN_KEY, 0)
    # Attach each run once, to the report of the phase that shows it: the
    # call, or the setup when the test never gets to its call.
    if runs[shown:] and (report.when == "call" or report.outcome != "passed"):
        for result in runs[shown:]:
            report.sections.append((f"chaos run: {result.label}", result.explain(title=False)))
        item.stash[SHOWN_KEY] = len(runs)
    return report


class ChaosSummary:
    """Collects every chaos run of the session from the test reports and prints
    one table at the end. Reports reach the xdist controller too (with their
    user_properties), so the table covers every worker."""

    def __init__(self) -> None:
        self.outcomes: dict[str, str] = {}
        self.run_dirs: dict[str, list[str]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        outcome = self.outcomes.get(report.nodeid, "passed")
        if report.when == "call":
            outcome = "xfailed" if hasattr(report, "wasxfail") else report.outcome
        elif report.failed:
            outcome = "error"
        elif report.skipped and report.when == "setup":
            outcome = "skipped"
        self.outcomes[report.nodeid] = outcome
        if report.when == "teardown":
            dirs = [str(v) for k, v in report.user_properties if k == "chaos_run_dir"]
            if dirs:
                self.run_dirs[report.nodeid] = dirs

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        rows = [(nodeid, self.outcomes.get(nodeid, "?"), Path(d))
                for nodeid, dirs in self.run_dirs.items() for d in dirs]
        if rows:
            terminalreporter.write_sep("=", "chaos runs")
            terminalreporter.write_line(chaos_table(rows))


def _load(run_dir: Path) -> dict[str, Any]:
    """results.json through reports.runfolder ({} when absent or newer than we read)."""
    from reports.runfolder import ReportError, read_results

    try:
        return read_results(run_dir)
    except ReportError:
        return {}


def chaos_table(rows: list[tuple[str, str, Path]]) -> str:
    """One line per chaos run: test, its outcome, verdict, seed, counts, report."""
    head = f"{'outcome':8}  {'verdict':8}  {'seed':>10}  {'ok':>6}  {'fail':>5}  {'info':>5}  test / report"
    lines = [head, "-" * len(head)]
    from reports.runfolder import RunFolder

    for nodeid, outcome, run_dir in rows:
        r = _load(run_dir)
        c = r.get("counts") or {}
        report = RunFolder(run_dir).report
        lines.append(f"{outcome:8}  {r.get('verdict', '?')!s:8}  {r.get('seed', '?')!s:>10}  "
                     f"{c.get('ok', 0):>6}  {c.get('fail', 0):>5}  {c.get('info', 0):>5}  {nodeid}")
        lines.append(f"{'':>56}{report if report.exists() else run_dir}")
    tests = {nodeid for nodeid, _o, _d in rows}
    failed = {nodeid for nodeid, outcome, _d in rows
              if outcome not in ("passed", "skipped", "xfailed")}
    lines.append(f"{len(rows)} chaos runs in {len(tests)} tests; {len(tests) - len(failed)} "
                 f"tests passed, {len(failed)} failed")
    return "\n".join(lines)
