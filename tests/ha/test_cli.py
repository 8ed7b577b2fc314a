"""`asterisk-bridge status` and `asterisk-bridge ha step-down` against real databases."""

from __future__ import annotations

from bridge.cli import main
from bridge.ha import lease
from bridge.outbox.db import make_engine, upgrade


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_status_and_step_down_name_the_leader_when_one_holds_the_lease(pg_url, capsys):
    upgrade(pg_url)
    assert run(capsys, "status", "--database-url", pg_url)[:2] == (
        0, "no leases yet: no bridge node has led any AMI server on this database\n")
    assert run(capsys, "ha", "step-down", "--database-url", pg_url)[:2] == (1, "no live leader to step down\n")
    engine = make_engine(pg_url)
    try:
        with engine.begin() as conn:
            lease.acquire(conn, "pbx1", "host-a:4242", 30.0)
    finally:
        engine.dispose()
    code, out, _ = run(capsys, "status", "--database-url", pg_url)
    assert code == 0 and out.startswith("pbx1: leader host-a:4242 since ") and ", token 1, lease expires in " in out
    assert run(capsys, "ha", "step-down", "--database-url", pg_url, "--server", "pbx1")[:2] == (
        0, "pbx1: asked host-a:4242 to hand over (it does at its next renewal)\n")
    assert run(capsys, "status", "--database-url", pg_url)[1].rstrip().endswith(", step-down requested")


def test_status_refuses_sqlite_with_exit_2_when_there_are_no_leases(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'outbox.db'}"
    upgrade(url)
    code, _, err = run(capsys, "status", "--database-url", url)
    assert code == 2 and "this outbox is SQLite: one bridge process" in err
