"""The benchmark suite runs end to end at tiny sizes (timings are the benchmark's, not ours)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from bench.plan import SCENARIOS
from bench.processes import pushgateway_binary
from tests.support import ROOT


def test_smoke_run_reports_every_scenario_with_numbers(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    expected = [s for s in SCENARIOS if s != "pushgateway" or pushgateway_binary()]
    assert sorted({r["scenario"] for r in rows}) == sorted(expected)
    for row in rows:
        assert isinstance(row["value"], int | float), row
        assert math.isfinite(row["value"]), row
        assert row["result"] in ("", "PASS", "MISS"), row
    targeted = {r["scenario"] for r in rows if r["target"]}
    assert targeted == set(expected) - {"pushgateway"}
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
