"""bridge/outbox/cli.py + admin.py: `db upgrade|check` and `outbox stats|list|show|retry|purge`."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from bridge.outbox import admin, db, queries
from bridge.outbox.cli import build_parser, main
from bridge.erp.envelope import build_envelope
from bridge.outbox.ingest import outbox_rows

from tests.outbox.conftest import make_event

@pytest.fixture
def filled(engine):
    """Three rows: one delivered 10 days ago, one dead, one pending."""
    # Taken per test, not at import: the suite may run for minutes before this fixture does.
    now = datetime.now(timezone.utc)
    events = [make_event("A", 0), make_event("B", 0), make_event("C", 0)]
    with engine.begin() as conn:
        for e, when in zip(events, (now - timedelta(days=10), now, now)):
            queries.insert_batch(conn, outbox_rows(e, ["erp"], build_envelope(e), when))
        rows = queries.claim_batch(conn, "erp", 10, now, now + timedelta(minutes=1), "t")
        queries.mark_delivered(conn, [rows[0].id], now)
        queries.mark_dead(conn, [(rows[1].id, "attempt 3 rejected: SOAP Fault")])
        queries.release_leases(conn)
    return events, [r.id for r in rows]


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_db_upgrade_then_check_succeeds_when_database_empty(sqlite_url, capsys):
    code, out, _ = run(capsys, "db", "check", "--database-url", sqlite_url)
    assert code == 1
    upgraded = run(capsys, "db", "upgrade", "--database-url", sqlite_url)[:2]
    assert upgraded == (0, f"database upgraded to revision {db.head_revision()}\n")
    assert run(capsys, "db", "check", "--database-url", sqlite_url)[0] == 0


def test_outbox_command_refuses_when_database_unmigrated(sqlite_url, capsys):
    code, _, err = run(capsys, "outbox", "stats", "--database-url", sqlite_url)
    assert code == 2 and "asterisk-bridge db upgrade" in err


def test_stats_prints_table_and_json_when_rows_exist(db_url, filled, capsys):
    code, out, _ = run(capsys, "outbox", "stats", "--database-url", db_url)
    assert code == 0
    header, line = out.splitlines()
    assert header.split() == ["SUBSCRIBER", "PENDING", "DELIVERED", "DEAD", "OLDEST_PENDING_AGE_S", "UNREACHABLE"]
    assert line.split()[:4] == ["erp", "1", "1", "1"]
    code, out, _ = run(capsys, "outbox", "stats", "--json", "--database-url", db_url)
    (stat,) = json.loads(out)
    assert (stat["pending"], stat["delivered"], stat["dead"]) == (1, 1, 1)
    assert 0 <= stat["oldest_pending_age_s"] < 60
    assert stat["unreachable"] == 0


def test_list_filters_by_status_and_subscriber(db_url, filled, capsys):
    events, ids = filled
    code, out, _ = run(capsys, "outbox", "list", "--status", "dead", "--json", "--database-url", db_url)
    (row,) = json.loads(out)
    assert row["id"] == ids[1] and row["event_uuid"] == events[1].event_uuid and "payload" not in row
    _, out, _ = run(capsys, "outbox", "list", "--subscriber", "nobody", "--json", "--database-url", db_url)
    assert json.loads(out) == []
    _, out, _ = run(capsys, "outbox", "list", "--limit", "2", "--database-url", db_url)
    assert len(out.splitlines()) == 3 and "SOAP Fault" in out


def test_show_prints_full_row_with_payload(db_url, filled, capsys):
    events, ids = filled
    code, out, _ = run(capsys, "outbox", "show", str(ids[0]), "--database-url", db_url)
    assert code == 0 and events[0].event_uuid in out and out.rstrip().endswith("</soap:Envelope>")
    code, _, err = run(capsys, "outbox", "show", "999999", "--database-url", db_url)
    assert code == 1 and "no outbox row with id 999999" in err


def test_retry_puts_row_back_to_pending_with_attempts_reset(db_url, filled, capsys, engine):
    _, ids = filled
    assert run(capsys, "outbox", "retry", str(ids[1]), "--database-url", db_url)[1] == "1 row(s) back to pending\n"
    row = admin.show(engine, ids[1])
    assert (row["status"], row["attempts"]) == ("pending", 0)
    assert run(capsys, "outbox", "retry", "--dead", "--json", "--database-url", db_url)[1].count('"requeued": 0')


def test_purge_deletes_only_old_delivered_rows(db_url, filled, capsys, engine):
    code, out, _ = run(capsys, "outbox", "purge", "--delivered", "--older-than", "7d", "--database-url", db_url)
    assert (code, out) == (0, "1 delivered row(s) purged\n")
    assert run(capsys, "outbox", "purge", "--dead", "--older-than", "7d", "--database-url", db_url)[1] == \
        "0 dead row(s) purged\n"
    assert run(capsys, "outbox", "purge", "--delivered", "--older-than", "soon", "--database-url", db_url)[0] == 2


def test_database_url_comes_from_env_when_no_flag(sqlite_url, monkeypatch, capsys):
    monkeypatch.setenv("BRIDGE_DATABASE_URL", sqlite_url)
    monkeypatch.delenv("BRIDGE_CONFIG", raising=False)
    assert run(capsys, "db", "upgrade")[0] == 0
    assert run(capsys, "outbox", "stats")[1] == "outbox is empty\n"


def test_database_url_comes_from_config_file_when_c_given(sqlite_url, tmp_path, capsys):
    cfg = tmp_path / "bridge.toml"
    cfg.write_text(f'[database]\nurl = "{sqlite_url}"\n\n[[ami]]\nname = "pbx1"\nusername = "bridge"\n'
                   f'secret = "s"\n')
    assert run(capsys, "db", "upgrade", "-c", str(cfg))[0] == 0
    assert db.check_schema(db.make_engine(sqlite_url)) == db.head_revision()


def test_parsers_plug_into_a_host_cli():
    import argparse

    from bridge.outbox.cli import add_db_parser, add_outbox_parser

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    add_db_parser(sub)
    add_outbox_parser(sub)
    args = parser.parse_args(["outbox", "retry", "--dead", "--subscriber", "erp", "--database-url", "x"])
    assert (args.dead, args.subscriber, args.id, args.database_url) == (True, "erp", None, "x")
    assert build_parser().parse_args(["outbox", "list", "--status", "dead"]).status == "dead"


def test_retry_of_a_delivered_row_asks_for_force(db_url, filled, capsys, engine):
    _, ids = filled
    code, _, err = run(capsys, "outbox", "retry", str(ids[0]), "--database-url", db_url)
    assert code == 1 and f"row {ids[0]} was delivered at " in err and "add --force" in err
    assert admin.show(engine, ids[0])["status"] == "delivered"
    assert run(capsys, "outbox", "retry", str(ids[0]), "--force", "--database-url", db_url)[:2] == \
        (0, "1 row(s) back to pending\n")
    assert admin.show(engine, ids[0])["status"] == "pending"


def test_list_says_so_when_nothing_matches_and_show_indents_the_payload(db_url, filled, capsys):
    events, ids = filled
    assert run(capsys, "outbox", "list", "--subscriber", "nobody", "--database-url", db_url)[1] == \
        "no outbox rows with subscriber nobody\n"
    out = run(capsys, "outbox", "show", str(ids[0]), "--database-url", db_url)[1]
    assert "\n  <soap:Body>\n    <m:PushEvent" in out
