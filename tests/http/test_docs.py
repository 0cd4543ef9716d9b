"""The API docs name every error code the service can answer with."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_error_code_is_documented() -> None:
    docs = (ROOT / "docs" / "api.md").read_text()
    codes: set[str] = set()
    for source in (ROOT / "exporter").rglob("*.py"):
        text = source.read_text()
        codes |= set(re.findall(r'ApiError\(\s*\d{3},\s*"([a-z_]+)"', text))
        codes |= set(re.findall(r'NotFound\(\s*"([a-z_]+)"', text))
        codes |= set(re.findall(r'^\s+\d{3}: \("([a-z_]+)"', text, re.MULTILINE))
    expected = {"monitor_not_found", "invalid_status", "body_too_large", "batch_already_finished"}
    assert expected | {"monitor_type_mismatch", "idempotency_key_reused"} <= codes
    missing = sorted(code for code in codes if f"`{code}`" not in docs)
    assert missing == []
