"""Chaos suite fixtures: prints the audit summary table of every scenario that ran, and the
failover gaps of the HA scenarios."""

from __future__ import annotations

from tests.chaos.audit import SUMMARY, format_summary, write_summary_file
from tests.chaos.ha_audit import GAPS, format_gaps


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not SUMMARY:
        return
    terminalreporter.section("chaos audit (lost must be 0)")
    terminalreporter.write_line(format_summary(SUMMARY))
    gaps = format_gaps(GAPS) if GAPS else ""
    if gaps:
        terminalreporter.section("failover gaps (figures, not assertions)")
        terminalreporter.write_line(gaps)
    write_summary_file(SUMMARY, gaps)
