"""The Evaluator between passes: scheduled monitors are evaluated as their deadlines pass."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from exporter.http import appkeys
from tests.conftest import Clock, Factory, put_monitor

NOON = datetime(2026, 12, 2, 12, 0, tzinfo=UTC).timestamp()
DEADLINE = datetime(2026, 12, 3, 2, 10, tzinfo=UTC).timestamp()  # 02:00 UTC + 10 min grace


async def test_a_deadline_that_passes_between_passes_is_evaluated_then(
    make_client: Factory,
) -> None:
    clock = Clock(NOON)
    client = await make_client(clock)
    await put_monitor(client, "nightly", schedule="0 2 * * *")
    await put_monitor(client, "paused", schedule="0 2 * * *", active=False)
    await put_monitor(client, "hourly", alert_interval=60)
    evaluator, state = client.app[appkeys.EVALUATOR], client.app[appkeys.STATE]
    passes = client.app[appkeys.STATS].evaluations

    clock.now = DEADLINE  # the deadline itself: not passed yet
    since = await evaluator.evaluate_missed(NOON)
    assert since == DEADLINE and state.monitors["nightly"].monitor.alertstatus == "notcalculated"

    clock.now = DEADLINE + 20
    assert await evaluator.evaluate_missed(since) == DEADLINE + 20
    nightly = state.monitors["nightly"].monitor
    assert nightly.alertstatus == "error" and nightly.alert_timestamp == DEADLINE + 20
    assert nightly.alerttext.startswith("No run since the one due at 02:00 on 3 Dec (UTC)")
    # Only the one whose deadline passed: not the inactive one, not the interval monitor (whose
    # interval passed long ago), and no full pass counted.
    assert state.monitors["paused"].monitor.alert_timestamp is None
    assert state.monitors["hourly"].monitor.alert_timestamp != DEADLINE + 20
    assert client.app[appkeys.STATS].evaluations == passes
    transitions = await (await client.get("/api/v1/monitors/nightly/transitions")).json()
    assert [t["new_status"] for t in transitions["items"]] == ["error"]

    # Looked at once: the next look starts where this one ended.
    clock.now = DEADLINE + 50
    before = state.monitors["nightly"].monitor.alert_timestamp
    await evaluator.evaluate_missed(DEADLINE + 20)
    assert state.monitors["nightly"].monitor.alert_timestamp == before


async def test_the_loop_looks_for_missed_deadlines_between_full_passes(
    make_client: Factory,
) -> None:
    clock = Clock(NOON)
    client = await make_client(clock)
    await put_monitor(client, "nightly", schedule="0 2 * * *")
    evaluator, state = client.app[appkeys.EVALUATOR], client.app[appkeys.STATE]
    stats = client.app[appkeys.STATS]
    loop = asyncio.create_task(evaluator.loop(interval=3600, tick=0.01))
    try:
        for _ in range(100):  # the loop's own first pass
            await asyncio.sleep(0.01)
            if stats.evaluations >= 2:
                break
        passes = stats.evaluations
        clock.now = DEADLINE + 1
        for _ in range(200):
            await asyncio.sleep(0.01)
            if state.monitors["nightly"].monitor.alertstatus == "error":
                break
        assert state.monitors["nightly"].monitor.alertstatus == "error"
        assert stats.evaluations == passes  # found by a tick, not by a full pass
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
