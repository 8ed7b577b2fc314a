"""Chaos suite fixtures: prints the audit summary table of every scenario that ran (and writes it,
with the failover gaps of the HA scenarios, to BRIDGE_CHAOS_SUMMARY)."""

from __future__ import annotations

from tests.chaos.audit import SUMMARY, format_summary, write_summary_file
from tests.chaos.ha_audit import GAPS, format_gaps
# The failover gaps table is printed by tests/conftest.py: the live Asterisk failover test adds to it too.


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not SUMMARY:
        return
    terminalreporter.section("chaos audit (lost must be 0)")
    terminalreporter.write_line(format_summary(SUMMARY))
    write_summary_file(SUMMARY, format_gaps(GAPS) if GAPS else "")
