"""The API's request and response models: they validate requests and generate the OpenAPI doc."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from exporter.config.settings import AlertSeverity, Body, Whole
from exporter.core.records import KEY_PATTERN

Count = Field(default=None, ge=0, le=2**62)


def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class _Report(Body):
    integrationid: str = Field("", description="The integration's own id of the run (≤64).")
    logtext: str = Field("", description="Text describing the status (≤256).")
    errormsg: str = Field("", description="Error message (≤1024).")


class BatchCreate(_Report):
    """Start (or report at once) one run of a multi-step flow."""

    logstatus: str = Field("running", description="Built-in or configured status.")
    starttime: datetime | None = Field(None, description="Default: now.")
    endtime: datetime | None = Field(None, description="Default: now unless running.")
    no_created: Whole = Field(0, ge=0, le=2**62)
    no_updated: Whole = Field(0, ge=0, le=2**62)
    no_deleted: Whole = Field(0, ge=0, le=2**62)

    _tz = field_validator("starttime", "endtime")(_utc)


class BatchUpdate(Body):
    """Finish or update a batch; omitted fields stay as they are."""

    logstatus: str = Field("ok", description="Built-in or configured status.")
    integrationid: str | None = None
    logtext: str | None = None
    errormsg: str | None = None
    endtime: datetime | None = Field(None, description="Default: now unless running.")
    no_created: Whole | None = Count
    no_updated: Whole | None = Count
    no_deleted: Whole | None = Count

    _tz = field_validator("endtime")(_utc)


class BatchLogCreate(_Report):
    """One message in the batch of the URL (the batch knows its monitor)."""

    logstatus: str = Field("ok", description="Built-in or configured status.")
    message: str = Field("", description="The message (≤1024).")


class LogCreate(BatchLogCreate):
    """One message, optionally inside a batch."""

    batch_id: Whole | None = Field(
        None, ge=1, le=2**63 - 1, description="The batch this log belongs to."
    )


class EvaluateBody(Body):
    integration_key: str | None = Field(None, description="Only this monitor; default: all.")


# -- responses (documentation and contract tests) --------------------------------------------


class RunOut(BaseModel):
    kind: Literal["batch", "log"]
    id: int
    logstatus: str
    starttime: str
    endtime: str | None
    duration: float | None
    no_created: int
    no_updated: int
    no_deleted: int


class ExpectedRunOut(BaseModel):
    """The next run a schedule expects: due at its scheduled time, late after the deadline."""

    due: str = Field(description="The scheduled time (ISO 8601, UTC).")
    deadline: str = Field(description="due + grace: no run started by then is an error.")


class MonitorOut(BaseModel):
    integration_key: str = Field(pattern=KEY_PATTERN, max_length=32)
    name: str
    type: Literal["batch", "message"]
    active: bool
    alert_interval: int
    alert_no_creates_deceeds: int
    alert_no_updates_deceeds: int
    alert_no_deletes_deceeds: int
    schedule: str
    timezone: str
    grace: int
    max_runtime: int
    team: str
    severity: AlertSeverity
    duration_histogram: bool | None
    schedule_description: str | None = Field(
        description="The schedule in words, with its zone; null without a schedule."
    )
    expected_run: ExpectedRunOut | None = Field(
        description="The first scheduled run after the latest start; null without a schedule."
    )
    alertstatus: Literal["notcalculated", "ok", "error"]
    alerttext: str
    alert_timestamp: str | None
    created_at: str
    updated_at: str
    last_run: RunOut | None = None


class MonitorList(BaseModel):
    items: list[MonitorOut]


class BatchOut(BaseModel):
    id: int
    integration_key: str
    logstatus: str
    integrationid: str
    starttime: str
    endtime: str | None
    duration: float | None
    no_created: int
    no_updated: int
    no_deleted: int
    logtext: str
    errormsg: str
    created_at: str
    updated_at: str


class LogOut(BaseModel):
    id: int
    integration_key: str
    batch_id: int | None
    logstatus: str
    integrationid: str
    logtext: str
    errormsg: str
    message: str
    created_at: str


class BatchStored(BaseModel):
    batch: BatchOut
    truncated: list[str]


class BatchWithLogs(BaseModel):
    batch: BatchOut
    logs: list[LogOut]


class LogStored(BaseModel):
    log: LogOut
    truncated: list[str]


class BatchPage(BaseModel):
    items: list[BatchOut]
    next_cursor: str | None


class LogPage(BaseModel):
    items: list[LogOut]
    next_cursor: str | None


class TransitionOut(BaseModel):
    old_status: str
    new_status: str
    reason: str
    at: str


class TransitionList(BaseModel):
    items: list[TransitionOut]


class EvaluationOut(BaseModel):
    integration_key: str
    alertstatus: Literal["notcalculated", "ok", "error"]
    alerttext: str
    alert_timestamp: str | None
    reasons: list[str]


class EvaluationList(BaseModel):
    items: list[EvaluationOut]


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None


class ErrorOut(BaseModel):
    error: ErrorDetail
