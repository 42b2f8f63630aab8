"""Every Akubela doc example parses, every request model serialises to the doc's `param`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from api.akubela_models import (
    Account,
    Amenity,
    BatchDeleteBooking,
    BatchDeleteMaintenance,
    Booking,
    BookingParam,
    BookingState,
    BookingTimeList,
    BookingTimeQuery,
    CodeBooking,
    CommandParam,
    CreatedBooking,
    CreatedMaintenance,
    Family,
    Maintenance,
    MaintenanceParam,
    MaintenanceState,
    ManagerMaintenancePage,
    ManagerMaintenanceQuery,
    NewBooking,
    NewMaintenance,
    ResidenceParam,
    TokenSet,
)
from api.base import VendorModel

FIXTURES = Path(__file__).parent.parent / "fixtures" / "akubela"

# The model each command's `result` parses into (None: the result carries nothing).
RESULTS: dict[str, tuple[type[VendorModel] | None, bool]] = {
    "get_maintenance_list": (Maintenance, True),
    "get_maintenance_info": (Maintenance, False),
    "create_maintenance_info": (CreatedMaintenance, False),
    "delete_maintenance_info": (None, False),
    "batch_delete_maintenance_info": (None, False),
    "get_booking_list": (Booking, True),
    "get_booking_info": (Booking, False),
    "get_booking_amenity_list": (Amenity, True),
    "get_booking_time_list": (BookingTimeList, False),
    "create_booking_info": (CreatedBooking, False),
    "create_code_booking_info": (CreatedBooking, False),
    "delete_booking_info": (None, False),
    "batch_delete_booking_info": (None, False),
}

PARAMS: dict[str, type[CommandParam]] = {
    "get_maintenance_list": ResidenceParam,
    "get_maintenance_info": MaintenanceParam,
    "create_maintenance_info": NewMaintenance,
    "delete_maintenance_info": MaintenanceParam,
    "batch_delete_maintenance_info": BatchDeleteMaintenance,
    "get_booking_list": ResidenceParam,
    "get_booking_info": BookingParam,
    "get_booking_amenity_list": ResidenceParam,
    "get_booking_time_list": BookingTimeQuery,
    "create_booking_info": NewBooking,
    "create_code_booking_info": CodeBooking,
    "delete_booking_info": BookingParam,
    "batch_delete_booking_info": BatchDeleteBooking,
}


def load(name: str) -> Any:
    """Reads one fixture file."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def doc_fixtures(kind: str) -> list[str]:
    """Names of the doc examples of one kind (`request` or `response`)."""
    return sorted(p.name for p in FIXTURES.glob(f"*.{kind}*.json"))


def test_every_documented_command_has_both_examples() -> None:
    commands = {name.split(".")[0] for name in doc_fixtures("request")}
    assert commands == set(RESULTS)
    assert {name.split(".")[0] for name in doc_fixtures("response")} == set(RESULTS)


@pytest.mark.parametrize("name", doc_fixtures("response"))
def test_doc_response_parses(name: str) -> None:
    envelope = load(name)
    assert envelope["success"] is True
    model, many = RESULTS[name.split(".")[0]]
    result = envelope["result"]
    if model is None:
        assert result == {}
    elif many:
        items = [model.model_validate(item) for item in result]
        assert items
        # Every documented field is read, none left at its default.
        assert items[0].model_dump(exclude_unset=True).keys() >= set(result[0])
    else:
        parsed = model.model_validate(result)
        assert parsed.model_dump(exclude_unset=True).keys() >= set(result)


@pytest.mark.parametrize("name", doc_fixtures("request"))
def test_doc_request_param_round_trips(name: str) -> None:
    body = load(name)
    assert set(body) == {"command", "id", "param"}
    param_model = PARAMS[body["command"]]
    assert param_model.model_validate(body["param"]).to_param() == body["param"]


