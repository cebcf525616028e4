"""The document source's HTTP face: FHIR R4 at /fhir (IHE MHD Document Responder + Recipient).

Routes stay thin: read the request, call one DocumentSource method, render bytes. Every error
becomes an OperationOutcome with the right status; nothing internal reaches the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import httpx
import orjson
import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from onerecord import __version__
from onerecord.audit import (
    AuditAction,
    AuditOutcome,
    AuditRecord,
    Checkpointer,
    FileCheckpointLog,
    SqlAuditSink,
    load_checkpoint_key,
)
from onerecord.domain import (
    DomainError,
    InvalidIdentifier,
    NationalIdentityNumber,
)
from onerecord.logs import configure_logging, log_unexpected_error
from onerecord.mhd import (
    FHIR_JSON,
    MhdError,
    NotAcceptable,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    capability_statement,
    http_error,
    invalid_request,
    outcome_bytes,
    read_search_form,
)
from onerecord.mhd.openapi import ITI67_GET_OPENAPI, ITI67_POST_OPENAPI
from onerecord.source.access import (
    AccessGuard,
    AccessRecorder,
    AccessRefused,
    CallerContext,
    NoAudit,
    OpenAccess,
)
from onerecord.source.content import ContentStore, FolderContentStore
from onerecord.source.database import make_engine
from onerecord.source.locator import RegistryPublisher
from onerecord.source.locator_link import PublisherLink
from onerecord.source.migrate import upgrade
from onerecord.source.orphans import run_orphan_sweeps
from onerecord.source.patient_controls import PatientControlStore
from onerecord.source.security import (
    ACCESS_BASIS_HEADER,
    CAPTURED_HEADERS,
    AuditRecorder,
    PolicyGuard,
    SourceAuthenticator,
    SourceCallerLimits,
)
from onerecord.source.self_service import SelfService, patient_from_token_param
from onerecord.source.service import DocumentSource, FoundPage
from onerecord.source.settings import SourceSettings
from onerecord.source.store import SqlDocumentStore
from onerecord.source.system_controls import SystemControlReader
from onerecord.source.xca_app import load_xua_settings, xca_router
from onerecord.source.xca_async import AsyncAnswers
from onerecord.source.xca_gateway import RespondingGateway
from onerecord.trust.access_token import AuthSettings
from onerecord.trust.caller_limits import PERMIT_STATE, CallerThrottled, ReleaseCallerPermits
from onerecord.trust.errors import InvalidToken, TrustError
from onerecord.trust.keys import KeyProvider, RemoteJwks
from onerecord.trust.patient_binding import PATIENT_NIN_HEADER
from onerecord.trust.publish_proof import (
    PUBLISH_PROOF_HEADER,
    IssuerMismatch,
    PublisherKeys,
    verify_publish_proof,
)
from onerecord.trust.replay import MemoryReplayCache, RedisReplayCache, ReplayCache

__all__ = ["app_from_environment", "create_app"]

log = structlog.get_logger("onerecord.source")

_JSON_TYPES = {"application/fhir+json", "application/json", "application/json+fhir"}


def _outcome_response(exc: MhdError | DomainError, *, query_error: bool = False) -> Response:
    status, body = outcome_bytes(exc, query_error=query_error)
    return Response(body, status_code=status, media_type=FHIR_JSON)


MASKED_COUNT_HEADER = "x-onerecord-masked-count"
"""How many entries of the answer are masked placeholders; the hub sums it (keep this name)."""
NORS_COUNT_HEADER = "NHN-SecurityLabel-Nors-Count"
"""The same count under NHN's header name (TRUST-FRAMEWORK §3.1, D1)."""


def _correlation_id(request: Request) -> str:
    value = request.headers.get("x-correlation-id", "")
    return value[:64] if value.isprintable() and value else uuid.uuid4().hex


async def _default_caller(request: Request) -> CallerContext:
    return CallerContext(correlation_id=_correlation_id(request))


