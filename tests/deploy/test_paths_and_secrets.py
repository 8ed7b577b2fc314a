"""SQLite paths that do not depend on the working directory; database commands need no AMI/SOAP secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent.parent


def bridge_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    # No AMI_SECRET / SOAP_PASSWORD / BRIDGE_* from the calling environment.
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("BRIDGE_") and k not in ("AMI_SECRET", "SOAP_PASSWORD")}
    clean.update(env or {})
    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True, text=True,
                          cwd=cwd, env=clean, timeout=60)


def config(directory: Path, db_url: str) -> Path:
    path = directory / "bridge.toml"
    path.write_text(f"""
[database]
url = "{db_url}"
[[ami]]
name = "pbx1"
username = "bridge"
secret = "${{AMI_SECRET}}"
[soap]
listen = "127.0.0.1:8080"
[soap.users]
"1c" = "${{SOAP_PASSWORD}}"
""", encoding="utf-8")
    return path


def test_three_slash_sqlite_path_that_looks_absolute_is_refused_with_the_fix(tmp_path):
    path = config(tmp_path, "sqlite:///var/lib/asterisk-bridge/outbox.db")
    result = bridge_cli("config", "check", "-c", str(path), cwd=tmp_path,
                        env={"AMI_SECRET": "a", "SOAP_PASSWORD": "b"})
    assert result.returncode == 2, result.stderr
    assert (f"database.url: sqlite:///var/lib/asterisk-bridge/outbox.db is a path relative to {tmp_path} "
            "(three slashes)") in result.stderr
    assert "write sqlite:////var/lib/asterisk-bridge/outbox.db (four slashes)" in result.stderr
    assert not (tmp_path / "var").exists()


def test_relative_sqlite_path_is_next_to_the_config_file_whatever_the_working_directory(tmp_path):
    etc, elsewhere = tmp_path / "etc", tmp_path / "elsewhere"
    etc.mkdir()
    elsewhere.mkdir()
    path = config(etc, "sqlite:///outbox.db")
    check = bridge_cli("config", "check", "-c", str(path), cwd=elsewhere,
                       env={"AMI_SECRET": "a", "SOAP_PASSWORD": "b"})
    assert check.returncode == 0, check.stderr
    assert f"outbox sqlite:///{etc / 'outbox.db'}" in check.stdout
    upgrade = bridge_cli("db", "upgrade", "-c", str(path), cwd=elsewhere)
    assert upgrade.returncode == 0, upgrade.stderr
    assert (etc / "outbox.db").exists() and list(elsewhere.iterdir()) == []


def test_database_commands_and_wsdl_need_no_ami_or_soap_secret(tmp_path):
    path = config(tmp_path, f"sqlite:///{tmp_path / 'outbox.db'}")
    for args in (("db", "upgrade"), ("db", "check"), ("outbox", "stats"), ("outbox", "list"), ("wsdl",)):
        result = bridge_cli(*args, "-c", str(path), cwd=tmp_path)
        assert result.returncode == 0, (args, result.stderr)
        assert "environment variable" not in result.stderr


def test_database_commands_still_need_the_variables_of_the_database_url(tmp_path):
    path = config(tmp_path, "postgresql+psycopg://bridge:${DB_PASSWORD}@127.0.0.1/bridge")
    result = bridge_cli("db", "upgrade", "-c", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert "database.url: environment variable DB_PASSWORD is not set" in result.stderr


def test_outbox_stats_on_a_missing_sqlite_file_does_not_create_it(tmp_path):
    path = config(tmp_path, f"sqlite:///{tmp_path / 'outbox.db'}")
    result = bridge_cli("outbox", "stats", "-c", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert f"no outbox database at {tmp_path / 'outbox.db'}" in result.stderr
    assert not (tmp_path / "outbox.db").exists()


def test_missing_database_table_is_reported_with_the_outbox_it_falls_back_to(tmp_path):
    path = tmp_path / "bridge.toml"
    path.write_text('[[ami]]\nname = "pbx1"\nusername = "bridge"\n', encoding="utf-8")
    result = bridge_cli("config", "check", "--offline", "-c", str(path), cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert (f"warning: database: no [database] table: the outbox is sqlite:///{tmp_path / 'outbox.db'}"
            in result.stderr)
    assert f"outbox sqlite:///{tmp_path / 'outbox.db'}" in result.stdout
