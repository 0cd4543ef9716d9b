"""Validated monitor settings and value types, shared by the config file and the API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError


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

SETTING_MAX = 2**31 - 1  # minutes or objects: far beyond any real setting, within SQLite


class Body(BaseModel):
    """A request body or config section: unknown keys refused, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class MonitorBody(Body):
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


class MonitorPatch(Body):
    """Some of a monitor's settings; omitted ones stay as they are."""

    name: str | None = Field(None, min_length=1, max_length=32)
    type: Literal["batch", "message"] | None = None
    active: Flag | None = None
    alert_interval: Whole | None = Field(None, ge=0, le=SETTING_MAX)
    alert_no_creates_deceeds: Whole | None = Field(None, ge=0, le=SETTING_MAX)
    alert_no_updates_deceeds: Whole | None = Field(None, ge=0, le=SETTING_MAX)
    alert_no_deletes_deceeds: Whole | None = Field(None, ge=0, le=SETTING_MAX)
