"""Plumbing the tests share: processes and binaries, the service in a subprocess, and ROOT."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository: tests/support/ is two below it
