"""The XCA responding gateway's HTTP face: SOAP 1.2 at /xca/iti38 and /xca/iti39, WSDLs.

Routes stay thin: read the SOAP part (plain or MTOM), check the envelope, call one
RespondingGateway method, write the answer (ITI-39 always as MTOM/XOP, the documents streamed).
A message that is not a usable SOAP 1.2 request is answered with a SOAP Fault env:Sender and
HTTP 400; refusals are RegistryErrors inside a 200 answer (ITI TF-2 3.38.4.1.3). A request with
a non-anonymous ReplyTo is answered 202 and its answer sent there (`xca_async`).

References: IHE ITI TF-2 V.3.2 (SOAP 1.2, WS-Addressing), V.3.6 (MTOM); SOAP 1.2 Part 2 §7.5
(HTTP status of a Sender fault: 400).
"""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from onerecord.soap_http import (
    message_id_or_new,
    read_envelope,
    receiver_fault,
    sender_fault,
    soap_response,
    throttled_fault,
    wsdl_or_schema,
)
from onerecord.source.access import CallerContext
from onerecord.source.security import SourceCallerLimits
from onerecord.source.settings import SourceSettings
from onerecord.source.xca_async import AsyncAnswers, ReplyBacklog
from onerecord.source.xca_gateway import (
    ITI38_ACTION,
    ITI38_RESPONSE_ACTION,
    ITI39_ACTION,
    ITI39_RESPONSE_ACTION,
    Admit,
    RespondingGateway,
)
from onerecord.trust.caller_limits import PERMIT_STATE, CallerThrottled
from onerecord.xca.errors import XcaParseError
from onerecord.xca.mtom import mtom_response
from onerecord.xca.saml import XuaSettings
from onerecord.xca.saml import load_xua_settings as load_trusted_issuers
from onerecord.xca.soap import SoapEnvelope, render_envelope, render_fault

__all__ = ["WSDL_FILES", "load_xua_settings", "xca_router"]

log = structlog.get_logger("onerecord.source.xca")

WSDL_FILES = {
    "iti38": "XCA_RespondingGateway_Query.wsdl",
    "iti39": "XCA_RespondingGateway_Retrieve.wsdl",
}


def load_xua_settings(settings: SourceSettings) -> XuaSettings | None:
    """The trusted SAML issuers from configuration; a development certificate needs dev mode."""
    return load_trusted_issuers(
        settings.xca_issuers,
        settings.xca_audiences or (settings.token_audience,),
        dev_mode=settings.dev_mode,
    )


async def _envelope(request: Request, *, action: str) -> SoapEnvelope:
    """Read and check the request's envelope: SOAP 1.2, addressed to this operation."""
    envelope = await read_envelope(request)
    if envelope.action is not None and envelope.action != action:
        raise XcaParseError(f"this endpoint serves {action} only")
    return envelope


def _admit(request: Request) -> Admit:
    """Take the caller's permit into the request state; ReleaseCallerPermits gives it back."""
    limits: SourceCallerLimits = request.app.state.caller_limits

    def admit(caller: CallerContext) -> None:
        setattr(request.state, PERMIT_STATE, limits.admit(caller))

    return admit


def _backlog(exc: ReplyBacklog) -> Response:
    response = soap_response(render_fault(str(exc), code="Receiver"), status=503)
    response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


def _receiver_fault(request: Request, exc: Exception) -> Response:
    return receiver_fault(log, "xca.unexpected_error", request, exc)


def _gateway(request: Request) -> RespondingGateway:
    gateway: RespondingGateway = request.app.state.xca_gateway
    return gateway


def _async_answers(request: Request) -> AsyncAnswers:
    answers: AsyncAnswers = request.app.state.xca_async
    return answers


_ACCEPTED = 202  # an asynchronous request accepted; its answer goes to ReplyTo (xca_async)


def xca_router(settings: SourceSettings) -> APIRouter:
    """The routes of the responding gateway of one region."""
    router = APIRouter(prefix="/xca", include_in_schema=False)

    @router.post("/iti38")
    async def cross_gateway_query(request: Request) -> Response:
        try:
            envelope = await _envelope(request, action=ITI38_ACTION)
            correlation_id, admit = message_id_or_new(envelope), _admit(request)
            if envelope.asynchronous:
                await _async_answers(request).query(
                    _gateway(request), envelope, correlation_id=correlation_id, admit=admit
                )
                return Response(status_code=_ACCEPTED)
            answer = await _gateway(request).query(
                envelope, correlation_id=correlation_id, admit=admit
            )
        except XcaParseError as exc:
            return sender_fault(exc)
        except CallerThrottled as exc:
            return throttled_fault(exc)
        except ReplyBacklog as exc:
            return _backlog(exc)
        except Exception as exc:  # ours, not the caller's: a Receiver fault, logged
            return _receiver_fault(request, exc)
        body = render_envelope(answer, action=ITI38_RESPONSE_ACTION, relates_to=envelope.message_id)
        return soap_response(body, action=ITI38_RESPONSE_ACTION)

    @router.post("/iti39")
    async def cross_gateway_retrieve(request: Request) -> Response:
        try:
            envelope = await _envelope(request, action=ITI39_ACTION)
            correlation_id, admit = message_id_or_new(envelope), _admit(request)
            if envelope.asynchronous:
                await _async_answers(request).retrieve(
                    _gateway(request), envelope, correlation_id=correlation_id, admit=admit
                )
                return Response(status_code=_ACCEPTED)
            answer = await _gateway(request).retrieve(
                envelope, correlation_id=correlation_id, admit=admit
            )
        except XcaParseError as exc:
            return sender_fault(exc)
        except CallerThrottled as exc:
            return throttled_fault(exc)
        except ReplyBacklog as exc:
            return _backlog(exc)
        except Exception as exc:  # ours, not the caller's: a Receiver fault, logged
            return _receiver_fault(request, exc)
        soap = render_envelope(
            answer.body, action=ITI39_RESPONSE_ACTION, relates_to=envelope.message_id
        )
        content_type, stream = mtom_response(soap, answer.parts, action=ITI39_RESPONSE_ACTION)
        return StreamingResponse(stream, headers={"content-type": content_type})

    @router.get("/{name}")
    async def wsdl_or_schema_of_gateway(name: str, request: Request) -> Response:
        """`/xca/iti38?wsdl` (with this gateway's address) and the schemas it imports."""
        return wsdl_or_schema(
            name, request, wsdl_files=WSDL_FILES, base_url=settings.public_base_url
        )

    return router
