"""Records as the API's JSON objects (field names of the original, times in ISO 8601 UTC)."""

from __future__ import annotations

from typing import Any

from exporter.core.evaluation import Evaluation
from exporter.core.records import Batch, Log, Monitor, Run, Transition
from exporter.core.schedules import describe, expected_run
from exporter.core.times import iso


def monitor_json(monitor: Monitor, last_run: Run | None = None) -> dict[str, Any]:
    s = monitor.settings
    return {
        "integration_key": monitor.integration_key,
        "name": s.name,
        "type": s.type,
        "active": s.active,
        "alert_interval": s.alert_interval,
        "alert_no_creates_deceeds": s.alert_no_creates_deceeds,
        "alert_no_updates_deceeds": s.alert_no_updates_deceeds,
        "alert_no_deletes_deceeds": s.alert_no_deletes_deceeds,
        "schedule": s.schedule,
        "timezone": s.timezone,
        "grace": s.grace,
        "max_runtime": s.max_runtime,
        "team": s.team,
        "severity": s.severity,
        "duration_histogram": s.duration_histogram,
        "schedule_description": describe(s),
        "expected_run": expected_json(monitor, last_run),
        "alertstatus": monitor.alertstatus,
        "alerttext": monitor.alerttext,
        "alert_timestamp": iso(monitor.alert_timestamp),
        "created_at": iso(monitor.created_at),
        "updated_at": iso(monitor.updated_at),
        "last_run": run_json(last_run),
    }


def expected_json(monitor: Monitor, last_run: Run | None) -> dict[str, Any] | None:
    """When a scheduled monitor's next run is due, and the deadline for its start."""
    expected = expected_run(monitor.settings, monitor.created_at, last_run)
    if expected is None:
        return None
    return {"due": iso(expected.start), "deadline": iso(expected.deadline)}


def run_json(run: Run | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "kind": run.kind,
        "id": run.id,
        "logstatus": run.logstatus,
        "starttime": iso(run.starttime),
        "endtime": iso(run.endtime),
        "duration": run.duration,
        "no_created": run.no_created,
        "no_updated": run.no_updated,
        "no_deleted": run.no_deleted,
    }


def batch_json(batch: Batch) -> dict[str, Any]:
    return {
        "id": batch.id,
        "integration_key": batch.integration_key,
        "logstatus": batch.logstatus,
        "integrationid": batch.integrationid,
        "starttime": iso(batch.starttime),
        "endtime": iso(batch.endtime),
        "duration": batch.duration,
        "no_created": batch.no_created,
        "no_updated": batch.no_updated,
        "no_deleted": batch.no_deleted,
        "logtext": batch.logtext,
        "errormsg": batch.errormsg,
        "created_at": iso(batch.created_at),
        "updated_at": iso(batch.updated_at),
    }


def log_json(entry: Log) -> dict[str, Any]:
    return {
        "id": entry.id,
        "integration_key": entry.integration_key,
        "batch_id": entry.batch_id,
        "logstatus": entry.logstatus,
        "integrationid": entry.integrationid,
        "logtext": entry.logtext,
        "errormsg": entry.errormsg,
        "message": entry.message,
        "created_at": iso(entry.created_at),
    }


def transition_json(t: Transition) -> dict[str, Any]:
    return {
        "old_status": t.old_status,
        "new_status": t.new_status,
        "reason": t.reason,
        "at": iso(t.at),
    }


def evaluation_json(monitor: Monitor, result: Evaluation) -> dict[str, Any]:
    return {
        "integration_key": monitor.integration_key,
        "alertstatus": result.alertstatus,
        "alerttext": result.alerttext,
        "alert_timestamp": iso(monitor.alert_timestamp),
        "reasons": list(result.reasons),
    }
