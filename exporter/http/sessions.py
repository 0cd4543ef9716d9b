"""Status page sign-in sessions: a random id in the cookie, only hashes in the database."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable

from exporter.http.auth import Auth, Caller
from exporter.storage.interface import Store

MAX_AGE_SECONDS = 30 * 86400
PER_TOKEN = 50  # sessions kept per token: signing in again and again cannot grow the table


def _hash(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).digest()


class Sessions:
    """Opens, finds and closes sign-in sessions; the token itself is never kept."""

    def __init__(self, store: Store, auth: Auth, clock: Callable[[], float]) -> None:
        self._store = store
        self._auth = auth
        self._clock = clock

    async def open(self, caller: Caller) -> str:
        """A new session for the caller; returns the id to put in the cookie."""
        session_id = secrets.token_urlsafe(32)
        now = self._clock()
        await self._store.create_session(
            _hash(session_id), caller.token_digest, now, now + MAX_AGE_SECONDS, PER_TOKEN
        )
        return session_id

    async def caller(self, session_id: str) -> Caller | None:
        """The caller of a live session; None when it expired, was closed, or its token is
        no longer configured (a rotated secret ends its sessions)."""
        token_digest = await self._store.find_session(_hash(session_id), self._clock())
        return None if token_digest is None else self._auth.by_digest(token_digest)

    async def close(self, session_id: str) -> None:
        await self._store.delete_session(_hash(session_id))
