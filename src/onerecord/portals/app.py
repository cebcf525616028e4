"""The portals' ASGI app: the health-personnel portal and the citizen portal on one server.

Both are ordinary hub clients behind server-side sessions (`sessions.py`). This module wires
what they share: static files, security headers, the language switch and logout; the error
pages live in `error_pages.py`, the pages themselves in `hcp_routes.py` and `citizen_routes.py`.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from onerecord.portals.citizen_gp_routes import install_citizen_gp_routes
from onerecord.portals.citizen_routes import install_citizen_routes
from onerecord.portals.clinic_routes import install_clinic_routes
from onerecord.portals.error_pages import install_error_pages
from onerecord.portals.hcp_routes import install_hcp_routes
from onerecord.portals.i18n import LANGUAGE_COOKIE, LANGUAGES
from onerecord.portals.notify import EmergencyNotifier, SmtpSettings
from onerecord.portals.override_log import FileOverrideLog
from onerecord.portals.sessions import SessionStore
from onerecord.portals.settings import PortalSettings
from onerecord.portals.static_files import StaticFolder
from onerecord.portals.web import Portal, load_client_key, make_templates, safe_next

__all__ = ["create_portal_app"]

_HERE = Path(__file__).parent
_SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'self'; frame-ancestors 'none'; "
        "form-action 'self' {sts}"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
_ONE_YEAR_S = 365 * 24 * 3600


def _notifier(settings: PortalSettings) -> EmergencyNotifier | None:
    """The citizen's emergency notice by e-mail, when an SMTP server is configured."""
    if settings.smtp_host is None:
        return None
    return EmergencyNotifier(
        SmtpSettings(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_from,
            outbox=settings.notice_outbox_dir,
            timeout_s=settings.smtp_timeout_s,
            starttls=settings.smtp_starttls,
        )
    )


def create_portal_app(settings: PortalSettings) -> FastAPI:
    """Return the portals' ASGI app for `settings` (the client key is read now)."""
    portal = Portal(
        settings=settings,
        templates=make_templates(),
        sessions=SessionStore(idle_s=settings.session_idle_s),
        client_key=load_client_key(settings),
        override_log=FileOverrideLog(settings.override_log_file),
        notifier=_notifier(settings),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Everything allocated at start-up lives as long as the process: keep it out of full
        # collections, which otherwise walk it in the middle of a request (bench/portal.py).
        gc.freeze()
        warming = asyncio.create_task(portal.renderer.warm())
        if portal.notifier is not None:
            portal.notifier.resume()  # notices a former run could not send
        async with httpx.AsyncClient(timeout=settings.hub_timeout_s) as http:
            portal.http = http
            try:
                yield
            finally:
                portal.http = None
                if portal.notifier is not None:
                    await asyncio.to_thread(portal.notifier.close)
                await asyncio.gather(warming, return_exceptions=True)
                await portal.renderer.aclose()

    app = FastAPI(
        title="onerecord portals",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.portal = portal
    # Versioned, cached, gzipped static files (issue 11, defect 8); pages stay no-store below.
    static = StaticFolder(_HERE / "static")
    static.install(app)
    portal.templates.globals["static_url"] = static.url
    portal.templates.globals["page_time"] = lambda: datetime.now(UTC)
    headers = {
        name: value.format(sts=settings.sts_url) for name, value in _SECURITY_HEADERS.items()
    }
    install_error_pages(app, portal, headers)

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/")
    async def home(request: Request) -> Response:
        session = portal.session(request)
        if session is not None and session.logged_in:
            return portal.redirect(
                "/helsepersonell/oversikt" if session.hub else "/helsepersonell/pasient"
            )
        if session is not None and session.citizen_logged_in:
            return portal.redirect("/innbygger/dokumenter")
        return portal.render(request, "start.html", session)

    @app.get("/sprak/{language}")
    async def switch_language(language: str, request: Request) -> Response:
        """Set the language cookie and go back (a preference, so a plain link will do)."""
        target = safe_next(request.query_params.get("neste"))
        response = portal.redirect(target)
        if language in LANGUAGES:
            response.set_cookie(
                LANGUAGE_COOKIE,
                language,
                max_age=_ONE_YEAR_S,
                httponly=True,
                secure=settings.secure_cookies,
                samesite="lax",
                path="/",
            )
        return response

    @app.post("/logg-ut")
    async def logout(request: Request) -> Response:
        session, _form = await portal.checked_form(request)
        citizen = session.role == "citizen"
        portal.sessions.end(session.id)
        response = portal.redirect("/innbygger/logg-inn" if citizen else "/helsepersonell/logg-inn")
        portal.clear_cookie(response)
        return response

    install_hcp_routes(app, portal)
    install_clinic_routes(app, portal)
    install_citizen_routes(app, portal)
    install_citizen_gp_routes(app, portal)
    return app
