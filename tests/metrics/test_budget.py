"""The series budget: what one monitor costs its operator's Prometheus, with the shipped config.

A batch monitor that has seen runs of several statuses stays within 20 series, a message monitor
within 12 (docs/metrics.md, "Series per monitor"). Counted on the real /metrics text.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Clock, Factory, put_monitor

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
BATCH_BUDGET = 20
MESSAGE_BUDGET = 12


def series_per_monitor(text: str) -> Counter[str]:
    return Counter(
        sample.labels["integration_key"]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if "integration_key" in sample.labels
    )


async def test_series_budget_with_the_shipped_statuses(make_client: Factory) -> None:
    statuses: dict[str, str] = SHIPPED["statuses"]
    assert len(statuses) == 3  # the budget is stated for the shipped three custom statuses
    running = next(s for s, severity in statuses.items() if severity == "running")
    client = await make_client(Clock(), statuses=statuses)
    await put_monitor(client, "sync", alert_interval=60)
    await put_monitor(client, "mail", type="message", alert_interval=60)
    await put_monitor(client, "fresh", alert_interval=60)
    # Runs of every custom status and of ok and error; the monitor ends in error, with a reason.
    finals = ["ok", *(s for s, sev in statuses.items() if sev != "running")]
    batches: list[dict[str, Any]] = [
        {"logstatus": running},
        *({"logstatus": st, "no_created": 3} for st in finals),
        {"logstatus": "error", "errormsg": "CRM API answered 502"},
    ]
    for body in batches:
        response = await client.post("/api/v1/monitors/sync/batches", json=body)
        assert response.status == 201, await response.text()
    for status in ("ok", "skipped", "error"):
        response = await client.post("/api/v1/monitors/mail/logs", json={"logstatus": status})
        assert response.status == 201, await response.text()

    counts = series_per_monitor(await (await client.get("/metrics")).text())
    assert counts["sync"] <= BATCH_BUDGET, counts
    assert counts["mail"] <= MESSAGE_BUDGET, counts
    assert counts["fresh"] < counts["sync"]  # a monitor pays for what it has seen, no more
    # The exact counts docs/metrics.md gives: 15 + 1 reason + one per final status used (4)
    # for the batch monitor in error; 8 + 1 reason + 3 statuses for the message monitor; 9 for
    # a batch monitor that has not reported yet (its object counters start at 0).
    assert (counts["sync"], counts["mail"], counts["fresh"]) == (20, 12, 9)
    # Each further status used costs one series: the budget is stated for the above.
    response = await client.post(
        "/api/v1/monitors/sync/batches", json={"logstatus": "donewitherror"}
    )
    assert response.status == 201
    assert series_per_monitor(await (await client.get("/metrics")).text())["sync"] == 21
