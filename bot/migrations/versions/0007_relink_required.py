"""A resident link whose Akubela login is lost remembers it until the resident links again.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Applies this revision."""
    op.add_column(
        "resident_links",
        sa.Column("relink_required_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    """Reverts this revision."""
    with op.batch_alter_table("resident_links") as batch:
        batch.drop_column("relink_required_at")
