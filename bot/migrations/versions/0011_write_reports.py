"""A vendor write that ended is told to whoever asked once `reported_at` is set.

Revision ID: 0011_write_reports
Revises: 0010_staffscope
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_write_reports"
down_revision: str | None = "0010_staffscope"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNREPORTED = "reported_at IS NULL AND status <> 'pending'"


def upgrade() -> None:
    """Applies this revision."""
    op.add_column(
        "vendor_writes", sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True)
    )
    # Every write that ended before this version was told the way it was told then: none of
    # them is told again.
    op.execute("UPDATE vendor_writes SET reported_at = updated_at WHERE status <> 'pending'")
    op.create_index(
        "ix_vendor_writes_unreported",
        "vendor_writes",
        ["next_attempt_at"],
        postgresql_where=sa.text(UNREPORTED),
        sqlite_where=sa.text(UNREPORTED),
    )


def downgrade() -> None:
    """Reverts this revision."""
    op.drop_index("ix_vendor_writes_unreported", table_name="vendor_writes")
    with op.batch_alter_table("vendor_writes") as batch:
        batch.drop_column("reported_at")
