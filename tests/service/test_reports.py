"""Ingest: a change of a batch is decided on the batch as read and written only over it."""

from __future__ import annotations

import asyncio

from exporter.http import appkeys
from tests.conftest import Clock, Factory, put_monitor
from tests.support.metrics_oracle import registry_of


async def test_racing_changes_of_one_batch_count_its_run_once(make_client: Factory) -> None:
    """Two finishes of one running batch at once (a ping and a PATCH, say): both are
    answered, the run counts once, and the later one is recorded as a correction."""
    client = await make_client(Clock())
    await put_monitor(client, "crm")
    started = await client.post("/api/v1/monitors/crm/batches", json={"logstatus": "running"})
    batch_id = (await started.json())["batch"]["id"]
    finishes = [
        client.patch(f"/api/v1/batches/{batch_id}", json={"logstatus": status, "no_created": n})
        for status, n in (("ok", 3), ("error", 5))
    ]
    answers = await asyncio.gather(*finishes)
    assert [a.status for a in answers] == [200, 200]
    registry = registry_of(client.app)
    runs = sum(
        registry.get_sample_value(
            "integration_monitor_runs_total", {"integration_key": "crm", "status": s}
        )
        or 0.0
        for s in ("ok", "error")
    )
    assert runs == 1
    corrections = await client.app[appkeys.MONITORS].corrections([batch_id])
    assert len(corrections) == 1
    stored = (await (await client.get(f"/api/v1/batches/{batch_id}")).json())["batch"]
    assert stored["logstatus"] == corrections[0].new_status
    created = registry.get_sample_value(
        "integration_monitor_objects_total", {"integration_key": "crm", "operation": "created"}
    )
    # Whichever finish came first, the counter holds the larger count: the growth of a
    # correction is added once, a shrink adds nothing (PostgreSQL may commit either first).
    assert created == 5