def _trusted_caller(
    authenticator: SourceAuthenticator, public_base_url: str
) -> Callable[[Request], Awaitable[CallerContext]]:
    """Return the caller factory of the trust framework: authenticate every request."""

    async def factory(request: Request) -> CallerContext:
        # htu is the URL the client addressed: the public base URL and the path, no query.
        url = f"{public_base_url}{request.url.path}"
        who = await authenticator.authenticate(
            method=request.method, url=url, headers=request.headers
        )
        request.state.authenticated = True
        captured = {h: request.headers[h] for h in CAPTURED_HEADERS if h in request.headers}
        if who.relayed_xua:
            # A relayed SAML assertion: its ACP is the access basis, never a header (docs/xca.md).
            captured.pop(ACCESS_BASIS_HEADER, None)
            if who.access_basis is not None:
                captured[ACCESS_BASIS_HEADER] = who.access_basis.value
        return CallerContext(
            correlation_id=who.correlation_id or _correlation_id(request),
            principal=who.principal,
            headers=captured,
            token_jti=who.token_jti,
            via_hub=who.via_hub,
            asserted_patient=who.asserted_patient,
        )

    return factory


def _trust_error_response(exc: TrustError) -> Response:
    """401/403/400 OperationOutcome with a WWW-Authenticate challenge that says why."""
    status = exc.status if exc.status in (400, 401, 403) else 401
    code = {401: "login", 403: "forbidden"}.get(status, "invalid")
    _, body = outcome_bytes(MhdError(exc.description, status=status, code=code))
    headers = {"WWW-Authenticate": exc.www_authenticate()} if status in (401, 403) else {}
    return Response(body, status_code=status, media_type=FHIR_JSON, headers=headers)


def _self_service(request: Request) -> SelfService:
    service: SelfService | None = request.app.state.self_service
    if service is None:
        raise NotFound("the citizen services need the trust framework (not in dev open access)")
    return service


def _source(request: Request) -> DocumentSource:
    source: DocumentSource = request.app.state.source
    return source


async def _caller(request: Request) -> CallerContext:
    factory: Callable[[Request], Awaitable[CallerContext]] = request.app.state.caller_factory
    caller = await factory(request)
    # Admitted or refused (429) before any other work; ReleaseCallerPermits gives it back.
    limits: SourceCallerLimits = request.app.state.caller_limits
    setattr(request.state, PERMIT_STATE, limits.admit(caller))
    return caller


SourceDep = Annotated[DocumentSource, Depends(_source)]
CallerDep = Annotated[CallerContext, Depends(_caller)]
SelfServiceDep = Annotated[SelfService, Depends(_self_service)]


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413, before or while they are read."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise PayloadTooLarge(
                        f"request body is larger than the limit of {self.limit} bytes"
                    )
            return message

        await self.app(scope, limited_receive, send)

    async def _refuse(self, send: Send) -> None:
        status, body = outcome_bytes(
            PayloadTooLarge(f"request body is larger than the limit of {self.limit} bytes")
        )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", FHIR_JSON.encode()), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _wants_json(request: Request) -> None:
    """ITI-67 answers in FHIR JSON only (scenario B13)."""
    accept = request.headers.get("accept")
    fmt = request.query_params.get("_format")
    if fmt is not None and fmt not in {"json", *_JSON_TYPES}:
        raise NotAcceptable(f"_format={fmt} is not supported; this server speaks FHIR JSON")
    if accept and not any(
        part.split(";")[0].strip() in {"*/*", "application/*", *_JSON_TYPES}
        for part in accept.split(",")
    ):
        raise NotAcceptable(f"cannot answer with {accept}; this server speaks {FHIR_JSON}")


