"""Server-side portal sessions: an in-memory store keyed by a random id in a signed cookie.

Tokens and DPoP keys stay here, on the server; the browser holds only the signed session id.
Each session carries its own CSRF token, which every form sends back and every POST checks.
References: OWASP Session Management and CSRF Prevention cheat sheets (synchronizer token).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from onerecord.portals.basis import AccessRequest
from onerecord.portals.emergency import ActiveOverride
from onerecord.portals.imaging import ImagingManifest
from onerecord.portals.listing_cache import CachedOverview
from onerecord.portals.oauth import PendingLogin, TokenSet
from onerecord.portals.overview import DocumentRow
from onerecord.portals.patient_lookup import PatientLookupResult
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
    """One browser's state at the portal: who is logged in, for which patient, on what basis.

    `role` is "hcp" (health personnel) or "citizen" once logged in. Health personnel: `staff`
    (their workplace, chosen after login), `access` (the stated basis) and `hub` (the token for
    that patient). Citizens: `citizen_nin`, whom they act for (`acting_for`) and `hub`.
    """

    id: str
    csrf_token: str
    last_seen: float
    role: str | None = None
    pending_login: PendingLogin | None = field(default=None, repr=False)
    tokens: TokenSet | None = field(default=None, repr=False)
    user_nin: str | None = None
    user_name: str | None = None
    hpr_number: str | None = None
    staff_key: str | None = None
    staff: StaffMember | None = None
    staff_name: str | None = None
    access: AccessRequest | None = None
    override: ActiveOverride | None = field(default=None, repr=False)
    """The emergency override in force for `access.patient` (portals.emergency), if any."""
    hub: HubSession | None = field(default=None, repr=False)
    patient_lookup: PatientLookupResult | None = field(default=None, repr=False)
    """Who the population register says `access.patient` is; set together with `access`."""
    citizen_nin: str | None = None
    acting_for: str | None = None
    representations: tuple[dict[str, Any], ...] = ()
    refused: tuple[dict[str, Any], ...] = ()
    dialogue_representations: tuple[dict[str, Any], ...] = ()
    """The people the citizen may act for in the GP pages only (a child of 12–15 at the
    parent's address: the STS's `onerecord:representation_dialogue`), not in the record."""
    flash: str | None = None
    workplace_name: str | None = None
    kept_patient: str | None = None
    """The patient whose basis a workplace change dropped: filled in on the patient form."""
    return_to: str | None = None
    """The page to come back to after a login started from «Økten din er avsluttet»."""
    ended_login: bool = False
    """An anonymous session started where a login had ended: its page says so until login."""
    rows: dict[str, DocumentRow] = field(default_factory=dict, repr=False)
    overview_cache: CachedOverview | None = field(default=None, repr=False)
    """The last overview, reused for sorting, paging and back links (`listing_cache.py`)."""
    visits_seen: dict[str, datetime | None] = field(default_factory=dict, repr=False)
    """Per (user, patient) key: the last visit before this session («Ny», `visits.py`)."""
    log_readers: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)
    """The readers of the last access log shown: opaque reference → (patient, HPR number), so
    that «Sperr» on a visit is resolved here, on the server (issue 11 defect 4)."""
    blocked_rows: tuple[DocumentRow, ...] = field(default=(), repr=False)
    """The «Sperret» rows of the last overview: what an emergency override may name."""
    manifests: dict[str, ImagingManifest] = field(default_factory=dict, repr=False)
    """The imaging manifests fetched, by the document's retrieve token (`imaging_pages.py`):
    what the viewer's proxy may reach. A token names one document, so a kept entry stays true;
    it is reached only through a row the session lists now."""
    dialogue_tokens: TokenSet | None = field(default=None, repr=False)
    """The citizen's token for the dialogue service (the GP pages); bound to the login's DPoP
    key, so one held from an earlier login is never used (`citizen_gp_routes.py`)."""
    refresh_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False, compare=False)
    """Held while a token is renewed: the refresh token rotates, so one renewal at a time."""

    @property
    def emergency_reason(self) -> str | None:
        """The reason of the override in force (None: no override)."""
        return self.override.reason if self.override is not None else None

    @emergency_reason.setter
    def emergency_reason(self, value: None) -> None:
        """Setting None ends the override (a new login, workplace or patient)."""
        if value is not None:
            raise ValueError("an override is set with its scope (PortalSession.override)")
        self.override = None

    @property
    def logged_in(self) -> bool:
        """True when a health worker has logged in and chosen a workplace."""
        return self.role == "hcp" and self.staff is not None

    @property
    def citizen_logged_in(self) -> bool:
        return self.role == "citizen" and self.citizen_nin is not None and self.tokens is not None

    @property
    def display_name(self) -> str | None:
        return self.staff_name or self.user_name

    def csrf_ok(self, sent: str | None) -> bool:
        """Compare the form's CSRF token with the session's in constant time."""
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf_token.encode())


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
    return session_id if hmac.compare_digest(mac.encode(), expected.encode()) else None


class SessionStore:
    """Sessions in this process's memory; idle ones expire (one portal process for now).

    Two pools, each bounded and each dropping its own least recently used session when full:
    anonymous sessions (`create`: anyone who opens a login page gets one, for the form's CSRF
    token) and logged-in ones (`rotate`, at login). A flood of anonymous visitors can only push
    out other anonymous sessions, never someone who has logged in.
    """

    def __init__(
        self, *, idle_s: float, max_sessions: int = 10_000, max_anonymous: int = 10_000
    ) -> None:
        # Insertion order is use order (`get` moves a session to the end): the first is the
        # least recently used, so eviction and expiry are cheap even under a flood.
        self._anonymous: OrderedDict[str, PortalSession] = OrderedDict()
        self._logged_in: OrderedDict[str, PortalSession] = OrderedDict()
        self._idle_s = idle_s
        self._max_logged_in = max_sessions
        self._max_anonymous = max_anonymous

    def __len__(self) -> int:
        return len(self._anonymous) + len(self._logged_in)

    def create(self, *, now: float) -> PortalSession:
        """Start an anonymous session with a fresh id and CSRF token.

        At `max_anonymous` the least recently used anonymous session is dropped, so anonymous
        visitors cannot fill memory; logged-in sessions are kept apart and are never dropped
        for them.
        """
        session = PortalSession(
            id=secrets.token_urlsafe(32), csrf_token=secrets.token_urlsafe(32), last_seen=now
        )
        self._admit(self._anonymous, session, self._max_anonymous, now)
        return session

    def get(self, session_id: str, *, now: float) -> PortalSession | None:
        """Return a live session and mark it used; None when unknown or idle too long."""
        for pool in (self._logged_in, self._anonymous):
            session = pool.get(session_id)
            if session is None:
                continue
            if now - session.last_seen > self._idle_s:
                del pool[session_id]
                return None
            session.last_seen = max(session.last_seen, now)
            pool.move_to_end(session_id)
            return session
        return None

    def rotate(self, session: PortalSession, *, now: float) -> PortalSession:
        """Give a session a new id and CSRF token and count it as logged in (at login).

        A new id at login: no session fixation. At `max_sessions` logged-in sessions the least
        recently used of them is dropped.
        """
        self.end(session.id)
        session.id = secrets.token_urlsafe(32)
        session.csrf_token = secrets.token_urlsafe(32)
        session.last_seen = now
        self._admit(self._logged_in, session, self._max_logged_in, now)
        return session

    def end(self, session_id: str) -> None:
        """Forget a session and everything it holds (logout)."""
        self._anonymous.pop(session_id, None)
        self._logged_in.pop(session_id, None)

    def _admit(
        self, pool: OrderedDict[str, PortalSession], session: PortalSession, cap: int, now: float
    ) -> None:
        self._expire(self._anonymous, now)
        self._expire(self._logged_in, now)
        while pool and len(pool) >= cap:
            pool.popitem(last=False)
        pool[session.id] = session

    def _expire(self, pool: OrderedDict[str, PortalSession], now: float) -> None:
        while pool:
            oldest = next(iter(pool.values()))
            if now - oldest.last_seen <= self._idle_s:
                return
            del pool[oldest.id]
