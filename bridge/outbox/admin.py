"""Admin operations on the outbox (stats, list, show, retry, purge): data in, data out, plus formatting."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Sequence

from sqlalchemy.engine import Engine

from bridge.controls import escape_controls
from bridge.errors import BridgeError
from bridge.outbox import queries
from bridge.outbox.db import reader
from bridge.outbox.models import DEAD, DELIVERED, PENDING, STATUSES

LIST_COLUMNS = ("id", "subscriber", "status", "attempts", "event_name", "order_key", "created_at",
                "next_attempt_at", "last_error")
STATS_COLUMNS = ("subscriber", "pending", "delivered", "dead", "oldest_pending_age_s", "unreachable")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def stats(engine: Engine, now: datetime | None = None) -> list[dict]:
    """One row per subscriber: counts by status, the age of its oldest pending row (seconds) and
    `unreachable`: pending rows whose last attempt found the ERP unreachable (held by an outage;
    the circuit itself lives in the running bridge: /healthz, /metrics)."""
    now = now or _now()
    with reader(engine).connect() as conn:
        counts = queries.counts_by_status(conn)
        unreachable = queries.count_unreachable(conn)
    by_sub: dict[str, dict] = {}
    for subscriber, status, count, oldest in counts:
        row = by_sub.setdefault(subscriber, {"subscriber": subscriber, **{s: 0 for s in STATUSES},
                                             "oldest_pending_age_s": None,
                                             "unreachable": unreachable.get(subscriber, 0)})
        row[status] = count
        if status == PENDING and oldest is not None:
            row["oldest_pending_age_s"] = round(max(0.0, (now - oldest).total_seconds()), 3)
    return [by_sub[k] for k in sorted(by_sub)]


def list_rows(engine: Engine, status: str | None = None, subscriber: str | None = None,
              limit: int = 50) -> list[dict]:
    if status is not None and status not in STATUSES:
        raise BridgeError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
    with reader(engine).connect() as conn:
        return queries.list_rows(conn, status, subscriber, limit)


def show(engine: Engine, row_id: int) -> dict:
    with reader(engine).connect() as conn:
        row = queries.get_row(conn, row_id)
    if row is None:
        raise BridgeError(f"no outbox row with id {row_id}")
    return row


def retry(engine: Engine, row_id: int | None = None, dead: bool = False, subscriber: str | None = None,
          now: datetime | None = None, force: bool = False) -> int:
    """Back to pending with attempts reset; returns how many rows changed. A delivered row is
    sent again (same id) only with `force`: re-sending what the ERP already has is rarely meant."""
    if row_id is None and not dead:
        raise BridgeError("retry needs a row ID or --dead")
    if row_id is not None and not force:
        row = show(engine, row_id)
        if row["status"] == DELIVERED:
            raise BridgeError(f"row {row_id} was delivered at {_cell(row['delivered_at'])} UTC; "
                              "add --force to send it again (same id: the ERP should ignore it)")
    with engine.begin() as conn:
        changed = queries.requeue(conn, now or _now(), row_id=row_id, dead=dead, subscriber=subscriber)
    if row_id is not None and changed == 0:
        raise BridgeError(f"no outbox row with id {row_id}")
    return changed


def purge(engine: Engine, status: str, older_than_s: float, now: datetime | None = None) -> int:
    """Delete delivered (or dead) rows created more than `older_than_s` ago; returns the count."""
    if status not in (DELIVERED, DEAD):
        raise BridgeError("purge deletes only delivered or dead rows; pending rows are never purged")
    before = (now or _now()) - timedelta(seconds=older_than_s)
    with engine.begin() as conn:
        return queries.purge(conn, status, before)


# --- formatting ----------------------------------------------------------------------------------

def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    text = escape_controls(str(value))   # last_error carries the ERP's text: no ESC to the terminal
    return text if len(text) <= 60 else text[:59] + "…"


def format_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """A plain aligned text table (what an admin reads over ssh)."""
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def format_row(row: dict) -> str:
    """`show`: every column on its own line, the payload last and whole."""
    width = max(len(k) for k in row)
    lines = [f"{k.ljust(width)}  {_cell(v) if k != 'last_error' else escape_controls(v or '-')}"
             for k, v in row.items() if k != "payload"]
    lines.append("payload:")
    # Line by line: the indentation's newlines stay, any control character inside is made visible.
    lines.extend(escape_controls(line) for line in pretty_xml(row.get("payload") or "").split("\n"))
    return "\n".join(lines)


def pretty_xml(payload: str) -> str:
    """The stored envelope indented for reading; as stored when it is not XML."""
    from lxml import etree

    try:
        root = etree.fromstring(payload.encode("utf-8"))
    except (etree.XMLSyntaxError, ValueError):
        return payload
    etree.indent(root, space="  ")
    return etree.tostring(root, encoding="unicode")


def to_json(data) -> str:
    def default(value):
        if isinstance(value, datetime):
            return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
        raise TypeError(type(value).__name__)

    return json.dumps(data, default=default, ensure_ascii=False, indent=2)
