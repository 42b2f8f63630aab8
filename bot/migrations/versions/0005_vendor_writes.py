"""Vendor writes: every write is recorded before it leaves; the outbox becomes part of it.

The outbox kept only the writes a vendor could not take; `vendor_writes` keeps every one, with
what it is (a typed record whose `kind` is the outbox's old operation name), who holds it
while it is being sent, and whether its answer may have been lost. Outbox rows move over as
they are: their payload was already the typed record's fields.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The outbox's operations that change one known record: one write on it at a time.
_SUBJECTS = {
    "akubela.repair.cancel": ("akubela.repair", "repair_id"),
    "akubela.booking.cancel": ("akubela.booking", "booking_id"),
}

_outbox = sa.table(
    "outbox",
    sa.column("id", sa.Integer()),
    sa.column("telegram_id", sa.BigInteger()),
    sa.column("vendor", sa.String()),
    sa.column("operation", sa.String()),
    sa.column("command_id", sa.String()),
    sa.column("payload", sa.JSON()),
    sa.column("status", sa.String()),
    sa.column("attempts", sa.Integer()),
    sa.column("next_attempt_at", sa.DateTime(timezone=True)),
    sa.column("last_error", sa.Text()),
    sa.column("result", sa.JSON()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)


def _create_outbox() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("telegram_id", sa.BigInteger(), nullable=False),
        sa.Column("vendor", sa.String(length=32), nullable=False),
        sa.Column("operation", sa.String(length=64), nullable=False),
        sa.Column("command_id", sa.String(length=128), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("command_id", name=op.f("uq_outbox_command_id")),
    )
    op.create_index(
        op.f("ix_outbox_status_next_attempt_at"),
        "outbox",
        ["status", "next_attempt_at"],
        unique=False,
    )
    op.create_index(op.f("ix_outbox_telegram_id"), "outbox", ["telegram_id"], unique=False)


def _write_row(row: Any) -> dict[str, Any]:
    payload = dict(row.payload or {})
    subject = None
    if row.operation in _SUBJECTS:
        prefix, key = _SUBJECTS[row.operation]
        subject = f"{prefix}:{payload.get(key, '')}"
    result = row.result if isinstance(row.result, dict) else {}
    return {
        "command_id": row.command_id,
        "telegram_id": row.telegram_id,
        "vendor": row.vendor,
        "kind": row.operation,
        "subject": subject,
        "write": {"kind": row.operation, **payload},
        "status": row.status,
        # The outbox took a write after the vendor failed to take it: its answer may have been
        # lost, so the first attempt looks before sending, as the outbox did.
        "maybe_sent": row.status == "pending",
        "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at,
        "owner": None,
        "record_id": result.get("id"),
        "last_error": row.last_error,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def upgrade() -> None:
    """Applies this revision."""
    writes = op.create_table(
        "vendor_writes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("command_id", sa.String(length=128), nullable=False),
        sa.Column("telegram_id", sa.BigInteger(), nullable=False),
        sa.Column("vendor", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=True),
        sa.Column("write", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("maybe_sent", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=True),
        sa.Column("record_id", sa.String(length=255), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vendor_writes")),
        sa.UniqueConstraint("command_id", name=op.f("uq_vendor_writes_command_id")),
    )
    op.create_index(
        op.f("ix_vendor_writes_status_next_attempt_at"),
        "vendor_writes",
        ["status", "next_attempt_at"],
        unique=False,
    )
    op.create_index(op.f("ix_vendor_writes_subject"), "vendor_writes", ["subject"], unique=False)
    op.create_index(
        op.f("ix_vendor_writes_telegram_id"), "vendor_writes", ["telegram_id"], unique=False
    )
    rows = [_write_row(row) for row in op.get_bind().execute(sa.select(_outbox))]
    if rows:
        op.bulk_insert(writes, rows)
    op.drop_index(op.f("ix_outbox_telegram_id"), table_name="outbox")
    op.drop_index(op.f("ix_outbox_status_next_attempt_at"), table_name="outbox")
    op.drop_table("outbox")


def downgrade() -> None:
    """Reverts this revision: the writes the outbox knew how to send go back to it."""
    _create_outbox()
    writes = sa.table(
        "vendor_writes",
        sa.column("telegram_id", sa.BigInteger()),
        sa.column("vendor", sa.String()),
        sa.column("kind", sa.String()),
        sa.column("command_id", sa.String()),
        sa.column("write", sa.JSON()),
        sa.column("status", sa.String()),
        sa.column("attempts", sa.Integer()),
        sa.column("next_attempt_at", sa.DateTime(timezone=True)),
        sa.column("last_error", sa.Text()),
        sa.column("record_id", sa.String()),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    rows = [
        {
            "telegram_id": row.telegram_id,
            "vendor": row.vendor,
            "operation": row.kind,
            "command_id": row.command_id,
            "payload": {k: v for k, v in dict(row.write).items() if k != "kind"},
            "status": row.status if row.status in ("pending", "done") else "failed",
            "attempts": row.attempts,
            "next_attempt_at": row.next_attempt_at,
            "last_error": row.last_error,
            "result": {"id": row.record_id} if row.record_id else None,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
        }
        for row in op.get_bind().execute(sa.select(writes))
        if row.vendor == "akubela"
    ]
    if rows:
        op.bulk_insert(_outbox, rows)
    op.drop_index(op.f("ix_vendor_writes_telegram_id"), table_name="vendor_writes")
    op.drop_index(op.f("ix_vendor_writes_subject"), table_name="vendor_writes")
    op.drop_index(op.f("ix_vendor_writes_status_next_attempt_at"), table_name="vendor_writes")
    op.drop_table("vendor_writes")
