"""Telegram's send windows, shared by a cluster's processes (bot.storage.send_windows): the
bot-wide one and one per chat, each with the moments it handed out.

Revision ID: 0013_send_windows
Revises: 0012_presses
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_send_windows"
down_revision: str | None = "0012_presses"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Applies this revision."""
    op.create_table(
        "telegram_send_windows",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("moments", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_telegram_send_windows")),
    )
    op.create_index(
        op.f("ix_telegram_send_windows_updated_at"),
        "telegram_send_windows",
        ["updated_at"],
        unique=False,
    )


def downgrade() -> None:
    """Reverts this revision."""
    op.drop_index(op.f("ix_telegram_send_windows_updated_at"), table_name="telegram_send_windows")
    op.drop_table("telegram_send_windows")
