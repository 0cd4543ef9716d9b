"""The rules of a report: its texts, its times, and what a change makes of a batch.

The reports themselves arrive as anything with the fields below (the HTTP edge's validated
bodies); these functions take them apart without knowing where they came from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Protocol

from exporter.core.errors import BatchAlreadyFinished, InvalidReport
from exporter.core.records import Batch
from exporter.core.times import EARLIEST, iso

# The original's text limits; reports are truncated to them, never rejected for length.
TEXT_LIMITS = {"integrationid": 64, "logtext": 256, "errormsg": 1024, "message": 1024}
COUNTS = ("no_created", "no_updated", "no_deleted")
TEXTS = ("integrationid", "logtext", "errormsg")


class BatchReport(Protocol):
    """A batch as reported: started now (or at `starttime`), running or finished."""

    @property
    def logstatus(self) -> str: ...
    @property
    def integrationid(self) -> str: ...
    @property
    def logtext(self) -> str: ...
    @property
    def errormsg(self) -> str: ...
    @property
    def starttime(self) -> datetime | None: ...
    @property
    def endtime(self) -> datetime | None: ...
    @property
    def no_created(self) -> int: ...
    @property
    def no_updated(self) -> int: ...
    @property
    def no_deleted(self) -> int: ...


class BatchChange(Protocol):
    """A change of a stored batch: its new status, and the fields given (None: unchanged)."""

    @property
    def logstatus(self) -> str: ...
    @property
    def integrationid(self) -> str | None: ...
    @property
    def logtext(self) -> str | None: ...
    @property
    def errormsg(self) -> str | None: ...
    @property
    def endtime(self) -> datetime | None: ...
    @property
    def no_created(self) -> int | None: ...
    @property
    def no_updated(self) -> int | None: ...
    @property
    def no_deleted(self) -> int | None: ...


class LogReport(Protocol):
    @property
    def batch_id(self) -> int | None: ...
    @property
    def logstatus(self) -> str: ...
    @property
    def integrationid(self) -> str: ...
    @property
    def logtext(self) -> str: ...
    @property
    def errormsg(self) -> str: ...
    @property
    def message(self) -> str: ...


def without_nul(text: str) -> str:
    """A NUL character becomes U+FFFD: no store holds it (PostgreSQL's text cannot), and a
    job's error output is kept rather than refused."""
    return text.replace("\x00", "\ufffd")


def truncate(values: Mapping[str, str]) -> tuple[dict[str, str], tuple[str, ...]]:
    """Cut texts to the original's limits (NUL replaced); return them and the names of the
    cut fields."""
    out, cut = {}, []
    for name, value in values.items():
        value = without_nul(value)
        limit = TEXT_LIMITS[name]
        if len(value) > limit:
            value = value[:limit]
            cut.append(name)
        out[name] = value
    return out, tuple(cut)


def report_time(value: datetime | None, field: str, now: float, max_skew: float) -> float | None:
    """A report's time as Unix seconds, if it could be true: not before 2000, not later
    than now plus the clock-skew allowance (a time in 2100 would stay the latest run)."""
    if value is None:
        return None
    ts = value.timestamp()
    latest = now + max_skew
    if EARLIEST <= ts <= latest:
        return ts
    raise InvalidReport(
        f"{field} {iso(ts)} is outside the accepted range {iso(EARLIEST)} to {iso(latest)} "
        f"(now plus {max_skew:g} s of clock skew)",
        field,
    )


def check_order(start: float, end: float | None) -> None:
    if end is not None and end < start:
        raise InvalidReport("endtime is before starttime", "endtime")


def changed_batch(
    old: Batch,
    change: BatchChange,
    texts: Mapping[str, str],
    end: float | None,
    now: float,
    is_final: Callable[[str], bool],
) -> Batch:
    """What `change` (its texts already truncated, its endtime checked) makes of `old`.

    A finished batch cannot run again; finishing one without an endtime ends it now (or
    keeps the end it had).
    """
    if is_final(old.logstatus) and not is_final(change.logstatus):
        raise BatchAlreadyFinished(old.id, old.logstatus)
    if end is None and is_final(change.logstatus):
        end = old.endtime if old.endtime is not None else max(now, old.starttime)
    check_order(old.starttime, end)
    counts = {name: value for name in COUNTS if (value := getattr(change, name)) is not None}
    return dataclasses.replace(
        old,
        logstatus=change.logstatus,
        endtime=end,
        duration=None if end is None else end - old.starttime,
        updated_at=now,
        **{name: texts.get(name, getattr(old, name)) for name in TEXTS},
        **counts,
    )