def _read_publishers(path: Path) -> PublisherKeys:
    """The publishers' JWKS: each key with the issuer allowed to use it (trust/publish_proof)."""
    try:
        return PublisherKeys.from_jwks(orjson.loads(path.read_bytes()))
    except (orjson.JSONDecodeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None


async def _check_publisher(request: Request, body: bytes, settings: SourceSettings) -> None:
    """Let an ITI-65 request through only from a system whose key this source knows.

    Open access (development) lets everything through; development mode without configured
    publishers too, with a warning; otherwise a valid publish proof is required, signed by a
    key registered for the issuer it names, and a source without configured publishers refuses
    publishing altogether. A refused proof is audited (MHD ProvideBundle.Audit.Recipient).
    """
    if settings.dev_open_access:
        return
    publishers: PublisherKeys | None = request.app.state.publishers
    if publishers is None:
        if settings.dev_mode:
            log.warning("source.publish_unauthenticated", reason="dev mode, no publishers")
            return
        raise AccessRefused(
            "publishing is not configured on this source (no publisher keys)",
            reason="publishing-not-configured",
        )
    try:
        proof = request.headers.get(PUBLISH_PROOF_HEADER)
        if not proof:
            raise InvalidToken(
                f"ITI-65 needs a {PUBLISH_PROOF_HEADER} header signed by a publisher"
            )
        publisher = await verify_publish_proof(
            proof,
            keys=publishers,
            audience=settings.token_audience,
            htu=f"{settings.public_base_url}{request.url.path}",
            body=body,
            now=time.time(),
            replay=request.app.state.publish_replay,
        )
    except TrustError as exc:
        await _audit_refused_publish(request, exc)
        raise
    log.info("source.publish", publisher=publisher.issuer, jti=publisher.jti)


async def _audit_refused_publish(request: Request, exc: TrustError) -> None:
    """Audit a refused ITI-65 request; a key posing as another issuer is named as the actor."""
    audit: AuditRecorder | None = request.app.state.audit
    system = exc.registered if isinstance(exc, IssuerMismatch) else None
    reason = "issuer-mismatch" if isinstance(exc, IssuerMismatch) else exc.error
    log.warning("source.publish_refused", reason=reason, system=system)
    if audit is None:
        return
    record = AuditRecord(
        action=AuditAction.IMPORT,
        outcome=AuditOutcome.DENIED,
        recorded=audit.clock(),
        source_id=audit.source_id,
        home_community_id=audit.home_community_id,
        correlation_id=_correlation_id(request),
        reason=reason,
        query="ITI-65 /fhir",
        system=system,
    )
    await audit.write(record)


def app_from_environment() -> FastAPI:
    """Build the app from ONERECORD_SOURCE_* variables: the factory each uvicorn worker calls."""
    configure_logging(os.environ.get("ONERECORD_LOG_LEVEL", "info"), service="source")
    return create_app(SourceSettings())


def create_app(
    settings: SourceSettings,
    *,
    guard: AccessGuard | None = None,
    recorder: AccessRecorder | None = None,
    content: ContentStore | None = None,
    caller_factory: Callable[[Request], Awaitable[CallerContext]] | None = None,
    keys: KeyProvider | None = None,
    hub_keys: KeyProvider | None = None,
    replay: ReplayCache | None = None,
) -> FastAPI:
    """Build the ASGI app of one document source.

    With `settings.dev_open_access` (development only) every request is let through unaudited;
    otherwise every search and retrieve is authenticated (DPoP access token from the trusted
    issuer, or an assertion of the trusted hub), decided by the access policy and audited.
    `keys`, `hub_keys` and `replay` replace the remote JWKS and the replay cache (tests).
    """
    open_access = settings.dev_open_access
    xua = load_xua_settings(settings)  # refuses a development certificate outside dev mode

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A bad publishers' file stops the start before anything is opened.
        publishers = (
            _read_publishers(settings.publisher_jwks_file) if settings.publisher_jwks_file else None
        )
        engine = make_engine(settings.db_url, schema=settings.db_schema)
        await upgrade(engine)
        store = SqlDocumentStore(
            engine,
            group_commit=settings.registry_group_commit,
            max_group_documents=settings.registry_group_max_documents,
        )
        http = httpx.AsyncClient()
        redis: RedisReplayCache | None = None
        sink: SqlAuditSink | None = None
        the_guard, the_recorder = guard, recorder
        app.state.self_service = None
        # One replay cache for DPoP proofs, hub assertions and publish proofs (their jtis are
        # prefixed per kind); Redis when several processes must share it.
        shared_replay: ReplayCache
        if replay is not None:
            shared_replay = replay
        elif settings.redis_url:
            shared_replay = redis = RedisReplayCache.from_url(settings.redis_url)
        else:
            shared_replay = MemoryReplayCache()
        if not open_access:
            controls = PatientControlStore(engine)
            sink = SqlAuditSink(
                engine,
                settings.home_community_id[:64],
                checkpoints=_checkpointer(settings, settings.home_community_id[:64]),
                group_commit=settings.audit_group_commit,
            )
            await sink.checkpoint_head()
            policy_guard = PolicyGuard(controls=controls, region_policy=settings.region_policy)
            audit = AuditRecorder(
                sink,
                source_id=settings.home_community_id,
                home_community_id=settings.home_community_id,
            )
            the_guard = the_guard or policy_guard
            the_recorder = the_recorder or audit
            app.state.self_service = SelfService(
                guard=policy_guard, recorder=audit, sink=sink, controls=controls, documents=store
            )
            app.state.audit = audit
            assert settings.issuer is not None and settings.jwks_url is not None
            authenticator = SourceAuthenticator(
                auth=AuthSettings(
                    issuer=settings.issuer,
                    audience=settings.token_audience,
                    skew=settings.clock_skew,
                ),
                keys=keys or RemoteJwks(settings.jwks_url, http),
                replay=shared_replay,
                hub_issuer=settings.hub_issuer,
                hub_keys=hub_keys
                or (RemoteJwks(settings.hub_jwks_url, http) if settings.hub_jwks_url else None),
                xua=xua,
            )
            if caller_factory is None:
                app.state.caller_factory = _trusted_caller(authenticator, settings.public_base_url)
        app.state.publishers = publishers
        app.state.publish_replay = shared_replay
        if app.state.self_service is not None:
            app.state.system_controls = SystemControlReader(
                controls=app.state.self_service.controls,
                publishers=app.state.publishers,
                replay=shared_replay,
                audience=settings.token_audience,
                recorder=app.state.audit,
            )
        the_content = content or _content_store(settings)
        app.state.source = DocumentSource(
            settings=settings,
            store=store,
            content=the_content,
            guard=the_guard or OpenAccess(),
            recorder=the_recorder or NoAudit(),
        )
        # The XCA responding gateway (docs/xca.md): the same stores, policy and audit.
        app.state.xca_gateway = RespondingGateway(
            home_community_id=app.state.source.home_community_id,
            repository_unique_id=app.state.source.repository_unique_id,
            store=store,
            content=the_content,
            guard=the_guard or OpenAccess(),
            recorder=the_recorder or NoAudit(),
            xua=xua,
            page_size=settings.max_page_size,
            max_results=settings.xca_max_results,
            written_entries=settings.xca_written_entries,
        )
        # Asynchronous ITI-38/39: answers to allow-listed ReplyTo endpoints (docs/xca.md).
        app.state.xca_async = AsyncAnswers.from_settings(
            settings, recorder=the_recorder or NoAudit()
        )
        # The locator (docs/hub.md "Locator"): publishing once NATS answers, now or later.
        events = PublisherLink(settings, store) if settings.locator_nats_url else None
        if events is not None:
            source: DocumentSource = app.state.source

            def attach(publisher: RegistryPublisher) -> None:
                source.events = publisher

            await events.start(attach)
        sweeps = asyncio.create_task(
            run_orphan_sweeps(
                content=the_content,
                store=store,
                grace=timedelta(seconds=settings.content_sweep_grace_s),
                interval=settings.content_sweep_interval_s,
            )
        )
        log.info(
            "source.started",
            region=settings.region,
            hcid=settings.home_community_id,
            open_access=open_access,
        )
        try:
            yield
        finally:
            sweeps.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeps
            if events is not None:
                await events.close()
            await app.state.xca_async.close()
            if sink is not None:
                await sink.close()
            await http.aclose()
            if redis is not None:
                await redis.aclose()
            await engine.dispose()

    app = FastAPI(
        title=f"onerecord document source — {settings.region}",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )

    app.state.caller_factory = caller_factory or _default_caller
    app.state.caller_limits = SourceCallerLimits(
        settings.caller_quota, via_hub_factor=settings.caller_via_hub_factor
    )
    app.state.self_service = None
    app.state.system_controls = None
    app.state.audit = None

    @app.exception_handler(CallerThrottled)
    async def _throttled(_request: Request, exc: CallerThrottled) -> Response:
        response = _outcome_response(MhdError(exc.message, status=exc.status, code=exc.code))
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response

    @app.exception_handler(TrustError)
    async def _trust_error(request: Request, exc: TrustError) -> Response:
        await _audit_unauthenticated(request, exc)
        return _trust_error_response(exc)

    @app.exception_handler(MhdError)
    async def _mhd_error(_request: Request, exc: MhdError) -> Response:
        return _outcome_response(exc)

    @app.exception_handler(DomainError)
    async def _domain_error(request: Request, exc: DomainError) -> Response:
        return _outcome_response(exc, query_error=request.method == "GET")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        response = _outcome_response(http_error(exc.status_code, str(exc.detail)))
        response.headers.update(exc.headers or {})  # a 405 keeps its Allow header
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, exc: RequestValidationError) -> Response:
        return _outcome_response(invalid_request(exc.errors()))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log_unexpected_error(
            log,
            "source.unexpected_error",
            exc,
            correlation_id=_correlation_id(request),
            path=request.url.path,
        )
        return _outcome_response(
            MhdError("internal error; the request was not completed", status=500, code="exception")
        )

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    @app.get("/fhir/metadata")
    async def metadata() -> Response:
        body = capability_statement(
            base_url=settings.fhir_base,
            software_name="onerecord document source",
            version=__version__,
            kind="source",
        )
        return Response(orjson.dumps(body), media_type=FHIR_JSON)

    @app.post("/fhir")
    async def provide_document_bundle(request: Request, src: SourceDep) -> Response:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in _JSON_TYPES:
            raise UnsupportedMediaType(
                f"Content-Type {media or '(none)'} is not supported; send {FHIR_JSON}"
            )
        body = await request.body()
        await _check_publisher(request, body, settings)
        return Response(await src.publish(body), status_code=200, media_type=FHIR_JSON)

    @app.get("/fhir/DocumentReference", openapi_extra=ITI67_GET_OPENAPI)
    async def find_document_references(
        request: Request, src: SourceDep, caller: CallerDep
    ) -> Response:
        _wants_json(request)
        found = await src.find(caller, request.query_params.multi_items())
        return _found_response(found)

    @app.post("/fhir/DocumentReference/_search", openapi_extra=ITI67_POST_OPENAPI)
    async def find_document_references_post(
        request: Request, src: SourceDep, caller: CallerDep
    ) -> Response:
        _wants_json(request)
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/x-www-form-urlencoded":
            raise UnsupportedMediaType("_search takes application/x-www-form-urlencoded")
        form = await read_search_form(
            request.stream(), declared_length=request.headers.get("content-length")
        )
        params = [*request.query_params.multi_items(), *form]
        return _found_response(await src.find(caller, params))

    @app.get("/fhir/DocumentReference/{entry_id}")
    async def read_document_reference(
        entry_id: str, request: Request, src: SourceDep, caller: CallerDep
    ) -> Response:
        _wants_json(request)
        patient = request.headers.get(PATIENT_NIN_HEADER)
        return Response(await src.read(caller, entry_id, patient=patient), media_type=FHIR_JSON)

    @app.get("/fhir/Binary/{token}")
    async def retrieve_document(
        token: str, request: Request, src: SourceDep, caller: CallerDep
    ) -> StreamingResponse:
        got = await src.retrieve(caller, token, request.headers.get("accept"))
        return StreamingResponse(
            got.chunks,
            media_type=got.entry.mime_type,
            headers={
                "content-length": str(got.entry.size),
                "etag": f'"{got.entry.hash_sha256}"',
                "x-content-sha256": got.entry.hash_sha256,
            },
        )

    @app.get("/fhir/AuditEvent")
    async def citizen_access_log(
        request: Request, caller: CallerDep, service: SelfServiceDep
    ) -> Response:
        _wants_json(request)
        patient = patient_from_token_param(request.query_params.get("patient.identifier"))
        self_url = f"{settings.fhir_base}/AuditEvent?{request.url.query}"
        body = await service.access_log(caller, patient, self_url=self_url)
        return Response(orjson.dumps(body), media_type=FHIR_JSON)

    @app.get("/controls")
    async def read_controls(
        caller: CallerDep, service: SelfServiceDep, patient: str | None = None
    ) -> Response:
        who = service.patient_or_self(caller, patient)
        return _json(await service.read_controls(caller, who))

    @app.get("/controls/system")
    async def system_controls(request: Request) -> Response:
        # A system of the region (the media archive), by a publish proof: docs/media.md.
        reader: SystemControlReader | None = request.app.state.system_controls
        if reader is None:
            raise NotFound("the systems' controls need the trust framework (not in open access)")
        body = await reader.read(
            proof=request.headers.get(PUBLISH_PROOF_HEADER),
            htu=f"{settings.public_base_url}{request.url.path}",
            params=request.query_params.multi_items(),
            correlation_id=_correlation_id(request),
        )
        return _json(body)

    @app.put("/controls/reservation")
    async def reserve(
        caller: CallerDep, service: SelfServiceDep, patient: str | None = None
    ) -> Response:
        who = service.patient_or_self(caller, patient)
        return _json(await service.change(caller, who, kind="reservation", on=True))

    @app.delete("/controls/reservation")
    async def unreserve(
        caller: CallerDep, service: SelfServiceDep, patient: str | None = None
    ) -> Response:
        who = service.patient_or_self(caller, patient)
        return _json(await service.change(caller, who, kind="reservation", on=False))

    @app.put("/controls/document-blocks/{unique_id}")
    async def block_document(
        unique_id: str, caller: CallerDep, service: SelfServiceDep, patient: str | None = None
    ) -> Response:
        who = service.patient_or_self(caller, patient)
        return _json(
            await service.change(caller, who, kind="document-block", on=True, target=unique_id)
        )

    @app.delete("/controls/document-blocks/{unique_id}")
    async def unblock_document(
        unique_id: str, caller: CallerDep, service: SelfServiceDep, patient: str | None = None
    ) -> Response:
        who = service.patient_or_self(caller, patient)
        return _json(
            await service.change(caller, who, kind="document-block", on=False, target=unique_id)
        )

    @app.put("/controls/practitioner-blocks/{hpr}")
    async def block_practitioner(
        hpr: str, caller: CallerDep, service: SelfServiceDep, patient: str | None = None
    ) -> Response:
        who = service.patient_or_self(caller, patient)
        return _json(
            await service.change(caller, who, kind="practitioner-block", on=True, target=hpr)
        )

    @app.delete("/controls/practitioner-blocks/{hpr}")
    async def unblock_practitioner(
        hpr: str, caller: CallerDep, service: SelfServiceDep, patient: str | None = None
    ) -> Response:
        who = service.patient_or_self(caller, patient)
        return _json(
            await service.change(caller, who, kind="practitioner-block", on=False, target=hpr)
        )

    app.include_router(xca_router(settings))
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(ReleaseCallerPermits)
    return app


