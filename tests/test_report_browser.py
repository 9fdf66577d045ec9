"""The report in a real headless Chromium: no console errors, a screenshot that is
not blank, hover details that appear. Skips (with the reason) when no chromium
is installed; scripts/test.sh installs Debian's chromium when it is missing.

Screenshots are kept under the test's tmp folder (printed with -s) for a person to look at.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from testkit.browser import BrowserError, find_chromium, open_page
from testkit.synthetic import write_synthetic_run

from reports import write_report, write_store_index

pytestmark = [
    pytest.mark.skipif(
        find_chromium() is None,
        reason="chromium is not installed (scripts/test.sh installs Debian's chromium)",
    ),
    pytest.mark.timeout(180),
]


def look(page: Path, shot: Path):
    try:
        check = open_page(page)
    except BrowserError as exc:  # a browser that cannot start here is an environment problem
        pytest.skip(f"chromium could not be driven: {exc}")
    shot.write_bytes(check.png)
    print(
        f"{shot}: {check.width}x{check.height}, {check.colours} colours, "
        f"{check.non_white:.0%} not white, {check.seconds:.1f} s"
    )
    return check


def assert_looks_like_a_report(check, min_height: int) -> None:
    assert check.errors == [], check.errors
    assert check.png.startswith(b"\x89PNG")
    assert check.height >= min_height, "the page is shorter than a report"
    # A blank or broken page has a handful of colours; charts bring hundreds.
    assert check.colours > 200, f"only {check.colours} colours: the screenshot looks blank"
    assert check.non_white > 0.08, f"only {check.non_white:.0%} of the page is not white"


@pytest.mark.parametrize("violation", [False, True], ids=["valid", "violation"])
def test_report_opens_without_errors_and_draws_charts(tmp_path: Path, violation: bool):
    run = write_synthetic_run(
        tmp_path / "store" / "s" / "20260102T030405", ops=2000, violation=violation
    )
    check = look(write_report(run), tmp_path / "report.png")
    assert_looks_like_a_report(check, min_height=2000)
    # Moving the pointer over the first shape with details shows them.
    assert "\n" in check.tooltip, f"no hover details: {check.tooltip!r}"
    if violation:
        assert "linearized #1" in check.tooltip  # the first witness op, with its place in the order


def test_large_report_opens_without_errors(tmp_path: Path):
    run = write_synthetic_run(tmp_path / "big", ops=30_000, clients=10, violation=True, net=False)
    check = look(write_report(run), tmp_path / "big.png")
    assert_looks_like_a_report(check, min_height=2500)


def test_store_index_opens_without_errors(tmp_path: Path):
    store = tmp_path / "store"
    for i, violation in enumerate((False, True)):
        write_report(
            write_synthetic_run(
                store / f"run{i}" / f"2026010{i + 1}T000000", ops=200, violation=violation
            )
        )
    check = look(write_store_index(store), tmp_path / "index.png")
    assert check.errors == [], check.errors
    assert check.colours > 20
