"""Make the hand-import copies in grafana/export/ from the provisioned dashboards.

The provisioned dashboards (grafana/dashboards/) are the source. Grafana's "Import dashboard"
screen asks for the inputs listed in `__inputs` and replaces `${DS_PROMETHEUS}` everywhere with
the data source picked there, so the export differs from the source in three ways only:

1. `__inputs` (one Prometheus data source, DS_PROMETHEUS) and `__requires` (Grafana, the
   Prometheus plugin and every panel type used) are added in front;
2. the `datasource` variable defaults to `${DS_PROMETHEUS}` instead of the provisioned uid;
3. `id` is dropped, as Grafana's own export does.

Usage: python grafana/make_export.py          (rewrite grafana/export/*.json)
       python grafana/make_export.py --check  (exit 1 if an export is out of date)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

GRAFANA_DIR = Path(__file__).resolve().parent
SOURCE_DIR = GRAFANA_DIR / "dashboards"
EXPORT_DIR = GRAFANA_DIR / "export"

# schemaVersion 39 is Grafana 10.4; the dashboards need nothing newer.
GRAFANA_VERSION = "10.4.0"
INPUT_NAME = "DS_PROMETHEUS"
PANEL_NAMES = {
    "bargauge": "Bar gauge",
    "stat": "Stat",
    "state-timeline": "State timeline",
    "table": "Table",
    "text": "Text",
    "timeseries": "Time series",
}


def panel_types(dashboard: dict[str, Any]) -> list[str]:
    """Panel types used by the dashboard (rows and their nested panels included), sorted."""
    types: set[str] = set()
    stack = list(dashboard.get("panels", []))
    while stack:
        panel = stack.pop()
        if panel["type"] != "row":
            types.add(panel["type"])
        stack.extend(panel.get("panels", []))
    return sorted(types)


def make_export(dashboard: dict[str, Any]) -> dict[str, Any]:
    """The import copy of one provisioned dashboard."""
    requires: list[dict[str, str]] = [
        {"type": "grafana", "id": "grafana", "name": "Grafana", "version": GRAFANA_VERSION},
        {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
    ]
    for panel_type in panel_types(dashboard):
        name = PANEL_NAMES.get(panel_type, panel_type)
        requires.append({"type": "panel", "id": panel_type, "name": name, "version": ""})
    body = json.loads(json.dumps(dashboard))  # a deep copy; the source stays untouched
    body.pop("id", None)
    for variable in body["templating"]["list"]:
        if variable["type"] == "datasource":
            ref = "${" + INPUT_NAME + "}"
            variable["current"] = {"selected": False, "text": ref, "value": ref}
    return {
        "__inputs": [
            {
                "name": INPUT_NAME,
                "label": "Prometheus",
                "description": "The Prometheus that scrapes the integration monitor",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "__elements": {},
        "__requires": requires,
        **body,
    }


def render(dashboard: dict[str, Any]) -> str:
    """The export file's exact text."""
    return json.dumps(make_export(dashboard), indent=2, ensure_ascii=False) + "\n"


def expected_exports() -> dict[Path, str]:
    """Each export file's path and the text it should have."""
    out: dict[Path, str] = {}
    for source in sorted(SOURCE_DIR.glob("*.json")):
        dashboard = json.loads(source.read_text(encoding="utf-8"))
        out[EXPORT_DIR / source.name] = render(dashboard)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale exports")
    args = parser.parse_args(argv)
    expected = expected_exports()
    stale = [
        path
        for path, text in expected.items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    extra = sorted(set(EXPORT_DIR.glob("*.json")) - set(expected))
    if args.check:
        for path in [*stale, *extra]:
            print(f"out of date: {path.relative_to(GRAFANA_DIR.parent)}", file=sys.stderr)
        return 1 if stale or extra else 0
    EXPORT_DIR.mkdir(exist_ok=True)
    for path in stale:
        path.write_text(expected[path], encoding="utf-8")
        print(f"wrote {path.relative_to(GRAFANA_DIR.parent)}")
    for path in extra:
        path.unlink()
        print(f"removed {path.relative_to(GRAFANA_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
