"""A press waiting in cluster mode is answered once, by whichever process owns its row; an
alert whose send may have reached Telegram is known to be one.

- `inbound_updates.started_at`: when a process began handling the update (its claim);
- `inbound_updates.press_answered_at`: when a waiting press had its one answer at receipt;
- `sent_alerts.maybe_sent`: a send of this alert left and no answer was recorded (the write
  journal's `maybe_sent`, for alerts).

Revision ID: 0012_presses
Revises: 0011_write_reports
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_presses"
down_revision: str | None = "0011_write_reports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Applies this revision."""
    op.add_column(
        "inbound_updates", sa.Column("started_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "inbound_updates",
        sa.Column("press_answered_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "sent_alerts",
        sa.Column("maybe_sent", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    """Reverts this revision."""
    with op.batch_alter_table("sent_alerts") as batch:
        batch.drop_column("maybe_sent")
    with op.batch_alter_table("inbound_updates") as batch:
        batch.drop_column("press_answered_at")
        batch.drop_column("started_at")
