"""Following the other replicas: what they write to the shared database reaches this state.

The store's change feed names the monitors another replica changed (or asks for everything
after an interruption); the follower reads those monitors again as stored, one snapshot each
time, puts them in the state and re-evaluates them in memory. A monitor this replica changed
itself while the read was under way may be newer here than in the read: the newer of each side
is kept (counters never go back), and it is read again a moment later for the exact values.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Collection

from exporter.core.errors import Unavailable
from exporter.service.state import MonitorState, State
from exporter.storage.interface import Store

log = logging.getLogger(__name__)
RETRY_SECONDS = 1.0
AGAIN_SECONDS = 0.02


class Follower:
    def __init__(
        self,
        store: Store,
        state: State,
        evaluate: Callable[[MonitorState], None],
    ) -> None:
        self._store = store
        self._state = state
        self._evaluate = evaluate
        self._finished = [s for s in state.severities if state.is_final(s)]

    async def run(self, feed: AsyncIterator[frozenset[int] | None]) -> None:
        """Follow the feed until it ends (never, for a shared database)."""
        pending: set[int] | None = set()  # None: everything
        async for changed in feed:
            pending = None if changed is None or pending is None else pending | changed
            while pending is None or pending:
                try:
                    pending = await self.refresh(pending)
                except Unavailable as exc:
                    log.warning("following other replicas: %s; retrying", exc)
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
                except Exception:  # a bug must not end the following: read everything again
                    log.exception("following other replicas failed; reading everything again")
                    pending = None
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
                if pending:  # busy here too: let a few of this replica's writes pass first
                    await asyncio.sleep(AGAIN_SECONDS)

    async def refresh(self, monitor_ids: Collection[int] | None) -> set[int]:
        """Read these monitors (None: all) as stored into the state; return those to read
        again because this replica changed them meanwhile."""
        state = self._state
        before = {ms.monitor.id: ms.version for ms in state.monitors.values()}
        asked = set(before) if monitor_ids is None else set(monitor_ids)
        rows = await self._store.load_runs(self._finished, state.max_clock_skew, monitor_ids)
        again: set[int] = set()
        for row in rows:
            mid = row.monitor.id
            asked.discard(mid)
            ms = state.by_id(mid)
            if ms is None and mid in before:
                continue  # deleted here meanwhile
            if ms is not None and ms.version != before.get(mid):
                # Changed here meanwhile: the read may predate that change. Keep the newer of
                # each side now, and read it again for the exact values.
                ms = state.merge(row)
                again.add(mid)
            else:
                ms = state.replace(row)
            self._evaluate(ms)
        for mid in asked:  # asked for and not stored: deleted by another replica
            ms = state.by_id(mid)
            if ms is not None and ms.version == before.get(mid):
                state.remove_monitor(ms.monitor.integration_key)
        return again
