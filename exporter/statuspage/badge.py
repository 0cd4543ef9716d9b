"""Shields-style SVG status badges, built as text with no I/O."""

from __future__ import annotations

from exporter.core.records import Monitor
from exporter.statuspage.svg import xml_text

COLOURS = {
    "ok": "#2e9e44",
    "error": "#d73a3a",
    "notcalculated": "#8a8f98",
    "inactive": "#8a8f98",
    "unknown": "#8a8f98",
}
MESSAGES = {"ok": "ok", "error": "error", "notcalculated": "not calculated"}
LABEL_COLOUR = "#555"
FONT = "Verdana,Geneva,DejaVu Sans,sans-serif"

# Approximate advance widths of Verdana at 11px (what shields measures with). The text is drawn
# with textLength, so a small error in these changes spacing, never overflows the box.
_NARROW = frozenset("fijlrt.,:;!|'()[]{}I ")
_WIDE = frozenset("mwMW%@")
_CAPS = frozenset("ABCDEFGHJKLNOPQRSTUVXYZ")


def text_width(text: str) -> float:
    """The width in pixels of `text` in 11px Verdana, approximately."""
    width = 0.0
    for ch in text:
        if ch in _NARROW:
            width += 3.9
        elif ch in _WIDE:
            width += 10.0
        elif ch in _CAPS:
            width += 7.6
        else:
            width += 6.9
    return width


def badge_for(monitor: Monitor | None) -> tuple[str, str]:
    """The badge's message and colour key for a monitor (None: an unknown key)."""
    if monitor is None:
        return "not found", "unknown"
    if not monitor.settings.active:
        return "inactive", "inactive"
    return MESSAGES[monitor.alertstatus], monitor.alertstatus


def render_badge(label: str, message: str, colour: str) -> str:
    """A flat badge: grey `label` on the left, `message` on `colour` on the right."""
    label_w = round(text_width(label) + 10)
    message_w = round(text_width(message) + 10)
    total = label_w + message_w
    lx, mx = label_w * 5, (label_w + message_w / 2) * 10
    ltl, mtl = (label_w - 10) * 10, (message_w - 10) * 10
    label_e, message_e = xml_text(label), xml_text(message)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" '
        f'aria-label="{label_e}: {message_e}"><title>{label_e}: {message_e}</title>'
        '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" '
        'stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{total}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r)"><rect width="{label_w}" height="20" fill="{LABEL_COLOUR}"/>'
        f'<rect x="{label_w}" width="{message_w}" height="20" fill="{xml_text(colour)}"/>'
        f'<rect width="{total}" height="20" fill="url(#s)"/></g>'
        f'<g fill="#fff" text-anchor="middle" font-family="{FONT}" '
        'text-rendering="geometricPrecision" font-size="110">'
        f'<text aria-hidden="true" x="{lx}" y="150" fill="#010101" fill-opacity=".3" '
        f'transform="scale(.1)" textLength="{ltl}">{label_e}</text>'
        f'<text x="{lx}" y="140" transform="scale(.1)" textLength="{ltl}">{label_e}</text>'
        f'<text aria-hidden="true" x="{mx:.0f}" y="150" fill="#010101" fill-opacity=".3" '
        f'transform="scale(.1)" textLength="{mtl}">{message_e}</text>'
        f'<text x="{mx:.0f}" y="140" transform="scale(.1)" textLength="{mtl}">{message_e}</text>'
        "</g></svg>"
    )
