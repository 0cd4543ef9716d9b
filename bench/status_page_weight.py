"""Page weight of the status page's overview with many monitors: HTML + CSS + JS, in bytes.

Builds the real app on a temporary database, creates the monitors and one report each through
the HTTP API, then fetches the overview and its assets as a browser would on a first visit.

    python -m bench.status_page_weight [--monitors 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import statistics
import tempfile
import time
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from exporter.app import create_app
from exporter.config import parse_config

SYSTEMS = ("CRM", "ERP", "SAP", "Shop", "HR", "DWH", "LDAP", "Billing", "Stock", "Mail")
JOBS = ("account sync", "invoice export", "order import", "user feed", "nightly load")


async def measure(monitors: int) -> dict[str, int | float]:
    with tempfile.TemporaryDirectory() as tmp:
        config = parse_config(
            {"database": {"path": str(Path(tmp) / "im.db"), "synchronous": "NORMAL"}}, env={}
        )
        async with TestClient(TestServer(create_app(config))) as client:
            now = time.time()
            for i in range(monitors):
                key = f"job-{i:05d}"
                name = f"{SYSTEMS[i % len(SYSTEMS)]} {JOBS[i % len(JOBS)]} {i}"
                response = await client.put(
                    f"/api/v1/monitors/{key}", json={"name": name[:32], "alert_interval": 60}
                )
                assert response.status == 201, await response.text()
                if i % 20 == 19:
                    continue  # never reported: notcalculated
                failed = i % 10 == 9
                body = {
                    "logstatus": "error" if failed else "ok",
                    "starttime": _iso(now - 600 - i),
                    "endtime": _iso(now - 540 - i),
                    "no_created": i % 17,
                    "no_updated": 100 + i % 300,
                    "no_deleted": i % 3,
                    "errormsg": "Upstream answered 502 Bad Gateway after 3 retries"
                    if failed
                    else "",
                }
                response = await client.post(f"/api/v1/monitors/{key}/batches", json=body)
                assert response.status == 201, await response.text()
            headers = {"Accept-Encoding": "identity"}
            html = await (await client.get("/", headers=headers)).read()
            timings = []
            for _ in range(5):
                started = time.perf_counter()
                await (await client.get("/", headers=headers)).read()
                timings.append(time.perf_counter() - started)
            fragment = await (await client.get("/ui/rows", headers=headers)).read()
            assets = {}
            for name in ("status.css", "status.js", "favicon.svg"):
                assets[name] = await (await client.get(f"/static/{name}")).read()
    css, js, icon = assets["status.css"], assets["status.js"], assets["favicon.svg"]
    return {
        "monitors": monitors,
        "html": len(html),
        "css": len(css),
        "js": len(js),
        "favicon": len(icon),
        "total": len(html) + len(css) + len(js),
        "html_gzip": len(gzip.compress(html, 6)),
        "total_gzip": sum(len(gzip.compress(b, 6)) for b in (html, css, js)),
        "fragment": len(fragment),
        "fragment_gzip": len(gzip.compress(fragment, 6)),
        "render_ms": statistics.median(timings) * 1000,
    }


def _iso(ts: float) -> str:
    from exporter.core.times import iso

    return iso(ts) or ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--monitors", type=int, default=1000)
    args = parser.parse_args()
    result = asyncio.run(measure(args.monitors))
    print(f"overview with {result['monitors']} monitors")
    print(f"  HTML      {result['html']:>10,} B   gzip {result['html_gzip']:>8,} B")
    print(f"  CSS       {result['css']:>10,} B")
    print(f"  JS        {result['js']:>10,} B")
    print(f"  total     {result['total']:>10,} B   gzip {result['total_gzip']:>8,} B")
    print(f"  favicon   {result['favicon']:>10,} B   (not counted)")
    print(
        f"  refresh fragment every 15 s: {result['fragment']:,} B, "
        f"gzip {result['fragment_gzip']:,} B"
    )
    print(f"  server time for GET / (median of 5): {result['render_ms']:.0f} ms")


if __name__ == "__main__":
    main()
