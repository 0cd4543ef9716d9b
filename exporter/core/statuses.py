"""Run statuses and the severity each counts as."""

from typing import Final, Literal

Severity = Literal["running", "ok", "error"]
AlertStatus = Literal["notcalculated", "ok", "error"]
ALERT_STATUSES: Final[tuple[AlertStatus, ...]] = ("notcalculated", "ok", "error")

BUILTIN_STATUSES: Final[dict[str, Severity]] = {
    "running": "running",
    "ok": "ok",
    "error": "error",
    "donewitherror": "error",
}
