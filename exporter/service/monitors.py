"""Monitors: the one owner of a monitor's settings, in the store and in the state together,
and the way to its stored history (runs, logs, transitions) for the API and the pages."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from exporter.core.errors import InvalidSettings, MissingKey, MonitorNotFound
from exporter.core.records import Batch, Correction, Log, MonitorSettings, Transition
from exporter.service.state import MonitorState, State
from exporter.storage.interface import Store

log = logging.getLogger(__name__)


class Monitors:
    def __init__(
        self,
        store: Store,
        state: State,
        clock: Callable[[], float],
        evaluate: Callable[[MonitorState], None] = lambda ms: None,
    ) -> None:
        self._store = store
        self._state = state
        self._clock = clock
        # Called after a change of settings: a monitor re-activated, or given another interval,
        # is judged at once, not on a status frozen since before the change.
        self._evaluate = evaluate

    async def load(
        self, declared: Iterable[tuple[str, MonitorSettings]], max_clock_skew: float
    ) -> int:
        """At start: every stored monitor with its latest runs and counters into the state,
        then the monitors the config declares (created or updated). Returns how many.

        1. Last-success times later than now (plus the clock skew) are recomputed from the
           stored runs: only a database written before report times were bounded has them.
        2. Load the state; 3. upsert the declared monitors.
        """
        severities = self._state.severities
        now = self._clock()
        ok = [s for s, sev in severities.items() if sev == "ok"]
        if repaired := await self._store.repair_success_times(now + max_clock_skew, ok):
            log.warning(
                "database %s: %d last-success times lay in the future",
                self._store.description,
                repaired,
            )
        finished = [s for s, sev in severities.items() if sev != "running"]
        self._state.load(await self._store.load_runs(finished, max_clock_skew))
        for key, settings in declared:  # the first pass evaluates them
            monitor, _ = await self._store.put_monitor(key, settings, self._clock())
            self._state.put_monitor(monitor)
        return len(self._state.monitors)

    def get(self, key: str) -> MonitorState:
        """The monitor's state, or the original's errors for an empty or unknown key."""
        if not key:
            raise MissingKey()
        ms = self._state.get(key)
        if ms is None:
            raise MonitorNotFound(key)
        return ms

    def all(self) -> list[MonitorState]:
        """Every monitor, by key."""
        return [ms for _, ms in sorted(self._state.monitors.items())]

    async def put(self, key: str, settings: MonitorSettings) -> tuple[MonitorState, bool]:
        """Create or replace a monitor's settings; True when it was created."""
        monitor, created = await self._store.put_monitor(key, settings, self._clock())
        ms = self._state.put_monitor(monitor)
        self._evaluate(ms)
        return ms, created

    async def patch(self, key: str, changes: dict[str, Any]) -> MonitorState:
        """Change some settings. Refused (naming the field the change gave) when the result
        would contradict itself: a schedule on a monitor with an interval, or the reverse."""
        current = self.get(key).monitor.settings
        try:
            dataclasses.replace(current, **changes)
        except InvalidSettings as exc:
            field = "schedule" if changes.get("schedule") else "alert_interval"
            raise InvalidSettings(exc.message, field) from None
        monitor = await self._store.patch_monitor(key, changes, self._clock())
        ms = self._state.put_monitor(monitor)
        self._evaluate(ms)
        return ms

    async def delete(self, key: str) -> None:
        self.get(key)
        await self._store.delete_monitor(key)
        self._state.remove_monitor(key)

    # -- history, read from the store

    async def transitions(self, ms: MonitorState, limit: int) -> list[Transition]:
        return await self._store.list_transitions(ms.monitor.id, limit)

    async def batches(
        self, ms: MonitorState, limit: int, before: tuple[float, int] | None = None
    ) -> list[Batch]:
        return await self._store.list_batches(ms.monitor.id, limit, before)

    async def logs(
        self,
        ms: MonitorState,
        limit: int,
        before: tuple[float, int] | None = None,
        outside_batches: bool = False,
    ) -> list[Log]:
        return await self._store.list_logs(ms.monitor.id, limit, before, None, outside_batches)

    async def batch(self, batch_id: int) -> Batch | None:
        return await self._store.get_batch(batch_id)

    async def batch_logs(self, batch_id: int, limit: int) -> list[Log]:
        return await self._store.list_logs(None, limit, None, batch_id=batch_id)

    async def corrections(self, batch_ids: Sequence[int]) -> list[Correction]:
        return await self._store.list_corrections(batch_ids)

    async def running_batch(self, ms: MonitorState, integrationid: str) -> int | None:
        """The batch a finish would close: the newest running one with this integrationid,
        or without one, the monitor's latest run if it is a batch still running."""
        if integrationid:
            found = await self._store.find_running_batch(ms.monitor.id, integrationid)
            return None if found is None else found.id
        latest = ms.latest
        if latest is not None and latest.kind == "batch" and latest.endtime is None:
            return latest.id
        return None
