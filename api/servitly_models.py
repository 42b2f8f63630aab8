"""Servitly request and response models: ms timestamps as aware UTC datetimes, ids as strings.

Shapes follow Servitly's published API reference: the login answer (`token`,
`tokenExpirationTimestamp`, `refreshToken`, `userId`, `tenantId`), historical events (report,
update, Spring-style pages), alert definitions, and the deprecated maintenance works of
`vendor-apis/servitly-maintenance-works.en.txt`. Credentials are `SecretStr`: they show as
`**********` in a repr and are revealed only when a request body is serialised.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import Field, SecretStr, field_serializer, model_validator

from api.base import VendorModel
from api.times import EpochMillis

# Servitly's event severities (the `eventSeverity` integer of events and alert definitions).
SEVERITY_FAILURE = 1
SEVERITY_MAJOR_ANOMALY = 2
SEVERITY_MINOR_ANOMALY = 3
SEVERITY_OPERATION = 4
SEVERITY_MAINTENANCE = 5


def _reveal(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


class ErrorBody(VendorModel):
    """Every Servitly failure body: `{"message": ...}`."""

    message: str | None = None


# --- authentication -------------------------------------------------------------------------


class PatLoginRequest(VendorModel):
    """Body of `POST /identity/users/patLogin`."""

    api_key: SecretStr = Field(alias="apiKey")
    pat: SecretStr

    @field_serializer("api_key", "pat")
    def _dump_secret(self, value: SecretStr) -> str | None:
        return _reveal(value)


class PasswordLoginRequest(VendorModel):
    """Body of `POST /identity/users/login?apiKey=...` (the API key travels in the query)."""

    email: str
    password: SecretStr

    @field_serializer("password")
    def _dump_secret(self, value: SecretStr) -> str | None:
        return _reveal(value)


class RenewTokenRequest(VendorModel):
    """Body of `POST /identity/users/me/renewToken`."""

    refresh_token: SecretStr = Field(alias="refreshToken")
    user_id: str | None = Field(default=None, alias="userId")
    tenant_id: str | None = Field(default=None, alias="tenantId")

    @field_serializer("refresh_token")
    def _dump_secret(self, value: SecretStr) -> str | None:
        return _reveal(value)


class AuthToken(VendorModel):
    """The answer of every login and of a renewal: a JWT and what renews it."""

    token: SecretStr
    token_expiration_timestamp: EpochMillis | None = Field(
        default=None, alias="tokenExpirationTimestamp"
    )
    refresh_token: SecretStr | None = Field(default=None, alias="refreshToken")
    user_id: str | None = Field(default=None, alias="userId")
    tenant_id: str | None = Field(default=None, alias="tenantId")

    @field_serializer("token", "refresh_token")
    def _dump_secret(self, value: SecretStr | None) -> str | None:
        return _reveal(value)


# --- historical events ----------------------------------------------------------------------


class HistoricalEventWrite(VendorModel):
    """Body of `POST /inventory/historicalEvents` and `PUT /inventory/historicalEvents/{id}`.

    Servitly takes no severity here: an event's severity is its alert definition's
    `eventSeverity`, so a maintenance record names the severity-5 MAINTENANCE definition.
    `properties` is not in the event reference; it is sent only when given.
    """

    alert_definition_id: str = Field(alias="alertDefinitionId", min_length=1)
    start_timestamp: EpochMillis = Field(alias="startTimestamp")
    end_timestamp: EpochMillis | None = Field(default=None, alias="endTimestamp")
    thing_id: str | None = Field(default=None, alias="thingId")
    location_id: str | None = Field(default=None, alias="locationId")
    notes: str | None = None
    properties: dict[str, str] | None = None

    @model_validator(mode="after")
    def _has_target(self) -> Self:
        if not self.thing_id and not self.location_id:
            raise ValueError("an event needs a thingId or a locationId")
        if self.end_timestamp is not None and self.end_timestamp < self.start_timestamp:
            raise ValueError("endTimestamp is before startTimestamp")
        return self

    def body(self) -> dict[str, Any]:
        """The JSON body Servitly expects, without absent fields."""
        return self.model_dump(by_alias=True, exclude_none=True)


class HistoricalEvent(VendorModel):
    """A historical event as Servitly returns it (created, or in a page)."""

    id: str
    alert_definition_id: str | None = Field(default=None, alias="alertDefinitionId")
    name: str | None = None
    title: str | None = None
    description: str | None = None
    technical_description: str | None = Field(default=None, alias="technicalDescription")
    start_timestamp: EpochMillis | None = Field(default=None, alias="startTimestamp")
    end_timestamp: EpochMillis | None = Field(default=None, alias="endTimestamp")
    # Kept as a plain int: a severity Servitly adds later is kept, not rejected.
    event_severity: int | None = Field(default=None, alias="eventSeverity")
    customer_id: str | None = Field(default=None, alias="customerId")
    location_id: str | None = Field(default=None, alias="locationId")
    thing_id: str | None = Field(default=None, alias="thingId")
    notes: str | None = None
    properties: dict[str, Any] | None = None

    @property
    def is_maintenance(self) -> bool:
        """Whether this is a MAINTENANCE (severity 5) event."""
        return self.event_severity == SEVERITY_MAINTENANCE


class HistoricalEventFilter(VendorModel):
    """Query conditions of `GET /v2/identity/users/me/historicalEvents`."""

    customer_id: str | None = Field(default=None, alias="customerId")
    location_id: str | None = Field(default=None, alias="locationId")
    thing_id: str | None = Field(default=None, alias="thingId")
    event_severity: int | None = Field(default=None, alias="eventSeverity")
    # Servitly's condition syntax, e.g. "in;HEALTH,MAINTENANCE".
    topics: str | None = None
    min_start_timestamp: EpochMillis | None = Field(default=None, alias="minStartTimestamp")
    max_start_timestamp: EpochMillis | None = Field(default=None, alias="maxStartTimestamp")
    sort: str | None = None

    def params(self) -> dict[str, str]:
        """The filter as query parameters, without absent conditions."""
        dumped = self.model_dump(by_alias=True, exclude_none=True, mode="json")
        return {key: str(value) for key, value in dumped.items()}


class HistoricalEventPage(VendorModel):
    """One Spring-style page of historical events (`number` is zero-based)."""

    content: list[HistoricalEvent] = Field(default_factory=list)
    first: bool | None = None
    last: bool | None = None
    total_pages: int | None = Field(default=None, alias="totalPages")
    total_elements: int | None = Field(default=None, alias="totalElements")
    # A string in Servitly's reference, an object in stock Spring: either is kept.
    sort: Any = None
    number_of_elements: int | None = Field(default=None, alias="numberOfElements")
    size: int | None = None
    number: int | None = None

    @property
    def is_last(self) -> bool:
        """Whether no page follows, using whichever of Spring's hints the vendor sent."""
        if self.last is not None:
            return self.last
        if self.total_pages is not None and self.number is not None:
            return self.number + 1 >= self.total_pages
        return not self.content


