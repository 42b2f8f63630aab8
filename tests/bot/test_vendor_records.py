"""The adapters read each vendor model, as the vendor documents it, into the community's record."""

from __future__ import annotations

from datetime import UTC, datetime, time

from api.akubela_models import Amenity, Booking, BookingTimeList, Maintenance, ManagerMaintenance
from api.tuya_models import Device, Room, TaskDetail, TaskSummary, Worker
from bot.desks import amenity_of, booking_of, day_times_of, repair_of
from bot.taskboard import device_of, room_of, task_detail_of, task_of, worker_of
from conversations import records
from conversations.records import BookingState, RepairState, TaskState

# The examples of Akubela's maintenance and booking pages and Tuya's task pages.
REPAIR_EXAMPLE = {
    "maintenance_id": "m31adc223cc4b3bedb6bd4742dedcfa52",
    "start_time": "2024-01-16 13:32:45",
    "finish_time": "2024-01-17 13:32:45",
    "description": "test",
    "contact": "10086",
    "maintenance_picture_url": ["https://test.akubela.com/p"],
    "feedback": "test",
    "state": "in progress",
    "created_time": "2024-01-12 13:32:45",
}
BOOKING_EXAMPLE = {
    "booking_id": "bfa332e258aae1badbb27d31128f442d1",
    "amenity_id": "afa332e258aae1badbb27d31128f442dc",
    "amenity_name": "Gym",
    "amenity_picture_url": "https://test.akubela.com/g",
    "amenity_description": "test",
    "building_name": "001",
    "family_name": "home",
    "start_time": "2024-05-02 13:14:15",
    "finish_time": "2024-05-02 15:14:15",
    "state": "pending",
    "is_expired": True,
    "pin_code": "123456",
    "qr_code_url": "https://test.akubela.com/h.png",
    "created_time": "2024-05-01 13:32:45",
}
TASK_DETAIL_EXAMPLE = {
    "task_id": "1306411812723******",
    "worker_username": "test@tuya.com",
    "worker_nickname": "Tom",
    "construction_status": "PENDING_ACCEPTANCE",
    "gmt_create": 1600766546913,
    "room_device_relations": [{"room_id": "145267896505******", "device_ids": ["00122433******"]}],
}


def test_a_residents_repair_becomes_a_repair_record() -> None:
    repair = repair_of(Maintenance.model_validate(REPAIR_EXAMPLE))
    assert repair == records.Repair(
        id="m31adc223cc4b3bedb6bd4742dedcfa52",
        state=RepairState.IN_PROGRESS,
        state_text="in progress",
        description="test",
        contact="10086",
        start=datetime(2024, 1, 16, 13, 32, 45, tzinfo=UTC),
        finish=datetime(2024, 1, 17, 13, 32, 45, tzinfo=UTC),
        created=datetime(2024, 1, 12, 13, 32, 45, tzinfo=UTC),
        feedback="test",
        picture_urls=("https://test.akubela.com/p",),
    )


def test_the_managers_repair_keeps_its_residence_and_every_state_has_one_word() -> None:
    listed = ManagerMaintenance.model_validate(
        REPAIR_EXAMPLE
        | {"residence_id": "r1", "family_name": "Wang Home", "building_name": "Building A"}
    )
    repair = repair_of(listed)
    assert (repair.residence_id, repair.family_name, repair.building_name) == (
        "r1",
        "Wang Home",
        "Building A",
    )
    states = {
        text: repair_of(Maintenance(maintenance_id="m", state=text)).state
        for text in ("wait for confirmation", "In Progress ", "completed", "closed", "on hold")
    }
    assert states == {
        "wait for confirmation": RepairState.WAITING,
        "In Progress ": RepairState.IN_PROGRESS,
        "completed": RepairState.COMPLETED,
        "closed": RepairState.CLOSED,
        "on hold": None,
    }
    assert repair_of(Maintenance(maintenance_id="m", state=" on hold")).state_text == "on hold"


