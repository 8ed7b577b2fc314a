"""The audit every chaos scenario ends with, and the summary table of all scenarios.

"Accepted" is what the design promises on: an event whose outbox rows are committed. So the
audit reads the outbox table itself (what was committed) and the sink's record (what arrived):
  lost        accepted events never answered 200 by the sink — must be 0
  duplicates  extra successful receipts of an id; every copy must carry the same body
  order       per call (order_key), first successful receipts follow outbox id order, and outbox
              id order follows the simulator's emission order (ChaosSeq)
  phantoms    receipts whose id is not in the outbox
  unfinished  rows still pending or dead when the scenario ends
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass, field

_SEQ = re.compile(r'<m:header name="ChaosSeq">(\d+)</m:header>')

SUMMARY: list["AuditResult"] = []
COLUMNS = ("scenario", "faults injected", "events sent", "matched sent", "accepted", "delivered",
           "duplicates", "lost")


@dataclass
class AuditResult:
    scenario: str
    faults: str
    sent: int
    matched_sent: int
    accepted: int
    delivered: int
    duplicates: int
    lost: int
    problems: list[str] = field(default_factory=list)

    def cells(self) -> tuple:
        return (self.scenario, self.faults, self.sent, self.matched_sent, self.accepted, self.delivered,
                self.duplicates, self.lost)


def outbox_rows(db_url: str) -> list[dict]:
    from bridge.outbox import queries
    from bridge.outbox.db import make_engine

    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = queries.list_rows(conn, limit=10_000_000)
            payloads = dict(conn.exec_driver_sql("SELECT id, payload FROM outbox").all())
    finally:
        engine.dispose()
    for row in rows:
        row["payload"] = payloads[row["id"]]
    return sorted(rows, key=lambda r: r["id"])


def seq_of(payload: str | bytes) -> int | None:
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    match = _SEQ.search(text)
    return int(match.group(1)) if match else None


def audit(scenario: str, faults: str, db_url: str, sink, stream, *, expect_all_offered: bool) -> AuditResult:
    """Compare the outbox with the sink's receipts; `expect_all_offered`: the AMI link never broke,
    so every matching event emitted to a logged-in session must have been accepted."""
    rows = outbox_rows(db_url)
    problems: list[str] = []
    accepted = {r["event_uuid"] for r in rows}
    ok = defaultdict(list)                      # id → receipts answered 200, in arrival order
    first_index: dict[str, int] = {}
    for index, receipt in enumerate(sink.delivered()):
        ok[receipt.id].append(receipt)
        first_index.setdefault(receipt.id, index)
    lost = accepted - set(ok)
    phantoms = set(ok) - accepted
    duplicates = sum(len(v) - 1 for v in ok.values())
    for event_id, receipts in ok.items():
        if len({r.body for r in receipts}) > 1:
            problems.append(f"id {event_id} delivered {len(receipts)}x with different bodies")
    unfinished = [r for r in rows if r["status"] != "delivered"]
    if unfinished:
        sample = [(r["id"], r["status"], r["attempts"], r["locked_by"], str(r["locked_until"]),
                   str(r["next_attempt_at"]), r["last_error"]) for r in unfinished[:3]]
        problems.append(f"{len(unfinished)} row(s) not delivered; first (id, status, attempts, locked_by, "
                        f"locked_until, next_attempt_at, last_error): {sample}")
    if phantoms:
        problems.append(f"{len(phantoms)} receipt id(s) not in the outbox")
    problems += _order_problems(rows, first_index)
    seqs = [seq_of(r["payload"]) for r in rows]
    if len(set(seqs)) != len(seqs):
        problems.append("one AMI event was accepted twice (same ChaosSeq in two outbox events)")
    if expect_all_offered:
        missing = set(stream.matched_offered) - set(seqs)
        if missing:
            problems.append(f"{len(missing)} matching event(s) offered on a live link never accepted, "
                            f"e.g. ChaosSeq {sorted(missing)[:5]}")
    if lost:
        problems.append(f"{len(lost)} accepted event(s) never delivered")
    result = AuditResult(scenario, faults, stream.sent, stream.matched_sent, len(accepted),
                         len(set(ok) & accepted), duplicates, len(lost), problems)
    SUMMARY.append(result)
    return result


def _order_problems(rows: list[dict], first_index: dict[str, int]) -> list[str]:
    by_call = defaultdict(list)
    for row in rows:
        by_call[row["order_key"]].append(row)
    problems = []
    for key, call_rows in by_call.items():
        arrivals = [first_index.get(r["event_uuid"], -1) for r in call_rows]
        delivered = [a for a in arrivals if a >= 0]
        if delivered != sorted(delivered):
            problems.append(f"call {key}: delivered out of outbox order")
        seqs = [seq_of(r["payload"]) for r in call_rows]
        if None not in seqs and seqs != sorted(seqs):
            problems.append(f"call {key}: outbox order differs from AMI emission order")
    return problems[:10]


def format_summary(results: list[AuditResult]) -> str:
    lines = format_table(COLUMNS, [r.cells() for r in results], text_columns=2)
    for r in results:
        for problem in r.problems:
            lines.append(f"  ! {r.scenario}: {problem}")
    return "\n".join(lines)


def format_table(columns: tuple[str, ...], rows: list[tuple], text_columns: int) -> list[str]:
    """Lines of a plain-text table: the first `text_columns` left-aligned, the figures right-aligned."""
    table = [columns] + [tuple(str(c) for c in row) for row in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    lines = ["  ".join(cell.ljust(w) if i < text_columns else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths))) for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def write_summary_file(results: list[AuditResult], extra: str = "") -> None:
    """BRIDGE_CHAOS_SUMMARY=FILE: the table (and `extra`, e.g. the failover gaps) in FILE too."""
    path = os.environ.get("BRIDGE_CHAOS_SUMMARY")
    if path and results:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(format_summary(results) + "\n" + (f"\n{extra}\n" if extra else ""))
