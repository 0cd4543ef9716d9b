"""The API's request and response models: they validate requests and generate the OpenAPI doc."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from exporter.core.records import KEY_PATTERN


def _refuse_flags(kind: str, message: str) -> BeforeValidator:
    """true/false where a number belongs is a mistake: pydantic would take YAML's `yes` as 1."""

    def check(value: Any) -> Any:
        if isinstance(value, bool):
            raise PydanticCustomError(kind, message)
        return value

    return BeforeValidator(check)


def _refuse_numbers(value: Any) -> Any:
    """A number where true/false belongs is a mistake: pydantic would take 0 as false."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise PydanticCustomError("bool_type", "Input should be a valid boolean")
    return value


Whole = Annotated[int, _refuse_flags("int_type", "Input should be a valid integer")]
Number = Annotated[float, _refuse_flags("float_type", "Input should be a valid number")]
Flag = Annotated[bool, BeforeValidator(_refuse_numbers)]

Count = Field(default=None, ge=0, le=2**62)
SETTING_MAX = 2**31 - 1  # minutes or objects: far beyond any real setting, within SQLite


def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MonitorBody(_Body):
    """A monitor's settings (PUT replaces all of them)."""

    name: str = Field(min_length=1, max_length=32, description="Display name.")
    type: Literal["batch", "message"] = Field("batch", description="batch or message.")
    active: Flag = Field(True, description="Inactive monitors are not evaluated.")
    alert_interval: Whole = Field(
        0, ge=0, le=SETTING_MAX, description="Minutes without a run before error; 0: off."
    )
    alert_no_creates_deceeds: Whole = Field(
        0, ge=0, le=SETTING_MAX, description="Minimum created; 0: off."
    )
    alert_no_updates_deceeds: Whole = Field(
        0, ge=0, le=SETTING_MAX, description="Minimum updated; 0: off."
    )
    alert_no_deletes_deceeds: Whole = Field(
        0, ge=0, le=SETTING_MAX, description="Minimum deleted; 0: off."
    )


class MonitorPatch(_Body):
    """Some of a monitor's settings; omitted ones stay as they are."""

    name: str | None = Field(None, min_length=1, max_length=32)
    type: Literal["batch", "message"] | None = None
    active: Flag | None = None
    alert_interval: Whole | None = Field(None, ge=0, le=SETTING_MAX)
    alert_no_creates_deceeds: Whole | None = Field(None, ge=0, le=SETTING_MAX)
    alert_no_updates_deceeds: Whole | None = Field(None, ge=0, le=SETTING_MAX)
    alert_no_deletes_deceeds: Whole | None = Field(None, ge=0, le=SETTING_MAX)


class _Report(_Body):
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


class BatchUpdate(_Body):
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


class EvaluateBody(_Body):
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


class MonitorOut(BaseModel):
    integration_key: str = Field(pattern=KEY_PATTERN, max_length=32)
    name: str
    type: Literal["batch", "message"]
    active: bool
    alert_interval: int
    alert_no_creates_deceeds: int
    alert_no_updates_deceeds: int
    alert_no_deletes_deceeds: int
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
