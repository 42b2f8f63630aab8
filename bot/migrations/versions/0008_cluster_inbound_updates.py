"""Cluster mode: the updates taken from the webhook, kept until handled.

Revision ID: 0008_cluster
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_cluster"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Applies this revision."""
    op.create_table(
        "inbound_updates",
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("order_key", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("update_id", name=op.f("pk_inbound_updates")),
    )
    op.create_index(
        "ix_inbound_updates_waiting",
        "inbound_updates",
        ["order_key", "update_id"],
        postgresql_where=sa.text("handled_at IS NULL"),
        sqlite_where=sa.text("handled_at IS NULL"),
    )
    op.create_index(
        op.f("ix_inbound_updates_handled_at"), "inbound_updates", ["handled_at"], unique=False
    )


def downgrade() -> None:
    """Reverts this revision."""
    op.drop_index(op.f("ix_inbound_updates_handled_at"), table_name="inbound_updates")
    op.drop_index("ix_inbound_updates_waiting", table_name="inbound_updates")
    op.drop_table("inbound_updates")
