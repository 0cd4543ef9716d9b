"""The stored things, as plain immutable records (times are Unix seconds, UTC)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from exporter.core.errors import InvalidSettings
from exporter.core.statuses import AlertStatus

MonitorType = Literal["batch", "message"]
KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._~-]*$"  # integration_key: safe in URLs, ≤32
OPERATIONS = ("created", "updated", "deleted")
DEFAULT_TIMEZONE = "UTC"
# Minutes a run may start after its scheduled time before the monitor is in error. Ten minutes
# is twice the clock skew the service accepts by default (a job host's clock may run five
# minutes behind the service's), and still tells of a missed nightly run within minutes.
DEFAULT_GRACE = 10
TEAM_PATTERN = r"^[A-Za-z0-9_.-]*$"  # a team name: a label value that routing can match
BOTH_CHECKS = (
    "a monitor expects runs either on a schedule or within an alert_interval, not both; "
    "set alert_interval to 0 to use a schedule, or schedule to '' to use an interval"
)


@dataclass(frozen=True, slots=True)
class MonitorSettings:
    """What an operator sets on a monitor (the original's fields)."""

    name: str
    type: MonitorType = "batch"
    active: bool = True
    alert_interval: int = 0
    alert_no_creates_deceeds: int = 0
    alert_no_updates_deceeds: int = 0
    alert_no_deletes_deceeds: int = 0
    schedule: str = ""  # cron expression; '' = none (checked at the edge: core.schedules)
    timezone: str = DEFAULT_TIMEZONE  # IANA name the schedule is read in
    grace: int = DEFAULT_GRACE  # minutes a scheduled run may start late
    max_runtime: int = 0  # minutes a batch may stay running; 0 = off
    team: str = ""  # who owns it, copied onto its alerts for routing; '' = none
    severity: str = ""  # the severity its alerts page with; '' = each alert's own
    duration_histogram: bool | None = None  # export the run duration histogram; None = global

    def __post_init__(self) -> None:
        if self.schedule and self.alert_interval > 0:
            raise InvalidSettings(BOTH_CHECKS, "schedule")


@dataclass(frozen=True, slots=True)
class Monitor:
    id: int
    integration_key: str
    settings: MonitorSettings
    alertstatus: AlertStatus
    alerttext: str
    alert_timestamp: float | None
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class Batch:
    id: int
    monitor_id: int
    integration_key: str
    logstatus: str
    integrationid: str
    starttime: float
    endtime: float | None
    duration: float | None
    no_created: int
    no_updated: int
    no_deleted: int
    logtext: str
    errormsg: str
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class NewBatch:
    """A batch to store: what a report gives, before the store gives it an id."""

    logstatus: str
    integrationid: str
    starttime: float
    endtime: float | None
    duration: float | None
    no_created: int
    no_updated: int
    no_deleted: int
    logtext: str
    errormsg: str


@dataclass(frozen=True, slots=True)
class NewLog:
    """A log to store, before the store gives it an id."""

    batch_id: int | None
    logstatus: str
    integrationid: str
    logtext: str
    errormsg: str
    message: str


@dataclass(frozen=True, slots=True)
class Log:
    id: int
    monitor_id: int
    integration_key: str
    batch_id: int | None
    logstatus: str
    integrationid: str
    logtext: str
    errormsg: str
    message: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Transition:
    monitor_id: int
    old_status: AlertStatus
    new_status: AlertStatus
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class Correction:
    """A finished batch reported again with other values (who, when, what changed)."""

    batch_id: int
    at: float
    token: str
    old_status: str
    new_status: str
    changes: str


_COMPARED = ("logstatus", "no_created", "no_updated", "no_deleted", "endtime", "integrationid",
             "logtext", "errormsg")  # fmt: skip


def batch_changes(old: Batch, new: Batch) -> list[str]:
    """What differs between two versions of a batch, in words: `logstatus ok → error`."""
    out = []
    for name in _COMPARED:
        before, after = getattr(old, name), getattr(new, name)
        if before == after:
            continue
        if isinstance(before, str) and name != "logstatus":
            out.append(f"{name} changed")
        elif name == "endtime":
            out.append("endtime changed")
        else:
            out.append(f"{name} {before} → {after}")
    return out


@dataclass(frozen=True, slots=True)
class Run:
    """One run as evaluation and metrics see it: a batch, or a log of a message monitor."""

    kind: Literal["batch", "log"]
    id: int
    logstatus: str
    starttime: float
    endtime: float | None
    duration: float | None
    no_created: int
    no_updated: int
    no_deleted: int
    logtext: str
    errormsg: str

    @property
    def order(self) -> tuple[float, int]:
        """Runs are ordered by start time, then id."""
        return (self.starttime, self.id)

    @staticmethod
    def of_batch(batch: Batch) -> Run:
        return Run(
            "batch",
            batch.id,
            batch.logstatus,
            batch.starttime,
            batch.endtime,
            batch.duration,
            batch.no_created,
            batch.no_updated,
            batch.no_deleted,
            batch.logtext,
            batch.errormsg,
        )

    @staticmethod
    def of_log(log: Log) -> Run:
        return Run(
            "log",
            log.id,
            log.logstatus,
            log.created_at,
            log.created_at,
            None,
            0,
            0,
            0,
            log.logtext,
            log.errormsg or log.message,
        )


CORRECTION_TEXT_LIMIT = 512


def correction_of(old: Batch, new: Batch, token: str) -> Correction | None:
    """The correction that `new` makes of the finished batch `old`; None if nothing changed."""
    changes = batch_changes(old, new)
    if not changes:
        return None
    text = "; ".join(changes)[:CORRECTION_TEXT_LIMIT]
    return Correction(old.id, new.updated_at, token, old.logstatus, new.logstatus, text)
