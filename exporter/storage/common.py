"""What every store implementation shares: the settings columns and the replay rule."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import fields
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from exporter.core.counters import CounterDelta, merge
from exporter.core.errors import IdempotencyConflict
from exporter.core.records import MonitorSettings
from exporter.storage.interface import Idempotency

# The monitor's settings columns: named as the fields of MonitorSettings, in its order.
SETTINGS = tuple(f.name for f in fields(MonitorSettings))
CORRECTIONS_KEPT = 20  # per batch

# The columns of each record, in the order of its dataclass (both schemas name them alike).
MONITOR_COLS = (
    f"m.id, m.integration_key, {', '.join('m.' + n for n in SETTINGS)}, "
    "m.alertstatus, m.alerttext, m.alert_timestamp, m.created_at, m.updated_at"
)
BATCH_COLS = (
    "b.id, b.monitor_id, m.integration_key, b.logstatus, b.integrationid, b.starttime, "
    "b.endtime, b.duration, b.no_created, b.no_updated, b.no_deleted, b.logtext, b.errormsg, "
    "b.created_at, b.updated_at"
)
LOG_COLS = (
    "l.id, l.monitor_id, m.integration_key, l.batch_id, l.logstatus, l.integrationid, "
    "l.logtext, l.errormsg, l.message, l.created_at"
)
BATCH_FROM = "integration_monitor_batch b JOIN integration_monitor m ON m.id = b.monitor_id"
LOG_FROM = "integration_monitor_log l JOIN integration_monitor m ON m.id = l.monitor_id"


def migrations(package: str) -> list[tuple[int, str]]:
    """The numbered migration scripts shipped in `package`'s migrations folder, in order."""
    folder = resources.files(package).joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), entry.read_text(encoding="utf-8")))
    return sorted(found)


def replayed(
    row: Sequence[Any] | None, idempotency: Idempotency, resource: str
) -> tuple[int, tuple[str, ...]] | None:
    """What an earlier request with the key stored (row: fingerprint, resource, resource_id,
    truncated); `IdempotencyConflict` if that request asked for something else."""
    if row is None:
        return None
    if row[0] != idempotency.fingerprint or row[1] != resource:
        raise IdempotencyConflict()
    return int(row[2]), tuple(json.loads(row[3] or "[]"))


def merged(deltas: Sequence[CounterDelta]) -> dict[tuple[str, str], float]:
    """One increment per counter, in a stable order (kind, name)."""
    out: dict[tuple[str, str], float] = {}
    for kind, name, delta in sorted(deltas):
        if delta:
            key = (kind, name)
            out[key] = merge(kind, out.get(key), delta)
    return out


def without_password(text: str, url: str) -> str:
    """A driver's message with the URL's password (should it appear) replaced."""
    password = urlsplit(url).password
    return text.replace(password, "<redacted>") if password else text
