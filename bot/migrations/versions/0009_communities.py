"""Communities as data: one row per community, its rules and its vendors' access.

The rows of an existing deployment are not made here, where the settings are not known:
`concierge migrate` (bot.communities.first_community) makes community 1 from the settings
once this table exists and is empty.

Revision ID: 0009_communities
Revises: 0008_cluster
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_communities"
down_revision: str | None = "0008_cluster"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Applies this revision."""
    op.create_table(
        "communities",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name_en", sa.String(length=200), nullable=False),
        sa.Column("name_zh", sa.String(length=200), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("languages", sa.JSON(), nullable=False),
        sa.Column("phone_region", sa.String(length=2), nullable=False),
        sa.Column("service_hours_start", sa.Time(), nullable=False),
        sa.Column("service_hours_end", sa.Time(), nullable=False),
        sa.Column("amenity_defaults", sa.JSON(), nullable=False),
        sa.Column("amenity_rules", sa.JSON(), nullable=False),
        sa.Column("escalate_repair_minutes", sa.Integer(), nullable=False),
        sa.Column("escalate_task_minutes", sa.Integer(), nullable=False),
        sa.Column("akubela_base_url", sa.String(length=500), nullable=False),
        sa.Column("akubela_project_id", sa.String(length=128), nullable=False),
        sa.Column("manager_username", sa.String(length=255), nullable=False),
        sa.Column("manager_password_encrypted", sa.Text(), nullable=False),
        sa.Column("tuya_project_id", sa.String(length=128), nullable=False),
        sa.Column("tuya_room_of_residence", sa.JSON(), nullable=False),
        sa.Column("servitly_tenant", sa.String(length=128), nullable=False),
        sa.Column("servitly_location_map", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_communities")),
        sa.UniqueConstraint("akubela_project_id", name=op.f("uq_communities_akubela_project_id")),
    )


def downgrade() -> None:
    """Reverts this revision."""
    op.drop_table("communities")
