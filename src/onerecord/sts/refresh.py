"""Refresh tokens: opaque, kept server-side, bound to client, user and DPoP key, rotated on use.

A refresh token is 32 random bytes (base64url); the STS keeps only its SHA-256, with the grant
it stands for. Redeeming one retires it and returns a new one of the same family, which keeps
the family's absolute expiry (a login lasts at most `refresh_token_lifetime`). Presenting a
retired token again is taken as theft: the whole family is revoked.

References: RFC 6749 §6 (refresh), §10.4; RFC 9700 §4.14.2 (rotation, reuse detection);
RFC 9449 §5 (DPoP-bound refresh tokens).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, replace

from onerecord.sts.users import UserKind
from onerecord.trust.attestation import Attestation
from onerecord.trust.errors import InvalidGrant

__all__ = ["RefreshGrant", "RefreshTokenStore"]


@dataclass(frozen=True, slots=True)
class RefreshGrant:
    """What a refresh token stands for: the login it continues and the key it is bound to."""

    client_id: str
    subject: str
    user_kind: UserKind
    acr: str
    scope: tuple[str, ...]
    resource: str
    jkt: str
    attestation: Attestation | None
    auth_time: int
    expires_at: float
    family: str = ""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class RefreshTokenStore:
    """Refresh tokens in memory, by digest; single use with reuse detection."""

    def __init__(self) -> None:
        self._active: dict[str, RefreshGrant] = {}
        self._retired: dict[str, tuple[str, float]] = {}

    def _prune(self, now: float) -> None:
        for digest in [d for d, g in self._active.items() if g.expires_at < now]:
            del self._active[digest]
        for digest in [d for d, (_, exp) in self._retired.items() if exp < now]:
            del self._retired[digest]

    def issue(self, grant: RefreshGrant, *, now: float) -> str:
        """Store `grant` (a new family unless it names one) and return its new refresh token."""
        self._prune(now)
        token = secrets.token_urlsafe(32)
        family = grant.family or secrets.token_urlsafe(12)
        self._active[_digest(token)] = replace(grant, family=family)
        return token

    def find(self, token: str, *, now: float) -> RefreshGrant:
        """Return the grant of an active token; refuse unknown, expired and retired ones."""
        digest = _digest(token)
        grant = self._active.get(digest)
        if grant is not None and grant.expires_at >= now:
            return grant
        retired = self._retired.get(digest)
        if retired is not None:
            self.revoke_family(retired[0])
            raise InvalidGrant("refresh token was used before; its whole login is revoked")
        self._active.pop(digest, None)
        raise InvalidGrant("refresh token is unknown or expired")

    def rotate(self, token: str, grant: RefreshGrant, *, now: float) -> str:
        """Retire `token` and return a new token for `grant` in the same family."""
        old = self._active.pop(_digest(token))
        self._retired[_digest(token)] = (old.family, old.expires_at)
        return self.issue(replace(grant, family=old.family, expires_at=old.expires_at), now=now)

    def revoke_family(self, family: str) -> None:
        """Forget every active token of one login."""
        for digest in [d for d, g in self._active.items() if g.family == family]:
            del self._active[digest]
