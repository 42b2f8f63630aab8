"""Drafts live only in the drafts table: the copies stored in user_data are dropped.

Every draft was written to the drafts table in the step the user typed it; the copy in
user_data was flushed only now and then, so it is never newer. From this revision the flows
read drafts from the table alone, and a copy left in user_data would only hold memory.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The flows that kept a draft under their name in user_data until now.
DRAFT_KEYS = (
    "assign",
    "book",
    "bookings",
    "bookings_pending",
    "repair",
    "repairs",
    "repairs_all",
    "tasks",
)
_BATCH = 1000

_user_data = sa.table(
    "user_data",
    sa.column("user_id", sa.BigInteger()),
    sa.column("data", sa.Text()),
)


def upgrade() -> None:
    """Applies this revision."""
    connection = op.get_bind()
    # Only the rows that hold a draft are read back and rewritten.
    holding = sa.or_(*(_user_data.c.data.contains(f'"{key}":') for key in DRAFT_KEYS))
    rows = connection.execute(
        sa.select(_user_data.c.user_id, _user_data.c.data).where(holding)
    ).all()
    changed = []
    for user_id, text in rows:
        try:
            data = json.loads(text)
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        kept = {key: value for key, value in data.items() if key not in DRAFT_KEYS}
        if kept != data:
            dumped = json.dumps(kept, ensure_ascii=False, separators=(",", ":"))
            changed.append({"key": user_id, "data": dumped})
    statement = (
        sa.update(_user_data)
        .where(_user_data.c.user_id == sa.bindparam("key"))
        .values(data=sa.bindparam("data"))
    )
    for start in range(0, len(changed), _BATCH):
        connection.execute(statement, changed[start : start + _BATCH])


def downgrade() -> None:
    """Nothing to undo: the drafts are still in the drafts table, which older code reads too."""
