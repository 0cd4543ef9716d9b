"""The benchmark suite runs end to end at tiny sizes (timings are the benchmark's, not ours)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from bench.plan import SCENARIOS
from bench.processes import prometheus_binary, pushgateway_binary
from bench.replicas import available as replicas_unavailable
from tests.support import ROOT


def test_smoke_run_reports_every_scenario_with_numbers(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    installed = {
        "pushgateway": pushgateway_binary(),
        "prometheus": prometheus_binary(),
        "replicas": replicas_unavailable() is None,  # PostgreSQL and haproxy
    }
    expected = [s for s in SCENARIOS if installed.get(s, "yes")]
    assert sorted({r["scenario"] for r in rows}) == sorted(expected)
    for row in rows:
        assert isinstance(row["value"], int | float), row
        assert math.isfinite(row["value"]), row
        assert row["result"] in ("", "PASS", "MISS"), row
    targeted = {r["scenario"] for r in rows if r["target"]}
    assert targeted == set(expected)
    measurements = {r["measurement"] for r in rows}
    assert any("gzip asked" in m for m in measurements if m.startswith("/metrics")), measurements
    if prometheus_binary():
        assert any(m.startswith("prometheus_tsdb_head_series") for m in measurements)
    if installed["replicas"]:
        assert "acknowledged reports missing from the database" in measurements
    assert "| scenario" in done.stdout


def test_instruction_count_measures_the_tree_it_is_given() -> None:
    """`bench.instructions` counts a positive cost per report, for the tree named."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.instructions", str(ROOT), "--reports", "20"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    value, unit = done.stdout.split()[:2]
    assert float(value) > 0.1 and unit == "M", done.stdout
    assert done.stdout.rstrip().endswith(str(ROOT))
