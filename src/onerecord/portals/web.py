"""What every portal route shares: settings, templates, sessions, language and the HTTP client.

Rendering adds the translator (`t`), the language and its switch links to every template, so a
page never hard-codes its texts. The language comes from the `onerecord_lang` cookie, set by
the switch (`GET /sprak/{lang}`); bokmål when there is none.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import httpx
import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from onerecord.portals.errors import CsrfRejected, PortalError
from onerecord.portals.i18n import (
    LANGUAGE_COOKIE,
    LANGUAGES,
    Translator,
    choose_language,
    format_date,
)
from onerecord.portals.notify import EmergencyNotifier
from onerecord.portals.oauth import TokenSet, finish_login, start_login
from onerecord.portals.override_log import OverrideLog
from onerecord.portals.render_pool import RenderPool
from onerecord.portals.sessions import (
    COOKIE_NAME,
    PortalSession,
    SessionStore,
    sign_session_id,
    unsign_session_id,
)
from onerecord.portals.settings import PortalSettings
from onerecord.portals.visits import Visits, VisitStore
from onerecord.trust.keys import SigningKey, require_usable_key

__all__ = [
    "MAX_FORM_BYTES",
    "Portal",
    "language_of",
    "load_client_key",
    "make_templates",
    "read_form",
    "safe_next",
]

_HERE = Path(__file__).parent
MAX_FORM_BYTES = 64 * 1024
"""The largest form body the portal reads (the longest field, a reason, is 500 characters)."""


def make_templates() -> jinja2.Environment:
    """Return the Jinja2 environment: autoescape on, undefined names are errors."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["norsk_dato"] = lambda value: format_date(value, "nb")
    env.filters["urlquote"] = lambda value: quote(str(value), safe="")
    return env


def load_client_key(settings: PortalSettings) -> SigningKey:
    """Read the portal's client key; a development key is refused outside dev mode."""
    key = SigningKey.from_jwk(json.loads(settings.client_key_file.read_bytes()))
    return require_usable_key(key, dev_mode=settings.dev_mode)


def language_of(request: Request) -> str:
    """Return the language the user chose (cookie), else bokmål."""
    return choose_language(request.cookies.get(LANGUAGE_COOKIE))


def safe_next(value: str | None, default: str = "/") -> str:
    """Return `value` when it is a path on this site (no open redirect), else `default`."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    return value


async def read_form(request: Request, limit: int = MAX_FORM_BYTES) -> dict[str, str]:
    """Return a urlencoded form, read no further than `limit` bytes (413 beyond it).

    The portal's forms are all urlencoded; any other body counts as an empty form.
    """
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        return {}
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413)
    return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))


@dataclass
class Portal:
    """The portal's shared state; the routes receive it, never build it."""

    settings: PortalSettings
    templates: jinja2.Environment
    sessions: SessionStore
    client_key: SigningKey
    override_log: OverrideLog
    http: httpx.AsyncClient | None = None
    notifier: EmergencyNotifier | None = None
    """Sends the citizen's emergency notice (None: no SMTP configured)."""
    discovery: dict[str, Any] = field(default_factory=dict)
    renderer: RenderPool = field(init=False)
    """Renders documents off the event loop, within the settings' limits."""
    visits: Visits = field(init=False)
    """When each user last saw each patient's overview («Ny», `visits.py`)."""

    def __post_init__(self) -> None:
        self.renderer = RenderPool(
            workers=self.settings.render_workers,
            timeout_s=self.settings.render_timeout_s,
            max_bytes=self.settings.render_max_bytes,
        )
        secret = self.settings.session_secret.get_secret_value()
        self.visits = Visits(VisitStore(self.settings.visits_path, secret))

    def render(
        self,
        request: Request,
        name: str,
        session: PortalSession | None,
        status_code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        """Render template `name` in the user's language; refresh the session cookie."""
        language = language_of(request)
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        body = self.templates.get_template(name).render(
            session=session,
            t=Translator(language),
            lang=language,
            languages=LANGUAGES,
            here=here,
            **context,
        )
        response = HTMLResponse(body, status_code=status_code)
        if session is not None:
            self.set_cookie(response, session)
        return response

    def redirect(self, url: str, session: PortalSession | None = None) -> Response:
        """Answer 303 See Other to `url` (after a POST, or to the right page)."""
        response = RedirectResponse(url, status_code=303)
        if session is not None:
            self.set_cookie(response, session)
        return response

    def set_cookie(self, response: Response, session: PortalSession) -> None:
        response.set_cookie(
            COOKIE_NAME,
            sign_session_id(session.id, self.settings.session_secret.get_secret_value()),
            httponly=True,
            secure=self.settings.secure_cookies,
            samesite="lax",
            path="/",
        )

    def clear_cookie(self, response: Response) -> None:
        response.delete_cookie(
            COOKIE_NAME,
            path="/",
            secure=self.settings.secure_cookies,
            httponly=True,
            samesite="lax",
        )

    def session(self, request: Request) -> PortalSession | None:
        raw = request.cookies.get(COOKIE_NAME)
        if not raw:
            return None
        sid = unsign_session_id(raw, self.settings.session_secret.get_secret_value())
        return self.sessions.get(sid, now=time.time()) if sid else None

    def session_or_new(self, request: Request) -> PortalSession:
        return self.session(request) or self.sessions.create(now=time.time())

    async def checked_form(self, request: Request) -> tuple[PortalSession, Mapping[str, str]]:
        """Return the session and form of a POST whose CSRF token matches; else 403."""
        session = self.session(request)
        if session is None:
            raise CsrfRejected()
        fields = await read_form(request)
        if not session.csrf_ok(fields.get("csrf_token")):
            raise CsrfRejected()
        return session, fields

    def begin_login(self, session: PortalSession, *, role: str, callback_path: str) -> Response:
        """Send the browser to the STS (code + PKCE) and remember the login in the session."""
        pending, url = start_login(
            sts_url=self.settings.sts_url,
            client_id=self.settings.client_id,
            redirect_uri=f"{self.settings.public_url}{callback_path}",
            role=role,
            audience=self.settings.hub_audience,
        )
        session.pending_login = pending
        return self.redirect(url, session)

    async def complete_login(
        self, request: Request, *, role: str
    ) -> tuple[PortalSession, TokenSet]:
        """Redeem the code the STS sent back for `role`; return the rotated session and tokens.

        The session gets a new id and CSRF token (no fixation) and the role; the caller fills
        in who logged in. A callback without its pending login is refused (LoginFailed).
        """
        session = self.session(request)
        pending = session.pending_login if session is not None else None
        tokens = await finish_login(
            self.client(),
            sts_url=self.settings.sts_url,
            client_id=self.settings.client_id,
            client_key=self.client_key,
            pending=pending if pending is not None and pending.role == role else None,
            params=dict(request.query_params),
        )
        assert session is not None  # finish_login refuses a callback without a pending login
        session = self.sessions.rotate(session, now=time.time())
        session.pending_login = None
        session.role = role
        session.tokens = tokens
        return session, tokens

    def client(self) -> httpx.AsyncClient:
        if self.http is None:
            raise PortalError()
        return self.http
