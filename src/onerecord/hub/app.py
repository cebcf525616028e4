"""The hub's HTTP face: FHIR R4 at /fhir (IHE MHD Document Responder with Target Communities).

Also the citizen's self-service across regions: `GET /fhir/AuditEvent` (the access log) and
`/controls` (patient controls), see hub/self_service.py; and DICOMweb under one study,
`GET /dicomweb/{hcid-oid}/studies/{uid}[/…]`, routed to the region's media archive
(hub/dicomweb.py).

Routes stay thin: read the request, call one HubService method, render bytes. Every error
becomes an OperationOutcome; nothing internal reaches the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Annotated
from urllib.parse import urlencode

import orjson
import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from onerecord import __version__
from onerecord.audit import (
    AuditAction,
    AuditSink,
    audit_record,
    create_audit_tables,
    make_audit_engine,
)
from onerecord.domain import DomainError, HomeCommunityId, NationalIdentityNumber, Oid
from onerecord.hub.auditdb import hub_audit_sink
from onerecord.hub.breaker import BreakerBoard
from onerecord.hub.client import AiohttpRegionClient, RegionClient
from onerecord.hub.dicomweb import (
    AnswerBrokenOff,
    DicomWebRelay,
    check_relayed_headers,
    parse_study_path,
    relayed_query,
)
from onerecord.hub.directory import RegionDirectory
from onerecord.hub.errors import HubError
from onerecord.hub.fanout import PassThroughAuth, RegionAuth, RequestBudget, forward_headers
from onerecord.hub.locator_feed import Locator
from onerecord.hub.locator_link import LocatorLink
from onerecord.hub.metrics import HubMetrics
from onerecord.hub.outbox import MemoryOutbox, Outbox, OutboxWorker, PendingChange
from onerecord.hub.outbox_db import SqlOutbox, create_outbox_table
from onerecord.hub.redis_snapshot import RedisSnapshotStore
from onerecord.hub.request_checks import (
    check_credential_headers,
    check_find_request,
    check_forwarded_headers,
)
from onerecord.hub.security import HubSecurity, check_patient, principal_identity
from onerecord.hub.self_service import (
    CitizenServices,
    ControlChange,
    ControlKind,
    citizen_patient,
    parse_patient,
)
from onerecord.hub.service import Caller, HubAnswer, HubService
from onerecord.hub.settings import HubSettings
from onerecord.hub.snapshot import InMemorySnapshotStore, SnapshotStore
from onerecord.hub.xca_initiating import XcaCaller, XcaInitiator, load_hub_saml_issuer
from onerecord.hub.xds_app import load_xds_xua, xds_router
from onerecord.hub.xds_registry import XdsRegistry
from onerecord.logs import log_unexpected_error
from onerecord.mhd import (
    FHIR_JSON,
    BadRequest,
    MhdError,
    RetrieveKey,
    capability_statement,
    http_error,
    invalid_request,
    outcome_for,
    read_search_form,
)
from onerecord.mhd.openapi import ITI67_GET_OPENAPI, ITI67_POST_OPENAPI
from onerecord.trust.access_token import Principal
from onerecord.trust.caller_limits import (
    PERMIT_STATE,
    CallerLimiter,
    CallerThrottled,
    ReleaseCallerPermits,
    caller_key,
)
from onerecord.trust.errors import TrustError
from onerecord.trust.patient_binding import PATIENT_NIN_HEADER, PATIENT_SALT_HEADER
from onerecord.trust.principal import AccessBasis

__all__ = ["AuthFactory", "create_hub_app"]

log = structlog.get_logger("onerecord.hub")

AuthFactory = Callable[[Request], RegionAuth]
"""Build the RegionAuth of one incoming request (the trust integration plugs in here)."""

_FORM = "application/x-www-form-urlencoded"


def _hub(request: Request) -> HubService:
    hub: HubService = request.app.state.hub
    return hub


Hub = Annotated[HubService, Depends(_hub)]


def _citizens(request: Request) -> CitizenServices:
    citizens: CitizenServices = request.app.state.citizens
    return citizens


Citizens = Annotated[CitizenServices, Depends(_citizens)]

SelfServiceCall = Callable[
    [Caller, NationalIdentityNumber | None, NationalIdentityNumber | None], Awaitable[HubAnswer]
]
"""One self-service call: the caller, the patient as asked (or None), the patient it is about."""


def _pass_through(request: Request) -> RegionAuth:
    return PassThroughAuth(request.headers.get("authorization"))


def _issue_body(
    status: int,
    code: str,
    message: str,
    expression: str | None,
    headers: dict[str, str] | None = None,
) -> Response:
    issue: dict[str, object] = {
        "severity": "fatal" if status >= 500 else "error",
        "code": code,
        "diagnostics": message,
    }
    if expression:
        issue["expression"] = [expression]
    body = orjson.dumps({"resourceType": "OperationOutcome", "issue": [issue]})
    return Response(body, status_code=status, media_type=FHIR_JSON, headers=headers)


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
        # The request deadline counts from here, not from when the route got round to it.
        scope["state"]["received_at"] = asyncio.get_running_loop().time()
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
    if path.startswith("/dicomweb/"):
        return "/dicomweb"
    for prefix in ("/controls/document-blocks/", "/controls/practitioner-blocks/"):
        if path.startswith(prefix):
            return prefix.rstrip("/")
    return path if path in _ROUTES else "other"


_ROUTES = frozenset(
    {
        "/fhir/metadata",
        "/fhir/DocumentReference",
        "/fhir/DocumentReference/_search",
        "/fhir/AuditEvent",
        "/controls",
        "/controls/reservation",
        "/healthz",
        "/jwks",
        "/.well-known/jwks.json",
        "/xca/iti18",
        "/xca/iti43",
    }
)


async def _start_locator(settings: HubSettings, service: HubService) -> LocatorLink | None:
    """Start the locator when it is on; until NATS answers every region is asked, and the hub
    says so at start-up (docs/hub.md "Locator")."""
    if not settings.locator_nats_url:
        log.info("hub.locator.off", asking="every region")
        return None

    def attach(locator: Locator | None) -> None:
        service.locator = locator

    link = LocatorLink(settings, attach)
    await link.start()
    return link


def create_hub_app(
    settings: HubSettings,
    *,
    region_client: RegionClient | None = None,
    auth: AuthFactory | None = None,
    directory: RegionDirectory | None = None,
    snapshots: SnapshotStore | None = None,
    caller_identity: Callable[[Request], str] | None = None,
    security: HubSecurity | None = None,
    audit: AuditSink | None = None,
) -> FastAPI:
    """Build the ASGI app of the national hub.

    With `security` (or `settings.issuer` set) every request needs a DPoP-bound access token and
    regions are asked with hub assertions; without, the hub runs in development open access and
    passes the caller's Authorization through. `audit` (or `settings.audit_db_url`) records
    every search and retrieve.
    """
    breakers = BreakerBoard(
        failure_threshold=settings.breaker_failure_threshold,
        cooldown_s=settings.breaker_cooldown_s,
    )
    metrics = HubMetrics(breakers)
    redis_snapshots = (
        RedisSnapshotStore.from_url(settings.redis_url, ttl_s=settings.snapshot_ttl_s)
        if snapshots is None and settings.redis_url
        else None
    )
    snapshot_store: SnapshotStore = (
        snapshots
        or redis_snapshots
        or InMemorySnapshotStore(
            max_bytes=settings.snapshot_max_bytes, ttl_s=settings.snapshot_ttl_s
        )
    )
    owns_client = region_client is None
    client: RegionClient = region_client or AiohttpRegionClient(
        max_body_bytes=settings.max_region_answer_bytes
    )
    service = HubService(
        settings=settings,
        directory=directory or RegionDirectory(settings.directory_file),
        client=client,
        breakers=breakers,
        snapshots=snapshot_store,
        metrics=metrics,
        xca=_xca_initiator(settings, client),
    )
    dicomweb = DicomWebRelay(
        directory=service.directory,
        client=client,
        breakers=breakers,
        timeout_s=settings.retrieve_timeout_s,
        retry_delay_s=settings.retry_delay_s,
        public_base_url=settings.public_base_url,
    )
    make_auth = auth or _pass_through
    limiter = CallerLimiter(settings.caller_quota)
    identity_of = _identity_of(caller_identity)
    owns_security = security is None and settings.issuer is not None
    if owns_security and not settings.dev_open_access:
        security = HubSecurity.from_settings(settings)
    elif settings.dev_open_access:
        security = None
    audit_engine = (
        make_audit_engine(settings.audit_db_url, schema=settings.audit_db_schema)
        if audit is None and settings.audit_db_url
        else None
    )
    outbox_url = settings.outbox_db_url or settings.audit_db_url
    outbox_engine = (
        make_audit_engine(outbox_url, schema=settings.audit_db_schema) if outbox_url else None
    )
    outbox: Outbox = SqlOutbox(outbox_engine) if outbox_engine is not None else MemoryOutbox()
    citizens = CitizenServices(
        settings=settings,
        directory=service.directory,
        client=client,
        breakers=breakers,
        metrics=metrics,
        outbox=outbox,
        deferred_auth=_deferred_auth(security),
    )
    outbox_worker = OutboxWorker(
        outbox,
        citizens.locks,
        citizens.send_pending,
        base_s=settings.outbox_retry_base_s,
        cap_s=settings.outbox_retry_cap_s,
        poll_s=settings.outbox_poll_s,
    )
    sink: AuditSink | None = audit
    hub_sink = hub_audit_sink(audit_engine, settings) if audit_engine is not None else None
    sink = hub_sink or sink
    capability = orjson.dumps(
        capability_statement(
            base_url=settings.fhir_base,
            software_name="onerecord national hub",
            version=__version__,
            kind="hub",
        )
    )

    late_audit_writes: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if audit_engine is not None and hub_sink is not None:
            await create_audit_tables(audit_engine)
            await hub_sink.checkpoint_head()
        events = await _start_locator(settings, service)
        if outbox_engine is not None:
            await create_outbox_table(outbox_engine)
        else:
            log.warning("hub.outbox.memory", durable=False)
        retries = asyncio.create_task(outbox_worker.run(), name="hub outbox")
        log.info(
            "hub.started",
            regions=len(service.directory),
            base=settings.fhir_base,
            secured=security is not None,
        )
        try:
            yield
        finally:
            retries.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await retries
            if outbox_engine is not None:
                await outbox_engine.dispose()
            if events is not None:
                await events.close()
            if late_audit_writes:
                await asyncio.wait(late_audit_writes, timeout=10)
            if owns_client:
                await client.aclose()
            if owns_security and security is not None:
                await security.aclose()
            if audit_engine is not None and hub_sink is not None:
                await hub_sink.close()
                await audit_engine.dispose()
            if redis_snapshots is not None:
                await redis_snapshots.aclose()

    app = FastAPI(
        title="onerecord national hub",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.hub = service
    app.state.citizens = citizens
    app.state.xds = XdsRegistry(
        hub=service,
        security=security,
        xua=load_xds_xua(settings),
        audit=sink,
        hub_id=settings.hub_id,
        home_community_id=HomeCommunityId(Oid(settings.xds_home_community_id)),
    )
    app.state.caller_limiter = limiter
    app.include_router(xds_router(settings))
    app.state.outbox_worker = outbox_worker
    app.state.security = security

    def correlation_of(request: Request) -> str:
        cid: str = request.scope.get("state", {}).get("correlation_id") or uuid.uuid4().hex
        return cid

    async def authorise(
        request: Request, params: list[tuple[str, str]] | None
    ) -> tuple[Caller, Principal | None]:
        """Return the Caller of this request (and who it is, when the hub is secured)."""
        cid = correlation_of(request)
        forwarded = forward_headers(request.headers, settings.forwarded_headers)
        if security is None:
            # Development open access: no verified caller to limit (docs/hub.md "Limits").
            check_forwarded_headers(request.headers.items(), settings.forwarded_headers)
            return Caller(cid, identity_of(request), forwarded, make_auth(request)), None
        check_credential_headers(request.headers.items())
        principal = await security.authenticate(
            method=request.method, path=_sent_path(request), headers=request.headers
        )
        request.state.principal = principal
        # Admitted or refused (429) before any other work; ReleaseCallerPermits gives it back.
        setattr(request.state, PERMIT_STATE, limiter.acquire(caller_key(principal.claims)))
        check_forwarded_headers(request.headers.items(), settings.forwarded_headers)
        if params is not None and not any(name == "_snapshot" for name, _ in params):
            check_patient(principal, params, request.headers)
        region_auth = security.region_auth(
            principal,
            correlation_id=cid,
            patient_nin=request.headers.get(PATIENT_NIN_HEADER),
            patient_salt=request.headers.get(PATIENT_SALT_HEADER),
        )
        xca = XcaCaller(principal, cid, access_basis=_access_basis(forwarded))
        return Caller(cid, principal_identity(principal), forwarded, region_auth, xca), principal

    def budget_of(request: Request) -> RequestBudget:
        """The deadlines of this request, counted from its arrival (issue 10 C)."""
        received = request.scope.get("state", {}).get("received_at")
        return RequestBudget.starting(settings.deadlines, at=received)

    async def record(
        request: Request,
        action: AuditAction,
        status: int,
        *,
        patient_id: str | None,
        regions: tuple[tuple[str, str], ...] = (),
        query: str | None = None,
        returned: int | None = None,
        document_ids: tuple[str, ...] = (),
        reason: str | None = None,
    ) -> None:
        if sink is None:
            return
        principal: Principal | None = getattr(request.state, "principal", None)
        await sink.append(
            [
                audit_record(
                    action=action,
                    status=status,
                    source_id=settings.hub_id,
                    principal=principal,
                    correlation_id=correlation_of(request),
                    patient_id=patient_id,
                    regions=regions,
                    query=query,
                    returned_count=returned,
                    document_ids=document_ids,
                    reason=reason,
                )
            ]
        )

    async def record_search(
        request: Request, answer: HubAnswer, *, patient_id: str | None, query: str
    ) -> None:
        """Audit a search (or read) that was answered: its status, regions and entries."""
        await record(
            request,
            AuditAction.SEARCH,
            answer.status,
            patient_id=patient_id,
            regions=answer.regions,
            query=query,
            returned=answer.returned,
        )

    async def admit(
        request: Request,
        params: list[tuple[str, str]] | None,
        action: AuditAction,
        *,
        patient_id: str | None,
        query: str | None = None,
        document_ids: tuple[str, ...] = (),
    ) -> tuple[Caller, Principal | None]:
        """`authorise`, auditing a refusal (401/403, or 400 for a malformed header) before it is
        raised; a caller over its quota (429) is not audited: nothing was read."""
        try:
            return await authorise(request, params)
        except TrustError as exc:
            await record(
                request,
                action,
                exc.status,
                patient_id=patient_id,
                query=query,
                document_ids=document_ids,
                reason=exc.error,
            )
            raise
        except (MhdError, DomainError) as exc:
            await record(
                request,
                action,
                _error_status(exc),
                patient_id=patient_id,
                query=query,
                document_ids=document_ids,
            )
            raise

    def record_late(
        request: Request, action: AuditAction, *, patient_id: str | None, query: str | None
    ) -> None:
        """Audit a request that ran out of time (504) without holding back its answer."""

        async def write() -> None:
            try:
                await record(request, action, 504, patient_id=patient_id, query=query)
            except Exception as exc:  # the answer is already sent: say so in the log
                log.error("hub.audit.late_write_failed", error=type(exc).__name__)

        task = asyncio.create_task(write(), name="hub late audit write")
        late_audit_writes.add(task)
        task.add_done_callback(late_audit_writes.discard)

    @app.exception_handler(CallerThrottled)
    async def _throttled(_request: Request, exc: CallerThrottled) -> Response:
        headers = {"Retry-After": str(exc.retry_after_s)}
        return _issue_body(exc.status, exc.code, exc.message, None, headers=headers)

    @app.exception_handler(TrustError)
    async def _trust_error(_request: Request, exc: TrustError) -> Response:
        status = 403 if exc.status == 403 else 401
        code = "forbidden" if status == 403 else "login"
        return _issue_body(
            status,
            code,
            exc.description,
            None,
            headers={"WWW-Authenticate": exc.www_authenticate()},
        )

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

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        status, body = outcome_for(http_error(exc.status_code, str(exc.detail)))
        headers = dict(exc.headers or {})  # a 405 keeps its Allow header
        return Response(
            orjson.dumps(body), status_code=status, media_type=FHIR_JSON, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, exc: RequestValidationError) -> Response:
        status, body = outcome_for(invalid_request(exc.errors()))
        return Response(orjson.dumps(body), status_code=status, media_type=FHIR_JSON)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        if isinstance(exc, AnswerBrokenOff):  # logged where it happened; the answer is cut
            return _issue_body(502, "transient", "the region broke off its answer", None)
        log_unexpected_error(
            log,
            "hub.unexpected_error",
            exc,
            correlation_id=getattr(request.state, "correlation_id", None),
            path=request.url.path,
        )
        return _issue_body(500, "exception", "internal error; the request was not completed", None)

    def _answer(answer: HubAnswer) -> Response:
        headers = dict(answer.headers)
        media = headers.pop("content-type", FHIR_JSON)
        return Response(answer.body, status_code=answer.status, media_type=media, headers=headers)

    async def _find(
        request: Request, service: HubService, params: list[tuple[str, str]]
    ) -> Response:
        query = urlencode(params)
        patient = _patient_of(params, request.headers)
        budget = budget_of(request)
        try:
            # One deadline for the whole request: token check, fan-out, merge, audit write.
            async with asyncio.timeout_at(budget.request_at):
                who, _principal = await admit(
                    request, params, AuditAction.SEARCH, patient_id=patient, query=query
                )
                try:
                    # Refuse what the hub or a region would refuse before asking any region.
                    checked = check_find_request(
                        params,
                        max_page_size=settings.max_page_size,
                        region_page_size=settings.region_page_size,
                    )
                    answer = await service.find(who, params, budget=budget, checked=checked)
                except Exception as exc:  # audited, then answered by the exception handlers
                    status = _error_status(exc)
                    await record(
                        request, AuditAction.SEARCH, status, patient_id=patient, query=query
                    )
                    raise
                await record_search(request, answer, patient_id=patient, query=query)
        except TimeoutError:
            record_late(request, AuditAction.SEARCH, patient_id=patient, query=query)
            return _issue_body(
                504, "timeout", "the search did not finish within the request deadline", None
            )
        return _answer(answer)

    async def _citizen_call(
        request: Request,
        action: AuditAction,
        *,
        parameter: str,
        query: str,
        call: SelfServiceCall,
        required: bool = False,
    ) -> Response:
        """Authenticate, check the patient at the door, run one self-service call, audit it."""
        raw = request.query_params.get(parameter)
        patient_id = raw.rpartition("|")[2].strip() if raw else None
        try:
            # One deadline for the whole request: token check, regions, audit write.
            async with asyncio.timeout_at(budget_of(request).request_at):
                try:
                    who, principal = await authorise(request, None)
                    asked = parse_patient(raw, parameter)
                    if asked is None and required:
                        raise BadRequest(f"{parameter} is required", expression=parameter)
                    patient = citizen_patient(principal, asked)
                    patient_id = patient.value if patient is not None else patient_id
                    answer = await call(who, asked, patient)
                except TrustError as exc:
                    await record(
                        request,
                        action,
                        exc.status,
                        patient_id=patient_id,
                        query=query,
                        reason=exc.error,
                    )
                    raise
                except (HubError, MhdError, DomainError) as exc:
                    status = _error_status(exc)
                    await record(request, action, status, patient_id=patient_id, query=query)
                    raise
                await record(
                    request,
                    action,
                    answer.status,
                    patient_id=patient_id,
                    regions=answer.regions,
                    query=query,
                    returned=answer.returned,
                )
        except TimeoutError:
            record_late(request, action, patient_id=patient_id, query=query)
            return _issue_body(504, "timeout", "the regions did not answer in time", None)
        return _answer(answer)

    async def _change_control(
        request: Request, citizens: CitizenServices, kind: ControlKind, target: str | None
    ) -> Response:
        error: BadRequest | None = None
        try:
            change: ControlChange | None = ControlChange.parse(
                kind=kind,
                method=request.method,
                target=target,
                home_community_id=request.query_params.get("homeCommunityId"),
            )
        except BadRequest as exc:
            change, error = None, exc

        async def call(
            who: Caller,
            asked: NationalIdentityNumber | None,
            patient: NationalIdentityNumber | None,
        ) -> HubAnswer:
            if change is None:
                assert error is not None
                raise error
            return await citizens.change_control(
                who, replace(change, patient=asked), patient=patient
            )

        return await _citizen_call(
            request,
            AuditAction.CONTROL_CHANGE,
            parameter="patient",
            query=change.audit_query if change is not None else f"{kind.value}:invalid",
            call=call,
        )

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/jwks")
    @app.get("/.well-known/jwks.json")
    async def jwks() -> Response:
        if security is None:
            return Response(b'{"keys":[]}', media_type="application/json")
        return Response(orjson.dumps(security.jwks()), media_type="application/json")

    @app.get("/fhir/metadata")
    async def metadata() -> Response:
        return Response(capability, media_type=FHIR_JSON)

    @app.get("/fhir/DocumentReference", openapi_extra=ITI67_GET_OPENAPI)
    async def find_document_references(request: Request, svc: Hub) -> Response:
        return await _find(request, svc, request.query_params.multi_items())

    @app.post("/fhir/DocumentReference/_search", openapi_extra=ITI67_POST_OPENAPI)
    async def find_document_references_post(request: Request, svc: Hub) -> Response:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != _FORM:
            return _issue_body(415, "not-supported", f"_search takes {_FORM}", None)
        form = await read_search_form(
            request.stream(), declared_length=request.headers.get("content-length")
        )
        return await _find(request, svc, [*request.query_params.multi_items(), *form])

    @app.get("/fhir/DocumentReference/{document_id}")
    async def read_document_reference(document_id: str, request: Request, svc: Hub) -> Response:
        patient = request.headers.get(PATIENT_NIN_HEADER)
        query = f"_id={document_id[:64]}"
        try:
            # The request deadline covers the read as it covers a search (issue 10 C).
            async with asyncio.timeout_at(budget_of(request).request_at):
                who, _principal = await admit(  # the patient binding at the door
                    request, [], AuditAction.SEARCH, patient_id=patient, query=query
                )
                try:
                    # The door checked the header against the binding; a read names its patient.
                    if patient is None:
                        raise BadRequest(
                            f"the {PATIENT_NIN_HEADER} header is required to read a "
                            "DocumentReference",
                            expression=PATIENT_NIN_HEADER,
                        )
                    answer = await svc.read(
                        who, document_id, patient=NationalIdentityNumber(patient)
                    )
                except (HubError, MhdError, DomainError) as exc:
                    await record(
                        request,
                        AuditAction.SEARCH,
                        _error_status(exc),
                        patient_id=patient,
                        query=query,
                    )
                    raise
                await record_search(request, answer, patient_id=patient, query=query)
        except TimeoutError:
            record_late(request, AuditAction.SEARCH, patient_id=patient, query=query)
            return _issue_body(
                504, "timeout", "the read did not finish within the request deadline", None
            )
        return _answer(answer)

    @app.get("/fhir/Binary/{token}")
    async def retrieve_document(token: str, request: Request, svc: Hub) -> Response:
        key = RetrieveKey.parse(token)
        hcid = key.home_community_id.urn
        document = (key.unique_id.value,)
        patient = request.headers.get(PATIENT_NIN_HEADER)
        who, _principal = await admit(
            request, None, AuditAction.RETRIEVE, patient_id=patient, document_ids=document
        )
        try:
            got = await svc.retrieve(who, token, request.headers.get("accept"))
        except HubError as exc:
            failed = "timeout" if exc.code == "timeout" else "unavailable"
            await record(
                request,
                AuditAction.RETRIEVE,
                exc.status,
                patient_id=patient,
                regions=((hcid, failed),),
                document_ids=document,
            )
            raise
        status = got.status if isinstance(got, HubAnswer) else 200
        region_status = "ok" if status < 400 or status == 404 else "denied"
        await record(
            request,
            AuditAction.RETRIEVE,
            status,
            patient_id=patient,
            regions=((hcid, region_status),),
            document_ids=document,
        )
        if isinstance(got, HubAnswer):
            return _answer(got)
        headers = dict(got.headers)
        media = headers.pop("content-type", "application/octet-stream")
        return StreamingResponse(got.chunks, media_type=media, headers=headers)

    @app.get("/dicomweb/{path:path}")
    async def dicomweb_under_study(path: str, request: Request) -> Response:
        """WADO-RS and QIDO-RS under one study, streamed from the archive of its region."""
        # The path, query and relayed headers are checked before anything else (400, 404).
        study = parse_study_path(path)
        query = relayed_query(request.query_params.multi_items())
        relayed = check_relayed_headers(request.headers)
        action = AuditAction.SEARCH if study.is_search else AuditAction.RETRIEVE
        patient = request.headers.get(PATIENT_NIN_HEADER)
        hcid = study.home_community_id.urn
        asked = f"dicomweb:{study.relative}" + (f"?{query}" if query else "")
        studies = (study.study_uid,)  # the study's first manifest has its UID as unique id

        async def audit(status: int, regions: tuple[tuple[str, str], ...] = ()) -> None:
            await record(
                request,
                action,
                status,
                patient_id=patient,
                regions=regions,
                query=asked,
                document_ids=studies,
            )

        who, _principal = await admit(
            request, [], action, patient_id=patient, query=asked, document_ids=studies
        )
        try:
            got = await dicomweb.get(who, study, query=query, headers=relayed)
        except HubError as exc:
            failed = "timeout" if exc.code == "timeout" else "unavailable"
            await audit(exc.status, ((hcid, failed),))
            raise
        except MhdError as exc:  # no such community, or none with images: no region asked
            await audit(exc.status)
            raise
        await audit(got.status, ((hcid, "denied" if got.status in (401, 403) else "ok"),))
        return StreamingResponse(got.chunks, status_code=got.status, headers=dict(got.headers))

    @app.get("/fhir/AuditEvent")
    async def citizen_access_log(request: Request, citizens: Citizens) -> Response:
        self_url = f"{settings.fhir_base}/AuditEvent?{request.url.query}"

        async def call(
            who: Caller,
            _asked: NationalIdentityNumber | None,
            patient: NationalIdentityNumber | None,
        ) -> HubAnswer:
            assert patient is not None
            return await citizens.access_log(who, patient, self_url=self_url)

        return await _citizen_call(
            request,
            AuditAction.ACCESS_LOG_READ,
            parameter="patient.identifier",
            query=request.url.query,
            call=call,
            required=True,
        )

    @app.get("/controls")
    async def read_controls(request: Request, citizens: Citizens) -> Response:
        async def call(
            who: Caller,
            asked: NationalIdentityNumber | None,
            patient: NationalIdentityNumber | None,
        ) -> HubAnswer:
            return await citizens.read_controls(who, patient, given=asked is not None)

        return await _citizen_call(
            request, AuditAction.ACCESS_LOG_READ, parameter="patient", query="controls", call=call
        )

    @app.api_route("/controls/reservation", methods=["PUT", "DELETE"])
    async def change_reservation(request: Request, citizens: Citizens) -> Response:
        return await _change_control(request, citizens, ControlKind.RESERVATION, None)

    @app.api_route("/controls/document-blocks/{unique_id}", methods=["PUT", "DELETE"])
    async def change_document_block(
        unique_id: str, request: Request, citizens: Citizens
    ) -> Response:
        return await _change_control(request, citizens, ControlKind.DOCUMENT_BLOCK, unique_id)

    @app.api_route("/controls/practitioner-blocks/{hpr}", methods=["PUT", "DELETE"])
    async def change_practitioner_block(hpr: str, request: Request, citizens: Citizens) -> Response:
        return await _change_control(request, citizens, ControlKind.PRACTITIONER_BLOCK, hpr)

    app.add_middleware(ReleaseCallerPermits)
    app.add_middleware(CorrelationAndMetrics, metrics=metrics)
    return app


def _xca_initiator(settings: HubSettings, client: RegionClient) -> XcaInitiator | None:
    """The ITI-38/39 side of the hub, when it has (or in dev mode may make) a SAML key."""
    if settings.saml_key_file is None and not settings.dev_mode:
        return None
    issuer = load_hub_saml_issuer(
        name=settings.saml_issuer or settings.assertion_issuer,
        key_file=settings.saml_key_file,
        certificate_file=settings.saml_certificate_file,
        key_dir=settings.key_dir,
        dev_mode=settings.dev_mode,
    )
    return XcaInitiator(
        issuer=issuer, client=client, assertion_lifetime_s=settings.saml_assertion_lifetime_s
    )


def _access_basis(forwarded: Mapping[str, str]) -> AccessBasis | None:
    """The caller's stated basis for access (nhn-access-basis), carried as the SAML ACP."""
    value = forwarded.get("nhn-access-basis")
    try:
        return AccessBasis.parse(value) if value else None
    except ValueError:
        return None  # the regions refuse it over MHD; over XCA it is simply not asserted