def _json(body: object) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


def _found_response(found: FoundPage) -> Response:
    headers = {
        MASKED_COUNT_HEADER: str(found.masked_count),
        NORS_COUNT_HEADER: str(found.masked_count),
    }
    return Response(found.body, media_type=FHIR_JSON, headers=headers)


async def _audit_unauthenticated(request: Request, exc: TrustError) -> None:
    """Audit a search or retrieve refused before a caller was known (F5)."""
    audit: AuditRecorder | None = request.app.state.audit
    path = request.url.path
    if audit is None or getattr(request.state, "authenticated", False):
        return  # authenticated callers' denials are audited by the service
    if path.startswith("/fhir/DocumentReference"):
        action = AuditAction.SEARCH
    elif path.startswith("/fhir/Binary/"):
        action = AuditAction.RETRIEVE
    else:
        return
    patient: str | None = None
    try:
        patient = NationalIdentityNumber(request.headers.get(PATIENT_NIN_HEADER, "")).value
    except InvalidIdentifier:
        patient = None
    record = AuditRecord(
        action=action,
        outcome=AuditOutcome.DENIED,
        recorded=audit.clock(),
        source_id=audit.source_id,
        home_community_id=audit.home_community_id,
        correlation_id=_correlation_id(request),
        patient_id=patient,
        reason=exc.error,
    )
    await audit.write(record)


def _content_store(settings: SourceSettings) -> ContentStore:
    if settings.s3_url:
        from onerecord.source.content import ObstoreContentStore

        return ObstoreContentStore.from_url(settings.s3_url)
    return FolderContentStore(settings.content_dir)


def _checkpointer(settings: SourceSettings, source_id: str) -> Checkpointer | None:
    """Sign the audit chain's head into the checkpoint file, if one is configured."""
    if settings.audit_checkpoint_file is None or settings.audit_checkpoint_key_file is None:
        if not settings.dev_mode:
            log.warning("audit.no_checkpoints", reason="a rewritten audit chain goes unnoticed")
        return None
    return Checkpointer(
        key=load_checkpoint_key(settings.audit_checkpoint_key_file, dev_mode=settings.dev_mode),
        log=FileCheckpointLog(settings.audit_checkpoint_file),
        source_id=source_id,
        every=settings.audit_checkpoint_every,
        interval=settings.audit_checkpoint_interval_s,
    )
