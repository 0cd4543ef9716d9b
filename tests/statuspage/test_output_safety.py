"""Output that stays valid whatever a name or text holds, and JSON that browsers and caches
handle as data."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from aiohttp import web
from aiohttp.test_utils import TestClient

from exporter.statuspage.badge import render_badge
from exporter.statuspage.svg import xml_text
from tests.conftest import put_monitor

Client = TestClient[web.Request, web.Application]
CONTROL = "".join(chr(c) for c in range(32)) + "\ufffe<&>\"'"


def test_xml_text_drops_what_xml_forbids() -> None:
    text = str(xml_text(CONTROL))
    assert "\x00" not in text and "\x1b" not in text and "\ufffe" not in text
    assert "\t" in text and "\n" in text and "&lt;&amp;&gt;" in text
    ET.fromstring(f"<a b='{xml_text(CONTROL)}'>{xml_text(CONTROL)}</a>")


def test_a_badge_of_any_name_is_valid_xml() -> None:
    svg = render_badge(CONTROL, "\x07error", "#000")
    ET.fromstring(svg)


async def test_a_monitor_named_with_control_characters_gets_a_valid_badge(client: Client) -> None:
    await put_monitor(client, "odd", name="CRM\x00\x1b[31m\x08sync")
    response = await client.get("/badge/odd.svg")
    assert response.status == 200
    root = ET.fromstring(await response.text())
    assert "CRM" in "".join(root.itertext())
    assert (await client.get("/monitors/odd")).status == 200


async def test_json_answers_are_not_sniffed_or_cached(client: Client) -> None:
    await put_monitor(client, "crm")
    for path in ("/api/v1/monitors", "/api/v1/monitors/crm", "/api/v1/monitors/nope", "/healthz"):
        response = await client.get(path)
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
        assert response.headers["Cache-Control"] == "no-store", path
        assert response.content_type == "application/json", path
