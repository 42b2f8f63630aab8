"""The one settings object: read from the environment and `.env`, built once at start."""

from __future__ import annotations

import re
from datetime import time
from functools import cached_property
from typing import Literal, Self
from zoneinfo import ZoneInfo

import phonenumbers
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from conversations.validation import read_zone

# The demo defaults point every vendor at the embedded sandbox on loopback, so a fresh clone
# runs with no `.env` at all. Each vendor is mounted under its own prefix there.
SANDBOX_URL = "http://127.0.0.1:8700"
DEMO_SECRET_KEY = "demo-secret-key-change-me-in-production-0123456789"  # noqa: S105
# The sandbox's demo rooms (Tuya) mapped to its demo locations and things (Servitly).
DEMO_SERVITLY_LOCATION_MAP: dict[str, dict[str, str]] = {
    "145267896505310001": {"locationId": "loc-block-a"},
    "145267896505310002": {"locationId": "loc-block-a"},
    "145267896505310003": {"locationId": "loc-block-a"},
    "145267896505310004": {"locationId": "loc-block-b"},
    "145267896505310005": {"locationId": "loc-block-b"},
    "145267896505310006": {"thingId": "thing-hvac-b"},
}
SERVITLY_TARGET_KEYS = frozenset({"thingId", "locationId"})
WEBHOOK_SECRET_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,256}")


