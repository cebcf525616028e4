"""The XCA responding gateway's HTTP face: SOAP 1.2 at /xca/iti38 and /xca/iti39, WSDLs.

Routes stay thin: read the SOAP part (plain or MTOM), check the envelope, call one
RespondingGateway method, write the answer (ITI-39 always as MTOM/XOP, the documents streamed).
A message that is not a usable SOAP 1.2 request is answered with a SOAP Fault env:Sender and
HTTP 400; refusals are RegistryErrors inside a 200 answer (ITI TF-2 3.38.4.1.3).

References: IHE ITI TF-2 V.3.2 (SOAP 1.2, WS-Addressing), V.3.6 (MTOM); SOAP 1.2 Part 2 §7.5
(HTTP status of a Sender fault: 400).
"""

from __future__ import annotations

import uuid
from importlib import resources

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from onerecord.logs import log_unexpected_error
from onerecord.source.access import CallerContext
from onerecord.source.security import SourceCallerLimits
from onerecord.source.settings import SourceSettings
from onerecord.source.xca_gateway import (
    ITI38_ACTION,
    ITI38_RESPONSE_ACTION,
    ITI39_ACTION,
    ITI39_RESPONSE_ACTION,
    Admit,
    RespondingGateway,
)
from onerecord.trust.caller_limits import PERMIT_STATE, CallerThrottled
from onerecord.xca.dev_issuer import is_development_certificate
from onerecord.xca.errors import XcaParseError
from onerecord.xca.mtom import mtom_response, soap_part
from onerecord.xca.saml import TrustedIssuer, XuaSettings, load_certificate
from onerecord.xca.soap import (
    SOAP12_MEDIA_TYPE,
    SoapEnvelope,
    parse_envelope,
    render_envelope,
    render_fault,
)
from onerecord.xca.xml import MAX_MESSAGE_BYTES

__all__ = ["WSDL_FILES", "load_xua_settings", "xca_router"]

log = structlog.get_logger("onerecord.source.xca")

WSDL_FILES = {
    "iti38": "XCA_RespondingGateway_Query.wsdl",
    "iti39": "XCA_RespondingGateway_Retrieve.wsdl",
}
_SCHEMAS = frozenset({"rim.xsd", "rs.xsd", "query.xsd", "XDS.b_DocumentRepository.xsd"})
_ADDRESS_PLACEHOLDER = "http://127.0.0.1/REPLACED-BY-THE-GATEWAY"


def load_xua_settings(settings: SourceSettings) -> XuaSettings | None:
    """The trusted SAML issuers from configuration; a development certificate needs dev mode."""
    issuers = []
    for name, files in settings.xca_issuers.items():
        certificates = tuple(load_certificate(path.read_bytes()) for path in files)
        for certificate in certificates:
            if is_development_certificate(certificate) and not settings.dev_mode:
                raise ValueError(
                    f"refusing the development SAML certificate of {name!r} outside dev mode"
                )
        issuers.append(TrustedIssuer(name, certificates))
    if not issuers:
        return None
    audiences = frozenset(settings.xca_audiences or (settings.token_audience,))
    return XuaSettings(issuers=tuple(issuers), audiences=audiences)


def _package_file(name: str) -> bytes:
    return resources.files("onerecord.xca").joinpath("wsdl", name).read_bytes()


def _soap(body: bytes, *, status: int = 200, action: str | None = None) -> Response:
    media = f"{SOAP12_MEDIA_TYPE}; charset=UTF-8"
    if action:
        media += f'; action="{action}"'
    return Response(body, status_code=status, media_type=media)


def _fault(exc: XcaParseError) -> Response:
    # Only the message's shape is told back; it holds no personal data (errors.py).
    return _soap(render_fault(exc.message, subcode=exc.code), status=400)


