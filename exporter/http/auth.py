"""Bearer tokens by role and by monitor, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from exporter.config import Role, TokenConfig

NO_TOKENS: frozenset[Role] = frozenset(("push", "read", "admin"))
# What each endpoint needs: one of these roles.
PUSH: frozenset[Role] = frozenset({"push"})
READ: frozenset[Role] = frozenset({"read"})
ADMIN: frozenset[Role] = frozenset({"admin"})


def digest(secret: str) -> bytes:
    """What is kept of a secret: its SHA-256."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request: the token's name, its roles and the monitors it covers."""

    name: str
    roles: frozenset[Role]
    monitors: tuple[str, ...] | None = None  # glob patterns on integration_key; None: all
    token_digest: bytes = b""

    @property
    def scoped(self) -> bool:
        return self.monitors is not None

    def covers(self, key: str) -> bool:
        """Whether the token may see and report for the monitor with this key."""
        return self.monitors is None or any(fnmatchcase(key, p) for p in self.monitors)


ANONYMOUS = Caller("anonymous", NO_TOKENS)


class Auth:
    """Maps a request's token (or a sign-in session's token digest) to its caller."""

    def __init__(self, tokens: Iterable[TokenConfig]) -> None:
        self._callers = [
            Caller(t.name, frozenset(t.roles), t.monitors, digest(t.token)) for t in tokens
        ]

    @property
    def enabled(self) -> bool:
        return bool(self._callers)

    def identify(self, secret: str | None) -> Caller | None:
        """The caller holding `secret`; None for a missing or unknown token.

        Every configured token is compared, each with hmac.compare_digest, so the time taken
        says nothing about which token (or how much of one) matched.
        """
        if not self._callers:
            return ANONYMOUS
        if not secret:
            return None
        return self.by_digest(digest(secret))

    def by_digest(self, given: bytes) -> Caller | None:
        """The caller whose token has this digest (a session keeps the digest, not the token)."""
        if not self._callers:
            return ANONYMOUS
        found = None
        for caller in self._callers:
            if hmac.compare_digest(caller.token_digest, given):
                found = caller
        return found


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