# --- alert definitions ----------------------------------------------------------------------


class AlertDefinition(VendorModel):
    """An alert (event) definition of a thing definition."""

    id: str
    name: str | None = None
    title: str | None = None
    description: str | None = None
    technical_description: str | None = Field(default=None, alias="technicalDescription")
    # WARNING / CRITICAL / INFORMATIONAL, FAILURE / ANOMALY / INFORMATION; unknown values kept.
    severity: str | None = None
    category: str | None = None
    event_severity: int | None = Field(default=None, alias="eventSeverity")
    active_condition_predicate: str | None = Field(default=None, alias="activeConditionPredicate")
    active_condition_value: str | None = Field(default=None, alias="activeConditionValue")
    clear_condition_predicate: str | None = Field(default=None, alias="clearConditionPredicate")
    clear_condition_value: str | None = Field(default=None, alias="clearConditionValue")

    @property
    def is_maintenance(self) -> bool:
        """Whether events of this definition are MAINTENANCE (severity 5) events."""
        return self.event_severity == SEVERITY_MAINTENANCE


# --- deprecated maintenance works -----------------------------------------------------------


class _MaintenanceWorkFields(VendorModel):
    """The fields a maintenance work has both in the request and in the answer."""

    start_timestamp: EpochMillis | None = Field(default=None, alias="startTimestamp")
    end_timestamp: EpochMillis | None = Field(default=None, alias="endTimestamp")
    type: str | None = None
    description: str | None = None
    outcome: str | None = None
    user_email: str | None = Field(default=None, alias="userEmail")
    thing_id: str | None = Field(default=None, alias="thingId")
    location_id: str | None = Field(default=None, alias="locationId")


class MaintenanceWorkWrite(_MaintenanceWorkFields):
    """Body of the deprecated `POST /inventory/maintenanceWorks`, field for field."""

    properties: dict[str, str] | None = None

    def body(self) -> dict[str, Any]:
        """The JSON body as the doc shows it, without absent fields."""
        return self.model_dump(by_alias=True, exclude_none=True)


class MaintenanceWork(_MaintenanceWorkFields):
    """A maintenance work as the deprecated endpoint returns it (201)."""

    id: str | None = None
    properties: dict[str, Any] | None = None
