"""The API docs name every error code the service can answer with, with its status."""

from __future__ import annotations

import re

from exporter.core.errors import DomainError
from exporter.http.errors import CODES, DOMAIN_CODES
from tests.support import ROOT


def _subclasses(cls: type[DomainError]) -> set[type[DomainError]]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def test_every_domain_error_has_its_own_code() -> None:
    assert _subclasses(DomainError) == set(DOMAIN_CODES)
    assert set(DOMAIN_CODES.values()) <= set(CODES)


def test_every_error_code_is_documented_with_its_status() -> None:
    docs = (ROOT / "docs" / "api.md").read_text()
    missing = [code for code in CODES if f"`{code}`" not in docs]
    assert missing == []
    for code, status in CODES.items():
        row = next(line for line in docs.splitlines() if f"`{code}`" in line and "|" in line)
        assert row.startswith(f"| {status} |"), (code, row)


def test_no_code_is_raised_outside_the_table() -> None:
    """Every ApiError the source raises names a code of the table."""
    raised: set[str] = set()
    for source in (ROOT / "exporter").rglob("*.py"):
        raised |= set(re.findall(r'ApiError\(\s*"([a-z_]+)"', source.read_text()))
    assert raised and raised <= set(CODES)
