"""Config that an admin (or a bad template) gets wrong, and files an attacker on the host could read
(issue #12: 17, 19). Driven through the real CLI, as an admin would."""

from __future__ import annotations

import os
import stat


from tests.hostile.conftest import BridgeProcess


ABSURD = [
    ("database", "batch_max_delay", "10000000h"),      # overflowed a queue timeout: writer thread died
    ("database", "queue_max_events", 1_000_000_000_000),
    ("soap", "threads", 100_000),
    ("ami", "connect_timeout", "100000h"),
    ("soap", "request_timeout", "1000000h"),
]


def test_config_check_refuses_absurd_values_naming_each_key(tmp_path):
    # Finding 17: accepted, then failing at run time (6 events never committed while /healthz said ok).
    kw: dict = {}
    for section, key, value in ABSURD:
        kw.setdefault(section, {})[key] = value
    bridge = BridgeProcess(tmp_path, 5038, **kw)
    checked = bridge.command("config", "check", "--offline")
    assert checked.returncode == 2, checked.stdout + checked.stderr
    for section, key, _ in ABSURD:
        assert (f"ami[0].{key}" if section == "ami" else f"{section}.{key}") in checked.stderr, key
    ran = bridge.command("run")
    assert ran.returncode == 2 and "batch_max_delay" in ran.stderr


def test_a_bad_database_port_is_a_configuration_error(tmp_path):
    # Finding 17: a bad database port exited 1 (runtime failure), not 2 (bad configuration).
    bridge = BridgeProcess(tmp_path, 5038, database={"url": "postgresql+psycopg://u@127.0.0.1:99999/db"})
    checked = bridge.command("config", "check")
    assert checked.returncode == 2 and "database.url" in checked.stderr and "99999" in checked.stderr
    bridge = BridgeProcess(tmp_path, 5038, database={"url": "postgresql+psycopg://u@127.0.0.1:port/db"})
    checked = bridge.command("config", "check")
    assert checked.returncode == 2 and "database.url" in checked.stderr


def test_the_sqlite_outbox_is_created_readable_by_its_owner_only(tmp_path):
    # Finding 19: the outbox (call data: numbers, names) was created world-readable outside systemd.
    old = os.umask(0o022)
    try:
        bridge = BridgeProcess(tmp_path, 5038)
        upgraded = bridge.command("db", "upgrade")
    finally:
        os.umask(old)
    assert upgraded.returncode == 0, upgraded.stderr
    path = bridge.db_url.removeprefix("sqlite:///")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
