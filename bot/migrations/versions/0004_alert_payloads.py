"""Alert payloads: what an alert says is kept with it until it is delivered.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Applies this revision."""
    # Nullable: alerts recorded before this revision have nothing to resend.
    op.add_column("sent_alerts", sa.Column("payload", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Reverts this revision."""
    with op.batch_alter_table("sent_alerts") as batch:
        batch.drop_column("payload")
