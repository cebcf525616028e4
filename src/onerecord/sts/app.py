"""The development token service as a FastAPI app: discovery, JWKS, PAR, authorize, login
page, token, userinfo."""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import parse_qsl, urlsplit

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from onerecord.audit import AuditSink
from onerecord.logs import log_unexpected_error
from onerecord.sts.login import AuthorizationRedirect, LoginPrompt, LoginRequestExpired
from onerecord.sts.login_page import PAGE_HEADERS, error_page, login_page, stylesheet
from onerecord.sts.pdqm_routes import install_pdqm_routes
from onerecord.sts.pdqm_service import PatientLookup, PatientRegister
from onerecord.sts.service import (
    REFRESH_TOKEN_GRANT,
    TEST_USER_GRANT,
    StsRegisters,
    TokenService,
)
from onerecord.sts.settings import StsSettings
from onerecord.trust.access_token import AuthSettings
from onerecord.trust.errors import DevelopmentKeyRefused, InvalidRequest, TrustError
from onerecord.trust.keys import (
    SigningKey,
    StaticJwks,
    load_or_create_dev_key,
    require_usable_key,
)
from onerecord.trust.replay import MemoryReplayCache, ReplayCache

__all__ = ["create_sts_app", "load_signing_key"]

_MAX_FORM_BYTES = 64 * 1024
log = structlog.get_logger("onerecord.sts")


_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def load_signing_key(settings: StsSettings) -> SigningKey:
    """Return the configured key, or a development key when dev_mode is on."""
    if settings.key_file is not None:
        key = SigningKey.from_jwk(orjson.loads(settings.key_file.read_bytes()))
    elif settings.dev_mode:
        key = load_or_create_dev_key(settings.key_dir, name="sts")
    else:
        raise DevelopmentKeyRefused("no key_file configured and dev_mode is off")
    return require_usable_key(key, dev_mode=settings.dev_mode)


async def _form(request: Request) -> dict[str, str]:
    if request.headers.get("content-type", "").split(";")[0].strip() != (
        "application/x-www-form-urlencoded"
    ):
        raise InvalidRequest("content type must be application/x-www-form-urlencoded")
    # Read at most the limit: a large body is refused before it is held in memory.
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            raise InvalidRequest("request body too large")
    try:
        text = body.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise InvalidRequest("the form is not UTF-8") from None
    pairs = parse_qsl(text, keep_blank_values=False)
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise InvalidRequest(f"parameter {name} given twice")
        form[name] = value
    return form


def _json(body: object, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body),
        status_code=status_code,
        headers=headers,
        media_type="application/json",
    )


def _error(exc: TrustError) -> Response:
    status = 401 if exc.status == 401 else (403 if exc.status == 403 else 400)
    headers = dict(_NO_STORE)
    if exc.error == "invalid_client":
        headers["WWW-Authenticate"] = 'private_key_jwt error="invalid_client"'
    return _json(exc.oauth_body(), status_code=status, headers=headers)


