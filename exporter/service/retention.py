"""Retention: old runs, transitions, idempotency keys and sessions leave the store."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from exporter.storage.interface import Store

log = logging.getLogger(__name__)
DAY = 86400.0


async def retention_loop(
    store: Store,
    clock: Callable[[], float],
    interval: float,
    max_age_days: float,
    max_clock_skew: float,
    transitions_kept: int,
    leads: Callable[[], bool] = lambda: True,
) -> None:
    """Every `interval` seconds, prune what is older than `max_age_days` (keys after a day),
    on the replica that `leads` (the one holding the lease; the only one on SQLite)."""
    while True:
        await asyncio.sleep(interval)
        if not leads():
            continue
        try:
            now = clock()
            deleted = await store.prune(
                now - max_age_days * DAY, now - DAY, max_clock_skew, transitions_kept
            )
            log.info("retention: pruned %d batches and logs", deleted)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("retention pass failed")
