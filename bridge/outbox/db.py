"""Engines for the outbox database, Alembic upgrades, and the schema-version check at startup."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from bridge.errors import OutboxError, SchemaError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
UPGRADE_COMMAND = "asterisk-bridge db upgrade"
READ_ONLY_OPTION = "outbox_read_only"


def make_engine(url: str, *, sqlite_synchronous: str = "FULL", sqlite_autocheckpoint: bool = True,
                connect_timeout_s: int | None = None, **kw) -> Engine:
    """An Engine for `url`; SQLite gets WAL, synchronous=FULL, a busy timeout and BEGIN IMMEDIATE.

    `sqlite_synchronous="NORMAL"` and `sqlite_autocheckpoint=False` are for the dispatcher's own
    engine only (see dispatch_engine). `connect_timeout_s` bounds a PostgreSQL connect (libpq takes
    whole seconds); without it a dead host hangs /healthz for the OS TCP timeout.
    """
    if sqlite_synchronous not in ("FULL", "NORMAL"):
        raise ValueError("sqlite_synchronous must be FULL or NORMAL")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("sqlite"):
        _create_private(url)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                                                  "check_same_thread": False}, **kw)
        _configure_sqlite(engine, sqlite_synchronous, sqlite_autocheckpoint)
        return engine
    if connect_timeout_s is not None:
        kw["connect_args"] = {**kw.get("connect_args", {}), "connect_timeout": connect_timeout_s}
    kw.setdefault("pool_pre_ping", True)
    kw.setdefault("pool_size", 10)
    return create_engine(url, **kw)


def _create_private(url: str) -> None:
    """Create a new SQLite outbox file readable by its owner only (0600): it holds call data
    (numbers, names). SQLite gives its -wal and -shm files the database file's permissions.
    An existing file keeps the permissions its admin gave it."""
    import os

    from sqlalchemy.engine import make_url

    path = make_url(url).database
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError:
        pass          # a missing directory: SQLite reports it with its own message


def _configure_sqlite(engine: Engine, synchronous: str, autocheckpoint: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy's begin event emit BEGIN itself (pysqlite's implicit BEGIN is deferred).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # FULL: an event is "accepted" once committed, and that promise must survive a power loss,
        # not only a process crash (NORMAL in WAL mode may lose the last commits on power loss).
        # Group commit in ingest.py amortises the extra fsync over a whole batch.
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if not autocheckpoint:
            cur.execute("PRAGMA wal_autocheckpoint=0")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # IMMEDIATE takes the write lock up front, so two writers wait on busy_timeout instead of
        # failing with SQLITE_BUSY when a deferred read transaction tries to upgrade to a write.
        # Connections from reader(engine) only read: a deferred BEGIN never waits for the lock.
        if conn.get_execution_options().get(READ_ONLY_OPTION):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def dispatch_engine(engine: Engine) -> Engine:
    """The dispatcher's engine. On SQLite it commits with synchronous=NORMAL on its own connections.

    Its transactions only lease rows and record outcomes. In WAL mode NORMAL survives a process
    crash (SIGKILL) and may lose only the last commits on power loss; losing a lease is harmless
    and losing a "delivered" mark re-sends that event with the same id (at least once holds).
    Ingest keeps FULL, and its fsync of the WAL covers every earlier frame anyway. This saves two
    fsyncs per delivery round, which is most of the arrival→ERP latency on a busy disk. Its
    connections also never run WAL checkpoints (the ingest connections do, as SQLite's default),
    so a checkpoint's fsync of the database file never stalls a delivery round.
    """
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return engine
    return make_engine(engine.url.render_as_string(hide_password=False), sqlite_synchronous="NORMAL",
                       sqlite_autocheckpoint=False)


def single_process(engine: Engine) -> bool:
    """True when only one process can use this database (SQLite): nobody else can hold a lease."""
    return engine.dialect.name == "sqlite"


def reader(engine: Engine) -> Engine:
    """The same engine for read-only work (admin, metrics, probes): on SQLite it never takes the
    write lock, so it neither waits for the writer's fsync nor delays it. Do not write through it."""
    return engine.execution_options(**{READ_ONLY_OPTION: True})


def alembic_config(url: str | None = None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply the Alembic migrations up to `revision` (what `asterisk-bridge db upgrade` runs)."""
    from alembic import command

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    except SQLAlchemyError as exc:
        raise OutboxError(f"database upgrade failed: {type(exc).__name__}: {_short(exc)}") from exc
    finally:
        engine.dispose()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check_schema(engine: Engine) -> str:
    """Return the schema revision, or raise SchemaError naming the command that fixes it."""
    from alembic.script import ScriptDirectory

    try:
        current = current_revision(engine)
    except SQLAlchemyError as exc:
        raise OutboxError(f"cannot read the outbox database: {_short(exc)}") from exc
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    if current == head:
        return current
    if current is None:
        raise SchemaError(f"the outbox database is not migrated; run `{UPGRADE_COMMAND}`")
    known = {rev.revision for rev in script.walk_revisions()}
    if current not in known:
        raise SchemaError(f"the database schema revision {current} is newer than this asterisk-bridge "
                          f"(knows up to {head}); upgrade asterisk-bridge, do not downgrade the database")
    raise SchemaError(f"the database schema is at revision {current}, this version needs {head}; "
                      f"run `{UPGRADE_COMMAND}`")


def naming_config(exc: SchemaError, config_path) -> SchemaError:
    """The same error with `-c FILE` in the command it names, so it can be pasted as it is."""
    import os
    import shlex

    command = f"{UPGRADE_COMMAND} -c {shlex.quote(os.path.abspath(config_path))}"
    return SchemaError(str(exc).replace(f"`{UPGRADE_COMMAND}`", f"`{command}`"))


def _short(exc: BaseException, limit: int = 200) -> str:
    text = str(getattr(exc, "orig", None) or exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:limit]
