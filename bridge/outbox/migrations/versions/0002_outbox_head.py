"""Chain heads: the table `outbox_head` holds each call's deliverable row and its lease.

Claims used to find chain heads by walking a subscriber's pending rows (cost grew with the
backlog); now they read due heads from their own small table (see models.OutboxHead). Existing
databases get a head for every chain with pending rows (its smallest pending id, with that row's
due time and lease); outbox loses the lease columns and the claim index it no longer needs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
PENDING_ONLY = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_table(
        "outbox_head",
        sa.Column("subscriber", sa.String(128), nullable=False),
        sa.Column("order_key", sa.String(255), nullable=False),
        sa.Column("row_id", BigId, nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("locked_until", TS, nullable=True),
        sa.Column("locked_by", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("subscriber", "order_key", name="pk_outbox_head"),
        sa.UniqueConstraint("row_id", name="uq_outbox_head_row_id"),
    )
    op.create_index("ix_outbox_head_due", "outbox_head", ["subscriber", "next_attempt_at", "row_id"])
    # A leased head is out of the due range until its lease ends (models.OutboxHead).
    op.execute("""
        INSERT INTO outbox_head (subscriber, order_key, row_id, next_attempt_at, locked_until, locked_by)
        SELECT o.subscriber, o.order_key, o.id,
               CASE WHEN o.locked_until IS NOT NULL AND o.locked_until > o.next_attempt_at
                    THEN o.locked_until ELSE o.next_attempt_at END,
               o.locked_until, o.locked_by
        FROM outbox o
        WHERE o.status = 'pending'
          AND o.id = (SELECT min(e.id) FROM outbox e
                      WHERE e.subscriber = o.subscriber AND e.order_key = o.order_key
                        AND e.status = 'pending')
    """)
    op.drop_index("ix_outbox_claim", table_name="outbox")
    op.drop_column("outbox", "locked_until")
    op.drop_column("outbox", "locked_by")
    if op.get_bind().dialect.name == "postgresql":
        # Every claim and settle updates a head: keep room for HOT updates and its statistics fresh.
        op.execute("ALTER TABLE outbox_head SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02, "
                   "autovacuum_analyze_scale_factor = 0.02)")


def downgrade() -> None:
    op.add_column("outbox", sa.Column("locked_until", TS, nullable=True))
    op.add_column("outbox", sa.Column("locked_by", sa.String(64), nullable=True))
    op.execute("""
        UPDATE outbox SET
            locked_until = (SELECT h.locked_until FROM outbox_head h WHERE h.row_id = outbox.id),
            locked_by = (SELECT h.locked_by FROM outbox_head h WHERE h.row_id = outbox.id)
        WHERE id IN (SELECT row_id FROM outbox_head WHERE locked_until IS NOT NULL)
    """)
    op.create_index("ix_outbox_claim", "outbox", ["subscriber", "next_attempt_at", "id"],
                    postgresql_where=PENDING_ONLY, sqlite_where=PENDING_ONLY)
    op.drop_table("outbox_head")
