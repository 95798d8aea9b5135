"""The chaos suite's report: one line per scenario and the totals (scenarios, kills by
kind, runs, components), at the end of the pytest run."""

from __future__ import annotations

from tests.support.chaos import TALLY


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not TALLY.lines:
        return
    terminalreporter.section("chaos")
    for line in TALLY.lines:
        terminalreporter.write_line(line)
    terminalreporter.write_line(TALLY.line())
