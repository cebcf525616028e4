"""Server-side portal sessions: an in-memory store keyed by a random id in a signed cookie.

Tokens and DPoP keys stay here, on the server; the browser holds only the signed session id.
Each session carries its own CSRF token, which every form sends back and every POST checks.
References: OWASP Session Management and CSRF Prevention cheat sheets (synchronizer token).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

from onerecord.portals.basis import AccessRequest
from onerecord.search_client import HubSession, StaffMember

__all__ = [
    "COOKIE_NAME",
    "PortalSession",
    "SessionStore",
    "sign_session_id",
    "unsign_session_id",
]

COOKIE_NAME = "onerecord_portal"


@dataclass
class PortalSession:
    """One browser's state at the portal: who is logged in, for which patient, on what basis."""

    id: str
    csrf_token: str
    last_seen: float
    staff_key: str | None = None
    staff: StaffMember | None = None
    staff_name: str | None = None
    access: AccessRequest | None = None
    hub: HubSession | None = field(default=None, repr=False)

    @property
    def logged_in(self) -> bool:
        return self.staff is not None

    def csrf_ok(self, sent: str | None) -> bool:
        """Compare the form's CSRF token with the session's in constant time."""
        return sent is not None and hmac.compare_digest(sent, self.csrf_token)


def sign_session_id(session_id: str, secret: str) -> str:
    """Return the cookie value: the id and its HMAC-SHA256 under the portal's secret."""
    mac = hmac.new(secret.encode(), session_id.encode(), hashlib.sha256).hexdigest()
    return f"{session_id}.{mac}"


def unsign_session_id(value: str, secret: str) -> str | None:
    """Return the session id of a cookie value, or None when its signature does not match."""
    session_id, _, mac = value.rpartition(".")
    if not session_id:
        return None
    expected = hmac.new(secret.encode(), session_id.encode(), hashlib.sha256).hexdigest()
    return session_id if hmac.compare_digest(mac, expected) else None


class SessionStore:
    """Sessions in this process's memory; idle ones expire (one portal process for now)."""

    def __init__(self, *, idle_s: float) -> None:
        self._sessions: dict[str, PortalSession] = {}
        self._idle_s = idle_s

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, *, now: float) -> PortalSession:
        """Start an anonymous session with a fresh id and CSRF token."""
        self._expire(now)
        session = PortalSession(
            id=secrets.token_urlsafe(32), csrf_token=secrets.token_urlsafe(32), last_seen=now
        )
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str, *, now: float) -> PortalSession | None:
        """Return a live session and mark it used; None when unknown or idle too long."""
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if now - session.last_seen > self._idle_s:
            del self._sessions[session_id]
            return None
        session.last_seen = now
        return session

    def rotate(self, session: PortalSession, *, now: float) -> PortalSession:
        """Give a session a new id and CSRF token (at login: no session fixation)."""
        self._sessions.pop(session.id, None)
        session.id = secrets.token_urlsafe(32)
        session.csrf_token = secrets.token_urlsafe(32)
        session.last_seen = now
        self._sessions[session.id] = session
        return session

    def end(self, session_id: str) -> None:
        """Forget a session and everything it holds (logout)."""
        self._sessions.pop(session_id, None)

    def _expire(self, now: float) -> None:
        for key in [k for k, s in self._sessions.items() if now - s.last_seen > self._idle_s]:
            del self._sessions[key]
