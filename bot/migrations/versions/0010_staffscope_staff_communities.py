"""Workers and managers belong to communities: who serves which, and what an invite binds to.

Everyone already on the staff, and every invite not yet used, belongs to community 1: the one
community a deployment ran before communities were data.

Revision ID: 0010_staffscope
Revises: 0009_communities
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_staffscope"
down_revision: str | None = "0009_communities"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FIRST_COMMUNITY = 1


def upgrade() -> None:
    """Applies this revision."""
    op.create_table(
        "staff_communities",
        sa.Column("telegram_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("community_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.ForeignKeyConstraint(
            ["telegram_id"],
            ["telegram_users.telegram_id"],
            name=op.f("fk_staff_communities_telegram_id_telegram_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("telegram_id", "community_id", name=op.f("pk_staff_communities")),
    )
    op.add_column("invites", sa.Column("community_ids", sa.JSON(), nullable=True))
    op.execute(
        sa.text(
            "INSERT INTO staff_communities (telegram_id, community_id) "
            "SELECT telegram_id, :community FROM telegram_users "
            "WHERE role IN ('worker', 'manager')"
        ).bindparams(community=FIRST_COMMUNITY)
    )
    invites = sa.table(
        "invites",
        sa.column("role", sa.String()),
        sa.column("used_at", sa.DateTime(timezone=True)),
        sa.column("community_ids", sa.JSON()),
    )
    op.execute(
        invites.update()
        .where(invites.c.role.in_(["worker", "manager"]), invites.c.used_at.is_(None))
        .values(community_ids=[FIRST_COMMUNITY])
    )


def downgrade() -> None:
    """Reverts this revision."""
    with op.batch_alter_table("invites") as batch:
        batch.drop_column("community_ids")
    op.drop_table("staff_communities")
