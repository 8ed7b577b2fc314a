"""The `outbox` table as SQLAlchemy 2.x declarative models (the schema migrations must produce)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (BigInteger, Boolean, CheckConstraint, DateTime, Index, Integer, MetaData, String, Text,
                        text,
                        UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"
STATUSES = (PENDING, DELIVERED, DEAD)

LAST_ERROR_MAX_CHARS = 500
PENDING_ONLY = text("status = 'pending'")

# Explicit constraint names so Alembic autogenerate compares equal on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-assigns rowids to a column declared exactly INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class OutboxRow(Base):
    """One event for one subscriber. `id` order is the delivery order within (subscriber, order_key)."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_uuid: Mapped[str] = mapped_column(String(36))            # idempotency key the ERP sees as `id`
    subscriber: Mapped[str] = mapped_column(String(128))
    server: Mapped[str] = mapped_column(String(128))                # [[ami]] name the event came from
    event_name: Mapped[str] = mapped_column(String(128))
    order_key: Mapped[str] = mapped_column(String(255))             # Linkedid, or channel outside a call
    payload: Mapped[str] = mapped_column(Text)                      # the SOAP envelope exactly as POSTed
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # in-flight lease
    locked_by: Mapped[str | None] = mapped_column(String(64))       # dispatcher instance holding the lease
    last_error: Mapped[str | None] = mapped_column(String(LAST_ERROR_MAX_CHARS))
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # when Asterisk sent it
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # when it was committed (accepted)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("event_uuid", "subscriber"),
        CheckConstraint("status IN ('pending', 'delivered', 'dead')", name="status"),
        # Claim query: a subscriber's due pending rows, oldest due first. Partial (pending rows
        # only) so it stays small however many delivered rows pile up, and ordered by
        # next_attempt_at so no primary-key scan can compete with it (a pk scan in id order would
        # wade through delivered rows whenever statistics are stale, e.g. on a young table).
        Index("ix_outbox_claim", "subscriber", "next_attempt_at", "id", postgresql_where=PENDING_ONLY,
              sqlite_where=PENDING_ONLY),
        # FIFO probe: "is there an earlier pending row of this call for this subscriber?"
        Index("ix_outbox_order", "subscriber", "order_key", "id", postgresql_where=PENDING_ONLY,
              sqlite_where=PENDING_ONLY),
        # Admin queries by status and time (purge, oldest pending, "dead since"). A subscriber's
        # pending rows come from ix_outbox_claim; other per-subscriber listings walk the primary
        # key newest-first under a LIMIT. Every index adds B-tree work to each ingest insert (the
        # bulk of ingest CPU on SQLite), so there is no separate subscriber index.
        Index("ix_outbox_status_created_at", "status", "created_at"),
    )


class HaLease(Base):
    """Who listens to one AMI server (bridge.ha): one row per `[[ami]] name`, PostgreSQL clock times.

    `token` grows by one at every takeover (the fencing token); a node writes events of `server`
    only while its (node, token) is this row's and `expires_at` is in the future (bridge.ha.lease)."""

    __tablename__ = "ha_lease"

    server: Mapped[str] = mapped_column(String(128), primary_key=True)
    node: Mapped[str] = mapped_column(String(255))
    token: Mapped[int] = mapped_column(BigInteger)
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    renewed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    handover: Mapped[bool] = mapped_column(Boolean, default=False)   # `ha step-down` asked the leader to go
