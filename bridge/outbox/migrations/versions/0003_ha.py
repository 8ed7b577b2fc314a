"""Leases for high availability: which node listens to which AMI server (bridge.ha).

Revision ID: 0003
Revises: 0001 (re-pointed to 0002 once the chain-head migration is merged)
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ha_lease",
        sa.Column("server", sa.String(128), nullable=False),
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.Column("acquired_at", TS, nullable=False),
        sa.Column("renewed_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("handover", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("server", name="pk_ha_lease"),
    )


def downgrade() -> None:
    op.drop_table("ha_lease")
