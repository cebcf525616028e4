"""The health-personnel portal: server-rendered pages in front of the STS and the hub.

Pages (bokmål): log in as a synthetic health worker → patient and basis for access → the
national document overview. Thin routes: check the session and CSRF token, call one gateway
function, render. Every error becomes the error page (`errors.py`), never a stack trace.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jinja2
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from onerecord.portals.basis import (
    ACCESS_BASES,
    CARE_RELATIONS,
    PURPOSES_OF_USE,
    InvalidAccessRequest,
    healthcare_services,
    parse_access_request,
)
from onerecord.portals.errors import CsrfRejected, NotLoggedIn, PortalError
from onerecord.portals.gateway import fetch_overview, open_patient
from onerecord.portals.sessions import (
    COOKIE_NAME,
    PortalSession,
    SessionStore,
    sign_session_id,
    unsign_session_id,
)
from onerecord.portals.settings import PortalSettings
from onerecord.search_client import StaffMember
from onerecord.trust.keys import SigningKey, require_usable_key

__all__ = ["create_portal_app"]

_HERE = Path(__file__).parent
_SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
_STATUS_TEXT = {
    400: ("Forespørselen var ugyldig.", "Gå tilbake og prøv igjen."),
    404: ("Siden finnes ikke.", "Kontroller adressen, eller gå til forsiden."),
    405: ("Denne handlingen er ikke tillatt på denne siden.", "Gå til forsiden."),
}


def _norwegian_date(value: str) -> str:
    """Return an ISO date (YYYY-MM-DD…) as DD.MM.YYYY, the Norwegian way."""
    if len(value) >= 10 and value[4] == "-" and value[7] == "-":
        return f"{value[8:10]}.{value[5:7]}.{value[0:4]}"
    return value


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["norsk_dato"] = _norwegian_date
    return env


@dataclass
class _Portal:
    """What the routes share: settings, templates, sessions, the key and the HTTP client."""

    settings: PortalSettings
    templates: jinja2.Environment
    sessions: SessionStore
    client_key: SigningKey
    http: httpx.AsyncClient | None = None

    def render(
        self,
        name: str,
        session: PortalSession | None,
        status_code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        body = self.templates.get_template(name).render(session=session, **context)
        response = HTMLResponse(body, status_code=status_code)
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
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        if session is None or not session.csrf_ok(fields.get("csrf_token")):
            raise CsrfRejected()
        return session, fields

    def client(self) -> httpx.AsyncClient:
        if self.http is None:
            raise PortalError("Portalen er ikke startet riktig.")
        return self.http


def _redirect(url: str, portal: _Portal, session: PortalSession | None = None) -> Response:
    response = RedirectResponse(url, status_code=303)
    if session is not None:
        portal.set_cookie(response, session)
    return response


def _load_client_key(settings: PortalSettings) -> SigningKey:
    key = SigningKey.from_jwk(json.loads(settings.client_key_file.read_bytes()))
    return require_usable_key(key, dev_mode=settings.dev_mode)


def create_portal_app(settings: PortalSettings) -> FastAPI:
    """Return the portal's ASGI app for `settings` (the client key is read now)."""
    portal = _Portal(
        settings=settings,
        templates=_templates(),
        sessions=SessionStore(idle_s=settings.session_idle_s),
        client_key=_load_client_key(settings),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=settings.hub_timeout_s) as http:
            portal.http = http
            try:
                yield
            finally:
                portal.http = None

    app = FastAPI(
        title="onerecord portal", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")
    _install_error_pages(app, portal)

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/")
    async def home(request: Request) -> Response:
        session = portal.session(request)
        if session is None or not session.logged_in:
            return _redirect("/helsepersonell/logg-inn", portal)
        if session.hub is None:
            return _redirect("/helsepersonell/pasient", portal)
        return _redirect("/helsepersonell/oversikt", portal)

    @app.get("/helsepersonell/logg-inn")
    async def login_page(request: Request) -> Response:
        session = portal.session_or_new(request)
        return portal.render("login.html", session, staff=settings.staff)

    @app.post("/helsepersonell/logg-inn")
    async def login(request: Request) -> Response:
        session, form = await portal.checked_form(request)
        key = form.get("staff", "")
        data = settings.staff.get(key)
        if data is None or not data.get("category"):
            return portal.render(
                "login.html",
                session,
                status_code=400,
                staff=settings.staff,
                error="Velg en helsearbeider fra listen.",
            )
        session = portal.sessions.rotate(session, now=time.time())
        session.staff_key = key
        session.staff = StaffMember.from_manifest(data)
        session.staff_name = str(data.get("name") or key)
        session.access = None
        session.hub = None
        return _redirect("/helsepersonell/pasient", portal, session)

    def _logged_in(request: Request) -> PortalSession:
        session = portal.session(request)
        if session is None or not session.logged_in:
            raise NotLoggedIn()
        return session

    def _patient_form(session: PortalSession, status_code: int = 200, **extra: Any) -> Response:
        staff = settings.staff.get(session.staff_key or "", {})
        return portal.render(
            "patient.html",
            session,
            status_code=status_code,
            staff=staff,
            services=healthcare_services(),
            purposes=PURPOSES_OF_USE,
            relations=CARE_RELATIONS,
            bases=ACCESS_BASES,
            **({"error": None, "form": {}} | extra),
        )

    @app.get("/helsepersonell/pasient")
    async def patient_page(request: Request) -> Response:
        return _patient_form(_logged_in(request))

    @app.post("/helsepersonell/pasient")
    async def choose_patient(request: Request) -> Response:
        session, form = await portal.checked_form(request)
        if not session.logged_in or session.staff is None:
            raise NotLoggedIn()
        try:
            access = parse_access_request(form)
        except InvalidAccessRequest as exc:
            return _patient_form(session, status_code=400, error=exc.message, form=form)
        session.hub = await open_patient(
            portal.client(),
            sts_url=settings.sts_url,
            client_id=settings.client_id,
            client_key=portal.client_key,
            audience=settings.hub_audience,
            staff=session.staff,
            request=access,
        )
        session.access = access
        return _redirect("/helsepersonell/oversikt", portal, session)

    @app.get("/helsepersonell/oversikt")
    async def overview_page(request: Request) -> Response:
        session = _logged_in(request)
        if session.hub is None or session.access is None:
            return _redirect("/helsepersonell/pasient", portal, session)
        overview = await fetch_overview(
            portal.client(),
            session.hub,
            hub_fhir=settings.hub_fhir,
            regions=settings.regions,
        )
        return portal.render("overview.html", session, overview=overview, access=session.access)

    @app.post("/logg-ut")
    async def logout(request: Request) -> Response:
        session, _form = await portal.checked_form(request)
        portal.sessions.end(session.id)
        response = _redirect("/helsepersonell/logg-inn", portal)
        response.delete_cookie(
            COOKIE_NAME,
            path="/",
            secure=settings.secure_cookies,
            httponly=True,
            samesite="lax",
        )
        return response

    return app


def _install_error_pages(app: FastAPI, portal: _Portal) -> None:
    """Turn every failure into the error page: what happened, what to do; no stack trace."""

    def page(status_code: int, message: str, advice: str) -> HTMLResponse:
        body = portal.templates.get_template("error.html").render(
            session=None, message=message, advice=advice, status_code=status_code
        )
        return HTMLResponse(body, status_code=status_code)

    async def portal_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PortalError)
        return page(exc.status_code, exc.message, exc.advice)

    async def http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        message, advice = _STATUS_TEXT.get(
            exc.status_code, ("Forespørselen kunne ikke utføres.", "Gå til forsiden.")
        )
        return page(exc.status_code, message, advice)

    async def validation_error(_request: Request, _exc: Exception) -> Response:
        return page(400, *_STATUS_TEXT[400])

    async def unexpected(_request: Request, _exc: Exception) -> Response:
        return page(500, PortalError.message, PortalError.advice)

    app.add_exception_handler(PortalError, portal_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)
