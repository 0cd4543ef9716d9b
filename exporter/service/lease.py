"""The lease on the periodic work: the evaluation pass and retention run on one replica at a
time. The holder renews it every third of its length; when the holder dies, another replica
takes it once it has expired, within one lease length (the database's clock decides, not the
replicas')."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from exporter.core.errors import Unavailable
from exporter.storage.interface import Store

log = logging.getLogger(__name__)
NAME = "evaluation"


class Lease:
    def __init__(
        self, store: Store, seconds: float, on_taken: Callable[[], None] = lambda: None
    ) -> None:
        self._store = store
        self.seconds = seconds
        self.on_taken = on_taken  # called when this replica takes the lease over
        self.held = False

    async def renew(self) -> bool:
        """Take or renew the lease once; a database that does not answer means not held."""
        try:
            # Valid for two thirds, renewed every third: a dead holder's lease runs out at most
            # 2/3 of `seconds` after it died, and the others look every third: taken over
            # within `seconds`. One failed renewal is survived.
            held = await self._store.take_lease(NAME, self.seconds * 2 / 3)
        except Unavailable as exc:
            held = False
            if self.held:
                log.warning("lost the %s lease: %s", NAME, exc)
        except Exception:  # never believe it held when renewing it failed
            held = False
            log.exception("renewing the %s lease failed", NAME)
        if held and not self.held:
            log.info("holding the %s lease: this replica runs the periodic pass", NAME)
            self.held = True
            self.on_taken()
        elif self.held and not held:
            log.info("no longer holding the %s lease", NAME)
        self.held = held
        return held

    async def loop(self) -> None:
        while True:
            await asyncio.sleep(self.seconds / 3)
            await self.renew()
