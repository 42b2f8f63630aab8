"""Repair reports: the resident's photos of a repair, kept as Telegram file ids.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Applies this revision."""
    op.create_table(
        "repair_reports",
        sa.Column("maintenance_id", sa.String(length=128), nullable=False),
        sa.Column("telegram_id", sa.BigInteger(), nullable=False),
        sa.Column("residence_id", sa.String(length=128), nullable=False),
        sa.Column("photo_file_ids", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("maintenance_id", name=op.f("pk_repair_reports")),
    )
    op.create_index(
        op.f("ix_repair_reports_telegram_id"), "repair_reports", ["telegram_id"], unique=False
    )


def downgrade() -> None:
    """Reverts this revision."""
    op.drop_index(op.f("ix_repair_reports_telegram_id"), table_name="repair_reports")
    op.drop_table("repair_reports")
