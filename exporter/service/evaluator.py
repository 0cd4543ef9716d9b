"""Runs alert evaluation: after each report, on a loop, and on request; stores what changed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable

from exporter.core.evaluation import Evaluation, evaluate_monitor
from exporter.core.records import Transition
from exporter.core.schedules import expected_run
from exporter.service.state import MonitorState, State
from exporter.service.stats import ServiceStats
from exporter.storage.interface import Store

log = logging.getLogger(__name__)
# Between two full passes, how often the loop looks for scheduled monitors whose start deadline
# has just passed: a missed run is an error within this, not at the next pass (15 min).
DEADLINE_TICK = 30.0


class Evaluator:
    def __init__(
        self,
        state: State,
        store: Store,
        clock: Callable[[], float],
        stats: ServiceStats,
        chunk_size: int = 500,
        leads: Callable[[], bool] = lambda: True,
    ) -> None:
        self._state = state
        # Whether this replica runs the periodic passes (it holds the lease; always, alone on
        # a database). Evaluation after a report runs wherever the report arrived.
        self._leads = leads
        self._wake = asyncio.Event()
        self._store = store
        self._clock = clock
        self._stats = stats
        self._chunk_size = chunk_size
        self._pending: set[asyncio.Task[None]] = set()

    def evaluate(self, ms: MonitorState, now: float) -> Evaluation:
        m = ms.monitor
        return evaluate_monitor(
            m.settings, m.created_at, ms.latest, ms.latest_finished, now, self._state.severities
        )

    def _apply(
        self, ms: MonitorState, result: Evaluation, now: float
    ) -> tuple[tuple[int, str, str, float], Transition | None]:
        transition = self._state.apply_evaluation(ms.monitor.integration_key, result, now)
        return (ms.monitor.id, result.alertstatus, result.alerttext, now), transition

    def after_report(self, ms: MonitorState) -> None:
        """Re-evaluate one monitor now (in memory); store the result in the background."""
        if not ms.monitor.settings.active:
            return
        before = (ms.monitor.alertstatus, ms.monitor.alerttext)
        now = self._clock()
        try:
            row, transition = self._apply(ms, self.evaluate(ms, now), now)
        except Exception:
            self._stats.evaluation_errors += 1
            log.exception("evaluation of monitor %s failed", ms.monitor.integration_key)
            return
        if (ms.monitor.alertstatus, ms.monitor.alerttext) != before:
            self._save([row], [transition] if transition else [])

    def _save(self, rows: list[tuple[int, str, str, float]], transitions: list[Transition]) -> None:
        task = asyncio.create_task(self._store.save_evaluations(rows, transitions))
        self._pending.add(task)
        task.add_done_callback(self._saved)

    def _saved(self, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("storing evaluation results failed: %s", task.exception())

    async def run_pass(
        self, keys: Iterable[str] | None = None, store: bool = True
    ) -> list[tuple[MonitorState, Evaluation]]:
        """Evaluate active monitors (all, or `keys`), in chunks so the event loop keeps serving.

        1. Take the monitors to evaluate and one `now` for all of them.
        2. Evaluate a chunk, record the results in memory, yield to the loop; repeat.
        3. Store every result and transition in one write (unless `store` is False: a replica
           that does not lead only fills in its own memory); return the results.
        A monitor whose evaluation raises is logged and skipped.
        """
        started = time.perf_counter()
        now = self._clock()
        chosen = (
            list(self._state.monitors.values())
            if keys is None
            else [ms for key in keys if (ms := self._state.get(key)) is not None]
        )
        results: list[tuple[MonitorState, Evaluation]] = []
        rows: list[tuple[int, str, str, float]] = []
        transitions: list[Transition] = []
        for index, ms in enumerate(chosen):
            if index and index % self._chunk_size == 0:
                await asyncio.sleep(0)
            if not ms.monitor.settings.active:
                continue
            try:
                result = self.evaluate(ms, now)
                row, transition = self._apply(ms, result, now)
            except Exception:
                self._stats.evaluation_errors += 1
                log.exception("evaluation of monitor %s failed", ms.monitor.integration_key)
                continue
            results.append((ms, result))
            rows.append(row)
            if transition is not None:
                transitions.append(transition)
        if rows and store:
            await self._store.save_evaluations(rows, transitions)
        if keys is None and store:
            self._stats.evaluations += 1
            self._stats.evaluation_last = self._clock()
            self._stats.evaluation_duration = time.perf_counter() - started
        return results

    def wake(self) -> None:
        """Run a pass now (this replica has just taken over the periodic passes)."""
        self._wake.set()

    async def loop(self, interval: float, tick: float = DEADLINE_TICK) -> None:
        """Evaluate everything every `interval` seconds, starting now, while this replica
        leads (a replica that does not lead evaluates once, in memory, at start).

        Between two passes, every `tick` seconds, evaluate the scheduled monitors whose start
        deadline has passed since the last look (`evaluate_missed`), so that a missed run is
        an error within seconds of its grace running out rather than at the next pass. The
        passes keep their period: the ticks add up to `interval` of sleep. `wake` ends the
        wait at once.
        """
        first = True
        while True:
            try:
                if self._leads() or first:
                    await self.run_pass(store=self._leads())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("evaluation pass failed; retrying at the next interval")
            first = False
            checked, left = self._clock(), interval
            while left > 0:
                step = min(tick, left)
                with contextlib.suppress(TimeoutError):  # (not wait_for: it can eat a cancel)
                    async with asyncio.timeout(step):
                        await self._wake.wait()
                if self._wake.is_set():
                    self._wake.clear()
                    break
                left -= step
                if left > 0 and self._leads():  # else the full pass comes next and covers it
                    checked = await self.evaluate_missed(checked)

    async def evaluate_missed(self, since: float) -> float:
        """Evaluate the active scheduled monitors whose start deadline lies in [since, now);
        return now, the `since` of the next look. Errors are logged, never raised."""
        now = self._clock()
        try:
            due: list[str] = []
            for index, (key, ms) in enumerate(list(self._state.monitors.items())):
                if index and index % self._chunk_size == 0:
                    await asyncio.sleep(0)
                s = ms.monitor.settings
                if not (s.active and s.schedule):
                    continue
                expected = expected_run(s, ms.monitor.created_at, ms.latest)
                if expected is not None and since <= expected.deadline < now:
                    due.append(key)
            if due:
                await self.run_pass(due)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("evaluation of missed scheduled runs failed; retrying at the next tick")
        return now

    async def drain(self) -> None:
        """Wait for background stores of results (at shutdown)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
