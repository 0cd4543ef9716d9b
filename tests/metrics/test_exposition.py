"""The cached exposition equals prometheus_client's own rendering of the same collectors."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics

from exporter.core.counters import DurationBuckets
from exporter.http import appkeys
from exporter.metrics.exposition import Exposition
from tests.conftest import Clock, Factory, put_monitor
from tests.support.metrics_oracle import MonitorCollector, build_registry


async def test_cached_text_equals_the_client_library_rendering(make_client: Factory) -> None:
    clock = Clock()
    client = await make_client(clock, statuses={"partial": "error", "queued": "running"})
    await put_monitor(client, "crm", alert_interval=60, alert_no_creates_deceeds=5)
    await put_monitor(client, "mail", name='Mail "weird" \\ one', type="message")
    await put_monitor(client, "nightly", schedule="30 2 * * *", timezone="America/New_York")
    state = client.app[appkeys.STATE]
    config = client.app[appkeys.CONFIG]
    buckets = DurationBuckets(config.metrics.duration_buckets)
    monitors = MonitorCollector(state, buckets)
    service = CollectorRegistry(auto_describe=False)  # no process metrics: they change by the ms
    exposition = Exposition(state, buckets, service)
    reference = build_registry(monitors, service)

    async def same() -> None:
        assert exposition.render(False).decode() == generate_latest(reference).decode()
        om = openmetrics.generate_latest(reference)  # type: ignore[no-untyped-call]
        assert exposition.render(True) == om
        assert b"".join(await exposition.chunks_yielding(True, slice_size=1)) == om

    await same()
    for body in ({"logstatus": "running"}, {"logstatus": "partial", "no_created": 2}):
        response = await client.post("/api/v1/monitors/crm/batches", json=body)
        assert response.status == 201
        clock.advance(65)
        await same()
    await client.post("/api/v1/monitors/mail/logs", json={"message": "m"})
    await same()
    # The deadline moves when a run starts (a day on), and with the schedule's settings.
    deadline = "integration_monitor_start_deadline_timestamp_seconds"
    before = _sample(exposition.render(False), deadline, "nightly")
    clock.advance(86400)
    await client.post("/api/v1/monitors/nightly/batches", json={"logstatus": "ok"})
    await same()
    assert _sample(exposition.render(False), deadline, "nightly") == before + 86400
    await client.patch("/api/v1/monitors/nightly", json={"grace": 60, "max_runtime": 30})
    await same()
    assert _sample(exposition.render(False), deadline, "nightly") == before + 86400 + 50 * 60
    assert b'integration_monitor_max_runtime_seconds{key="nightly"} 1800.0' in exposition.render(
        False
    )
    await client.patch("/api/v1/monitors/crm", json={"name": "CRM renamed", "active": False})
    await same()
    assert 'name="CRM renamed"' in exposition.render(False).decode()
    await client.delete("/api/v1/monitors/crm")
    await same()
    assert "crm" not in exposition.render(False).decode()


def _sample(text: bytes, name: str, key: str) -> float:
    prefix = f'{name}{{key="{key}"}} '.encode()
    [line] = [x for x in text.splitlines() if x.startswith(prefix)]
    return float(line[len(prefix) :])
