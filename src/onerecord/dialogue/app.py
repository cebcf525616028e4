"""The dialogue service's HTTP face: FHIR R4 over the trust path of the document source.

Every request carries a DPoP-bound access token from the trusted issuer (RFC 9449, RFC 9068):
a citizen at security level 4 for themselves or a person they represent, or a health worker
whose attestation names their HPR number and workplace (point of care). Routes are thin: parse
(`dialogue.fhir`), call one `DialogueService` method, render. Bad input answers 4xx with an
OperationOutcome before anything is written; the OpenAPI document is at /openapi.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

import httpx
import orjson
import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from onerecord import __version__
from onerecord.audit import SqlAuditSink, audit_event_entry
from onerecord.dialogue.contacts import ContactRegister, load_contacts
from onerecord.dialogue.database import make_engine, upgrade
from onerecord.dialogue.devclock import DevClock, parse_clock_offset
from onerecord.dialogue.errors import BadInput, DialogueError, TooLarge
from onerecord.dialogue.fhir import (
    absence_parameters,
    appointment_resource,
    bundle,
    check_id,
    communication_resource,
    encode_cursor,
    healthcare_services,
    medication_resource,
    operation_outcome,
    parse_absence,
    parse_appointment,
    parse_body,
    parse_communication,
    parse_confirm_bookings,
    parse_handling,
    parse_idempotency_key,
    parse_inbox_query,
    parse_information,
    parse_move,
    parse_orgnr,
    parse_patient,
    parse_renewal,
    parse_series,
    parse_service_switch,
    parse_slot,
    parse_slot_service,
    schedule_resource,
    slot_resource,
    task_resource,
    unit_resource,
)
from onerecord.dialogue.kith import MAX_MESSAGE_BYTES, Party
from onerecord.dialogue.kith_edge import apply_answer, outbox
from onerecord.dialogue.notify import MailSettings, NotificationSender
from onerecord.dialogue.service import INBOX_MAX_PAGE, Caller, DialogueService, Idempotency
from onerecord.dialogue.settings import DialogueSettings
from onerecord.dialogue.store import SqlDialogueStore
from onerecord.trust.access_token import AuthSettings, Citizen, authenticate_request
from onerecord.trust.errors import TrustError
from onerecord.trust.keys import KeyProvider, RemoteJwks
from onerecord.trust.replay import MemoryReplayCache, ReplayCache

__all__ = ["app_from_environment", "create_app"]

log = structlog.get_logger("onerecord.dialogue")
FHIR_JSON = "application/fhir+json"


def _json(body: Mapping[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=FHIR_JSON)


def _outcome(
    status: int, code: str, text: str, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(operation_outcome(status, code, text)),
        status_code=status,
        media_type=FHIR_JSON,
        headers=dict(headers or {}),
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _correlation_id(request: Request) -> str:
    value = request.headers.get("x-correlation-id", "")
    return value[:64] if value and value.isprintable() else uuid.uuid4().hex


def _service(request: Request) -> DialogueService:
    service: DialogueService = request.app.state.service
    return service


async def _caller(request: Request) -> Caller:
    authenticate: Callable[[Request], Awaitable[Caller]] = request.app.state.authenticate
    return await authenticate(request)


ServiceDep = Annotated[DialogueService, Depends(_service)]
CallerDep = Annotated[Caller, Depends(_caller)]


def _authenticator(
    settings: DialogueSettings, keys: KeyProvider, replay: ReplayCache
) -> Callable[[Request], Awaitable[Caller]]:
    assert settings.issuer is not None
    auth = AuthSettings(
        issuer=settings.issuer, audience=settings.audience, skew=settings.clock_skew
    )

    async def authenticate(request: Request) -> Caller:
        principal = await authenticate_request(
            authorization_header=request.headers.get("authorization"),
            dpop_header=request.headers.get("dpop"),
            method=request.method,
            url=f"{settings.public_base_url}{request.url.path}",
            keys=keys,
            replay=replay,
            settings=auth,
        )
        correlation = _correlation_id(request)
        jti = principal.claims.jti
        if isinstance(principal, Citizen):
            return Caller(correlation, jti, citizen=principal.context())
        return Caller(correlation, jti, staff=principal.context())

    return authenticate


async def _raw_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise TooLarge(f"the body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _body(request: Request, resource_type: str) -> Mapping[str, Any]:
    return (await _body_once(request, resource_type))[0]


async def _body_once(
    request: Request, resource_type: str
) -> tuple[Mapping[str, Any], Idempotency | None]:
    """The body, and the `Idempotency-Key` with the body's digest when the client sent one."""
    key = parse_idempotency_key(request.headers.get("idempotency-key"))
    raw = await _raw_body(request, request.app.state.max_body_bytes)
    body = parse_body(raw, resource_type)
    given = Idempotency(key, hashlib.sha256(raw).hexdigest()) if key is not None else None
    return body, given