def test_a_booking_becomes_a_booking_record() -> None:
    booking = booking_of(Booking.model_validate(BOOKING_EXAMPLE))
    assert booking == records.Booking(
        id="bfa332e258aae1badbb27d31128f442d1",
        state=BookingState.PENDING,
        state_text="pending",
        amenity_id="afa332e258aae1badbb27d31128f442dc",
        amenity_name="Gym",
        start=datetime(2024, 5, 2, 13, 14, 15, tzinfo=UTC),
        finish=datetime(2024, 5, 2, 15, 14, 15, tzinfo=UTC),
        created=datetime(2024, 5, 1, 13, 32, 45, tzinfo=UTC),
        expired=True,
        pin_code="123456",
        qr_code_url="https://test.akubela.com/h.png",
        family_name="home",
        building_name="001",
    )
    states = [
        booking_of(Booking(booking_id="b", state=text)).state
        for text in ("pending", "success", "rejected", "canceled", "on hold")
    ]
    assert states == [
        BookingState.PENDING,
        BookingState.CONFIRMED,
        BookingState.DECLINED,
        BookingState.CANCELLED,
        None,
    ]


def test_an_amenity_becomes_an_amenity_record() -> None:
    amenity = amenity_of(
        Amenity.model_validate(
            {
                "amenity_id": "afa332e258aae1badbb27d31128f442dc",
                "amenity_name": "Gym",
                "amenity_description": "test",
                "amenity_picture_url": "https://test.akubela.com/g",
            }
        )
    )
    assert amenity == records.Amenity(
        id="afa332e258aae1badbb27d31128f442dc",
        name="Gym",
        description="test",
        picture_url="https://test.akubela.com/g",
    )


def test_a_booking_time_list_becomes_the_days_opening_and_taken_times() -> None:
    day = day_times_of(
        BookingTimeList.model_validate(
            {
                "allowed_booking_time": {"start_time": "08:00", "finish_time": "23:00"},
                "disallowed_booking_time": [
                    {"start_time": "08:30", "finish_time": "11:30"},
                    {"start_time": "21:30", "finish_time": "23:00"},
                ],
            }
        )
    )
    assert day == records.DayTimes(
        opening=records.TimeSpan(time(8), time(23)),
        taken=(
            records.TimeSpan(time(8, 30), time(11, 30)),
            records.TimeSpan(time(21, 30), time(23)),
        ),
    )
    assert day_times_of(BookingTimeList()) == records.DayTimes(opening=None, taken=())


def test_tasks_become_task_records_in_one_vocabulary_of_states() -> None:
    detail = task_detail_of(TaskDetail.model_validate(TASK_DETAIL_EXAMPLE))
    assert detail == records.TaskDetail(
        id="1306411812723******",
        state=TaskState.AWAITING_ACCEPTANCE,
        state_text="PENDING_ACCEPTANCE",
        worker_username="test@tuya.com",
        worker_nickname="Tom",
        created=datetime(2020, 9, 22, 9, 22, 26, 913000, tzinfo=UTC),
        rooms=(records.TaskRoom("145267896505******", ("00122433******",)),),
    )
    listed = {
        "task_id": "1306411812723******",
        "worker_username": "test@tuya.com",
        "worker_nickname": "Tom",
        "maintenance_status": "PENDING_ACCEPTANCE",
        "gmt_create": 1600766546913,
    }
    assert task_of(TaskSummary.model_validate(listed)) == records.Task(
        id=detail.id,
        state=detail.state,
        state_text=detail.state_text,
        worker_username=detail.worker_username,
        worker_nickname=detail.worker_nickname,
        created=detail.created,
    )
    states = [
        task_of(TaskSummary(task_id="t", status=text)).state
        for text in (
            "PENDING_MAINTENANCE",
            "IN_MAINTENANCE",
            "PENDING_ACCEPTANCE",
            "ACCEPTANCE_COMPLETE",
            "PAUSED",
        )
    ]
    assert states == [
        TaskState.NEW,
        TaskState.IN_PROGRESS,
        TaskState.AWAITING_ACCEPTANCE,
        TaskState.ACCEPTED,
        None,
    ]


def test_workers_rooms_and_devices_become_records() -> None:
    worker = Worker.model_validate(
        {"id": 1306411812723001, "username": "tom@x", "nickname": "Tom"}
    )
    assert worker_of(worker) == records.Worker(
        id="1306411812723001", username="tom@x", nickname="Tom"
    )
    room = Room.model_validate(
        {"id": "145267896505", "room_name": "Block A 1201", "room_no": "1201"}
    )
    assert room_of(room) == records.Room(id="145267896505", name="Block A 1201", number="1201")
    device = Device.model_validate({"id": "0012243300b2", "device_name": "Smart door lock"})
    assert device_of(device) == records.Device(id="0012243300b2", name="Smart door lock")
