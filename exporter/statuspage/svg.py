"""Text for SVG and other XML: escaped, and without the characters XML 1.0 forbids.

A monitor's name or a run's text may hold control characters (JSON allows `\\u0001`); one of
them left in an SVG served as `image/svg+xml` makes the whole image invalid.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(value: str) -> Markup:
    """`value` escaped for XML text or attributes, each forbidden character shown as �."""
    return escape(_NOT_XML.sub("\ufffd", value))
