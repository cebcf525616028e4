"""The hub's HTTP face: FHIR R4 at /fhir (IHE MHD Document Responder with Target Communities).

Routes stay thin: read the request, call one HubService method, render bytes. Every error
becomes an OperationOutcome; nothing internal reaches the client.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated
from urllib.parse import parse_qsl

import orjson
import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from onerecord import __version__
from onerecord.domain import DomainError
from onerecord.hub.breaker import BreakerBoard
from onerecord.hub.client import AiohttpRegionClient, RegionClient
from onerecord.hub.directory import RegionDirectory
from onerecord.hub.errors import HubError
from onerecord.hub.fanout import PassThroughAuth, RegionAuth, forward_headers
from onerecord.hub.metrics import HubMetrics
from onerecord.hub.service import Caller, HubAnswer, HubService
from onerecord.hub.settings import HubSettings
from onerecord.hub.snapshot import InMemorySnapshotStore, SnapshotStore
from onerecord.mhd import FHIR_JSON, MhdError, capability_statement, outcome_for

__all__ = ["AuthFactory", "create_hub_app"]

log = structlog.get_logger("onerecord.hub")

AuthFactory = Callable[[Request], RegionAuth]
"""Build the RegionAuth of one incoming request (the trust integration plugs in here)."""

_FORM = "application/x-www-form-urlencoded"


def _hub(request: Request) -> HubService:
    hub: HubService = request.app.state.hub
    return hub


def _caller(request: Request) -> Caller:
    who: Caller = request.app.state.make_caller(request)
    return who


Hub = Annotated[HubService, Depends(_hub)]
TheCaller = Annotated[Caller, Depends(_caller)]


def _pass_through(request: Request) -> RegionAuth:
    return PassThroughAuth(request.headers.get("authorization"))


def _issue_body(status: int, code: str, message: str, expression: str | None) -> Response:
    issue: dict[str, object] = {
        "severity": "fatal" if status >= 500 else "error",
        "code": code,
        "diagnostics": message,
    }
    if expression:
        issue["expression"] = [expression]
    body = orjson.dumps({"resourceType": "OperationOutcome", "issue": [issue]})
    return Response(body, status_code=status, media_type=FHIR_JSON)


class CorrelationAndMetrics:
    """Take or mint `x-correlation-id`, bind it to the logs, echo it, count the request."""

    def __init__(self, app: ASGIApp, metrics: HubMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = dict(scope["headers"]).get(b"x-correlation-id", b"")
        cid = raw.decode("latin-1")[:128] if raw else uuid.uuid4().hex
        scope.setdefault("state", {})["correlation_id"] = cid
        route = _route_label(scope["path"])
        status_seen = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status_seen
            if message["type"] == "http.response.start":
                status_seen = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-correlation-id", cid.encode("latin-1")),
                ]
            await send(message)

        started = time.perf_counter()
        with structlog.contextvars.bound_contextvars(correlation_id=cid):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                self.metrics.requests.labels(route, str(status_seen)).inc()
                log.debug(
                    "hub.request",
                    path=scope["path"],
                    status=status_seen,
                    ms=round((time.perf_counter() - started) * 1000, 1),
                )


def _route_label(path: str) -> str:
    if path.startswith("/fhir/Binary/"):
        return "/fhir/Binary"
    return path if path in _ROUTES else "other"


_ROUTES = frozenset(
    {"/fhir/metadata", "/fhir/DocumentReference", "/fhir/DocumentReference/_search", "/healthz"}
)


def create_hub_app(
    settings: HubSettings,
    *,
    region_client: RegionClient | None = None,
    auth: AuthFactory | None = None,
    directory: RegionDirectory | None = None,
    snapshots: SnapshotStore | None = None,
    caller_identity: Callable[[Request], str] | None = None,
) -> FastAPI:
    """Build the ASGI app of the national hub."""
    breakers = BreakerBoard(
        failure_threshold=settings.breaker_failure_threshold,
        cooldown_s=settings.breaker_cooldown_s,
    )
    metrics = HubMetrics(breakers)
    owns_client = region_client is None
    client: RegionClient = region_client or AiohttpRegionClient()
    service = HubService(
        settings=settings,
        directory=directory or RegionDirectory(settings.directory_file),
        client=client,
        breakers=breakers,
        snapshots=snapshots
        or InMemorySnapshotStore(
            max_bytes=settings.snapshot_max_bytes, ttl_s=settings.snapshot_ttl_s
        ),
        metrics=metrics,
    )
    make_auth = auth or _pass_through
    identity_of = caller_identity or (
        lambda request: request.headers.get("authorization") or "anonymous"
    )
    capability = orjson.dumps(
        capability_statement(
            base_url=settings.fhir_base,
            software_name="onerecord national hub",
            version=__version__,
            kind="hub",
        )
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        log.info("hub.started", regions=len(service.directory), base=settings.fhir_base)
        try:
            yield
        finally:
            if owns_client:
                await client.aclose()

    app = FastAPI(
        title="onerecord national hub",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.hub = service

    def caller(request: Request) -> Caller:
        return Caller(
            correlation_id=request.scope.get("state", {}).get("correlation_id") or uuid.uuid4().hex,
            identity=identity_of(request),
            forwarded=forward_headers(request.headers, settings.forwarded_headers),
            auth=make_auth(request),
        )

    app.state.make_caller = caller

    @app.exception_handler(MhdError)
    async def _mhd_error(_request: Request, exc: MhdError) -> Response:
        status, body = outcome_for(exc)
        return Response(orjson.dumps(body), status_code=status, media_type=FHIR_JSON)

    @app.exception_handler(DomainError)
    async def _domain_error(_request: Request, exc: DomainError) -> Response:
        status, body = outcome_for(exc, query_error=True)
        return Response(orjson.dumps(body), status_code=status, media_type=FHIR_JSON)

    @app.exception_handler(HubError)
    async def _hub_error(_request: Request, exc: HubError) -> Response:
        return _issue_body(exc.status, exc.code, exc.message, exc.expression)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("hub.unexpected_error", path=request.url.path)
        return _issue_body(500, "exception", "internal error; the request was not completed", None)

    def _answer(answer: HubAnswer) -> Response:
        headers = dict(answer.headers)
        media = headers.pop("content-type", FHIR_JSON)
        return Response(answer.body, status_code=answer.status, media_type=media, headers=headers)

    async def _find(service: HubService, who: Caller, params: list[tuple[str, str]]) -> Response:
        try:
            async with asyncio.timeout(settings.request_deadline_s):
                answer = await service.find(who, params)
        except TimeoutError:
            return _issue_body(504, "timeout", "the search did not finish in time", None)
        return _answer(answer)

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/fhir/metadata")
    async def metadata() -> Response:
        return Response(capability, media_type=FHIR_JSON)

    @app.get("/fhir/DocumentReference")
    async def find_document_references(request: Request, svc: Hub, who: TheCaller) -> Response:
        return await _find(svc, who, request.query_params.multi_items())

    @app.post("/fhir/DocumentReference/_search")
    async def find_document_references_post(request: Request, svc: Hub, who: TheCaller) -> Response:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != _FORM:
            return _issue_body(415, "not-supported", f"_search takes {_FORM}", None)
        try:
            form = parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            return _issue_body(400, "invalid", "the form body is not UTF-8", None)
        return await _find(svc, who, [*request.query_params.multi_items(), *form])

    @app.get("/fhir/Binary/{token}")
    async def retrieve_document(token: str, request: Request, svc: Hub, who: TheCaller) -> Response:
        got = await svc.retrieve(who, token, request.headers.get("accept"))
        if isinstance(got, HubAnswer):
            return _answer(got)
        headers = dict(got.headers)
        media = headers.pop("content-type", "application/octet-stream")
        return StreamingResponse(got.chunks, media_type=media, headers=headers)

    app.add_middleware(CorrelationAndMetrics, metrics=metrics)
    return app
