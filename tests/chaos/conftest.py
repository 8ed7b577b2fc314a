"""Chaos suite fixtures: prints the audit summary table of every scenario that ran."""

from __future__ import annotations

from tests.chaos.audit import SUMMARY, format_summary, write_summary_file


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not SUMMARY:
        return
    terminalreporter.section("chaos audit (lost must be 0)")
    terminalreporter.write_line(format_summary(SUMMARY))
    write_summary_file(SUMMARY)