def create_sts_app(
    settings: StsSettings,
    *,
    registers: StsRegisters,
    key: SigningKey | None = None,
    replay: ReplayCache | None = None,
    clock: Callable[[], float] = time.time,
    patient_register: PatientRegister | None = None,
    patient_audit: AuditSink | None = None,
) -> FastAPI:
    """Build the STS; refuses a development key unless settings.dev_mode.

    With a `patient_register` and its `patient_audit` sink the STS also serves the patient
    lookup (IHE PDQm ITI-78) at /fhir/Patient, for tokens of `settings.pdqm_audience`.
    """
    signing_key = require_usable_key(key or load_signing_key(settings), dev_mode=settings.dev_mode)
    service = TokenService(
        settings=settings,
        key=signing_key,
        registers=registers,
        replay=replay or MemoryReplayCache(),
        clock=clock,
    )
    app = FastAPI(title="onerecord development token service", docs_url=None, redoc_url=None)
    app.state.token_service = service
    base_path = urlsplit(settings.issuer).path.rstrip("/")

    def answer(result: AuthorizationRedirect | LoginPrompt) -> Response:
        if isinstance(result, AuthorizationRedirect):
            return RedirectResponse(result.location, status_code=302, headers=_NO_STORE)
        status = 200 if result.problem is None else 400
        page = login_page(result, base_path=base_path)
        return HTMLResponse(page, status_code=status, headers=PAGE_HEADERS)

    @app.exception_handler(TrustError)
    async def _trust_error(request: Request, exc: TrustError) -> Response:
        return _error(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # Unknown paths and methods answer in the same RFC 6749 §5.2 shape as everything else.
        error = "server_error" if exc.status_code >= 500 else "invalid_request"
        body = {"error": error, "error_description": str(exc.detail)}
        return _json(
            body, status_code=exc.status_code, headers={**_NO_STORE, **(exc.headers or {})}
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # One event: type and where it was raised, never the traceback or message (logs.py).
        log_unexpected_error(
            log, "sts.unexpected_error", exc, correlation_id=None, path=request.url.path
        )
        body = {"error": "server_error", "error_description": "the request was not completed"}
        return _json(body, status_code=500, headers=_NO_STORE)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/.well-known/openid-configuration")
    async def discovery() -> Response:
        base = settings.issuer
        return _json(
            {
                "issuer": base,
                "jwks_uri": f"{base}/jwks",
                "authorization_endpoint": f"{base}/authorize",
                "pushed_authorization_request_endpoint": f"{base}/par",
                "token_endpoint": settings.token_endpoint,
                "userinfo_endpoint": settings.userinfo_endpoint,
                "grant_types_supported": [
                    "authorization_code",
                    REFRESH_TOKEN_GRANT,
                    TEST_USER_GRANT,
                ],
                "response_types_supported": ["code"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256", "PS256"],
                "request_object_signing_alg_values_supported": ["ES256", "RS256", "PS256"],
                "dpop_signing_alg_values_supported": ["ES256", "RS256", "PS256"],
                "subject_types_supported": ["public"],
                "claims_supported": [
                    "sub",
                    "name",
                    "pid",
                    "security_level",
                    "hpr_number",
                    "acr",
                    "onerecord:representation",
                    "onerecord:representation_refused",
                ],
                "code_challenge_methods_supported": ["S256"],
                "authorization_details_types_supported": ["nhn:tillitsrammeverk:parameters"],
                "acr_values_supported": ["4", "idporten-loa-high"],
                "require_pushed_authorization_requests": False,
            }
        )

    @app.get("/jwks")
    async def jwks() -> Response:
        return _json({"keys": [signing_key.public_jwk()]})

    @app.post("/token")
    async def token(request: Request) -> Response:
        form = await _form(request)
        body = await service.token(form, request.headers.get("dpop"))
        return _json(body, headers=_NO_STORE)

    @app.post("/par")
    async def par(request: Request) -> Response:
        form = await _form(request)
        return _json(
            await service.pushed_authorization_request(form), status_code=201, headers=_NO_STORE
        )

    @app.get("/authorize")
    async def authorize(request: Request) -> Response:
        try:
            return answer(service.authorize(dict(request.query_params)))
        except TrustError as exc:
            return _json(exc.oauth_body(), status_code=400, headers=_NO_STORE)

    @app.post("/authorize/login")
    async def authorize_login(request: Request) -> Response:
        try:
            form = await _form(request)
            return answer(
                service.login(
                    request_id=form.get("request_id", ""),
                    subject=form.get("subject"),
                    typed=form.get("nin"),
                )
            )
        except TrustError as exc:
            expired = isinstance(exc, LoginRequestExpired)
            page = error_page(exc.description, base_path=base_path, expired=expired)
            return HTMLResponse(page, status_code=400, headers=PAGE_HEADERS)

    @app.get("/static/login.css")
    async def login_css() -> Response:
        return Response(
            stylesheet(),
            media_type="text/css",
            headers={"x-content-type-options": "nosniff", "cache-control": "max-age=3600"},
        )

    @app.get("/userinfo")
    async def userinfo(request: Request) -> Response:
        try:
            body = await service.userinfo(
                authorization=request.headers.get("authorization"),
                dpop=request.headers.get("dpop"),
            )
        except TrustError as exc:
            status = 403 if exc.status == 403 else (400 if exc.status == 400 else 401)
            headers = {**_NO_STORE, "WWW-Authenticate": exc.www_authenticate()}
            return _json(exc.oauth_body(), status_code=status, headers=headers)
        return _json(body, headers=_NO_STORE)

    if patient_register is not None:
        if patient_audit is None:
            raise ValueError("the patient lookup is served only with an audit sink")
        lookup = PatientLookup(
            register=patient_register,
            audit=patient_audit,
            auth=AuthSettings(issuer=settings.issuer, audience=settings.pdqm_audience),
            keys=StaticJwks([signing_key]),
            replay=MemoryReplayCache(),
            clock=clock,
        )
        app.state.patient_lookup = lookup
        install_pdqm_routes(app, lookup, public_base=settings.issuer)
    return app
