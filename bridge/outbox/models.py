"""The `outbox` and `outbox_head` tables as SQLAlchemy 2.x declarative models (the schema migrations must produce)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (BigInteger, Boolean, CheckConstraint, DateTime, Index, Integer, MetaData,
                        PrimaryKeyConstraint, String, Text, UniqueConstraint, text)
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
    last_error: Mapped[str | None] = mapped_column(String(LAST_ERROR_MAX_CHARS))
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # when Asterisk sent it
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # when it was committed (accepted)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("event_uuid", "subscriber"),
        CheckConstraint("status IN ('pending', 'delivered', 'dead')", name="status"),
        # Chain probe: "the first pending row of this call for this subscriber" (min id), which is
        # how a settle finds the next head. Partial (pending rows only) so it stays small however
        # many delivered rows pile up.
        Index("ix_outbox_order", "subscriber", "order_key", "id", postgresql_where=PENDING_ONLY,
              sqlite_where=PENDING_ONLY),
        # Admin queries by status and time (purge, oldest pending, "dead since"). Per-subscriber
        # listings walk the primary key newest-first under a LIMIT. Every index adds B-tree work to
        # each ingest insert (the bulk of ingest CPU on SQLite), so there is no subscriber index.
        Index("ix_outbox_status_created_at", "status", "created_at"),
    )


class OutboxHead(Base):
    """The deliverable row of one call for one subscriber: the smallest pending id of the chain.

    One row per (subscriber, order_key) that has pending rows, kept in the same transaction as the
    rows it points at (queries.py). A claim reads due heads by ix_outbox_head_due, so its cost
    depends on the batch size only, not on how many rows are pending or how long a call's chain
    is. The lease lives here: a leased head is pushed out of the due range (next_attempt_at =
    locked_until) so claims never wade through in-flight heads, and comes back by itself when the
    lease expires (a dispatcher that died).
    """

    __tablename__ = "outbox_head"

    subscriber: Mapped[str] = mapped_column(String(128))
    order_key: Mapped[str] = mapped_column(String(255))
    row_id: Mapped[int] = mapped_column(BigId)                      # outbox.id of the chain's first pending row
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # due time (or lease end)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # in-flight lease
    locked_by: Mapped[str | None] = mapped_column(String(64))       # dispatcher worker holding the lease

    __table_args__ = (
        PrimaryKeyConstraint("subscriber", "order_key"),
        # Settles and re-queues address a head by the row it points at.
        UniqueConstraint("row_id"),
        # Claim: a subscriber's due heads, oldest due first (row_id breaks ties: older calls first).
        Index("ix_outbox_head_due", "subscriber", "next_attempt_at", "row_id"),
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
