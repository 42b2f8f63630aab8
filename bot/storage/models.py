"""The database schema as typed SQLAlchemy models; migration 0001 creates exactly this."""

from __future__ import annotations

import enum
from datetime import datetime, time
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bot.storage.columns import UtcDateTime, utcnow
from conversations.domain import Role

# Fixed constraint names, so a later migration can drop or alter a constraint by name on
# both databases.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class WriteStatus(enum.StrEnum):
    """Where a vendor write stands."""

    PENDING = "pending"  # recorded; not known to be at the vendor yet (being sent, or waiting)
    DONE = "done"  # at the vendor
    FAILED = "failed"  # refused, or given up on: nothing was done
    UNKNOWN = "unknown"  # its answer was lost and the vendor cannot show whether it happened


class AlertStatus(enum.StrEnum):
    """Whether an alert reached its recipient."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


def _string_enum(kind: type[enum.StrEnum], name: str) -> Enum:
    # Plain VARCHAR holding the value ("resident"), not the member name and not a native
    # PostgreSQL enum: adding a member later needs no migration.
    return Enum(
        kind,
        name=name,
        native_enum=False,
        create_constraint=False,
        length=16,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    """Declarative base of every model."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute once
        datetime: UtcDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


class Timestamps:
    """Created/updated columns, set by Python so both databases agree."""

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TelegramUser(Timestamps, Base):
    """A person who has talked to the bot."""

    __tablename__ = "telegram_users"

    telegram_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    language: Mapped[str] = mapped_column(String(8), default="en")
    time_zone: Mapped[str | None] = mapped_column(String(64))
    role: Mapped[Role] = mapped_column(_string_enum(Role, "role"), default=Role.RESIDENT)
    display_name: Mapped[str] = mapped_column(String(255), default="")
    # Set when Telegram says the user blocked the bot; alerts stop until they write again.
    blocked_at: Mapped[datetime | None]
    quiet_hours_start: Mapped[time | None] = mapped_column(Time)
    quiet_hours_end: Mapped[time | None] = mapped_column(Time)
    # Wrong invite codes in a row, and until when further tries are refused (brute force).
    failed_invite_attempts: Mapped[int] = mapped_column(Integer, default=0)
    invite_locked_until: Mapped[datetime | None]


