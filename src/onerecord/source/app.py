"""The document source's HTTP face: FHIR R4 at /fhir (IHE MHD Document Responder + Recipient).

Routes stay thin: read the request, call one DocumentSource method, render bytes. Every error
becomes an OperationOutcome with the right status; nothing internal reaches the client.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated
from urllib.parse import parse_qsl

import orjson
import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from onerecord import __version__
from onerecord.domain import DomainError
from onerecord.mhd import (
    FHIR_JSON,
    BadRequest,
    MhdError,
    NotAcceptable,
    PayloadTooLarge,
    UnsupportedMediaType,
    capability_statement,
    outcome_bytes,
)
from onerecord.source.access import (
    AccessGuard,
    AccessRecorder,
    CallerContext,
    NoAudit,
    OpenAccess,
)
from onerecord.source.content import ContentStore, FolderContentStore
from onerecord.source.database import make_engine
from onerecord.source.migrate import upgrade
from onerecord.source.service import DocumentSource
from onerecord.source.settings import SourceSettings
from onerecord.source.store import SqlDocumentStore

__all__ = ["create_app"]

log = structlog.get_logger("onerecord.source")

_JSON_TYPES = {"application/fhir+json", "application/json", "application/json+fhir"}


def _outcome_response(exc: MhdError | DomainError, *, query_error: bool = False) -> Response:
    status, body = outcome_bytes(exc, query_error=query_error)
    return Response(body, status_code=status, media_type=FHIR_JSON)


async def _default_caller(request: Request) -> CallerContext:
    cid = request.headers.get("x-correlation-id") or uuid.uuid4().hex
    return CallerContext(correlation_id=cid)


def _source(request: Request) -> DocumentSource:
    source: DocumentSource = request.app.state.source
    return source


async def _caller(request: Request) -> CallerContext:
    factory: Callable[[Request], Awaitable[CallerContext]] = request.app.state.caller_factory
    return await factory(request)


SourceDep = Annotated[DocumentSource, Depends(_source)]
CallerDep = Annotated[CallerContext, Depends(_caller)]


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


def create_app(
    settings: SourceSettings,
    *,
    guard: AccessGuard | None = None,
    recorder: AccessRecorder | None = None,
    content: ContentStore | None = None,
    caller_factory: Callable[[Request], Awaitable[CallerContext]] | None = None,
) -> FastAPI:
    """Build the ASGI app of one document source."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.db_url, schema=settings.db_schema)
        await upgrade(engine)
        store = SqlDocumentStore(engine)
        app.state.source = DocumentSource(
            settings=settings,
            store=store,
            content=content or _content_store(settings),
            guard=guard or OpenAccess(),
            recorder=recorder or NoAudit(),
        )
        log.info("source.started", region=settings.region, hcid=settings.home_community_id)
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(
        title=f"onerecord document source — {settings.region}",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )

    app.state.caller_factory = caller_factory or _default_caller

    @app.exception_handler(MhdError)
    async def _mhd_error(_request: Request, exc: MhdError) -> Response:
        return _outcome_response(exc)

    @app.exception_handler(DomainError)
    async def _domain_error(request: Request, exc: DomainError) -> Response:
        return _outcome_response(exc, query_error=request.method == "GET")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("source.unexpected_error", path=request.url.path)
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
        return Response(await src.publish(body), status_code=200, media_type=FHIR_JSON)

    @app.get("/fhir/DocumentReference")
    async def find_document_references(
        request: Request, src: SourceDep, caller: CallerDep
    ) -> Response:
        _wants_json(request)
        body = await src.find(caller, request.query_params.multi_items())
        return Response(body, media_type=FHIR_JSON)

    @app.post("/fhir/DocumentReference/_search")
    async def find_document_references_post(
        request: Request, src: SourceDep, caller: CallerDep
    ) -> Response:
        _wants_json(request)
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/x-www-form-urlencoded":
            raise UnsupportedMediaType("_search takes application/x-www-form-urlencoded")
        try:
            form = parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise BadRequest("the form body is not UTF-8") from None
        params = [*request.query_params.multi_items(), *form]
        return Response(await src.find(caller, params), media_type=FHIR_JSON)

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

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app


def _content_store(settings: SourceSettings) -> ContentStore:
    if settings.s3_url:
        from onerecord.source.content import ObstoreContentStore

        return ObstoreContentStore.from_url(settings.s3_url)
    return FolderContentStore(settings.content_dir)
