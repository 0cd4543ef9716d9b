"""Reports that arrive together are stored together: one transaction, one round trip.

While a group commits, new reports queue; the next group takes all of them (up to
`max_group`). On PostgreSQL this pays twice over: a transaction costs the server far more than
the rows it writes, and a transaction that notifies holds a database-wide lock until its commit
is flushed, so one transaction per report would queue every report behind that lock. Each
report's outcome is its own (a report for a deleted monitor fails alone); a group that fails
as a whole (the connection lost) fails each of its reports, none of them stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

Op = dict[str, Any]
Execute = Callable[[list[Op]], Awaitable[Sequence[Any]]]


class GroupWriter:
    def __init__(self, execute: Execute, max_group: int) -> None:
        self._execute = execute  # runs a group, returns one result per op, in order
        self._max_group = max_group
        self._queue: list[tuple[Op, asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None
        self.groups = 0
        self.writes = 0

    async def run(self, op: Op) -> Any:
        """Store `op` in the next group; its result once that group has committed."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((op, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="postgres-group-commit")
        return await future

    async def _drain(self) -> None:
        while self._queue:
            group, self._queue = self._queue[: self._max_group], self._queue[self._max_group :]
            try:
                results = await self._execute([op for op, _ in group])
            except BaseException as exc:  # nothing of the group is stored
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            self.groups += 1
            self.writes += len(group)
            for (_, future), result in zip(group, results, strict=True):
                if not future.done():  # else the caller went away; the write stands
                    future.set_result(result)

    async def close(self) -> None:
        """Wait for what is queued to be committed."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
