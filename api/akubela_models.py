"""Akubela request and response models, tolerant of what the vendor docs actually show.

Shapes the docs leave out and Concierge defines (the sandbox serves exactly these):

* `get_family_list` (user): `result` is a list of `Family`
  (`residence_id`, `family_name`, `building_name`, `room_name`, `project_id`).
* `get_account_info` (user): `result` is an `Account` (`account_id`, `email`, `name`, `phone`).
* manager `get_maintenance_list`: `result` is a `ManagerMaintenancePage`
  (`total`, `page_index` counted from 1, `page_size`, `list` of repairs that also carry
  `residence_id`, `family_name` and `building_name`). Akubela's public V4 pages show the
  result as a bare array of those repairs instead; that is accepted too (no total then).
* a failure: `{"success": false, "timestamp": ..., "code": "<short_snake_code>",
  "message": "<human text>"}`; clients also read `msg`, `error_description`, `error`,
  `result.message` and `result.msg`, numeric codes and bodiless answers (the documents'
  failure page is missing: `api.akubela` says how each plausible shape is read).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator

from api.base import VendorModel
from api.times import TimeOfDay, UtcDateTime


def _opaque_id(value: Any) -> Any:
    # Ids are opaque: a vendor that sends a number still means a string key.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _none_to_empty_text(value: Any) -> Any:
    return "" if value is None else value


def _none_to_empty_list(value: Any) -> Any:
    if value is None:
        return []
    # A single picture URL sent bare rather than in a list is still one picture.
    return [value] if isinstance(value, str) else value


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


OpaqueId = Annotated[str, BeforeValidator(_opaque_id)]
Text = Annotated[str, BeforeValidator(_none_to_empty_text)]
# An absent time may arrive as null or as an empty string.
MaybeTime = Annotated[UtcDateTime | None, BeforeValidator(_blank_to_none)]


class MaintenanceState(StrEnum):
    """Repair states the docs name; a `Maintenance.state` may hold others too."""

    WAIT_FOR_CONFIRMATION = "wait for confirmation"
    IN_PROGRESS = "in progress"
    COMPLETED = "completed"
    CLOSED = "closed"


class BookingState(StrEnum):
    """Booking states the docs name; a `Booking.state` may hold others too."""

    PENDING = "pending"
    REJECTED = "rejected"
    CANCELED = "canceled"
    SUCCESS = "success"


class Scope(StrEnum):
    """OAuth2 scopes: residents use `user` commands, a property manager `manager` commands."""

    USER = "user"
    MANAGER = "manager"


# ---- responses -----------------------------------------------------------------------------


class Maintenance(VendorModel):
    """A repair request; `get_maintenance_info` sends no id, so the client fills it in."""

    maintenance_id: OpaqueId = ""
    start_time: MaybeTime = None
    finish_time: MaybeTime = None
    description: Text = ""
    contact: Text = ""
    maintenance_picture_url: Annotated[list[str], BeforeValidator(_none_to_empty_list)] = Field(
        default_factory=list
    )
    feedback: Text = ""
    state: Text = ""
    created_time: MaybeTime = None


class ManagerMaintenance(Maintenance):
    """A repair as the manager list shows it: with the residence it belongs to."""

    residence_id: OpaqueId = ""
    family_name: Text = ""
    building_name: Text = ""


class ManagerMaintenancePage(VendorModel):
    """One page of a project's repairs (manager `get_maintenance_list`): a page object, or
    the bare array of repairs the V4 pages show (whose `total` is then unknown: None)."""

    total: int | None = 0
    page_index: int = 1
    page_size: int = 0
    items: Annotated[list[ManagerMaintenance], BeforeValidator(_none_to_empty_list)] = Field(
        default_factory=list, alias="list"
    )

    @model_validator(mode="before")
    @classmethod
    def _bare_array(cls, value: Any) -> Any:
        if isinstance(value, list):
            return {"list": value, "total": None}
        return value


class Amenity(VendorModel):
    """A bookable shared facility."""

    amenity_id: OpaqueId
    amenity_name: Text = ""
    amenity_picture_url: Text = ""
    amenity_description: Text = ""


class Booking(VendorModel):
    """An amenity booking; `get_booking_info` sends no id, so the client fills it in."""

    booking_id: OpaqueId = ""
    amenity_id: OpaqueId = ""
    amenity_name: Text = ""
    amenity_picture_url: Text = ""
    amenity_description: Text = ""
    building_name: Text = ""
    family_name: Text = ""
    start_time: MaybeTime = None
    finish_time: MaybeTime = None
    state: Text = ""
    is_expired: bool = False
    pin_code: Text = ""
    qr_code_url: Text = ""
    created_time: MaybeTime = None


class BookingTime(VendorModel):
    """An interval of one day as bare UTC `HH:MM` times of day."""

    start_time: TimeOfDay
    finish_time: TimeOfDay


class BookingTimeList(VendorModel):
    """The opening window of one day and the intervals inside it that cannot be booked."""

    allowed_booking_time: BookingTime | None = None
    disallowed_booking_time: Annotated[list[BookingTime], BeforeValidator(_none_to_empty_list)] = (
        Field(default_factory=list)
    )


class Family(VendorModel):
    """One residence the signed-in resident belongs to (`get_family_list`)."""

    residence_id: OpaqueId
    family_name: Text = ""
    building_name: Text = ""
    room_name: Text = ""
    project_id: OpaqueId = ""


class Account(VendorModel):
    """The signed-in resident (`get_account_info`)."""

    account_id: OpaqueId
    email: Text = ""
    name: Text = ""
    phone: Text = ""


class CreatedMaintenance(VendorModel):
    """A create result: the zh tables document no field, so the id may be missing."""

    maintenance_id: OpaqueId | None = None


class CreatedBooking(VendorModel):
    """A create result: the zh tables document no field, so the id may be missing."""

    booking_id: OpaqueId | None = None


class TokenSet(VendorModel):
    """OAuth2 tokens with the moment the access token stops working."""

    access_token: SecretStr
    refresh_token: SecretStr | None = None
    token_type: str = "Bearer"  # noqa: S105 - the scheme name, not a credential
    scope: str | None = None
    expires_at: UtcDateTime

    @classmethod
    def from_result(cls, result: dict[str, Any], *, received_at: datetime) -> TokenSet:
        """Builds tokens from a token endpoint `result`, dating expiry from receipt."""
        expires_in = result.get("expires_in")
        try:
            seconds = float(expires_in) if expires_in is not None else 0.0
        except (TypeError, ValueError):
            seconds = 0.0
        return cls.model_validate(
            {
                "access_token": result.get("access_token"),
                "refresh_token": result.get("refresh_token") or None,
                "token_type": str(result.get("token_type") or "Bearer"),
                "scope": result.get("scope") or None,
                "expires_at": received_at.astimezone(UTC) + timedelta(seconds=seconds),
            }
        )

    @field_validator("access_token")
    @classmethod
    def _not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("empty access token")
        return value


# ---- requests (the `param` of a command) -----------------------------------------------------


class CommandParam(VendorModel):
    """Base of every command `param`; dumped without unset optional fields."""

    def to_param(self) -> dict[str, Any]:
        """The JSON `param` object the command sends."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ResidenceParam(CommandParam):
    """`param` of the list commands: one residence."""

    residence_id: OpaqueId


