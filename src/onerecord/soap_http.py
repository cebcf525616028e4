"""The SOAP 1.2 edge over HTTP, shared by the regions' XCA gateway and the hub's XDS.b registry.

Both serve SOAP at `/xca/...` the same way: a message read with its size bounded before it is
parsed, SOAP Faults with the HTTP status SOAP 1.2 gives them (env:Sender 400, a throttled
caller 429 with Retry-After, env:Receiver 500 for an error of ours, logged without its cause
told), and the WSDLs and schemas each gateway publishes with its own address. What differs
per operation (the Action accepted, sync or async) stays in each service's routes.

References: SOAP 1.2 Part 2 §7.5 (HTTP status of faults), IHE ITI TF-2 V.3.2 and V.3.6.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from onerecord.logs import log_unexpected_error
from onerecord.trust.caller_limits import CallerThrottled
from onerecord.xca.descriptions import SCHEMA_FILES, package_file, wsdl_for
from onerecord.xca.errors import XcaParseError
from onerecord.xca.mtom import soap_part
from onerecord.xca.soap import SOAP12_MEDIA_TYPE, SoapEnvelope, parse_envelope, render_fault
from onerecord.xca.xml import MAX_MESSAGE_BYTES

__all__ = [
    "message_id_or_new",
    "read_envelope",
    "receiver_fault",
    "sender_fault",
    "soap_response",
    "throttled_fault",
    "wsdl_or_schema",
]

_MAX_REQUEST_BYTES = 2 * MAX_MESSAGE_BYTES
"""An MTOM request may carry attachments beside the SOAP part the reader bounds."""


def soap_response(body: bytes, *, status: int = 200, action: str | None = None) -> Response:
    """A SOAP 1.2 message as the HTTP answer (the Action in the media type when given)."""
    media = f"{SOAP12_MEDIA_TYPE}; charset=UTF-8"
    if action:
        media += f'; action="{action}"'
    return Response(body, status_code=status, media_type=media)


def sender_fault(exc: XcaParseError) -> Response:
    """The caller's unusable message: env:Sender, its XDS code as subcode, HTTP 400.

    Only the message's shape is told back; it holds no personal data (`xca/errors.py`).
    """
    return soap_response(render_fault(exc.message, subcode=exc.code), status=400)


def throttled_fault(exc: CallerThrottled) -> Response:
    """The caller is over its limits: env:Sender with the limiter's status and Retry-After."""
    response = soap_response(render_fault(exc.message), status=exc.status)
    response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


def receiver_fault(log: Any, event: str, request: Request, exc: Exception) -> Response:
    """An error of ours: logged as one event (no traceback), answered env:Receiver, HTTP 500."""
    log_unexpected_error(log, event, exc, correlation_id=None, path=request.url.path)
    body = render_fault("internal error; the request was not completed", code="Receiver")
    return soap_response(body, status=500)


async def read_envelope(request: Request) -> SoapEnvelope:
    """The request's SOAP 1.2 envelope (plain or the MTOM root part), its size bounded first."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > _MAX_REQUEST_BYTES:
        raise XcaParseError("the message is too large")  # before a byte of it is read
    body = await request.body()
    if len(body) > _MAX_REQUEST_BYTES:
        raise XcaParseError("the message is too large")
    return parse_envelope(soap_part(request.headers.get("content-type"), body))


def message_id_or_new(envelope: SoapEnvelope) -> str:
    """The message's wsa:MessageID as a correlation id when printable, else a new one."""
    value = envelope.message_id or ""
    return value[:64] if value and value.isprintable() else uuid.uuid4().hex


def wsdl_or_schema(
    name: str, request: Request, *, wsdl_files: Mapping[str, str], base_url: str
) -> Response:
    """`/xca/<operation>?wsdl` with this gateway's address, or a schema the WSDLs import."""
    if name in SCHEMA_FILES:
        return Response(package_file(name), media_type="text/xml")
    wsdl = wsdl_files.get(name)
    if wsdl is None or "wsdl" not in request.query_params:
        return Response(b"not found", status_code=404, media_type="text/plain")
    return Response(wsdl_for(wsdl, f"{base_url}/xca/{name}"), media_type="text/xml")
