"""Validated monitor settings and value types, shared by the config file and the API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from exporter.core.records import BOTH_CHECKS, DEFAULT_GRACE, DEFAULT_TIMEZONE, TEAM_PATTERN
from exporter.core.reports import without_nul
from exporter.core.schedules import MACROS, ScheduleError, check_schedule, check_timezone


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


def _schedule(value: str) -> str:
    """'' (no schedule), or an expression cron can use, whitespace tidied."""
    if not value.strip():
        return ""
    try:
        return check_schedule(value)
    except ScheduleError as exc:
        raise PydanticCustomError("invalid_schedule", str(exc)) from None


def _timezone(value: str) -> str:
    try:
        return check_timezone(value)
    except ScheduleError as exc:
        raise PydanticCustomError("invalid_timezone", str(exc)) from None


Whole = Annotated[int, _refuse_flags("int_type", "Input should be a valid integer")]
Cron = Annotated[str, Field(max_length=100), AfterValidator(_schedule)]
Zone = Annotated[str, Field(max_length=64), AfterValidator(_timezone)]
Number = Annotated[float, _refuse_flags("float_type", "Input should be a valid number")]
Flag = Annotated[bool, BeforeValidator(_refuse_numbers)]
Team = Annotated[str, Field(max_length=64, pattern=TEAM_PATTERN)]
AlertSeverity = Literal["", "critical", "warning", "info"]

SETTING_MAX = 2**31 - 1  # minutes or objects: far beyond any real setting, within SQLite


class Body(BaseModel):
    """A request body or config section: unknown keys refused, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class MonitorBody(Body):
    """A monitor's settings (PUT replaces all of them)."""

    name: Annotated[str, AfterValidator(without_nul)] = Field(
        min_length=1, max_length=32, description="Display name (NUL becomes U+FFFD)."
    )
    type: Literal["batch", "message"] = Field("batch", description="batch or message.")
    active: Flag = Field(True, description="Inactive monitors are not evaluated.")
    alert_interval: Whole = Field(
        0,
        ge=0,
        le=SETTING_MAX,
        description="Minutes without a run before error; 0: off. Not with a schedule.",
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
    schedule: Cron = Field(
        "",
        description="When runs are expected: a cron expression of five fields (minute hour "
        "day-of-month month day-of-week; ranges, steps, lists, names of days and months) or "
        f"{', '.join(MACROS)}; '' = none. Not with a non-zero alert_interval.",
    )
    timezone: Zone = Field(
        DEFAULT_TIMEZONE, description="IANA time zone the schedule is read in (Europe/Stockholm)."
    )
    grace: Whole = Field(
        DEFAULT_GRACE,
        ge=0,
        le=SETTING_MAX,
        description="Minutes a scheduled run may start late before the monitor is in error.",
    )
    max_runtime: Whole = Field(
        0,
        ge=0,
        le=SETTING_MAX,
        description="Minutes a batch may stay running before the monitor is in error; 0: off.",
    )
    team: Team = Field(
        "",
        description="Who owns the monitor (letters, digits, _ . -; at most 64): the `team` "
        "label of its info series and its alerts, for routing; '' = none.",
    )
    severity: AlertSeverity = Field(
        "",
        description="critical, warning or info: the severity every alert of this monitor pages "
        "with; '' = each alert's own.",
    )
    duration_histogram: Flag | None = Field(
        None,
        description="Export the run duration histogram for this monitor; null = as "
        "metrics.duration_histogram says.",
    )

    @field_validator("schedule")
    @classmethod
    def _one_check(cls, value: str, info: ValidationInfo) -> str:
        """A schedule, or an interval: the two would contradict each other."""
        if value and info.data.get("alert_interval", 0) > 0:
            raise PydanticCustomError("schedule_and_interval", BOTH_CHECKS)
        return value


class MonitorPatch(Body):
    """Some of a monitor's settings; omitted ones stay as they are."""

    name: Annotated[str, AfterValidator(without_nul)] | None = Field(
        None, min_length=1, max_length=32
    )
    type: Literal["batch", "message"] | None = None
    active: Flag | None = None
    alert_interval: Whole | None = Field(None, ge=0, le=SETTING_MAX)
    alert_no_creates_deceeds: Whole | None = Field(None, ge=0, le=SETTING_MAX)
    alert_no_updates_deceeds: Whole | None = Field(None, ge=0, le=SETTING_MAX)
    alert_no_deletes_deceeds: Whole | None = Field(None, ge=0, le=SETTING_MAX)
    schedule: Cron | None = None
    timezone: Zone | None = None
    grace: Whole | None = Field(None, ge=0, le=SETTING_MAX)
    max_runtime: Whole | None = Field(None, ge=0, le=SETTING_MAX)
    team: Team | None = None
    severity: AlertSeverity | None = None
    duration_histogram: Flag | None = None

    @field_validator("schedule")
    @classmethod
    def _one_check(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value and (info.data.get("alert_interval") or 0) > 0:
            raise PydanticCustomError("schedule_and_interval", BOTH_CHECKS)
        return value
