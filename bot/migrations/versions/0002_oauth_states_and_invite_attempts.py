"""Single-use OAuth states and invite-code attempt limits.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Applies this revision."""
    op.create_table(
        "oauth_states",
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("telegram_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["telegram_id"],
            ["telegram_users.telegram_id"],
            name=op.f("fk_oauth_states_telegram_id_telegram_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_oauth_states")),
    )
    op.create_index(
        op.f("ix_oauth_states_telegram_id"), "oauth_states", ["telegram_id"], unique=False
    )
    with op.batch_alter_table("telegram_users") as batch:
        batch.add_column(
            sa.Column("failed_invite_attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("invite_locked_until", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    """Reverts this revision."""
    with op.batch_alter_table("telegram_users") as batch:
        batch.drop_column("invite_locked_until")
        batch.drop_column("failed_invite_attempts")
    op.drop_index(op.f("ix_oauth_states_telegram_id"), table_name="oauth_states")
    op.drop_table("oauth_states")
