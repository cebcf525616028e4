"""The hub's XDS.b face: SOAP 1.2 at /xca/iti18 and /xca/iti43, and their WSDLs.

Thin routes, as the region's responding gateway (`source/xca_app.py`): read the SOAP part
(plain or MTOM), check the envelope (SOAP 1.2, WS-Addressing Action of this operation, sync),
call one `XdsRegistry` method, write the answer (ITI-43 always as MTOM/XOP, the documents
streamed from their regions). An unusable message is a SOAP Fault env:Sender with HTTP 400;
refusals are RegistryErrors inside a 200 answer; only an error of ours is env:Receiver, 500.

References: IHE ITI TF-2 V.3.2 (SOAP 1.2, WS-Addressing), V.3.6 (MTOM); SOAP 1.2 Part 2 §7.5.
"""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from onerecord.hub.fanout import RequestBudget
from onerecord.hub.settings import HubSettings
from onerecord.hub.xds_registry import (
    ITI18_ACTION,
    ITI18_RESPONSE_ACTION,
    ITI43_ACTION,
    ITI43_RESPONSE_ACTION,
    Admit,
    XdsRegistry,
)
from onerecord.soap_http import (
    message_id_or_new,
    read_envelope,
    receiver_fault,
    sender_fault,
    soap_response,
    throttled_fault,
    wsdl_or_schema,
)
from onerecord.trust.access_token import Principal
from onerecord.trust.caller_limits import (
    PERMIT_STATE,
    CallerLimiter,
    CallerThrottled,
    caller_key,
)
from onerecord.xca.errors import XcaParseError
from onerecord.xca.mtom import mtom_response
from onerecord.xca.saml import XuaSettings, load_xua_settings
from onerecord.xca.soap import SoapEnvelope, render_envelope
from onerecord.xca.xml import XDSB, qname

__all__ = ["WSDL_FILES", "load_xds_xua", "xds_router"]

log = structlog.get_logger("onerecord.hub.xds")

WSDL_FILES = {"iti18": "XDS_Registry_Query.wsdl", "iti43": "XDS_Repository_Retrieve.wsdl"}


def load_xds_xua(settings: HubSettings) -> XuaSettings | None:
    """The SAML issuers the hub trusts for ITI-18/43; a development certificate needs dev mode."""
    return load_xua_settings(
        settings.xds_issuers, settings.xds_audiences, dev_mode=settings.dev_mode
    )


_RETRIEVE_REQUEST = qname(XDSB, "RetrieveDocumentSetRequest")


def _action_fits(envelope: SoapEnvelope, action: str) -> bool:
    """The Action names this operation; or, at ITI-43, the network's own ITI-43 sample's
    RegistryStoredQuery over a RetrieveDocumentSetRequest body (the body decides)."""
    if envelope.action is None or envelope.action == action:
        return True
    tolerated = action == ITI43_ACTION and envelope.action == ITI18_ACTION
    if tolerated and envelope.body.tag == _RETRIEVE_REQUEST:
        log.info("hub.xds.action_tolerated", action=envelope.action)
        return True
    return False


async def _envelope(request: Request, *, action: str) -> SoapEnvelope:
    """Read and check the request's envelope: SOAP 1.2, sync, addressed to this operation."""
    envelope = await read_envelope(request)
    if not _action_fits(envelope, action):
        raise XcaParseError(f"this endpoint serves {action} only")
    if envelope.asynchronous:
        raise XcaParseError("asynchronous ReplyTo is not supported by the hub; use sync")
    return envelope


def _correlation_id(request: Request, envelope: SoapEnvelope) -> str:
    """The hub's request id (the middleware's), else the message's id, else a new one."""
    cid = request.scope.get("state", {}).get("correlation_id")
    if isinstance(cid, str) and cid:
        return cid
    return message_id_or_new(envelope)


def _admit(request: Request) -> Admit:
    """Take the caller's permit into the request state; ReleaseCallerPermits gives it back."""
    limiter: CallerLimiter = request.app.state.caller_limiter

    def admit(principal: Principal) -> None:
        setattr(request.state, PERMIT_STATE, limiter.acquire(caller_key(principal.claims)))

    return admit


def _registry(request: Request) -> XdsRegistry:
    registry: XdsRegistry = request.app.state.xds
    return registry


def xds_router(settings: HubSettings) -> APIRouter:
    """The hub's ITI-18 and ITI-43 routes."""
    router = APIRouter(prefix="/xca", include_in_schema=False)

    @router.post("/iti18")
    async def registry_stored_query(request: Request) -> Response:
        received = request.scope.get("state", {}).get("received_at")
        try:
            envelope = await _envelope(request, action=ITI18_ACTION)
            answer = await _registry(request).query(
                envelope,
                correlation_id=_correlation_id(request, envelope),
                budget=RequestBudget.starting(settings.deadlines, at=received),
                admit=_admit(request),
            )
        except XcaParseError as exc:
            return sender_fault(exc)
        except CallerThrottled as exc:
            return throttled_fault(exc)
        except Exception as exc:  # ours, not the caller's: a Receiver fault, logged
            return receiver_fault(log, "hub.xds.unexpected_error", request, exc)
        body = render_envelope(answer, action=ITI18_RESPONSE_ACTION, relates_to=envelope.message_id)
        return soap_response(body, action=ITI18_RESPONSE_ACTION)

    @router.post("/iti43")
    async def retrieve_document_set(request: Request) -> Response:
        try:
            envelope = await _envelope(request, action=ITI43_ACTION)
            answer = await _registry(request).retrieve(
                envelope, correlation_id=_correlation_id(request, envelope), admit=_admit(request)
            )
        except XcaParseError as exc:
            return sender_fault(exc)
        except CallerThrottled as exc:
            return throttled_fault(exc)
        except Exception as exc:  # ours, not the caller's: a Receiver fault, logged
            return receiver_fault(log, "hub.xds.unexpected_error", request, exc)
        soap = render_envelope(
            answer.body, action=ITI43_RESPONSE_ACTION, relates_to=envelope.message_id
        )
        content_type, stream = mtom_response(soap, answer.parts, action=ITI43_RESPONSE_ACTION)
        return StreamingResponse(stream, headers={"content-type": content_type})

    @router.get("/{name}")
    async def wsdl_or_schema_of_registry(name: str, request: Request) -> Response:
        """`/xca/iti18?wsdl` (with the hub's address) and the schemas it imports."""
        return wsdl_or_schema(
            name, request, wsdl_files=WSDL_FILES, base_url=settings.public_base_url
        )

    return router