async def _envelope(request: Request, *, action: str) -> SoapEnvelope:
    """Read and check the request's envelope: SOAP 1.2, sync, addressed to this operation."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > 2 * MAX_MESSAGE_BYTES:
        raise XcaParseError("the message is too large")  # before a byte of it is read
    body = await request.body()
    if len(body) > 2 * MAX_MESSAGE_BYTES:
        raise XcaParseError("the message is too large")
    envelope = parse_envelope(soap_part(request.headers.get("content-type"), body))
    if envelope.action is not None and envelope.action != action:
        raise XcaParseError(f"this endpoint serves {action} only")
    if envelope.asynchronous:
        raise XcaParseError("asynchronous ReplyTo is not supported by this gateway; use sync")
    return envelope


def _correlation_id(envelope: SoapEnvelope) -> str:
    value = envelope.message_id or ""
    return value[:64] if value and value.isprintable() else uuid.uuid4().hex


def _admit(request: Request) -> Admit:
    """Take the caller's permit into the request state; ReleaseCallerPermits gives it back."""
    limits: SourceCallerLimits = request.app.state.caller_limits

    def admit(caller: CallerContext) -> None:
        setattr(request.state, PERMIT_STATE, limits.admit(caller))

    return admit


def _throttled(exc: CallerThrottled) -> Response:
    response = _soap(render_fault(exc.message), status=exc.status)
    response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


def _receiver_fault(request: Request, exc: Exception) -> Response:
    log_unexpected_error(
        log, "xca.unexpected_error", exc, correlation_id=None, path=request.url.path
    )
    body = render_fault("internal error; the request was not completed", code="Receiver")
    return _soap(body, status=500)


def _gateway(request: Request) -> RespondingGateway:
    gateway: RespondingGateway = request.app.state.xca_gateway
    return gateway


def xca_router(settings: SourceSettings) -> APIRouter:
    """The routes of the responding gateway of one region."""
    router = APIRouter(prefix="/xca", include_in_schema=False)

    @router.post("/iti38")
    async def cross_gateway_query(request: Request) -> Response:
        try:
            envelope = await _envelope(request, action=ITI38_ACTION)
            answer = await _gateway(request).query(
                envelope, correlation_id=_correlation_id(envelope), admit=_admit(request)
            )
        except XcaParseError as exc:
            return _fault(exc)
        except CallerThrottled as exc:
            return _throttled(exc)
        except Exception as exc:  # ours, not the caller's: a Receiver fault, logged
            return _receiver_fault(request, exc)
        body = render_envelope(answer, action=ITI38_RESPONSE_ACTION, relates_to=envelope.message_id)
        return _soap(body, action=ITI38_RESPONSE_ACTION)

    @router.post("/iti39")
    async def cross_gateway_retrieve(request: Request) -> Response:
        try:
            envelope = await _envelope(request, action=ITI39_ACTION)
            answer = await _gateway(request).retrieve(
                envelope, correlation_id=_correlation_id(envelope), admit=_admit(request)
            )
        except XcaParseError as exc:
            return _fault(exc)
        except CallerThrottled as exc:
            return _throttled(exc)
        except Exception as exc:  # ours, not the caller's: a Receiver fault, logged
            return _receiver_fault(request, exc)
        soap = render_envelope(
            answer.body, action=ITI39_RESPONSE_ACTION, relates_to=envelope.message_id
        )
        content_type, stream = mtom_response(soap, answer.parts, action=ITI39_RESPONSE_ACTION)
        return StreamingResponse(stream, headers={"content-type": content_type})

    @router.get("/{name}")
    async def wsdl_or_schema(name: str, request: Request) -> Response:
        """`/xca/iti38?wsdl` (with this gateway's address) and the schemas it imports."""
        if name in _SCHEMAS:
            return Response(_package_file(name), media_type="text/xml")
        wsdl = WSDL_FILES.get(name)
        if wsdl is None or "wsdl" not in request.query_params:
            return Response(b"not found", status_code=404, media_type="text/plain")
        address = f"{settings.public_base_url}/xca/{name}"
        text = _package_file(wsdl).replace(_ADDRESS_PLACEHOLDER.encode(), address.encode())
        return Response(text, media_type="text/xml")

    return router
