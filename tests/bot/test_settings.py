"""Settings: every field documented in .env.example, unsafe combinations refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _documented() -> dict[str, str]:
    """Each `NAME=` line of .env.example (commented out or not) with the comment above it."""
    found: dict[str, str] = {}
    comment = ""
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]+)=", line)
        if match:
            found[match.group(1)] = comment
        elif line.startswith("#"):
            comment = line
    return found


def test_every_setting_is_in_env_example_with_a_comment() -> None:
    documented = _documented()
    fields = {name.upper() for name in Settings.model_fields}
    assert fields - set(documented) == set()
    assert set(documented) - fields == set()
    assert all(documented[name] for name in fields)


def test_demo_defaults_need_no_env_file() -> None:
    settings = Settings(_env_file=None)
    assert settings.akubela_base_url.startswith("http://127.0.0.1")
    assert not settings.uses_real_telegram


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"telegram_base_url": "https://api.telegram.org/bot"}, "SECRET_KEY"),
        ({"secret_key": "short"}, "32 characters"),
        ({"metrics_allow_from": ["everyone"]}, "METRICS_ALLOW_FROM"),
        ({"timezone": "Mars/Olympus"}, "time zone"),
        ({"servitly_tenant_header": "X-Other"}, "SERVITLY_TENANT_HEADER"),
        ({"run_mode": "webhook"}, "WEBHOOK_SECRET"),
    ],
)
def test_unsafe_or_wrong_settings_are_refused(overrides: dict[str, str], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        Settings(_env_file=None, **overrides)  # type: ignore[arg-type]


# Every vendor setting whose demo default must not go live, by its environment name, with a
# value of the deployment's own.
OWN_VENDOR_VALUES = {
    "AKUBELA_BASE_URL": "https://open.akubela.example/",
    "AKUBELA_CLIENT_ID": "concierge-garden-court",
    "AKUBELA_CLIENT_SECRET": "akubela-real-secret",
    "AKUBELA_MANAGER_USERNAME": "office@garden-court.example",
    "AKUBELA_MANAGER_PASSWORD": "office-real-password",
    "AKUBELA_PROJECT_ID": "p-garden-court",
    "TUYA_BASE_URL": "https://openapi.tuyacn.com",
    "TUYA_CLIENT_ID": "realtuyaclientid",
    "TUYA_CLIENT_SECRET": "tuya-real-secret",
    "TUYA_PROJECT_ID": "1500000000000001",
    "SERVITLY_BASE_URL": "https://garden.servitly.example/api",
    "SERVITLY_API_KEY": "servitly-real-api-key",
    "SERVITLY_PAT": "servitly-real-pat",
    "SERVITLY_TENANT": "garden-court",
}
PRIVATE_KEY = "a-private-secret-key-of-the-deployment-0123456789"
REAL_TOKEN = "7123456789:AAE9t1Qm3vX0bq5dR8kLp2sYwZ4cHn6jUfG"  # BotFather's shape, made up


def _production(**overrides: str) -> Settings:
    values = {name.lower(): value for name, value in OWN_VENDOR_VALUES.items()}
    values |= {
        "secret_key": PRIVATE_KEY,
        "telegram_base_url": "https://api.telegram.org/bot",
        "public_base_url": "https://concierge.example.org",
    }
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[arg-type]


def test_a_deployment_with_its_own_values_starts() -> None:
    settings = _production()
    assert not settings.is_demo
    assert settings.demo_values_left() == []


@pytest.mark.parametrize(
    "base_url",
    [
        "https://api.telegram.org/bot",
        "https://API.TELEGRAM.ORG/bot",
        "HTTPS://Api.Telegram.Org:443/bot",
        "http://149.154.167.220/bot",
        "http://[2001:67c:4e8:f004::9]/bot",
        "http://10.0.0.7:8081/bot",
        "http://botapi.internal:8081/bot",
        "http://127.0.0.1.nip.io:8080/bot",
        "http://localhost.example.org/bot",
    ],
)
def test_anything_but_the_local_bot_api_refuses_the_demo_values(base_url: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, telegram_base_url=base_url)
    message = str(refused.value)
    # One message names every demo value left, by its environment name.
    for name in ["SECRET_KEY", *OWN_VENDOR_VALUES]:
        assert name in message
    assert refused.value.error_count() == 1


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8080/bot",
        "http://LOCALHOST:8080/bot",
        "http://[::1]:8080/bot",
        "http://127.0.0.2:9000/bot",
    ],
)
def test_the_local_bot_api_on_loopback_is_the_demo(base_url: str) -> None:
    settings = Settings(_env_file=None, telegram_base_url=base_url)
    assert settings.is_demo


def test_a_self_hosted_bot_api_on_loopback_with_a_real_token_is_not_the_demo() -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(
            _env_file=None,
            telegram_base_url="http://127.0.0.1:8081/bot",
            telegram_bot_token=REAL_TOKEN,
        )


@pytest.mark.parametrize("name", ["SECRET_KEY", *OWN_VENDOR_VALUES])
def test_each_demo_value_alone_is_refused_in_any_case(name: str) -> None:
    default = Settings.model_fields[name.lower()].get_default()
    plain = default.get_secret_value() if hasattr(default, "get_secret_value") else str(default)
    for variant in (plain, plain.upper(), plain.title(), plain + "/"):
        with pytest.raises(ValidationError) as refused:
            _production(**{name.lower(): variant})
        named = [
            other for other in ["SECRET_KEY", *OWN_VENDOR_VALUES] if other in str(refused.value)
        ]
        assert named == [name]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8081",
        "https://LOCALHOST:8443",
        "https://10.0.0.5",
        "https://192.168.1.20",
        "https://[::1]:8443",
        "https://[fe80::1]",
        "https://intranet",
    ],
)
def test_outside_the_demo_the_public_url_must_be_reachable_from_telegram(url: str) -> None:
    # Telegram refuses a button whose URL is local, and the login button carries this URL.
    with pytest.raises(ValidationError, match="PUBLIC_BASE_URL"):
        _production(public_base_url=url)


def test_webhook_outside_the_demo_needs_https() -> None:
    with pytest.raises(ValidationError, match="https://"):
        _production(
            run_mode="webhook", webhook_secret="hook-secret", public_base_url="http://x.org"
        )
    settings = _production(
        run_mode="webhook", webhook_secret="hook-secret", public_base_url="https://bot.example.org"
    )
    assert settings.run_mode == "webhook"
