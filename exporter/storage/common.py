"""What every store implementation shares: the settings columns and the replay rule."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from exporter.core.counters import CounterDelta, merge
from exporter.core.errors import IdempotencyConflict
from exporter.core.records import MonitorSettings
from exporter.storage.interface import Idempotency

# The monitor's settings columns: named as the fields of MonitorSettings, in its order.
SETTINGS = tuple(f.name for f in fields(MonitorSettings))
CORRECTIONS_KEPT = 20  # per batch


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