class MaintenanceParam(ResidenceParam):
    """`param` naming one repair."""

    maintenance_id: OpaqueId


class NewMaintenance(ResidenceParam):
    """`param` of `create_maintenance_info`: the window a technician may come, in UTC."""

    start_time: UtcDateTime
    finish_time: UtcDateTime
    description: str
    contact: str
    filename: list[str] | None = None


class MaintenanceKey(VendorModel):
    """One entry of a batch delete."""

    maintenance_id: OpaqueId


class BatchDeleteMaintenance(ResidenceParam):
    """`param` of `batch_delete_maintenance_info`."""

    maintenances: list[MaintenanceKey]


class BookingParam(ResidenceParam):
    """`param` naming one booking."""

    booking_id: OpaqueId


class BookingTimeQuery(ResidenceParam):
    """`param` of `get_booking_time_list`: one amenity on one `YYYY-MM-DD` date."""

    amenity_id: OpaqueId
    date: date


class NewBooking(ResidenceParam):
    """`param` of `create_booking_info`: a UTC start and a duration in minutes."""

    amenity_id: OpaqueId
    start_time: UtcDateTime
    duration: int = Field(gt=0)


class CodeBooking(ResidenceParam):
    """`param` of `create_code_booking_info`."""

    booking_code: str


class BookingKey(VendorModel):
    """One entry of a batch delete."""

    booking_id: OpaqueId


class BatchDeleteBooking(ResidenceParam):
    """`param` of `batch_delete_booking_info`."""

    bookings: list[BookingKey]


class NoParam(CommandParam):
    """`param` of commands that need none (`get_family_list`, `get_account_info`)."""


class ManagerMaintenanceQuery(CommandParam):
    """`param` of manager `get_maintenance_list`; pages are counted from 1."""

    project_id: OpaqueId
    page_size: int = Field(gt=0)
    page_index: int = Field(ge=1)


class Command(VendorModel):
    """The body of every command call."""

    command: str
    id: str
    param: dict[str, Any] = Field(default_factory=dict)
