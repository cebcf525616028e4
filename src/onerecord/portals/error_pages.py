"""The portals' error pages: what happened and what to do, in the user's language.

Every failure becomes one page (`templates/error.html`) with a heading, a sentence, advice and
no stack trace. Three get more than words (issue 11, defect 8):

- **No login, or it has ended** (`NotLoggedIn`, `SessionEnded`: the portal session expired or
  was logged out elsewhere, the hub refused the token with 401, the STS the refresh token):
  «Økten din er avsluttet» (or «Du er ikke logget inn» when there never was a session), with a
  button that starts the login of that portal at once and comes back to the page afterwards
  (`neste`, `return_to.after_login`). An ended login's session is ended here too, and a new
  anonymous one carries the button's CSRF token; a live session of someone else (a citizen on
  a health-personnel page) is kept.
- **A form too old** (`CsrfRejected`): said in words, with a link back to the form's page; if
  the session behind the form has ended, the login page above instead.
- **A patient's block** (`PractitionerBlocked`): its own heading, wherever the refusal came from.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from onerecord.logs import log_unexpected_error
from onerecord.portals.errors import CsrfRejected, NotLoggedIn, PortalError, SessionEnded
from onerecord.portals.i18n import LANGUAGES, Translator
from onerecord.portals.return_to import CITIZEN_AREA, HCP_AREA, after_login, area_of
from onerecord.portals.sessions import COOKIE_NAME
from onerecord.portals.web import Portal, language_of

__all__ = ["install_error_pages", "page_of"]

log = structlog.get_logger("onerecord.portals")
_AREA_HOME = {HCP_AREA: f"{HCP_AREA}/oversikt", CITIZEN_AREA: f"{CITIZEN_AREA}/dokumenter"}


def _has_page(app: FastAPI, path: str) -> bool:
    """True when `path` answers a GET in `app` (a page, not only a form's target)."""
    scope = {"type": "http", "path": path, "method": "GET", "root_path": ""}
    return any(route.matches(scope)[0] is Match.FULL for route in app.router.routes)


def page_of(request: Request) -> str:
    """The page a request belongs to: itself for a GET; for a form, the page at its address,
    else its portal's front page (the form's own page is not known)."""
    path = request.url.path
    if request.method in ("GET", "HEAD"):
        return path + (f"?{request.url.query}" if request.url.query else "")
    if _has_page(request.app, path):
        return path
    area = area_of(path)
    return _AREA_HOME[area] if area is not None else "/"


def install_error_pages(app: FastAPI, portal: Portal, headers: Mapping[str, str]) -> None:
    """Turn every failure into the error page: what happened, what to do; no stack trace.

    The page carries the security headers itself: an unexpected error is answered outside
    the middleware that adds them to every other response.
    """

    def page(
        request: Request, status_code: int, heading: str, message: str, advice: str, **extra: Any
    ) -> HTMLResponse:
        t = Translator(language_of(request))
        body = portal.templates.get_template("error.html").render(
            t=t,
            lang=t.language,
            languages=LANGUAGES,
            here=page_of(request),
            heading=heading,
            message=message,
            advice=advice,
            status_code=status_code,
            **({"session": None, "relogin": None, "back": None} | extra),
        )
        return HTMLResponse(body, status_code=status_code, headers=dict(headers))

    def said(request: Request, exc: PortalError, **extra: Any) -> HTMLResponse:
        t = Translator(language_of(request))
        return page(
            request,
            exc.status_code,
            t(exc.title_key),
            t(exc.message_key, **exc.params),
            t(exc.advice_key, **exc.params),
            **extra,
        )

    def session_ended(request: Request) -> bool:
        """True when the browser names a session the portal no longer has (expired, ended)."""
        return bool(request.cookies.get(COOKIE_NAME)) and portal.session(request) is None

    def log_in_again(request: Request, exc: NotLoggedIn) -> Response:
        """The page that asks to log in (again), with a button that comes back here."""
        live = portal.session(request)
        if isinstance(exc, SessionEnded) and live is not None:
            portal.sessions.end(live.id)  # its tokens are refused: nothing of it is of use
            live = None
        elif session_ended(request) or (live is not None and live.ended_login):
            exc = SessionEnded()  # (the second time: this page again, in another language)
        area = area_of(request.url.path)
        fresh = live or portal.sessions.create(now=time.time())
        if isinstance(exc, SessionEnded) and fresh.role is None:
            fresh.ended_login = True
        relogin = None
        if area is not None:
            relogin = {
                "action": f"{area}/logg-inn",
                "csrf_token": fresh.csrf_token,
                "neste": after_login(area, page_of(request)) or "",
                "button": "error.relogin.button"
                if isinstance(exc, SessionEnded)
                else "error.login.button",
            }
        log.info(
            "portal.login_needed",
            ended=isinstance(exc, SessionEnded),
            area=area,
            path=request.url.path,
        )
        response = said(request, exc, relogin=relogin)
        portal.set_cookie(response, fresh)
        return response

    async def portal_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PortalError)
        if isinstance(exc, NotLoggedIn):
            return log_in_again(request, exc)
        log.info(
            "portal.refused",
            kind=type(exc).__name__,
            status=exc.status_code,
            message=exc.message_key,
            reason=exc.reason,
            correlation_id=request.headers.get("x-correlation-id", "")[:64] or None,
            path=request.url.path,
        )
        # Still logged in: the header says who, at which workplace, with the way to log out.
        live = portal.session(request)
        if isinstance(exc, CsrfRejected):
            if session_ended(request):
                return log_in_again(request, SessionEnded())
            return said(request, exc, back=page_of(request), session=live)
        return said(request, exc, session=live)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        t = Translator(language_of(request))
        key = f"error.http.{exc.status_code}"
        if exc.status_code not in (400, 404, 405):
            key = "error.http.other"
        return page(request, exc.status_code, t("error.title"), t(key), t(f"{key}.advice"))

    async def validation_error(request: Request, _exc: Exception) -> Response:
        t = Translator(language_of(request))
        return page(request, 400, t("error.title"), t("error.http.400"), t("error.http.400.advice"))

    async def unexpected(request: Request, exc: Exception) -> Response:
        log_unexpected_error(
            log,
            "portal.unexpected_error",
            exc,
            correlation_id=request.headers.get("x-correlation-id", "")[:64] or None,
            path=request.url.path,
        )
        t = Translator(language_of(request))
        return page(request, 500, t("error.title"), t("error.internal"), t("error.internal.advice"))

    app.add_exception_handler(PortalError, portal_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)