def _deferred_auth(security: HubSecurity | None) -> Callable[[PendingChange], RegionAuth]:
    """How the outbox asserts the citizen of a re-sent change: a deferred hub assertion, or
    nothing in development open access (where the regions ask for no token)."""

    def auth(row: PendingChange) -> RegionAuth:
        if security is None or row.asserted is None:
            return PassThroughAuth()
        return security.deferred_auth(
            row.asserted, correlation_id=row.correlation_id, since=row.accepted_at
        )

    return auth


def _sent_path(request: Request) -> str:
    """Return the path as the client sent it (percent-encoding kept): what its DPoP htu names."""
    raw = request.scope.get("raw_path")
    if isinstance(raw, bytes) and raw:
        return raw.decode("latin-1").split("?", 1)[0]
    return request.url.path


def _error_status(exc: Exception) -> int:
    """The HTTP status an exception handler will answer `exc` with (for its audit row)."""
    if isinstance(exc, HubError | MhdError):
        return exc.status
    if isinstance(exc, DomainError):
        return 400
    return 500


def _identity_of(given: Callable[[Request], str] | None) -> Callable[[Request], str]:
    if given is not None:
        return given
    return lambda request: request.headers.get("authorization") or "anonymous"


def _patient_of(params: list[tuple[str, str]], headers: Mapping[str, str]) -> str | None:
    """The patient a search is about, for the audit record: the header, else the query."""
    header = headers.get(PATIENT_NIN_HEADER)
    if header:
        return header
    for name, value in params:
        if name == "patient.identifier":
            return value.rpartition("|")[2] or None
    return None
