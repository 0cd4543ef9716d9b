"""Bearer tokens by role, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from exporter.config import Role, TokenConfig

NO_TOKENS: frozenset[Role] = frozenset(("push", "read", "admin"))


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


class Auth:
    """Maps a request's Authorization header to the roles of its token."""

    def __init__(self, tokens: Iterable[TokenConfig]) -> None:
        self._tokens = [(_digest(t.token), t.name, frozenset(t.roles)) for t in tokens]

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def identify(self, secret: str | None) -> tuple[str, frozenset[Role]] | None:
        """The token's name and roles; None for a missing or unknown token.

        Every configured token is compared, each with hmac.compare_digest, so the time taken
        says nothing about which token (or how much of one) matched.
        """
        if not self._tokens:
            return ("anonymous", NO_TOKENS)
        if not secret:
            return None
        given = _digest(secret)
        found = None
        for digest, name, roles in self._tokens:
            if hmac.compare_digest(digest, given):
                found = (name, roles)
        return found


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
