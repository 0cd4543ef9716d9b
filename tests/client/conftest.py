"""Fixtures of the client tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest


@pytest.fixture
def closed_url() -> Iterator[str]:
    """A URL where nothing listens: the port is bound, never listening, so connects fail."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
