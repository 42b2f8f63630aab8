"""The one settings object: read from the environment and `.env`, built once at start."""

from __future__ import annotations

import ipaddress
import re
from datetime import time
from functools import cached_property
from typing import Literal, Self
from urllib.parse import urlsplit
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
# The one demo flat that both Akubela and Tuya know: Chen Home, Building A 1201.
DEMO_TUYA_ROOM_OF_RESIDENCE: dict[str, str] = {
    "r3f9a1c2d4e5b6a7980c1d2e3f4a5b601": "145267896505310002",
}
WEBHOOK_SECRET_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,256}")
# A token from @BotFather: the bot's id, a colon and 35 characters. The local Bot API takes any
# made-up token; one shaped like this means a real bot, even on a Bot API server on loopback.
BOTFATHER_TOKEN_SHAPE = re.compile(r"\d+:[A-Za-z0-9_-]{35}")
# Vendor settings whose demo default must not reach a real deployment: the sandbox's URLs,
# the demo credentials and the demo projects. Compared without regard to case.
VENDOR_DEMO_SETTINGS = (
    "akubela_base_url",
    "akubela_client_id",
    "akubela_client_secret",
    "akubela_manager_username",
    "akubela_manager_password",
    "akubela_project_id",
    "tuya_base_url",
    "tuya_client_id",
    "tuya_client_secret",
    "tuya_project_id",
    "servitly_base_url",
    "servitly_api_key",
    "servitly_pat",
    "servitly_tenant",
)


def is_loopback_host(host: str | None) -> bool:
    """Whether `host` (a URL's host name, any case) names this machine's loopback interface."""
    if not host:
        return False
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_public_host(host: str | None) -> bool:
    """Whether a URL's host can be reached from the internet, as Telegram requires of the URLs
    in buttons: not loopback, not a private, link-local or reserved address."""
    if not host or is_loopback_host(host):
        return False
    name = host.strip("[]").rstrip(".").lower()
    try:
        return ipaddress.ip_address(name).is_global
    except ValueError:
        return "." in name  # a bare name ("intranet") resolves only inside a network


def is_local_bot_api(base_url: str, token: str) -> bool:
    """Whether a Bot API base URL and token are the demo's: a local Bot API on loopback, and a
    made-up token (Telegram's servers, any other host or IP, and a self-hosted Bot API server
    holding a real BotFather token are not the demo)."""
    try:
        host = urlsplit(base_url.strip()).hostname
    except ValueError:
        return False
    return is_loopback_host(host) and not BOTFATHER_TOKEN_SHAPE.fullmatch(token)


def _plain(value: object) -> str:
    text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    return text.strip().rstrip("/").lower()


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
    # Several processes behind a load balancer, any of them taking any update (docs/deployment.md)
    cluster: bool = False
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

    # Operating it: who hears about errors, how logs look, who may read /metrics
    operator_chat_id: int | None = Field(
        default=None,
        description="Telegram chat that gets a short report of every unhandled error.",
    )
    operator_report_delay_seconds: float = Field(default=5.0, ge=0)
    operator_report_interval_seconds: float = Field(default=60.0, ge=0)
    log_format: Literal["text", "json"] = "text"
    metrics_allow_from: list[str] = Field(default_factory=lambda: ["127.0.0.1/8", "::1/128"])

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
    # Akubela residence id -> the Tuya room of that flat, so a task made from a repair
    # starts with its room chosen.
    tuya_room_of_residence: dict[str, str] = Field(
        default_factory=lambda: dict(DEMO_TUYA_ROOM_OF_RESIDENCE)
    )

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
    # The demo's local Bot API: seconds a button press can be answered, and Telegram's flood
    # control (about 1 message a second per chat, 20 a minute per group, 30 a second overall).
    demo_answer_window_seconds: float = Field(default=15.0, gt=0)
    demo_flood_control: bool = True

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

    @field_validator("metrics_allow_from")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as exc:
                raise ValueError(f"METRICS_ALLOW_FROM: {network!r} is not a network") from exc
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
    def _refuse_unsafe_combinations(self) -> Self:
        if len(self.secret_key.get_secret_value()) < 32:
            raise ValueError("SECRET_KEY must be at least 32 characters")
        if self.run_mode == "webhook" and self.webhook_secret is None:
            raise ValueError("webhook mode needs WEBHOOK_SECRET, which Telegram echoes back")
        if self.cluster and self.run_mode != "webhook":
            raise ValueError(
                "CLUSTER=true needs RUN_MODE=webhook: a load balancer hands webhooks to any "
                "process, while Telegram lets only one process poll"
            )
        if self.cluster and not self.database_url.startswith("postgresql"):
            raise ValueError(
                "CLUSTER=true needs PostgreSQL (DATABASE_URL=postgresql+asyncpg://...): the "
                "processes share updates and locks through it, and SQLite is one file on one "
                "machine with one writer at a time"
            )
        if self.is_demo:
            return self
        # The demo key is public: tokens encrypted with it are as good as plain text. The demo
        # vendor values point at the sandbox or are public, so none of them may go live.
        left = [name.upper() for name in self.demo_values_left()]
        if left:
            raise ValueError(
                "TELEGRAM_BASE_URL is not the demo's local Bot API, yet these settings still "
                "have their public demo values: " + ", ".join(left) + ". Set each one to your "
                "own in the environment or .env (see docs/deployment.md)."
            )
        if not is_public_host(urlsplit(self.public_base_url).hostname):
            raise ValueError(
                "PUBLIC_BASE_URL must name a host Telegram and people's browsers can reach: "
                "Telegram refuses buttons that link to localhost or a private address, and the "
                "login button links there"
            )
        if self.run_mode == "webhook" and urlsplit(self.public_base_url).scheme != "https":
            raise ValueError(
                "webhook mode needs PUBLIC_BASE_URL to start with https://: Telegram delivers "
                "webhooks over HTTPS only"
            )
        return self

    def demo_values_left(self) -> list[str]:
        """The settings (SECRET_KEY and the vendors') that still hold their demo default."""
        names = ["secret_key", *VENDOR_DEMO_SETTINGS]
        fields = type(self).model_fields
        return [
            name
            for name in names
            if _plain(getattr(self, name)) == _plain(fields[name].get_default())
        ]

    @property
    def is_demo(self) -> bool:
        """Whether this is the demo: the bot talks to the local Bot API on loopback."""
        return is_local_bot_api(self.telegram_base_url, self.telegram_bot_token.get_secret_value())

    @property
    def uses_real_telegram(self) -> bool:
        """Whether the bot talks to a real Bot API server rather than the demo's local one."""
        return not self.is_demo

    @cached_property
    def zone(self) -> ZoneInfo:
        """The community's time zone."""
        return ZoneInfo(self.timezone)
