"""The DICOMweb routes of the media archive (PS3.18), thin: parse, authorise, call, render.

    POST /dicomweb/studies[/{study}]          STOW-RS (health personnel with the store scope)
    GET  /dicomweb/studies|series|instances   QIDO-RS (…/studies/{s}/series, …/series/{s}/instances)
    GET  /dicomweb/studies/{s}[/series/{s}[/instances/{i}]]            WADO-RS instances
         …/metadata, …/instances/{i}/frames/{list}, …/rendered, …/thumbnail

Every request is authenticated (`MediaAuthenticator`), bound to one patient (`MediaGuard`) and
audited, allowed or refused (F5): a refusal before the caller is known by the error handler, a
refusal after it by the route, the outcome by `DicomWebService`. Errors are a small JSON body
with the status of `onerecord.dicom.errors` (400, 404, 406, 409, 413, 415), the trust
framework's 401/403 with a `WWW-Authenticate` challenge, and never a 500 for a caller's input.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from onerecord.audit import AuditAction
from onerecord.dicom import (
    DicomWebPath,
    DicomWebTarget,
    DicomWireError,
    InvalidRequest,
    NotFound,
    OutgoingPart,
    RangeNotSatisfiable,
    WadoResource,
    arender_multipart,
    is_uid,
    negotiate,
    new_boundary,
    offers_for,
    parse_dicomweb_path,
    parse_qido_query,
    parse_range,
    related_content_type,
    render_dicom_json,
)
from onerecord.logs import log_unexpected_error
from onerecord.media.dicomweb import DicomWebService
from onerecord.media.errors import AccessRefused
from onerecord.media.mp4 import H264_TRANSFER_SYNTAXES
from onerecord.media.rendering import parse_render_params
from onerecord.media.security import Binding, MediaAuthenticator, MediaCaller, MediaGuard
from onerecord.media.service import AuditCaller
from onerecord.media.settings import MediaSettings
from onerecord.media.store import StoredInstance
from onerecord.trust.errors import TrustError

__all__ = ["dicomweb_router", "install_error_handlers"]

log = structlog.get_logger("onerecord.media")
DICOM_JSON = "application/dicom+json"
_PREFIX = "/dicomweb"


def _correlation_id(request: Request) -> str:
    value = request.headers.get("x-correlation-id", "")
    return value[:64] if value.isprintable() and value else uuid.uuid4().hex


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps({"status": status, "message": message})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _quoted(message: str) -> str:
    """A message safe inside a quoted header value (printable ASCII, no quote or backslash)."""
    text = message.encode("ascii", "replace").decode()
    return "".join(c if c.isprintable() and c not in '"\\' else "?" for c in text)[:200]


def _action(request: Request) -> AuditAction:
    if request.method == "POST":
        return AuditAction.STORE
    path = request.url.path.rstrip("/")
    if path.endswith(("/studies", "/series", "/instances")):
        return AuditAction.SEARCH
    return AuditAction.RETRIEVE


def install_error_handlers(app: FastAPI) -> None:
    """Turn the archive's and the wire's exceptions into statuses, auditing trust refusals."""

    @app.exception_handler(DicomWireError)
    async def _wire(_request: Request, exc: DicomWireError) -> Response:
        if isinstance(exc, RangeNotSatisfiable):
            return _error(exc.status, str(exc), {"Content-Range": f"bytes */{exc.size}"})
        return _error(exc.status, str(exc))

    @app.exception_handler(AccessRefused)
    async def _refused(_request: Request, exc: AccessRefused) -> Response:
        # 503: the patient's controls could not be read (fail closed); asking again may work.
        headers = {"Retry-After": "1"} if exc.status == 503 else None
        return _error(exc.status, exc.message, headers)

    @app.exception_handler(TrustError)
    async def _trust(request: Request, exc: TrustError) -> Response:
        web: DicomWebService | None = request.app.state.dicomweb
        if web is not None and not getattr(request.state, "authenticated", False):
            # Refused before a caller was known (F5): audited without one.
            await web.denied(
                _action(request),
                exc.error,
                who=AuditCaller(),
                correlation_id=_correlation_id(request),
                patient=None,
            )
        status = exc.status if exc.status in (400, 401, 403) else 401
        headers = {"WWW-Authenticate": exc.www_authenticate()} if status in (401, 403) else {}
        return _error(status, exc.description, headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> Response:
        return _error(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, _exc: RequestValidationError) -> Response:
        return _error(400, "the request is malformed")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log_unexpected_error(
            log,
            "media.unexpected_error",
            exc,
            correlation_id=_correlation_id(request),
            path=request.url.path,
        )
        return _error(500, "internal error; the request was not completed")


def _web(request: Request) -> DicomWebService:
    web: DicomWebService | None = request.app.state.dicomweb
    if web is None:
        raise NotFound("DICOMweb is not configured on this archive (no token issuer)")
    return web


async def _authenticate(request: Request, settings: MediaSettings) -> MediaCaller:
    authenticator: MediaAuthenticator = request.app.state.authenticator
    caller = await authenticator.authenticate(
        method=request.method,
        url=f"{settings.public_base_url.rstrip('/')}{request.url.path}",
        headers=request.headers,
        correlation_id=_correlation_id(request),
    )
    request.state.authenticated = True
    return caller


def _who(caller: MediaCaller, patient: str | None) -> AuditCaller:
    practitioner, citizen = MediaGuard.audit_fields(caller, patient)
    return AuditCaller(practitioner, citizen, caller.token_jti)


async def _bind(
    request: Request, web: DicomWebService, caller: MediaCaller, action: AuditAction
) -> Binding:
    """The patient of the request, or a refusal audited with the caller."""
    guard: MediaGuard = request.app.state.guard
    try:
        if action is AuditAction.STORE:
            return Binding(guard.bind_store(caller))
        return await guard.bind(caller)
    except (TrustError, AccessRefused) as exc:
        reason = exc.reason if isinstance(exc, AccessRefused) else exc.error
        header = caller.headers.get("nhn-patient-nin")
        await web.denied(
            action,
            reason,
            who=_who(caller, header),
            correlation_id=caller.correlation_id,
            patient=header,
        )
        raise


def dicomweb_router(settings: MediaSettings) -> APIRouter:
    """The DICOMweb routes; they answer 404 until the trust framework is configured."""
    router = APIRouter(prefix=_PREFIX)

    async def store(request: Request, study: str | None) -> Response:
        web = _web(request)
        if study is not None and not is_uid(study):
            raise InvalidRequest("path: StudyInstanceUID is not a valid UID")
        caller = await _authenticate(request, settings)
        binding = await _bind(request, web, caller, AuditAction.STORE)
        answer = await web.store(
            request.stream(),
            content_type=request.headers.get("content-type"),
            study_uid=study,
            patient=binding.patient.value,
            who=_who(caller, binding.patient.value),
            correlation_id=caller.correlation_id,
        )
        headers = [
            ("Warning", f'299 {request.url.hostname} "{_quoted(message)}"')
            for message in answer.messages
        ]
        response = Response(answer.render(), status_code=answer.status, media_type=DICOM_JSON)
        for name, value in headers:
            response.headers.append(name, value)
        return response

    @router.post("/studies")
    async def stow_studies(request: Request) -> Response:
        return await store(request, None)

    @router.post("/studies/{study}")
    async def stow_study(request: Request, study: str) -> Response:
        return await store(request, study)

    @router.get("/{path:path}")
    async def read(request: Request, path: str) -> Response:
        web = _web(request)
        target = parse_dicomweb_path(path)
        params = request.query_params
        query = None
        if target.target is DicomWebTarget.SEARCH:
            query = parse_qido_query(
                params.multi_items(),
                level=target.level,
                study_uid=target.study_uid,
                series_uid=target.series_uid,
                max_limit=web.max_limit,
            )
        caller = await _authenticate(request, settings)
        action = AuditAction.SEARCH if query is not None else AuditAction.RETRIEVE
        binding = await _bind(request, web, caller, action)
        patient = binding.patient.value
        who = _who(caller, patient)
        accept = request.headers.get("accept")
        query_accept = params.get("accept")
        if query is not None:
            negotiate(offers_for(WadoResource.SEARCH), accept, query_accept=query_accept)
            matches = await web.search(
                query,
                patient=patient,
                empty_reason=binding.empty_reason,
                blocked_studies=binding.blocked_studies,
                opened_studies=binding.opened_studies,
                who=who,
                correlation_id=caller.correlation_id,
            )
            headers = {}
            if query.limit_lowered:
                headers["Warning"] = (
                    f'299 {request.url.hostname} "The number of results exceeded the maximum '
                    f'supported by the server. Additional results can be requested."'
                )
            if binding.empty_reason is not None:
                headers["Warning"] = f'299 {request.url.hostname} "{binding.empty_reason}"'
            return Response(render_dicom_json(matches), media_type=DICOM_JSON, headers=headers)
        return await _retrieve(
            request, web, target, binding, who, caller, accept=accept, query_accept=query_accept
        )

    return router


async def _retrieve(
    request: Request,
    web: DicomWebService,
    target: DicomWebPath,
    binding: Binding,
    who: AuditCaller,
    caller: MediaCaller,
    *,
    accept: str | None,
    query_accept: str | None,
) -> Response:
    kind = target.target
    if kind is DicomWebTarget.METADATA:
        negotiate(offers_for(WadoResource.METADATA), accept, query_accept=query_accept)
    render_request = None
    if kind in (DicomWebTarget.RENDERED, DicomWebTarget.THUMBNAIL):
        if len(target.frames) > 1:
            raise InvalidRequest("rendered: one frame at a time")
        render_request = parse_render_params(
            request.query_params,
            frame=target.frames[0] if target.frames else 1,
            thumbnail=kind is DicomWebTarget.THUMBNAIL,
        )
        if kind is DicomWebTarget.RENDERED and target.instance_uid is None:
            raise InvalidRequest("rendered: served per instance or frame (thumbnail per study)")
    assert target.study_uid is not None
    instances = await web.locate(
        study_uid=target.study_uid,
        series_uid=target.series_uid,
        instance_uid=target.instance_uid,
        patient=binding.patient.value,
        empty_reason=binding.empty_reason,
        blocked_studies=binding.blocked_studies,
        opened_studies=binding.opened_studies,
        who=who,
        correlation_id=caller.correlation_id,
        purpose=f"WADO-RS {kind.value}",
    )
    if kind is DicomWebTarget.METADATA:
        return Response(await web.metadata(instances), media_type=DICOM_JSON)
    if kind is DicomWebTarget.RETRIEVE:
        answer = web.instances(instances, accept=accept, query_accept=query_accept)
        syntaxes = {i.transfer_syntax_uid for i in instances}
        boundary = new_boundary()
        params: dict[str, Any] = {"transfer_syntax": syntaxes.pop() if len(syntaxes) == 1 else "*"}
        return StreamingResponse(
            arender_multipart(answer.parts, boundary),
            media_type=related_content_type("application/dicom", boundary, **params),
        )
    if kind in (DicomWebTarget.FRAMES, DicomWebTarget.BULKDATA):
        if kind is DicomWebTarget.FRAMES:
            got = await web.frames(
                instances[0], target.frames, accept=accept, query_accept=query_accept
            )
        else:
            got = await web.bulkdata(
                instances[0], target.bulkdata, accept=accept, query_accept=query_accept
            )
        boundary = new_boundary()
        parts = [OutgoingPart(got.representation.part_content_type(), b) for b in got.bodies]
        body = b"".join([chunk async for chunk in arender_multipart(parts, boundary)])
        return Response(
            body,
            media_type=related_content_type(got.representation.media_type, boundary),
        )
    assert render_request is not None
    if kind is DicomWebTarget.RENDERED and instances[0].transfer_syntax_uid in (
        H264_TRANSFER_SYNTAXES
    ):
        return await _video(request, web, instances[0], accept, query_accept)
    got = await web.rendered(instances[0], render_request, accept=accept, query_accept=query_accept)
    return Response(got.bodies[0], media_type=got.representation.media_type)


async def _video(
    request: Request,
    web: DicomWebService,
    instance: StoredInstance,
    accept: str | None,
    query_accept: str | None,
) -> Response:
    """A clip's MP4 file, whole (200) or one byte range (206), streamed from its file."""
    clip = await web.video(instance, accept=accept, query_accept=query_accept)
    # The content address is the digest of the stored file: a strong validator (RFC 9110 §8.8.3).
    etag = f'"{clip.content_key}"'
    asked = request.headers.get("if-none-match")
    if asked is not None and {"*", etag} & {tag.strip() for tag in asked.split(",")}:
        return Response(status_code=304, headers={"ETag": etag, "Accept-Ranges": "bytes"})
    wanted = parse_range(request.headers.get("range"), clip.length)
    headers = {"Accept-Ranges": "bytes", "ETag": etag}
    first, length, status = 0, clip.length, 200
    if wanted is not None:
        first, length, status = wanted.first, wanted.length, 206
        headers["Content-Range"] = wanted.content_range
    headers["Content-Length"] = str(length)
    return StreamingResponse(
        web.media.content.range_chunks(clip.content_key, clip.offset + first, length),
        status_code=status,
        media_type="video/mp4",
        headers=headers,
    )
