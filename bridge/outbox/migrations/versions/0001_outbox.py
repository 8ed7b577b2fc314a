"""Create the outbox table.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("event_uuid", sa.String(36), nullable=False),
        sa.Column("subscriber", sa.String(128), nullable=False),
        sa.Column("server", sa.String(128), nullable=False),
        sa.Column("event_name", sa.String(128), nullable=False),
        sa.Column("order_key", sa.String(255), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("locked_until", TS, nullable=True),
        sa.Column("locked_by", sa.String(64), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("event_time", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("delivered_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.UniqueConstraint("event_uuid", "subscriber", name="uq_outbox_event_uuid_subscriber"),
        sa.CheckConstraint("status IN ('pending', 'delivered', 'dead')", name="ck_outbox_status"),
    )
    pending_only = sa.text("status = 'pending'")
    op.create_index("ix_outbox_claim", "outbox", ["subscriber", "next_attempt_at", "id"],
                    postgresql_where=pending_only, sqlite_where=pending_only)
    op.create_index("ix_outbox_order", "outbox", ["subscriber", "order_key", "id"],
                    postgresql_where=pending_only, sqlite_where=pending_only)
    op.create_index("ix_outbox_status_created_at", "outbox", ["status", "created_at"])
    if op.get_bind().dialect.name == "postgresql":
        # A queue table: every row is updated twice (lease, then outcome). Free space on each page
        # lets the lease update stay HOT (no new index entries), and eager autovacuum keeps the
        # claim index free of dead entries and the planner's statistics fresh.
        op.execute("ALTER TABLE outbox SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02, "
                   "autovacuum_analyze_scale_factor = 0.02)")


def downgrade() -> None:
    op.drop_table("outbox")
