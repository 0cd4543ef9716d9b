"""The cached exposition equals prometheus_client's own rendering of the same collectors."""

from __future__ import annotations

import gzip
import zlib

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics

from exporter.core.counters import DurationBuckets
from exporter.http import appkeys
from exporter.metrics.exposition import Exposition
from exporter.metrics.families import Shape
from exporter.metrics.gzip import GzipPieces
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
    shape = Shape.of(state, DurationBuckets(config.metrics.duration_buckets), histograms=True)
    monitors = MonitorCollector(state, shape)
    service = CollectorRegistry(auto_describe=False)  # no process metrics: they change by the ms
    exposition = Exposition(state, shape, service)
    reference = build_registry(monitors, service)

    async def same() -> None:
        text = generate_latest(reference)
        assert exposition.render(False).decode() == text.decode()
        om = openmetrics.generate_latest(reference)  # type: ignore[no-untyped-call]
        assert exposition.render(True) == om
        assert b"".join(await exposition.chunks_yielding(True, slice_size=1)) == om
        # gzip: one member, whatever was compressed before and reused now
        for _ in range(2):
            packed = b"".join(await exposition.chunks_yielding(False, gzip=True))
            assert gzip.decompress(packed) == text
            packed = b"".join(await exposition.chunks_yielding(True, gzip=True, slice_size=1))
            assert gzip.decompress(packed) == om

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
    max_runtime = b'integration_monitor_max_runtime_seconds{integration_key="nightly"} 1800.0'
    assert max_runtime in exposition.render(False)
    await client.patch("/api/v1/monitors/crm", json={"name": "CRM renamed", "active": False})
    await same()
    assert 'name="CRM renamed"' in exposition.render(False).decode()
    await client.delete("/api/v1/monitors/crm")
    await same()
    assert "crm" not in exposition.render(False).decode()


def _sample(text: bytes, name: str, key: str) -> float:
    prefix = f'{name}{{integration_key="{key}"}} '.encode()
    [line] = [x for x in text.splitlines() if x.startswith(prefix)]
    return float(line[len(prefix) :])


def test_gzip_pieces_make_one_member_and_reuse_unchanged_segments() -> None:
    """Pieces compressed apart join into one gzip member; a piece is compressed again only when
    its version changes, and then its text alone is needed. One member: zlib's single-member
    inflate reads it all, and the trailer's CRC (combined, not computed over the text) holds."""
    pieces = GzipPieces()
    a, b = b"a 1.0\n" * 1000, b"b 2.0\n" * 70000  # b: longer than the zero buffer of a CRC
    first = pieces.encode([("a", 1, a), ("b", 1, b)])
    single = zlib.decompressobj(wbits=31)
    assert single.decompress(b"".join(first)) == a + b  # raises on a wrong CRC or length
    assert single.eof and single.unused_data == b""
    assert pieces.current("a", 1) and not pieces.current("a", 2)
    changed = b"b 3.0\n" * 500
    again = pieces.encode([("a", 1, None), ("b", 2, changed), ("c", 1, b"")])
    assert again[1] is first[1]  # a: the same segment, not compressed again
    assert gzip.decompress(b"".join(again)) == a + changed
    assert gzip.decompress(b"".join(pieces.encode([]))) == b""
