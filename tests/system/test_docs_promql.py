"""Every PromQL example in docs/ parses in a real Prometheus; alerting.md shows the real rules.

A ```promql block is sent as an instant query to a Prometheus with an empty database: a query
that does not parse answers 400 (`bad_data`) with the parser's message, one that parses answers
an empty result. docs/alerting.md's section of each alert must show that rule's expression, so
the page cannot drift from the rules file.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import ROOT
from tests.support.processes import Processes, Prometheus, http, start_prometheus

DOCS = sorted((ROOT / "docs").glob("*.md"))
ALERTING_DOC = ROOT / "docs" / "alerting.md"
RULES = ROOT / "rules" / "integration-monitor.rules.yml"
BLOCK = re.compile(r"^```promql\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _blocks() -> list[tuple[str, str]]:
    """(doc:line, expression) of every ```promql block in docs/."""
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{doc.name}:{line}", match.group(1)))
    return found


BLOCKS = _blocks()


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


ALERTS = _alerts()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    directory: Path = tmp_path_factory.mktemp("prometheus")
    processes = Processes()
    try:
        yield start_prometheus(processes, directory, {"global": {"evaluation_interval": "1m"}})
    finally:
        processes.stop()


def test_the_docs_have_promql_examples() -> None:
    where = {place.split(":")[0] for place, _ in BLOCKS}
    assert {"alerting.md", "metrics.md"} <= where, where
    assert all(expr.strip() for _, expr in BLOCKS), "an empty ```promql block"


@pytest.mark.parametrize(("place", "expr"), BLOCKS, ids=[place for place, _ in BLOCKS])
def test_promql_example_parses(prometheus: Prometheus, place: str, expr: str) -> None:
    url = f"{prometheus.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        answer = http("GET", url)
    except AssertionError as error:
        pytest.fail(f"{place}: Prometheus refuses the example:\n{expr}\n{error}", pytrace=False)
    assert answer["status"] == "success", f"{place}: {answer}"


def _sections() -> dict[str, str]:
    """The text under each `### <heading>` of docs/alerting.md, up to the next heading."""
    text = ALERTING_DOC.read_text(encoding="utf-8")
    parts = re.split(r"^#{2,3} (.+)$", text, flags=re.MULTILINE)
    return {heading.strip(): body for heading, body in zip(parts[1::2], parts[2::2], strict=True)}


@pytest.mark.parametrize("alert", ALERTS, ids=[alert["alert"] for alert in ALERTS])
def test_alerting_doc_shows_each_rules_expression(alert: dict[str, Any]) -> None:
    sections = _sections()
    assert alert["alert"] in sections, f"docs/alerting.md has no section {alert['alert']}"
    shown = [" ".join(block.split()) for block in BLOCK.findall(sections[alert["alert"]])]
    assert " ".join(alert["expr"].split()) in shown, (
        f"the {alert['alert']} section does not show the rule's expression"
    )
