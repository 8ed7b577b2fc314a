"""bridge/outbox/db.py: migrations produce the models' schema; the app refuses a wrong schema."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from bridge.errors import SchemaError
from bridge.outbox import db
from bridge.outbox.models import Base


def test_upgrade_to_head_has_no_autogenerate_diff_when_database_empty(db_url):
    db.upgrade(db_url)
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
        assert db.check_schema(engine) == db.head_revision()
    finally:
        engine.dispose()


def test_upgrade_is_idempotent_when_run_twice(sqlite_url):
    db.upgrade(sqlite_url)
    db.upgrade(sqlite_url)
    engine = db.make_engine(sqlite_url)
    assert db.check_schema(engine) == db.head_revision()
    engine.dispose()


def test_check_schema_names_the_command_when_database_unmigrated(db_url):
    engine = db.make_engine(db_url)
    try:
        with pytest.raises(SchemaError, match="asterisk-bridge db upgrade"):
            db.check_schema(engine)
    finally:
        engine.dispose()


def test_check_schema_refuses_when_database_is_newer(db_url):
    db.upgrade(db_url)
    engine = db.make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(SchemaError, match="newer than this asterisk-bridge"):
            db.check_schema(engine)
    finally:
        engine.dispose()


def test_sqlite_engine_uses_wal_and_full_sync_when_created(sqlite_url):
    engine = db.make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == db.SQLITE_BUSY_TIMEOUT_MS
    engine.dispose()


def test_reader_does_not_wait_for_the_write_lock_when_sqlite(sqlite_url):
    from bridge.outbox import admin

    db.upgrade(sqlite_url)
    engine = db.make_engine(sqlite_url)
    try:
        with engine.begin() as writer:          # BEGIN IMMEDIATE: holds the write lock
            writer.execute(text("UPDATE outbox SET attempts = attempts + 1"))
            assert admin.stats(engine) == []     # read-only: BEGIN (deferred), not blocked
            with db.reader(engine).connect() as conn:
                assert conn.execute(text("SELECT count(*) FROM outbox")).scalar() == 0
    finally:
        engine.dispose()