class Settings(BaseSettings):
    """Every setting Concierge reads; nothing else touches the environment."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        case_sensitive=False,
        extra="ignore",
    )

    # Telegram
    telegram_bot_token: SecretStr = Field(
        default=SecretStr("123456:DEMO-sandbox-token"),
        description="Bot token from @BotFather; the demo token only works on the local Bot API.",
    )
    telegram_base_url: str = Field(
        default="http://127.0.0.1:8080/bot",
        description="Bot API base URL: the local Bot API by default, Telegram's in production.",
    )
    admin_telegram_ids: list[int] = Field(default_factory=list)

    # The bot's own web server (OAuth callback, health, webhook)
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=8081, ge=1, le=65535)
    public_base_url: str = Field(
        default="http://127.0.0.1:8081",
        description="Where browsers and Telegram reach the web server (OAuth redirect, webhook).",
    )
    run_mode: Literal["polling", "webhook"] = "polling"
    webhook_secret: SecretStr | None = None
    oauth_state_ttl_seconds: int = Field(default=600, ge=60)
    invite_ttl_hours: float = Field(default=72, gt=0)
    persistence_update_interval: float = Field(default=5.0, gt=0, le=60)
    conversation_timeout_minutes: float = Field(default=15, gt=0)
    outbox_interval_seconds: float = Field(default=15, gt=0)
    max_concurrent_updates: int = Field(default=64, ge=1)
    # Flood control per user: a burst of updates at once, then `rate` a second; 0 turns it off
    flood_rate: float = Field(default=1.0, ge=0)
    flood_burst: int = Field(default=20, ge=1)
    # Alerts: how often the vendors are watched, and when a reminder or escalation is due
    alert_poll_seconds: float = Field(default=60, gt=0)
    escalate_repair_after_minutes: float = Field(default=240, gt=0)
    escalate_task_after_minutes: float = Field(default=240, gt=0)
    booking_reminder_minutes: float = Field(default=30, gt=0)

    # Storage and locale
    database_url: str = "sqlite+aiosqlite:///concierge.db"
    timezone: str = "Asia/Shanghai"
    # What residents may type: the region a phone number without +country is read in, and the
    # hours technicians visit (a visit window must lie within them).
    phone_region: str = Field(default="CN", min_length=2, max_length=2)
    service_hours_start: time = time(8, 0)
    service_hours_end: time = time(20, 0)
    secret_key: SecretStr = SecretStr(DEMO_SECRET_KEY)

    # Akubela (user and manager commands, OAuth2)
    akubela_base_url: str = f"{SANDBOX_URL}/akubela"
    akubela_client_id: str = "concierge-demo"
    akubela_client_secret: SecretStr = SecretStr("akubela-demo-secret")
    akubela_manager_username: str = "manager@demo.community"
    akubela_manager_password: SecretStr = SecretStr("manager-demo-password")
    akubela_project_id: str = "p-demo-garden-court"
    # Which calendar date `get_booking_time_list` takes (the docs say only 日期): the
    # community's local date, or the UTC date. The sandbox follows the same setting.
    akubela_time_list_date: Literal["local", "utc"] = "local"

    # Tuya osaas (maintenance tasks)
    tuya_base_url: str = f"{SANDBOX_URL}/tuya"
    tuya_client_id: str = "tuyademoclientid"
    tuya_client_secret: SecretStr = SecretStr("tuya-demo-client-secret")
    tuya_project_id: str = "1233823965050001"

    # Servitly (maintenance log)
    servitly_base_url: str = f"{SANDBOX_URL}/servitly"
    servitly_api_key: SecretStr = SecretStr("servitly-demo-api-key")
    servitly_pat: SecretStr = SecretStr("servitly-demo-pat")
    servitly_tenant: str = "demo"
    servitly_tenant_header: str = "X-Servitly-Tenant"
    servitly_maintenance_alert_definition_id: str = ""
    # Where MAINTENANCE is looked up when no alert definition id is set.
    servitly_thing_definition_id: str = "td-community-equipment"
    # Tuya room id -> the Servitly thing or location that finished work there is recorded on.
    servitly_location_map: dict[str, dict[str, str]] = Field(
        default_factory=lambda: dict(DEMO_SERVITLY_LOCATION_MAP)
    )
    servitly_use_deprecated_maintenance_works: bool = False

    # Embedded sandbox (the demo's vendors)
    sandbox_host: str = "127.0.0.1"
    sandbox_port: int = Field(default=8700, ge=1, le=65535)
    sandbox_auto_advance_seconds: float = Field(default=0.0, ge=0)
    # How the Akubela sandbox fails (the vendor's failure page is not in the docs).
    sandbox_akubela_error_style: Literal["status", "envelope", "oauth", "empty401"] = "status"
    demo_host: str = "127.0.0.1"
    demo_port: int = Field(default=8080, ge=1, le=65535)

    # Vendor HTTP behaviour
    http_connect_timeout: float = Field(default=5.0, gt=0)
    http_read_timeout: float = Field(default=15.0, gt=0)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        zone = read_zone(value)
        if zone is None:
            raise ValueError(f"unknown time zone {value!r}")
        return zone.key

    @field_validator("phone_region")
    @classmethod
    def _known_phone_region(cls, value: str) -> str:
        if value.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"PHONE_REGION {value!r} is not a region code such as CN or DE")
        return value.upper()

    @model_validator(mode="after")
    def _service_hours_in_order(self) -> Self:
        if self.service_hours_end <= self.service_hours_start:
            raise ValueError("SERVICE_HOURS_END must be after SERVICE_HOURS_START")
        return self

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret_telegram_accepts(cls, value: SecretStr | None) -> SecretStr | None:
        # Telegram's own rule for secret_token; anything else fails only at setWebhook.
        if value is not None and not WEBHOOK_SECRET_SHAPE.fullmatch(value.get_secret_value()):
            raise ValueError("WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator("servitly_tenant_header")
    @classmethod
    def _tenant_header_name(cls, value: str) -> str:
        if value not in {"X-Servitly-Tenant", "X-Semioty-Tenant"}:
            raise ValueError("SERVITLY_TENANT_HEADER is X-Servitly-Tenant or X-Semioty-Tenant")
        return value

    @field_validator("servitly_location_map")
    @classmethod
    def _one_servitly_target_per_room(
        cls, value: dict[str, dict[str, str]]
    ) -> dict[str, dict[str, str]]:
        for room_id, target in value.items():
            if len(target) != 1 or not set(target) <= SERVITLY_TARGET_KEYS:
                raise ValueError(
                    f"SERVITLY_LOCATION_MAP: room {room_id} needs one thingId or locationId"
                )
            if not all(target.values()):
                raise ValueError(f"SERVITLY_LOCATION_MAP: room {room_id} has an empty id")
        return value

    @model_validator(mode="after")
    def _no_demo_secret_against_real_telegram(self) -> Self:
        # The demo key is public; tokens encrypted with it are as good as plain text.
        if self.uses_real_telegram and self.secret_key.get_secret_value() == DEMO_SECRET_KEY:
            raise ValueError("set SECRET_KEY to a private value before talking to real Telegram")
        if len(self.secret_key.get_secret_value()) < 32:
            raise ValueError("SECRET_KEY must be at least 32 characters")
        if self.run_mode == "webhook" and self.webhook_secret is None:
            raise ValueError("webhook mode needs WEBHOOK_SECRET, which Telegram echoes back")
        return self

    @property
    def uses_real_telegram(self) -> bool:
        """Whether the bot talks to Telegram's servers rather than the local Bot API."""
        return "api.telegram.org" in self.telegram_base_url

    @cached_property
    def zone(self) -> ZoneInfo:
        """The community's time zone."""
        return ZoneInfo(self.timezone)