def _query(request: Request, *allowed: str) -> dict[str, str]:
    """The search parameters, each at most once; unknown ones are refused (FHIR strict)."""
    out: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name not in allowed:
            raise BadInput(f"unknown search parameter {name!r}")
        if name in out:
            raise BadInput(f"search parameter {name!r} is given twice")
        out[name] = value
    return out


def _who(params: Mapping[str, str]) -> tuple[str | None, str | None]:
    patient = parse_patient(params["patient"]) if "patient" in params else None
    office = parse_orgnr(params["organization"]) if "organization" in params else None
    if patient is None and office is None:
        raise BadInput("give patient or organization")
    return patient, office


def _searchset(request: Request, resources: Sequence[Mapping[str, Any]]) -> Response:
    base: str = request.app.state.fhir_base
    return _json(bundle(resources, base))


def app_from_environment() -> FastAPI:
    """Build the app from ONERECORD_DIALOGUE_* variables (the uvicorn factory)."""
    from onerecord.logs import configure_logging

    configure_logging(os.environ.get("ONERECORD_LOG_LEVEL", "info"), service="dialogue")
    return create_app(DialogueSettings())


def create_app(
    settings: DialogueSettings,
    *,
    keys: KeyProvider | None = None,
    replay: ReplayCache | None = None,
    clock: Callable[[], datetime] | None = None,
    contacts: ContactRegister | None = None,
) -> FastAPI:
    """Build the ASGI app of the dialogue service.

    `keys` and `replay` replace the remote JWKS and the in-memory replay cache, `clock` the
    service's wall clock (tests move it across an absence; tokens keep the real time),
    `contacts` the contact register (default: the extract in `settings.contacts_file`).
    """
    dev_clock = DevClock(clock or _now) if settings.dev_clock else None
    service_clock: Callable[[], datetime] = dev_clock or clock or _now

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.db_url, schema=settings.db_schema)
        await upgrade(engine)
        http = httpx.AsyncClient()
        sink = SqlAuditSink(engine, settings.source_id)
        assert settings.jwks_url is not None
        app.state.authenticate = _authenticator(
            settings, keys or RemoteJwks(settings.jwks_url, http), replay or MemoryReplayCache()
        )
        app.state.store = SqlDialogueStore(engine)
        app.state.sink = sink
        app.state.service = DialogueService(
            app.state.store,
            sink,
            settings.source_id,
            clock=service_clock,
            audit_records=sink.records,
            key_retention=timedelta(seconds=settings.idempotency_retention_s),
        )
        sender = _sender(settings, app.state.store, contacts, service_clock)
        worker = None
        if sender is not None:
            app.state.service.queued = sender.wake
            worker = asyncio.create_task(sender.run(), name="dialogue-notices")
        app.state.sender = sender
        purger = asyncio.create_task(
            _purge_keys(app.state.service, settings.idempotency_purge_s), name="dialogue-keys"
        )
        log.info("dialogue.started", notices=sender is not None)
        try:
            yield
        finally:
            for task in (worker, purger):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await sink.close()
            await app.state.store.close()
            await http.aclose()
            await engine.dispose()

    app = FastAPI(
        title="onerecord dialogue service (GP office)",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.max_body_bytes = settings.max_body_bytes
    app.state.fhir_base = f"{settings.public_base_url}/fhir"

    @app.middleware("http")
    async def server_timing(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """How long the service worked on the request (`Server-Timing`, bench/dialogue.py)."""
        started = time.perf_counter()
        response = await call_next(request)
        elapsed_ms = (time.perf_counter() - started) * 1000
        response.headers["server-timing"] = f"dialogue;dur={elapsed_ms:.1f}"
        return response

    @app.exception_handler(DialogueError)
    async def _dialogue_error(_request: Request, exc: DialogueError) -> Response:
        return _outcome(exc.status, exc.code, exc.message)

    @app.exception_handler(TrustError)
    async def _trust_error(_request: Request, exc: TrustError) -> Response:
        status = exc.status if exc.status in (400, 401, 403) else 401
        code = {401: "login", 403: "forbidden"}.get(status, "invalid")
        challenge = {"WWW-Authenticate": exc.www_authenticate()} if status != 400 else {}
        return _outcome(status, code, exc.description, challenge)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        code = "not-found" if exc.status_code == 404 else "not-supported"
        return _outcome(exc.status_code, code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, _exc: RequestValidationError) -> Response:
        return _outcome(400, "invalid", "the request does not have the expected shape")

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> Response:
        log.error("dialogue.unexpected", error=type(exc).__name__)
        return _outcome(500, "exception", "internal error")

    # -- KITH messages for clinical systems (docs/dialogue.md) ----------------------------

    network = Party(settings.kith_name, settings.kith_orgnr, settings.kith_her_id)

    @app.get("/kith/outbox", summary="The office's pending requests as KITH MsgHead messages")
    async def kith_outbox(request: Request, svc: ServiceDep, caller: CallerDep) -> Response:
        params = _query(request, "organization")
        if "organization" not in params:
            raise BadInput("give organization")
        body = await outbox(
            svc, caller, office=parse_orgnr(params["organization"]), network=network
        )
        return Response(body, media_type="application/xml")

    @app.post("/kith/inbox", summary="An answer in MsgHead + Dialogmelding, applied")
    async def kith_inbox(request: Request, svc: ServiceDep, caller: CallerDep) -> Response:
        limit = min(request.app.state.max_body_bytes, MAX_MESSAGE_BYTES)
        data = await _raw_body(request, limit)
        done = await apply_answer(svc, caller, data, network=network)
        return Response(
            orjson.dumps({"applied": done.topic.value, "id": done.target, "result": done.result}),
            media_type="application/json",
        )

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        return Response(b"ok", media_type="text/plain")

    @app.get("/fhir/metadata", summary="CapabilityStatement")
    async def metadata() -> Response:
        kinds = [
            "Communication",
            "Task",
            "MedicationRequest",
            "Slot",
            "Appointment",
            "HealthcareService",
            "AuditEvent",
            "Schedule",
            "Organization",
        ]
        return _json(
            {
                "resourceType": "CapabilityStatement",
                "status": "active",
                "kind": "instance",
                "fhirVersion": "4.0.1",
                "format": ["application/fhir+json"],
                "rest": [{"mode": "server", "resource": [{"type": k} for k in kinds]}],
            }
        )

    # -- the office ---------------------------------------------------------------------

    @app.get("/fhir/HealthcareService", summary="The GP office's services and their state now")
    async def healthcare_service(request: Request, svc: ServiceDep, caller: CallerDep) -> Response:
        patient, office = _who(_query(request, "patient", "organization"))
        if patient is not None:
            view = await svc.office_for(caller, patient=patient)
        else:
            assert office is not None
            view = await svc.office_view(caller, office=office)
        return _searchset(request, healthcare_services(view))

    @app.post("/fhir/Organization/{orgnr}/$set-service", summary="Switch a service on or off")
    async def set_service(
        orgnr: str, request: Request, svc: ServiceDep, caller: CallerDep
    ) -> Response:
        office = parse_orgnr(orgnr)
        service, active = parse_service_switch(await _body(request, "Parameters"))
        await svc.set_service(caller, office=office, service=service, active=active)
        return _searchset(
            request, healthcare_services(await svc.office_view(caller, office=office))
        )

    @app.post(
        "/fhir/Organization/{orgnr}/$set-confirm-bookings",
        summary="Whether the office confirms each booking",
    )
    async def set_confirm_bookings(
        orgnr: str, request: Request, svc: ServiceDep, caller: CallerDep
    ) -> Response:
        office = parse_orgnr(orgnr)
        active = parse_confirm_bookings(await _body(request, "Parameters"))
        await svc.set_confirm_bookings(caller, office=office, active=active)
        return _json(
            {
                "resourceType": "Parameters",
                "parameter": [{"name": "active", "valueBoolean": active}],
            }
        )

    @app.post("/fhir/Organization/{orgnr}/$set-information", summary="Set the office's message")
    async def set_information(
        orgnr: str, request: Request, svc: ServiceDep, caller: CallerDep
    ) -> Response:
        office = parse_orgnr(orgnr)
        text = parse_information(await _body(request, "Parameters"))
        await svc.set_information(caller, office=office, text=text)
        return _searchset(
            request, healthcare_services(await svc.office_view(caller, office=office))
        )

    @app.post("/fhir/Organization/{orgnr}/$register-absence", summary="Register the GP's absence")
    async def register_absence(
        orgnr: str, request: Request, svc: ServiceDep, caller: CallerDep
    ) -> Response:
        from onerecord.dialogue.absence import closed_sentence

        office = parse_orgnr(orgnr)
        given = parse_absence(await _body(request, "Parameters"))
        absence = await svc.register_absence(
            caller,
            office=office,
            start=given.start,
            end=given.end,
            services=given.services,
            substitute=given.substitute,
        )
        preview = {s: closed_sentence(absence, s) for s in absence.services}
        return _json(absence_parameters(absence, preview), 201)

    # -- threads ------------------------------------------------------------------------

    @app.get("/fhir/Communication", summary="Threads of a patient, or the office's inbox")
    async def search_communication(
        request: Request, svc: ServiceDep, caller: CallerDep
    ) -> Response:
        params = _query(request, "patient", "organization", "thread")
        patient, office = _who(params)
        thread = check_id(params["thread"], "thread") if "thread" in params else None
        found = await svc.messages(caller, patient=patient, office=office, thread=thread)
        return _searchset(request, [communication_resource(m) for m in found])

    @app.get("/fhir/Communication/{message_id}", summary="One message")
    async def read_communication(message_id: str, svc: ServiceDep, caller: CallerDep) -> Response:
        found = await svc.message(caller, message_id=check_id(message_id))
        return _json(communication_resource(found))

    @app.get("/fhir/Binary/{attachment_id}", summary="A photo sent with a message")
    async def read_binary(attachment_id: str, svc: ServiceDep, caller: CallerDep) -> Response:
        found = await svc.attachment(caller, attachment_id=check_id(attachment_id))
        return Response(
            found.data,
            media_type=found.content_type,
            headers={"content-disposition": "inline", "x-content-type-options": "nosniff"},
        )

    @app.post("/fhir/Communication", summary="Start a thread (e-consultation, contact) or reply")
    async def create_communication(
        request: Request, svc: ServiceDep, caller: CallerDep
    ) -> Response:
        from onerecord.dialogue.images import clean_photo

        body, once = await _body_once(request, "Communication")
        given = parse_communication(body)
        # Decoded and encoded anew off the event loop: checked, upright, without metadata.
        photos = [await asyncio.to_thread(clean_photo, data, kind) for kind, data in given.photos]
        message, _request = await svc.send(
            caller,
            patient=given.patient,
            text=given.text,
            category=given.category,
            in_response_to=given.in_response_to,
            fee_acknowledged=given.fee_acknowledged,
            urgent=given.urgent,
            photos=photos,
            unit=given.unit,
            idempotency=once,
        )
        response = _json(communication_resource(message), 201)
        response.headers["Location"] = f"{request.app.state.fhir_base}/Communication/{message.id}"
        return response

    @app.get("/fhir/AuditEvent", summary="Who at the clinic read the person's messages")
    async def search_audit(request: Request, svc: ServiceDep, caller: CallerDep) -> Response:
        params = _query(request, "patient")
        if "patient" not in params:
            raise BadInput("give patient")
        found = await svc.access_log(caller, patient=parse_patient(params["patient"]))
        events = [
            audit_event_entry(entry, titles, observer="onerecord dialogue service")
            for entry, titles in found
        ]
        return _json(
            {
                "resourceType": "Bundle",
                "type": "searchset",
                "total": len(events),
                "entry": [{"resource": e, "search": {"mode": "match"}} for e in events],
            }
        )

    # -- requests -----------------------------------------------------------------------

    @app.get("/fhir/Task", summary="Requests of a patient, or the office's work list (paged)")
    async def search_task(request: Request, svc: ServiceDep, caller: CallerDep) -> Response:
        params = _query(request, "patient", "organization", "code", "status", "_count", "_cursor")
        patient, office = _who(params)
        if patient is not None or office is None:
            if set(params) - {"patient", "organization"}:
                raise BadInput("code, status, _count and _cursor search the office's work list")
            found = await svc.requests(caller, patient=patient, office=office)
            return _searchset(request, [task_resource(r) for r in found])
        query = parse_inbox_query(params, max_count=INBOX_MAX_PAGE)
        page = await svc.inbox(
            caller,
            office=office,
            kinds=query.kinds,
            statuses=query.statuses,
            after=query.after,
            count=query.count,
        )
        base: str = request.app.state.fhir_base
        next_url = None
        if page.next_after is not None:
            keep = {k: v for k, v in params.items() if k != "_cursor"}
            keep["_cursor"] = encode_cursor(page.next_after)
            next_url = f"{base}/Task?{urlencode(keep)}"
        resources = [task_resource(r, now=page.now) for r in page.items]
        return _json(bundle(resources, base, total=page.total, next_url=next_url))

    @app.get("/fhir/Task/{task_id}", summary="One request")
    async def read_task(task_id: str, svc: ServiceDep, caller: CallerDep) -> Response:
        found = await svc.request(caller, request_id=check_id(task_id))
        return _json(task_resource(found, now=svc.clock()))

    @app.get(
        "/fhir/Organization/{orgnr}/$failed-notices",
        summary="The office's threads and requests whose notice to the patient failed",
    )
    async def failed_notices(
        orgnr: str, request: Request, svc: ServiceDep, caller: CallerDep
    ) -> Response:
        found = await svc.failed_notice_requests(caller, office=parse_orgnr(orgnr))
        return _searchset(request, [task_resource(r, now=svc.clock()) for r in found])

    @app.post("/fhir/Task/{task_id}/$close", summary="Close a thread without another answer")
    async def close_task(task_id: str, svc: ServiceDep, caller: CallerDep) -> Response:
        done = await svc.close_request(caller, request_id=check_id(task_id))
        return _json(task_resource(done))

    @app.post("/fhir/Task", summary="Ask for a prescription renewal")
    async def create_task(request: Request, svc: ServiceDep, caller: CallerDep) -> Response:
        body, once = await _body_once(request, "Task")
        given = parse_renewal(body)
        made = await svc.request_renewal(
            caller,
            patient=given.patient,
            medication_id=given.medication_id,
            note=given.note,
            idempotency=once,
        )
        return _json(task_resource(made), 201)

    @app.post("/fhir/Task/{task_id}/$handle", summary="Renew or refuse (with a reason)")
    async def handle_task(
        task_id: str, request: Request, svc: ServiceDep, caller: CallerDep
    ) -> Response:
        ident = check_id(task_id)
        renewed, reason = parse_handling(await _body(request, "Parameters"))
        done = await svc.handle_renewal(caller, request_id=ident, renewed=renewed, reason=reason)
        return _json(task_resource(done))

    @app.get("/fhir/MedicationRequest", summary="The person's current medications")
    async def search_medication(request: Request, svc: ServiceDep, caller: CallerDep) -> Response:
        params = _query(request, "patient")
        if "patient" not in params:
            raise BadInput("give patient")
        found = await svc.medications(caller, patient=parse_patient(params["patient"]))
        return _searchset(request, [medication_resource(m) for m in found])

    # -- appointments -------------------------------------------------------------------

    @app.get("/fhir/Slot", summary="Free slots from now")
    async def search_slot(request: Request, svc: ServiceDep, caller: CallerDep) -> Response:
        params = _query(request, "patient", "organization", "service-type")
        patient, office = _who(params)
        wanted = params.get("service-type")
        service = parse_slot_service(wanted) if wanted is not None else None
        found = await svc.free_slots(caller, patient=patient, office=office, service=service)
        return _searchset(request, [slot_resource(s) for s in found])

    @app.get(
        "/fhir/Schedule", summary="The office's calendar (the patient's GP, or the staff's office)"
    )
    async def search_schedule(request: Request, svc: ServiceDep, caller: CallerDep) -> Response:
        patient, office = _who(_query(request, "patient", "organization"))
        if patient is not None:
            view = await svc.office_for(caller, patient=patient)
        else:
            assert office is not None
            view = await svc.office_view(caller, office=office)
        return _searchset(request, [schedule_resource(view)])

    @app.get("/fhir/Schedule/{orgnr}", summary="The office's calendar (its staff)")
    async def read_schedule(orgnr: str, svc: ServiceDep, caller: CallerDep) -> Response:
        return _json(schedule_resource(await svc.office_view(caller, office=parse_orgnr(orgnr))))

    @app.post("/fhir/Slot", summary="Publish a free slot")
    async def create_slot(request: Request, svc: ServiceDep, caller: CallerDep) -> Response:
        given = parse_slot(await _body(request, "Slot"))
        made = await svc.publish_slot(
            caller,
            office=given.office,
            start=given.start,
            end=given.end,
            mode=given.mode,
            service=given.service,
        )
        return _json(slot_resource(made), 201)

    @app.post(
        "/fhir/Slot/$publish-series",
        summary="Publish back-to-back slots (a vaccination day)",
    )
    async def publish_series(request: Request, svc: ServiceDep, caller: CallerDep) -> Response:
        given = parse_series(await _body(request, "Parameters"))
        made = await svc.publish_series(
            caller,
            office=given.office,
            start=given.start,
            end=given.end,
            minutes=given.minutes,
            service=given.service,
        )
        return _json(bundle([slot_resource(s) for s in made], request.app.state.fhir_base), 201)

    @app.get("/fhir/Organization", summary="The person's treating units at hospitals")
    async def search_organization(request: Request, svc: ServiceDep, caller: CallerDep) -> Response:
        patient = _query(request, "patient").get("patient")
        if patient is None:
            raise BadInput("give the patient")
        units = await svc.treating_units(caller, patient=parse_patient(patient))
        return _searchset(request, [unit_resource(u) for u in units])

    @app.get("/fhir/Appointment", summary="The person's appointments, or the office's upcoming")
    async def search_appointment(request: Request, svc: ServiceDep, caller: CallerDep) -> Response:
        patient, office = _who(_query(request, "patient", "organization"))
        if patient is None:
            assert office is not None
            upcoming = await svc.office_appointments(caller, office=office)
            return _searchset(request, [appointment_resource(a) for a in upcoming])
        found = await svc.appointments(caller, patient=patient)
        return _searchset(request, [appointment_resource(a) for a in found])

    @app.post("/fhir/Appointment", summary="Book a free slot (the patient's side, or the office)")
    async def create_appointment(request: Request, svc: ServiceDep, caller: CallerDep) -> Response:
        body, once = await _body_once(request, "Appointment")
        given = parse_appointment(body)
        book = svc.book if caller.staff is None else svc.book_for_patient
        made = await book(
            caller,
            patient=given.patient,
            slot_id=given.slot_id,
            note=given.note,
            idempotency=once,
        )
        return _json(appointment_resource(made), 201)

    @app.post("/fhir/Appointment/{appointment_id}/$move", summary="Move to another free slot")
    async def move_appointment(
        appointment_id: str, request: Request, svc: ServiceDep, caller: CallerDep
    ) -> Response:
        ident = check_id(appointment_id)
        slot_id = parse_move(await _body(request, "Parameters"))
        done = await svc.move(caller, appointment_id=ident, slot_id=slot_id)
        return _json(appointment_resource(done))

    @app.post("/fhir/Appointment/{appointment_id}/$confirm", summary="Confirm a proposed booking")
    async def confirm_appointment(
        appointment_id: str, svc: ServiceDep, caller: CallerDep
    ) -> Response:
        done = await svc.confirm(caller, appointment_id=check_id(appointment_id))
        return _json(appointment_resource(done))

    @app.post("/fhir/Appointment/{appointment_id}/$cancel", summary="Cancel an appointment")
    async def cancel_appointment(
        appointment_id: str, svc: ServiceDep, caller: CallerDep
    ) -> Response:
        done = await svc.cancel(caller, appointment_id=check_id(appointment_id))
        return _json(appointment_resource(done))

    if dev_clock is not None:

        @app.get("/dev/clock", summary="The service's clock (development only)")
        async def read_clock() -> Response:
            return _json(dev_clock.state())

        @app.post("/dev/clock", summary="Move the service's clock (development only)")
        async def move_clock(request: Request) -> Response:
            dev_clock.offset = parse_clock_offset(await _raw_body(request, 1024))
            log.warning("dialogue.dev_clock", offset_s=dev_clock.offset.total_seconds())
            return _json(dev_clock.state())

    return app


async def _purge_keys(service: DialogueService, every_s: float) -> None:
    """Delete the expired idempotency keys at start and then every `every_s`; until cancelled.

    A key past its retention already counts as none when it is used again (the service checks
    its age); the purge keeps the table to the keys of the last retention period.
    """
    while True:
        try:
            purged = await service.purge_expired_keys()
            if purged:
                log.info("dialogue.keys_purged", count=purged)
        except Exception as exc:  # the database away: try again at the next round
            log.warning("dialogue.keys_purge_error", error=type(exc).__name__)
        await asyncio.sleep(every_s)


def _sender(
    settings: DialogueSettings,
    store: SqlDialogueStore,
    contacts: ContactRegister | None,
    clock: Callable[[], datetime],
) -> NotificationSender | None:
    """The e-mail sender (dialogue.notify), or None while no SMTP server is configured."""
    if settings.smtp_host is None:
        return None
    if contacts is None:
        if settings.contacts_file is None:
            raise ValueError("e-mail notices need the contact register (contacts_file)")
        contacts = load_contacts(settings.contacts_file)
    mail = MailSettings(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_from,
        portal_url=settings.portal_url,
        timeout_s=settings.smtp_timeout_s,
        starttls=settings.smtp_starttls,
        attempts=settings.notify_attempts,
        backoff_s=settings.notify_backoff_s,
        poll_s=settings.notify_poll_s,
    )
    return NotificationSender(store, contacts, mail, clock=clock)
