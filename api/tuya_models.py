"""Tuya osaas models: maintenance tasks, workers, rooms, devices, tokens and the envelope.

They accept what Tuya actually sends, including its own documentation's inconsistencies: the
task status arrives as `maintenance_status` (list example), `construction_status` (detail
example) or, in the tables, with a stray space (`construction_ status`), and lands in one
`status` field; unknown statuses are kept as plain strings; ids are opaque strings (the doc
masks them with `******`, real ones may come as numbers); `code`/`msg` are absent on success.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import AliasChoices, ConfigDict, Field, SecretStr

from api.base import VendorModel
from api.times import EpochMillis


class TaskStatus(StrEnum):
    """The documented task states; a task may carry any other string too."""

    PENDING_MAINTENANCE = "PENDING_MAINTENANCE"
    IN_MAINTENANCE = "IN_MAINTENANCE"
    PENDING_ACCEPTANCE = "PENDING_ACCEPTANCE"
    ACCEPTANCE_COMPLETE = "ACCEPTANCE_COMPLETE"


KNOWN_STATUSES = frozenset(TaskStatus)

# Every spelling of the status key the doc uses, tables and examples alike.
_STATUS_KEYS = AliasChoices(
    "status",
    "maintenance_status",
    "construction_status",
    "maintenance_ status",
    "construction_ status",
)


class TuyaModel(VendorModel):
    """Base of the Tuya models: numeric ids are read as the opaque strings they are."""

    model_config = ConfigDict(coerce_numbers_to_str=True)


class TuyaEnvelope(TuyaModel):
    """Every Tuya answer: `success`, `result`, `t`, and `code`/`msg` only on failure."""

    success: bool
    result: Any = None
    t: EpochMillis | None = None
    code: int | str | None = None
    msg: str | None = None
    tid: str | None = None


class TokenResult(TuyaModel):
    """The `result` of `GET /v1.0/token` and `GET /v1.0/token/{refresh_token}`."""

    access_token: SecretStr
    refresh_token: SecretStr
    expire_time: int = Field(description="Seconds the access token lives (7200).")
    uid: str = ""


class RoomDeviceRelation(TuyaModel):
    """One room of a task and the devices in it to look at."""

    room_id: str
    device_ids: list[str] = Field(default_factory=list)


class CreateTaskRequest(TuyaModel):
    """Body of `POST /v1.0/osaas/projects/{project_id}/maintenance/task`."""

    worker_id: str
    room_device_relations: list[RoomDeviceRelation]


class TaskSummary(TuyaModel):
    """One task as the task list shows it."""

    task_id: str
    status: str = Field(default="", validation_alias=_STATUS_KEYS)
    worker_username: str = ""
    worker_nickname: str = ""
    gmt_create: EpochMillis | None = None

    @property
    def known_status(self) -> TaskStatus | None:
        """The status as a constant, or None when Tuya sent one this code does not know."""
        return TaskStatus(self.status) if self.status in KNOWN_STATUSES else None


class TaskDetail(TaskSummary):
    """One task with the rooms and devices it covers."""

    room_device_relations: list[RoomDeviceRelation] = Field(default_factory=list)


class TaskPage(TuyaModel):
    """One page of `GET .../maintenance/tasks`."""

    total: int = 0
    page_no: int = 1
    page_size: int = 20
    tasks: list[TaskSummary] = Field(default_factory=list)


class Worker(TuyaModel):
    """A construction worker who can be given maintenance tasks."""

    worker_id: str = Field(validation_alias=AliasChoices("worker_id", "id"))
    username: str = ""
    nickname: str = ""


class WorkerPage(TuyaModel):
    """One page of `GET /v1.0/osaas/construction/workers`."""

    total: int = 0
    page_no: int = 1
    page_size: int = 20
    # Tuya's table calls the list `tasks`; its example (and the sandbox) says `workers`.
    workers: list[Worker] = Field(
        default_factory=list, validation_alias=AliasChoices("workers", "tasks", "list")
    )


class Room(TuyaModel):
    """A room (a flat or a common area) of the project."""

    room_id: str = Field(validation_alias=AliasChoices("room_id", "id"))
    room_name: str = ""
    room_no: str = ""
    description: str = ""
    construction_status: str | None = None
    gmt_create: EpochMillis | None = None
    gmt_modified: EpochMillis | None = None


class RoomPage(TuyaModel):
    """One page of `GET /v1.0/osaas/projects/{project_id}/rooms`."""

    total: int = 0
    page_no: int = 1
    page_size: int = 20
    rooms: list[Room] = Field(default_factory=list, validation_alias=AliasChoices("rooms", "list"))


class Device(TuyaModel):
    """A device in a room."""

    device_id: str = Field(validation_alias=AliasChoices("device_id", "id"))
    name: str = Field(default="", validation_alias=AliasChoices("name", "device_name"))
    category: str = ""
    product_id: str = ""
    online: bool | None = None