class ResidentLink(Timestamps, Base):
    """A resident's linked Akubela account; tokens are encrypted with bot.crypto."""

    __tablename__ = "resident_links"

    telegram_id: Mapped[int] = mapped_column(
        BigInteger,
        ForeignKey("telegram_users.telegram_id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    )
    akubela_account_id: Mapped[str] = mapped_column(String(128))
    email: Mapped[str | None] = mapped_column(String(255))
    residences: Mapped[list[Any]] = mapped_column(default=list)
    residence_id: Mapped[str | None] = mapped_column(String(128))
    access_token_encrypted: Mapped[str | None] = mapped_column(Text)
    refresh_token_encrypted: Mapped[str | None] = mapped_column(Text)
    token_expires_at: Mapped[datetime | None]
    # Set when Akubela stopped accepting the login (a refresh token it no longer takes): the
    # resident has been asked to link again, and nothing polls the account until they do.
    relink_required_at: Mapped[datetime | None]


class WorkerLink(Timestamps, Base):
    """A Telegram user bound to a Tuya maintenance worker."""

    __tablename__ = "worker_links"

    telegram_id: Mapped[int] = mapped_column(
        BigInteger,
        ForeignKey("telegram_users.telegram_id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    )
    tuya_worker_id: Mapped[str] = mapped_column(String(128), index=True)
    username: Mapped[str | None] = mapped_column(String(255))
    nickname: Mapped[str | None] = mapped_column(String(255))


class ManagerLink(Timestamps, Base):
    """A Telegram user who manages a project."""

    __tablename__ = "manager_links"

    telegram_id: Mapped[int] = mapped_column(
        BigInteger,
        ForeignKey("telegram_users.telegram_id", ondelete="CASCADE"),
        primary_key=True,
    )
    project_id: Mapped[str] = mapped_column(String(128), primary_key=True)


class StaffCommunity(Base):
    """A worker or manager bound to one community (one row per community they serve)."""

    __tablename__ = "staff_communities"

    telegram_id: Mapped[int] = mapped_column(
        BigInteger,
        ForeignKey("telegram_users.telegram_id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    )
    community_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)


class Invite(Base):
    """A single-use invite code; only its hash is kept."""

    __tablename__ = "invites"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[Role] = mapped_column(_string_enum(Role, "role"))
    worker_id: Mapped[str | None] = mapped_column(String(128))
    project_id: Mapped[str | None] = mapped_column(String(128))
    # The communities a worker or manager invite binds to (a JSON list of ids).
    community_ids: Mapped[list[Any] | None]
    # Invites are made from the CLI too, where there is no Telegram user: no foreign key.
    created_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    used_by: Mapped[int | None] = mapped_column(BigInteger)


class ConversationState(Base):
    """One ConversationHandler conversation: its key and state, both JSON text."""

    __tablename__ = "conversation_states"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    state: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class UserData(Base):
    """PTB's user_data of one user, JSON text."""

    __tablename__ = "user_data"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    data: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ChatData(Base):
    """PTB's chat_data of one chat, JSON text."""

    __tablename__ = "chat_data"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    data: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CallbackData(Base):
    """PTB's arbitrary callback data cache: a single row."""

    __tablename__ = "callback_data"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Draft(Base):
    """What a user has typed so far in one job, saved the moment they type it."""

    __tablename__ = "drafts"

    # No foreign key: a draft must save even before the user row exists.
    telegram_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WriteRecord(Timestamps, Base):
    """A vendor write, recorded before it leaves, until the bot knows how it ended.

    `write` is the typed record (`conversations.writes`): what it is, for whom, and how to
    recognise its result at the vendor. While a process sends it, `owner` names that process
    and `next_attempt_at` is its lease; a write whose answer may have been lost has
    `maybe_sent`, so the next attempt first looks at the vendor instead of sending it again.

    A write that ended is told to whoever asked once `reported_at` is set. One that ended in a
    conversation is reported by that update's handler, so it counts as told only when the
    update's handling is stored; until then `owner` and `next_attempt_at` say who tells it and
    until when, and the journal tells it if that process dies first.
    """

    __tablename__ = "vendor_writes"
    __table_args__ = (
        Index(None, "status", "next_attempt_at"),
        Index(
            "ix_vendor_writes_unreported",
            "next_attempt_at",
            postgresql_where="reported_at IS NULL AND status <> 'pending'",
            sqlite_where="reported_at IS NULL AND status <> 'pending'",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    command_id: Mapped[str] = mapped_column(String(128), unique=True)
    telegram_id: Mapped[int] = mapped_column(BigInteger, index=True)
    vendor: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(64))
    # The record it changes ("tuya.task:<id>"): one write on it is in flight at a time.
    subject: Mapped[str | None] = mapped_column(String(255), index=True)
    write: Mapped[dict[str, Any]]
    status: Mapped[WriteStatus] = mapped_column(
        _string_enum(WriteStatus, "write_status"), default=WriteStatus.PENDING
    )
    maybe_sent: Mapped[bool] = mapped_column(default=False)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    owner: Mapped[str | None] = mapped_column(String(255))
    record_id: Mapped[str | None] = mapped_column(String(255))
    last_error: Mapped[str | None] = mapped_column(Text)
    reported_at: Mapped[datetime | None]


class VendorState(Base):
    """What the bot last saw of one vendor record, to notice changes."""

    __tablename__ = "vendor_states"
    __table_args__ = (UniqueConstraint("vendor", "kind", "record_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vendor: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    record_id: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(64))
    snapshot: Mapped[dict[str, Any]]
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class SentAlert(Base):
    """An alert the bot owes or has sent; the dedupe key makes it go out once."""

    __tablename__ = "sent_alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    recipient: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(64))
    status: Mapped[AlertStatus] = mapped_column(
        _string_enum(AlertStatus, "alert_status"), default=AlertStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    # What to send, kept until it is delivered (quiet hours, a failed attempt, a restart).
    payload: Mapped[dict[str, Any] | None]
    # A send left and no answer from Telegram was recorded (the process died, the answer timed
    # out): it may have reached the recipient, so the next one says it may be a repeat.
    maybe_sent: Mapped[bool] = mapped_column(default=False)


class AuditEntry(Base):
    """One vendor write: who asked, what, when and how it ended."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Kept after a user is gone, so no foreign key; None means the bot itself (a job).
    telegram_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    vendor: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(255))
    request_summary: Mapped[dict[str, Any]]
    result: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class TaskAcknowledgement(Base):
    """A worker has seen a Tuya task; one acknowledgement per task."""

    __tablename__ = "task_acknowledgements"

    task_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    worker_telegram_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("telegram_users.telegram_id", ondelete="CASCADE")
    )
    acknowledged_at: Mapped[datetime] = mapped_column(default=utcnow)


class OAuthState(Base):
    """A login link handed out to a Telegram user; its state may be used once."""

    __tablename__ = "oauth_states"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    telegram_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("telegram_users.telegram_id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_at: Mapped[datetime | None]


class RepairReport(Base):
    """A repair a resident reported through the bot, with the photos the vendor cannot hold."""

    __tablename__ = "repair_reports"

    maintenance_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    # Kept after a user is gone, so managers still see the photos: no foreign key.
    telegram_id: Mapped[int] = mapped_column(BigInteger, index=True)
    residence_id: Mapped[str] = mapped_column(String(128))
    # Telegram file ids: the photos stay on Telegram's servers, the bot sends them by id.
    photo_file_ids: Mapped[list[Any]] = mapped_column(default=list)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class InboundUpdate(Base):
    """A Telegram update a cluster process took from the webhook: stored before Telegram is
    told it arrived, handled once (by `update_id`), in order within its chat (`order_key`)."""

    __tablename__ = "inbound_updates"
    __table_args__ = (
        Index(
            "ix_inbound_updates_waiting",
            "order_key",
            "update_id",
            postgresql_where="handled_at IS NULL",
            sqlite_where="handled_at IS NULL",
        ),
    )

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    order_key: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    handled_at: Mapped[datetime | None] = mapped_column(index=True)
    # When a process began handling it (the latest, after a dead process's try).
    started_at: Mapped[datetime | None]
    # A press that waited: when it had its one answer ("one moment") at receipt. The row is the
    # one owner of that fact across processes: the handler's process reads it as it starts.
    press_answered_at: Mapped[datetime | None]


class CommunityRecord(Timestamps, Base):
    """One community of the deployment: its rules (`conversations.community.Community`) and
    how the bot reaches its vendors; the manager's password is encrypted with bot.crypto."""

    __tablename__ = "communities"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name_en: Mapped[str] = mapped_column(String(200))
    name_zh: Mapped[str] = mapped_column(String(200))
    time_zone: Mapped[str] = mapped_column(String(64))
    languages: Mapped[list[Any]] = mapped_column(default=list)
    phone_region: Mapped[str] = mapped_column(String(2))
    service_hours_start: Mapped[time] = mapped_column(Time)
    service_hours_end: Mapped[time] = mapped_column(Time)
    # {"grid_minutes", "min_minutes", "max_minutes", "horizon_days"}, and per amenity id.
    amenity_defaults: Mapped[dict[str, Any]] = mapped_column(default=dict)
    amenity_rules: Mapped[dict[str, Any]] = mapped_column(default=dict)
    escalate_repair_minutes: Mapped[int] = mapped_column(Integer)
    escalate_task_minutes: Mapped[int] = mapped_column(Integer)
    akubela_base_url: Mapped[str] = mapped_column(String(500))
    akubela_project_id: Mapped[str] = mapped_column(String(128), unique=True)
    manager_username: Mapped[str] = mapped_column(String(255))
    manager_password_encrypted: Mapped[str] = mapped_column(Text)
    tuya_project_id: Mapped[str] = mapped_column(String(128))
    tuya_room_of_residence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    servitly_tenant: Mapped[str] = mapped_column(String(128))
    servitly_location_map: Mapped[dict[str, Any]] = mapped_column(default=dict)


class SendWindow(Base):
    """One of Telegram's send windows, in cluster mode (bot.storage.send_windows): the
    bot-wide one or one chat's, with the moments it handed out (seconds on the database's
    clock, in order)."""

    __tablename__ = "telegram_send_windows"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    moments: Mapped[list[Any]] = mapped_column(default=list)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