def test_doc_times_are_aware_utc() -> None:
    repair = Maintenance.model_validate(load("get_maintenance_list.response.json")["result"][0])
    assert repair.start_time == datetime(2024, 1, 16, 13, 32, 45, tzinfo=UTC)
    assert repair.state == MaintenanceState.IN_PROGRESS
    times = BookingTimeList.model_validate(load("get_booking_time_list.response.json")["result"])
    assert times.allowed_booking_time is not None
    assert times.allowed_booking_time.start_time == time(8, 0)
    assert [t.finish_time for t in times.disallowed_booking_time] == [time(11, 30), time(23, 0)]


def test_unknown_states_are_kept_as_text() -> None:
    booking = Booking.model_validate({"booking_id": "b1", "state": "waitlisted"})
    assert booking.state == "waitlisted"
    assert booking.state not in set(BookingState)
    repair = Maintenance.model_validate({"state": "on hold"})
    assert repair.state == "on hold"


def test_ids_are_opaque_strings_and_nulls_are_tolerated() -> None:
    repair = Maintenance.model_validate(
        {
            "maintenance_id": 1234,
            "feedback": None,
            "maintenance_picture_url": None,
            "finish_time": "",
        }
    )
    assert repair.maintenance_id == "1234"
    assert repair.feedback == ""
    assert repair.maintenance_picture_url == []
    assert repair.finish_time is None


def test_info_results_without_id_parse() -> None:
    info = load("get_booking_info.response.json")["result"]
    assert "booking_id" not in info
    assert Booking.model_validate(info).booking_id == ""


@pytest.mark.parametrize("result", [{}, {"other": 1}])
def test_create_results_without_id_parse(result: dict[str, Any]) -> None:
    assert CreatedMaintenance.model_validate(result).maintenance_id is None
    assert CreatedBooking.model_validate(result).booking_id is None


def test_designed_shapes_parse() -> None:
    families = [
        Family.model_validate(item)
        for item in load("designed/get_family_list.response.json")["result"]
    ]
    assert families[0].room_name == "1203"
    account = Account.model_validate(load("designed/get_account_info.response.json")["result"])
    assert account.email == "alice@demo.community"
    page = ManagerMaintenancePage.model_validate(
        load("designed/manager_get_maintenance_list.response.json")["result"]
    )
    assert page.total == 1
    assert page.items[0].building_name == "001"
    # Akubela's public V4 pages show the same result as a bare array of repairs.
    bare = ManagerMaintenancePage.model_validate(
        load("designed/manager_get_maintenance_list.response.json")["result"]["list"]
    )
    assert bare.total is None
    assert bare.items == page.items
    assert page.items[0].state == MaintenanceState.WAIT_FOR_CONFIRMATION
    request = load("designed/manager_get_maintenance_list.request.json")
    assert ManagerMaintenanceQuery.model_validate(request["param"]).to_param() == request["param"]


def test_optional_filename_is_left_out_when_absent() -> None:
    param = NewMaintenance(
        residence_id="r1",
        start_time=datetime(2024, 1, 16, 21, 32, 45, tzinfo=UTC),
        finish_time=datetime(2024, 1, 17, 13, 32, 45, tzinfo=UTC),
        description="leak",
        contact="10086",
    ).to_param()
    assert "filename" not in param
    assert param["start_time"] == "2024-01-16 21:32:45"


def test_new_booking_refuses_nonpositive_duration() -> None:
    with pytest.raises(ValidationError):
        NewBooking(
            residence_id="r1",
            amenity_id="a1",
            start_time=datetime(2024, 1, 2, tzinfo=UTC),
            duration=0,
        )


def test_token_set_dates_expiry_from_receipt_and_hides_tokens() -> None:
    received = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    tokens = TokenSet.from_result(
        load("designed/token.response.json")["result"], received_at=received
    )
    assert tokens.expires_at == datetime(2024, 5, 1, 14, 0, tzinfo=UTC)
    assert tokens.scope == "user"
    text = repr(tokens) + str(tokens) + tokens.model_dump_json()
    assert "ac45e846ca23ab42c9ae469d988ae32a9" not in text
    assert "rf45e846ca23ab42c9ae469d988ae32a9" not in text


def test_token_set_refuses_missing_access_token() -> None:
    with pytest.raises(ValidationError):
        TokenSet.from_result({"expires_in": 10}, received_at=datetime(2024, 1, 1, tzinfo=UTC))
