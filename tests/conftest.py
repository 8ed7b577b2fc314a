"""Shared fixtures: real SQLite files and real PostgreSQL databases, one fresh database a test."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from hypothesis import settings

# CI explores the same examples on every run, so a submission's result does not depend on luck;
# local runs stay random and keep finding new cases (found ones are pinned with @example).
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")

FIXTURES = Path(__file__).parent / "fixtures"
AMI_FIXTURES = FIXTURES / "ami"
PG_ADMIN_URL = os.environ.get("BRIDGE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_admin():
    import psycopg

    try:
        return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at BRIDGE_TEST_PG_URL={PG_ADMIN_URL} is unreachable under CI: {exc}")
        pytest.skip(f"PostgreSQL unreachable at {PG_ADMIN_URL}: {exc}")


def _sqlalchemy_url(libpq_url: str, dbname: str) -> str:
    base = libpq_url.rsplit("/", 1)[0]
    return base.replace("postgresql://", "postgresql+psycopg://", 1) + "/" + dbname


@pytest.fixture
def pg_url():
    """A fresh, empty PostgreSQL database (SQLAlchemy URL), dropped after the test."""
    dbname = f"bridge_test_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    try:
        yield _sqlalchemy_url(PG_ADMIN_URL, dbname)
    finally:
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'outbox.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """The same test against the embedded default and the production backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'outbox.db'}"
    else:
        yield request.getfixturevalue("pg_url")


# Suites marked by where they live, so `make test-fast` (-m "not chaos and not asterisk and not
# slow") leaves them out without each test having to remember its marker.
_DIR_MARKERS = {"chaos": "chaos", "asterisk": "asterisk", "ajam_live": "asterisk",
                "hostile": "slow"}   # hostile: a bridge process each


def pytest_collection_modifyitems(config, items) -> None:
    tests_dir = Path(__file__).parent
    for item in items:
        try:
            first = Path(str(item.fspath)).relative_to(tests_dir).parts[0]
        except ValueError:
            continue
        marker = _DIR_MARKERS.get(first)
        if marker is not None:
            item.add_marker(getattr(pytest.mark, marker))


def pytest_terminal_summary(terminalreporter) -> None:
    # The HA failover gaps (tests/chaos/test_failover.py and the live Asterisk one): figures, printed
    # whichever of the two suites ran.
    from tests.chaos.ha_audit import GAPS, format_gaps

    if GAPS:
        terminalreporter.section("failover gaps (figures, not assertions)")
        terminalreporter.write_line(format_gaps(GAPS))
