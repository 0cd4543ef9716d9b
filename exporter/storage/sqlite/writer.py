"""The one SQLite write connection: a thread that commits groups of concurrent writes together."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
WriteOp = Callable[[sqlite3.Connection], Any]


class WriterClosed(Exception):
    """The writer no longer takes writes (the service is shutting down)."""


class GroupCommitWriter:
    """Runs write operations on one connection in one thread, committing them in groups.

    While a group commits, new writes queue; the next group takes all of them (up to
    `max_group`), so under load one commit (one fsync) covers many reports. Each operation runs
    inside its own SAVEPOINT: one that raises is rolled back alone and its caller gets the
    exception, the others of its group still commit. `before_commit` runs last inside each
    group's transaction (the store writes its merged counters there); `after_rollback` runs when
    a whole group failed and was rolled back (the store forgets that group's counters). A
    caller's future resolves only after the COMMIT returned.
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        max_group: int,
        before_commit: Callable[[sqlite3.Connection], None] | None = None,
        after_rollback: Callable[[], None] | None = None,
    ) -> None:
        self._connect = connect
        self._max_group = max_group
        self._before_commit = before_commit
        self._after_rollback = after_rollback
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._queue: asyncio.Queue[tuple[WriteOp, asyncio.Future[Any]] | None] = asyncio.Queue()
        self._conn: sqlite3.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.groups_committed = 0
        self.writes_committed = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._conn = await loop.run_in_executor(self._executor, self._connect)
        self._task = asyncio.create_task(self._run(), name="sqlite-group-commit")

    async def run(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run `op` in a transaction; return its result once committed."""
        if self._closing or self._task is None:
            raise WriterClosed("the database is closing")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((op, future))
        return await future

    async def close(self) -> None:
        """Commit everything queued, then close the connection."""
        if self._task is None:
            return
        self._closing = True
        self._queue.put_nowait(None)
        await self._task
        self._task = None
        loop = asyncio.get_running_loop()
        if self._conn is not None:
            await loop.run_in_executor(self._executor, self._conn.close)
        self._executor.shutdown(wait=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        stop = False
        while not stop:
            item = await self._queue.get()
            group: list[tuple[WriteOp, asyncio.Future[Any]]] = []
            while True:
                if item is None:
                    stop = True
                else:
                    group.append(item)
                if len(group) >= self._max_group or self._queue.empty():
                    break
                item = self._queue.get_nowait()
            if not group:
                continue
            ops = [op for op, _ in group]
            try:
                results = await loop.run_in_executor(self._executor, self._commit, ops)
            except Exception as exc:  # the COMMIT itself failed: nothing of the group is stored
                log.exception("group commit of %d writes failed", len(group))
                results = [exc] * len(group)
            for (_, future), result in zip(group, results, strict=True):
                if future.done():  # the caller went away (request cancelled); the write stands
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    def _commit(self, ops: list[WriteOp]) -> list[Any]:
        conn = self._conn
        assert conn is not None
        results: list[Any] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for op in ops:
                conn.execute("SAVEPOINT op")
                try:
                    results.append(op(conn))
                except Exception as exc:
                    conn.execute("ROLLBACK TO op")
                    results.append(exc)
                conn.execute("RELEASE op")
            if self._before_commit is not None:
                self._before_commit(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if self._after_rollback is not None:
                self._after_rollback()
            raise
        self.groups_committed += 1
        self.writes_committed += len(ops)
        return results
