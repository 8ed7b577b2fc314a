"""What the failover scenarios measure beyond the common audit: who committed what, and when.

The bridge's own columns cannot say which node wrote a row (every node writes the same values),
so the test database gets an observer: an AFTER INSERT trigger on `outbox` that logs each row's
event id, the inserting connection's `application_name` and the database clock. The bridge names
its HA sessions `asterisk-bridge ha <host>:<pid>` (bridge.ha.node); the rig knows which of its
nodes each pid was, and a session the bridge does not name carries the node's PGAPPNAME. The log
row is part of the bridge's transaction, so it becomes visible exactly when the bridge's commit
does: a node that writes after it lost its lease shows up as new log rows under its name. From the log:
  gap         per failover, the old leader's last commit → the first commit of another node
  writes      rows a node committed in a window (the paused leader after it resumed: must be 0)
And from the sink's receipts (independently of the bridge's ids, by the ChaosSeq header that the
stream puts in every event): an AMI event delivered under two different ids.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from tests.chaos.audit import format_table, seq_of

COMMIT_LOG_DDL = """
CREATE TABLE IF NOT EXISTS chaos_commit_log (
    n          bigserial PRIMARY KEY,
    outbox_id  bigint NOT NULL,
    event_uuid text NOT NULL,
    node       text NOT NULL,
    at         timestamptz NOT NULL
);
CREATE OR REPLACE FUNCTION chaos_log_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chaos_commit_log (outbox_id, event_uuid, node, at)
    VALUES (NEW.id, NEW.event_uuid, current_setting('application_name'), clock_timestamp());
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS chaos_commit_log ON outbox;
CREATE TRIGGER chaos_commit_log AFTER INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION chaos_log_commit();
"""


@dataclass(frozen=True)
class Commit:
    node: str
    at: datetime
    event_uuid: str


def _engine(db_url: str):
    from bridge.outbox.db import make_engine

    return make_engine(db_url, pool_size=1)


def install_commit_log(db_url: str) -> None:
    """Add the observer trigger to a PostgreSQL outbox (after the migrations ran)."""
    engine = _engine(db_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(COMMIT_LOG_DDL)
    finally:
        engine.dispose()


class CommitLog:
    """Reads the observer's log; one pooled connection for the whole scenario. `namer` turns a
    logged application_name into the rig's node name."""

    def __init__(self, db_url: str, namer: Callable[[str], str] = str) -> None:
        self.engine = _engine(db_url)
        self.namer = namer

    def close(self) -> None:
        self.engine.dispose()

    def since(self, after: datetime | None = None) -> list[Commit]:
        sql = "SELECT node, at, event_uuid FROM chaos_commit_log"
        params: tuple = ()
        if after is not None:
            sql += " WHERE at > %s"
            params = (after,)
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql(sql + " ORDER BY at, n", params).all()
        return [Commit(self.namer(node), at, event_uuid) for node, at, event_uuid in rows]

    def count_by(self, node: str) -> int:
        return sum(1 for c in self.since() if c.node == node)

    def activity(self) -> str:
        """The database's view of the nodes' connections (shown when a takeover does not come)."""
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT application_name, state, wait_event_type, wait_event, now() - xact_start, "
                "left(query, 80) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name <> '' AND pid <> pg_backend_pid() ORDER BY 1").all()
        return "\n".join(" | ".join(str(v) for v in row) for row in rows)


@dataclass
class Failover:
    """One fault on the leader and what the commit log says about the handover."""

    kind: str                   # "SIGKILL" | "SIGSTOP" | "SIGTERM"
    old: str
    new: str | None = None
    last_old: datetime | None = None
    first_new: datetime | None = None

    @property
    def gap_s(self) -> float | None:
        if self.last_old is None or self.first_new is None:
            return None
        return (self.first_new - self.last_old).total_seconds()


def measure(failover: Failover, commits: list[Commit]) -> Failover:
    """Fill in the handover from the commit log (time ordered): the old leader's last commit and the
    first commit of any other node after it."""
    mine = [c.at for c in commits if c.node == failover.old]
    if not mine:
        return failover
    failover.last_old = max(mine)
    after = next((c for c in commits if c.node != failover.old and c.at > failover.last_old), None)
    if after is not None:
        failover.new, failover.first_new = after.node, after.at
    return failover


def writer_switches(commits: list[Commit]) -> int:
    """How often the committing node changes along the log: one per handover when a single node
    writes at a time; more means two nodes took turns (split brain)."""
    return sum(1 for a, b in zip(commits, commits[1:]) if a.node != b.node)


def double_ids(sink) -> dict[int, set[str]]:
    """AMI events (by ChaosSeq) the sink accepted under more than one id."""
    ids: dict[int, set[str]] = defaultdict(set)
    for receipt in sink.delivered():
        seq = seq_of(receipt.body)
        if seq is not None:
            ids[seq].add(receipt.id)
    return {seq: found for seq, found in ids.items() if len(found) > 1}


def delivered_seqs(sink) -> set[int]:
    return {s for s in (seq_of(r.body) for r in sink.delivered()) if s is not None}


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


GAPS: list["GapSummary"] = []
GAP_COLUMNS = ("scenario", "SIGKILL failovers", "gap p50 s", "gap p99 s", "gap max s", "SIGSTOP gap s",
               "SIGTERM gap s", "writer switches")


@dataclass
class GapSummary:
    scenario: str
    failovers: list[Failover] = field(default_factory=list)
    switches: int = 0
    counts: str = ""            # what was sent and delivered, for scenarios outside the chaos audit table

    def gaps(self, kind: str) -> list[float]:
        return [f.gap_s for f in self.failovers if f.kind == kind and f.gap_s is not None]

    def cells(self) -> tuple:
        kills, stop, term = self.gaps("SIGKILL"), self.gaps("SIGSTOP"), self.gaps("SIGTERM")

        def fmt(values: list[float], p: float | None = None) -> str:
            if not values:
                return "-"
            return f"{(max(values) if p is None else percentile(values, p)):.3f}"
        return (self.scenario, str(len(kills)), fmt(kills, 50), fmt(kills, 99), fmt(kills), fmt(stop), fmt(term),
                str(self.switches))


def format_gaps(summaries: list[GapSummary]) -> str:
    lines = format_table(GAP_COLUMNS, [s.cells() for s in summaries], text_columns=1)
    lines.append("gap = the old leader's last outbox commit → the first commit of the new leader "
                 "(targets: p99 ≤ 5 s, graceful ≤ 1 s)")
    for s in summaries:
        if s.counts:
            lines.append(f"  {s.scenario}: {s.counts}")
        for f in s.failovers:
            gap = "-" if f.gap_s is None else f"{f.gap_s:.3f}"
            lines.append(f"  {s.scenario}: {f.kind} {f.old} → {f.new or '?'}: {gap} s")
    return "\n".join(lines)
