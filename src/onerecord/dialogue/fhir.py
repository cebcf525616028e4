"""The dialogue service's FHIR R4 wire: one parser per request body, and the renderers.

Every parser takes the decoded JSON and returns a typed command or raises `BadInput` (400);
nothing else escapes them, whatever the input (hypothesis property tests in
tests/dialogue/test_fhir_parsers.py). Shapes used:

    Communication  a message; `inResponseTo` the message it answers, `partOf`-free threads are
                   named by the first message's id (extension thread); category e-consultation
                   or contact-office; the fee acknowledgement as an extension (boolean in, the
                   stored time out); `priority` urgent/asap/stat is refused for e-consultations
    Task           a request (e-consultation, prescription renewal): status requested /
                   completed / rejected with statusReason; `restriction.period.end` the answer
                   limit; `focus` the MedicationRequest to renew
    MedicationRequest  a current medication (status active, intent order)
    Schedule/Slot/Appointment  the office's calendar, its slots (serviceType in-person / video,
                   and what the slot is for: a consultation, or a flu vaccine coded in SNOMED CT)
                   and bookings (status booked / cancelled)
    HealthcareService  one per office service: `active` (switched on), `notAvailable` with the
                   closed sentence while an absence closes it, `comment` the information message
    Parameters     the office's operations ($set-service, $set-information, $register-absence)
                   and the answer to a renewal ($handle)

References: HL7 FHIR R4 (4.0.1) Communication, Task, MedicationRequest, Schedule, Slot,
Appointment, HealthcareService, Parameters, OperationOutcome, Bundle (searchset); Slot and
Appointment `serviceType` (example binding: any code system may be used); SNOMED CT
International, concept 86198006 |Influenza vaccination| (the national terminology of Norway,
Helsedirektoratet's SNOMED CT release).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from onerecord.dialogue.absence import Absence
from onerecord.dialogue.errors import BadInput
from onerecord.dialogue.images import MAX_PHOTO_BYTES, MAX_PHOTOS, PHOTO_TYPES
from onerecord.dialogue.model import (
    Appointment,
    Medication,
    Message,
    Office,
    Request,
    RequestKind,
    RequestStatus,
    Service,
    Slot,
    ThreadCategory,
    VisitMode,
)
from onerecord.dialogue.rules import URGENT_HELP_NB
from onerecord.dialogue.service import OfficeView
from onerecord.domain import InvalidIdentifier, NationalIdentityNumber

__all__ = [
    "CATEGORY_SYSTEM",
    "FEE_EXTENSION",
    "FNR_SYSTEM",
    "NOTICE_FAILED_EXTENSION",
    "ORGNR_SYSTEM",
    "OVERDUE_EXTENSION",
    "SERVICE_SYSTEM",
    "SNOMED_FLU_VACCINATION",
    "SNOMED_SYSTEM",
    "VISIT_SYSTEM",
    "AbsenceInput",
    "AppointmentInput",
    "InboxQuery",
    "MessageInput",
    "RenewalInput",
    "SeriesInput",
    "SlotInput",
    "absence_parameters",
    "appointment_resource",
    "bundle",
    "check_id",
    "communication_resource",
    "encode_cursor",
    "healthcare_services",
    "medication_resource",
    "operation_outcome",
    "parse_absence",
    "parse_appointment",
    "parse_body",
    "parse_communication",
    "parse_confirm_bookings",
    "parse_handling",
    "parse_idempotency_key",
    "parse_inbox_query",
    "parse_information",
    "parse_move",
    "parse_orgnr",
    "parse_patient",
    "parse_renewal",
    "parse_series",
    "parse_service_switch",
    "parse_slot",
    "parse_slot_service",
    "schedule_resource",
    "service_types",
    "slot_resource",
    "task_resource",
    "unit_resource",
]

FNR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.1"
ORGNR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.101"
CATEGORY_SYSTEM = "urn:onerecord:dialogue:category"
SERVICE_SYSTEM = "urn:onerecord:dialogue:service"
REQUEST_SYSTEM = "urn:onerecord:dialogue:request"
VISIT_SYSTEM = "urn:onerecord:dialogue:visit-mode"
SNOMED_SYSTEM = "http://snomed.info/sct"
SNOMED_FLU_VACCINATION = "86198006"
"""SNOMED CT |Influenza vaccination| (procedure): the serviceType of a flu-vaccine slot."""
FEE_EXTENSION = "urn:onerecord:dialogue:fee-acknowledged"
THREAD_EXTENSION = "urn:onerecord:dialogue:thread"
OVERDUE_EXTENSION = "urn:onerecord:dialogue:overdue"
NOTICE_FAILED_EXTENSION = "urn:onerecord:dialogue:notice-failed"
_CURSOR = re.compile(r"([0-9]{1,19})_([A-Za-z0-9\-.]{1,64})")

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9\-._:]{8,64}")
_ORGNR = re.compile(r"[0-9]{9}")
_LOCAL_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:00)?")
_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})")
_URGENT = frozenset({"urgent", "asap", "stat"})


# --- parsing ---------------------------------------------------------------------------------


def parse_body(raw: bytes, resource_type: str) -> Mapping[str, Any]:
    """Decode a JSON body and check its resourceType."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadInput("the body is not JSON") from None
    if not isinstance(value, dict):
        raise BadInput("the body is not a JSON object")
    if value.get("resourceType") != resource_type:
        raise BadInput(f"expected a {resource_type}")
    return value


def parse_idempotency_key(value: str | None) -> str | None:
    """Return the `Idempotency-Key` header's key (8–64 of [A-Za-z0-9-._:], bare or as a
    quoted sf-string), None when the header is absent, or raise BadInput.

    References: IETF draft-ietf-httpapi-idempotency-key-header §2 (an sf-string; we also take
    the bare token browsers' fetch and curl users tend to send).
    """
    if value is None:
        return None
    key = value.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        raise BadInput("Idempotency-Key must be 8–64 of A-Z a-z 0-9 - . _ :")
    return key


def check_id(value: str, what: str = "id") -> str:
    """Return a logical id (FHIR id: 1–64 of [A-Za-z0-9-.]) or raise BadInput."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise BadInput(f"{what} is not a valid id")
    return value


def parse_orgnr(value: Any) -> str:
    """Return a 9-digit organisation number, given bare or as system|value."""
    if not isinstance(value, str):
        raise BadInput("organization must be an organisation number")
    _, _, number = value.rpartition("|")
    if not _ORGNR.fullmatch(number):
        raise BadInput("organization must be a 9-digit organisation number")
    return number


def parse_patient(value: Any) -> str:
    """Return a national identity number, given bare or as system|value (fødselsnummer)."""
    if not isinstance(value, str):
        raise BadInput("patient must be a national identity number")
    system, sep, number = value.rpartition("|")
    if sep and system not in ("", FNR_SYSTEM):
        raise BadInput("patient must use the fødselsnummer system")
    try:
        return NationalIdentityNumber(number).value
    except (InvalidIdentifier, ValueError):
        raise BadInput("patient is not a national identity number") from None


def _obj(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise BadInput(f"{what} must be an object")
    return value


def _list(value: Any, what: str) -> Sequence[Any]:
    if not isinstance(value, list):
        raise BadInput(f"{what} must be an array")
    return value


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise BadInput(f"{what} must be a string")
    return value


def _first(obj: Mapping[str, Any], key: str, what: str) -> Any:
    items = _list(obj.get(key), what)
    if not items:
        raise BadInput(f"{what} is empty")
    return items[0]


def _reference(value: Any, resource_type: str, what: str) -> str:
    ref = _str(_obj(value, what).get("reference"), f"{what}.reference")
    kind, sep, ident = ref.partition("/")
    if kind != resource_type or not sep:
        raise BadInput(f"{what} must reference a {resource_type}")
    return check_id(ident, what)


def _subject(value: Any, what: str) -> str:
    ident = _obj(_obj(value, what).get("identifier"), f"{what}.identifier")
    system = ident.get("system", FNR_SYSTEM)
    if system != FNR_SYSTEM:
        raise BadInput(f"{what}.identifier must be a fødselsnummer")
    return parse_patient(ident.get("value"))


def _code(value: Any, system: str, what: str) -> str:
    concept = _obj(value, what)
    for coding in _list(concept.get("coding", []), f"{what}.coding"):
        coding = _obj(coding, f"{what}.coding")
        if coding.get("system") == system:
            return _str(coding.get("code"), f"{what}.code")
    raise BadInput(f"{what} needs a coding from {system}")


def _instant(value: Any, what: str) -> datetime:
    text = _str(value, what)
    if not _INSTANT.fullmatch(text):
        raise BadInput(f"{what} must be a date-time with an offset")
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(f"{what} is not a valid date-time") from None


def _local(value: Any, what: str) -> datetime:
    text = _str(value, what)
    if not _LOCAL_DATETIME.fullmatch(text):
        raise BadInput(f"{what} must be an Oslo local time YYYY-MM-DDThh:mm, without an offset")
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(f"{what} is not a valid date-time") from None


@dataclass(frozen=True, slots=True)
class MessageInput:
    """A Communication as sent: new thread (patient + category) or reply (in_response_to)."""

    patient: str | None
    category: ThreadCategory | None
    text: str
    in_response_to: str | None
    fee_acknowledged: bool
    urgent: bool
    photos: tuple[tuple[str, bytes], ...] = ()
    """(declared type, bytes) of each photo, as sent: `dialogue.images` checks and strips them."""
    unit: str | None = None
    """The treating unit a new contact thread goes to (recipient), None for the GP office."""


_MAX_PHOTO_BASE64 = (MAX_PHOTO_BYTES + 2) // 3 * 4


def _photo(item: Any) -> tuple[str, bytes]:
    attachment = _obj(_obj(item, "payload").get("contentAttachment"), "payload.contentAttachment")
    kind = _str(attachment.get("contentType"), "contentAttachment.contentType")
    if kind not in PHOTO_TYPES:
        raise BadInput("an attachment is a JPEG or PNG photo")
    data = _str(attachment.get("data"), "contentAttachment.data")
    if len(data) > _MAX_PHOTO_BASE64:
        raise BadInput(f"a photo is at most {MAX_PHOTO_BYTES} bytes")
    try:
        return kind, base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadInput("contentAttachment.data is not base64") from None


def parse_communication(body: Mapping[str, Any]) -> MessageInput:
    """Read a Communication: subject, category, payload text, inResponseTo, fee, priority."""
    patient = _subject(body["subject"], "subject") if "subject" in body else None
    category = None
    if "category" in body:
        code = _code(_first(body, "category", "category"), CATEGORY_SYSTEM, "category")
        try:
            category = ThreadCategory(code)
        except ValueError:
            raise BadInput("category must be e-consultation or contact-office") from None
    payload = _obj(_first(body, "payload", "payload"), "payload")
    text = _str(payload.get("contentString"), "payload.contentString")
    more = _list(body["payload"], "payload")[1:]
    if len(more) > MAX_PHOTOS:
        raise BadInput(f"at most {MAX_PHOTOS} photos in one message")
    photos = tuple(_photo(item) for item in more)
    in_response_to = None
    if "inResponseTo" in body:
        in_response_to = _reference(
            _first(body, "inResponseTo", "inResponseTo"), "Communication", "inResponseTo"
        )
    fee = False
    for ext in _list(body.get("extension", []), "extension"):
        ext = _obj(ext, "extension")
        if ext.get("url") == FEE_EXTENSION:
            value = ext.get("valueBoolean")
            if not isinstance(value, bool):
                raise BadInput("the fee acknowledgement is a valueBoolean")
            fee = value
    priority = body.get("priority", "routine")
    if not isinstance(priority, str) or priority not in _URGENT | {"routine"}:
        raise BadInput("priority must be routine, urgent, asap or stat")
    unit = None
    if "recipient" in body:
        recipients = _list(body["recipient"], "recipient")
        if len(recipients) != 1:
            raise BadInput("a new thread has one recipient")
        recipient = _obj(recipients[0], "recipient")
        ident = _obj(recipient.get("identifier"), "recipient.identifier")
        if ident.get("system", ORGNR_SYSTEM) != ORGNR_SYSTEM:
            raise BadInput("recipient.identifier must be an organisation number")
        unit = parse_orgnr(ident.get("value"))
    return MessageInput(
        patient, category, text, in_response_to, fee, priority in _URGENT, photos, unit
    )


@dataclass(frozen=True, slots=True)
class RenewalInput:
    """A renewal request as sent: the patient, the medication, a note."""

    patient: str
    medication_id: str
    note: str | None


def parse_renewal(body: Mapping[str, Any]) -> RenewalInput:
    """Read a Task asking to renew a prescription (code prescription-renewal)."""
    if _code(body.get("code"), REQUEST_SYSTEM, "code") != RequestKind.PRESCRIPTION_RENEWAL:
        raise BadInput("a Task sent here asks for a prescription renewal")
    patient = _subject(body.get("for"), "for")
    medication = _reference(body.get("focus"), "MedicationRequest", "focus")
    note = None
    if "note" in body:
        note = _str(_obj(_first(body, "note", "note"), "note").get("text"), "note.text")
    return RenewalInput(patient, medication, note)


def _parameters(body: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    out = []
    for item in _list(body.get("parameter", []), "parameter"):
        item = _obj(item, "parameter")
        out.append((_str(item.get("name"), "parameter.name"), item))
    return out


def _one(params: list[tuple[str, Mapping[str, Any]]], name: str, key: str) -> Any:
    found = [p.get(key) for n, p in params if n == name]
    if len(found) > 1:
        raise BadInput(f"parameter {name} is given more than once")
    return found[0] if found else None


def _service(value: Any) -> Service:
    try:
        return Service(_str(value, "service"))
    except ValueError:
        raise BadInput("service is not one of the office's services") from None


def parse_handling(body: Mapping[str, Any]) -> tuple[bool, str | None]:
    """Read the answer to a renewal: status completed (renewed) or rejected, with a reason."""
    params = _parameters(body)
    status = _one(params, "status", "valueCode")
    if status not in ("completed", "rejected"):
        raise BadInput("status must be completed (renewed) or rejected")
    reason = _one(params, "reason", "valueString")
    if reason is not None:
        reason = _str(reason, "reason")
    return status == "completed", reason


def parse_service_switch(body: Mapping[str, Any]) -> tuple[Service, bool]:
    """Read $set-service: the service and whether it is on."""
    params = _parameters(body)
    active = _one(params, "active", "valueBoolean")
    if not isinstance(active, bool):
        raise BadInput("active must be a valueBoolean")
    return _service(_one(params, "service", "valueCode")), active


def parse_confirm_bookings(body: Mapping[str, Any]) -> bool:
    """Read $set-confirm-bookings: whether the office confirms each booking."""
    active = _one(_parameters(body), "active", "valueBoolean")
    if not isinstance(active, bool):
        raise BadInput("active must be a valueBoolean")
    return active


def parse_information(body: Mapping[str, Any]) -> str | None:
    """Read $set-information: the message, or none to clear it."""
    value = _one(_parameters(body), "message", "valueString")
    return None if value is None else _str(value, "message")


@dataclass(frozen=True, slots=True)
class AbsenceInput:
    """An absence as registered: Oslo local start and end, the services, the substitute."""

    start: datetime
    end: datetime
    services: frozenset[Service]
    substitute: str | None


def parse_absence(body: Mapping[str, Any]) -> AbsenceInput:
    """Read $register-absence: start, end (Oslo local), one service per parameter, substitute."""
    params = _parameters(body)
    start = _local(_one(params, "start", "valueDateTime"), "start")
    end = _local(_one(params, "end", "valueDateTime"), "end")
    services = frozenset(_service(p.get("valueCode")) for n, p in params if n == "service")
    if not services:
        raise BadInput("name at least one service the absence closes")
    substitute = _one(params, "substitute", "valueString")
    if substitute is not None:
        substitute = _str(substitute, "substitute")
    return AbsenceInput(start, end, services, substitute)


@dataclass(frozen=True, slots=True)
class SlotInput:
    """A slot as published: the office (its Schedule), start, end, visit mode and service."""

    office: str
    start: datetime
    end: datetime
    mode: VisitMode
    service: Service = Service.APPOINTMENT_BOOKING


_SLOT_SERVICE_CODES = {
    (SERVICE_SYSTEM, Service.APPOINTMENT_BOOKING.value): Service.APPOINTMENT_BOOKING,
    (SERVICE_SYSTEM, Service.FLU_VACCINE.value): Service.FLU_VACCINE,
    (SNOMED_SYSTEM, SNOMED_FLU_VACCINATION): Service.FLU_VACCINE,
}


def _slot_service(concepts: Sequence[Any]) -> Service:
    """What a slot's serviceType says it is for: a flu vaccine, else a consultation."""
    found: set[Service] = set()
    for concept in concepts:
        for coding in _list(_obj(concept, "serviceType").get("coding", []), "serviceType.coding"):
            coding = _obj(coding, "serviceType.coding")
            system, code = coding.get("system"), coding.get("code")
            if system in (SERVICE_SYSTEM, SNOMED_SYSTEM):
                key = (system, _str(code, "serviceType.code"))
                if key not in _SLOT_SERVICE_CODES:
                    raise BadInput("serviceType names no service slots are published for")
                found.add(_SLOT_SERVICE_CODES[key])
    if len(found) > 1:
        raise BadInput("serviceType names more than one service")
    return found.pop() if found else Service.APPOINTMENT_BOOKING


def parse_slot(body: Mapping[str, Any]) -> SlotInput:
    """Read a Slot: schedule Schedule/{orgnr}, start, end, serviceType in-person or video, and
    optionally a flu vaccine (SNOMED CT 86198006 or `urn:onerecord:dialogue:service`)."""
    office = parse_orgnr(_reference(body.get("schedule"), "Schedule", "schedule"))
    start = _instant(body.get("start"), "start")
    end = _instant(body.get("end"), "end")
    code = _code(_first(body, "serviceType", "serviceType"), VISIT_SYSTEM, "serviceType")
    try:
        mode = VisitMode(code)
    except ValueError:
        raise BadInput("serviceType must be in-person or video") from None
    service = _slot_service(_list(body.get("serviceType"), "serviceType"))
    return SlotInput(office, start, end, mode, service)


def parse_slot_service(value: str) -> Service:
    """Read the Slot search's `service-type` token: `flu-vaccine` / `appointment-booking`, bare
    or with the system `urn:onerecord:dialogue:service`, or SNOMED CT `…sct|86198006`."""
    system, bar, code = value.rpartition("|")
    if not bar:
        system = SERVICE_SYSTEM
    service = _SLOT_SERVICE_CODES.get((system, code))
    if service is None:
        raise BadInput("service-type is not flu-vaccine or appointment-booking")
    return service


@dataclass(frozen=True, slots=True)
class SeriesInput:
    """A series of back-to-back slots (a vaccination day): office, session, slot length."""

    office: str
    start: datetime
    end: datetime
    minutes: int
    service: Service


def parse_series(body: Mapping[str, Any]) -> SeriesInput:
    """Read $publish-series: `schedule` (valueReference Schedule/{orgnr}), `start` and `end`
    (valueDateTime with an offset), `minutes` (valuePositiveInt), `service` (valueCode,
    flu-vaccine by default)."""
    params = _parameters(body)
    office = parse_orgnr(
        _reference(_one(params, "schedule", "valueReference"), "Schedule", "schedule")
    )
    start = _instant(_one(params, "start", "valueDateTime"), "start")
    end = _instant(_one(params, "end", "valueDateTime"), "end")
    minutes = _one(params, "minutes", "valuePositiveInt")
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        raise BadInput("minutes must be a valuePositiveInt")
    raw = _one(params, "service", "valueCode")
    service = Service.FLU_VACCINE if raw is None else _service(raw)
    return SeriesInput(office, start, end, minutes, service)


@dataclass(frozen=True, slots=True)
class AppointmentInput:
    """A booking as sent: the patient, the slot, a note."""

    patient: str
    slot_id: str
    note: str | None


def parse_appointment(body: Mapping[str, Any]) -> AppointmentInput:
    """Read an Appointment: slot[0] Slot/{id}, the patient as participant, comment."""
    slot_id = _reference(_first(body, "slot", "slot"), "Slot", "slot")
    patients = [
        _subject(_obj(p, "participant").get("actor"), "participant.actor")
        for p in _list(body.get("participant"), "participant")
    ]
    if len(patients) != 1:
        raise BadInput("an appointment has exactly one participant: the patient")
    note = body.get("comment")
    if note is not None:
        note = _str(note, "comment")
    return AppointmentInput(patients[0], slot_id, note)


@dataclass(frozen=True, slots=True)
class InboxQuery:
    """The work list's search: kinds, statuses, page size and where the page starts."""

    kinds: frozenset[RequestKind]
    statuses: frozenset[RequestStatus]
    count: int
    after: tuple[datetime, str] | None


def _codes(value: str, kind: type[Any], what: str) -> frozenset[Any]:
    out = set()
    for item in value.split(","):
        try:
            out.add(kind(item))
        except ValueError:
            raise BadInput(f"{what} has an unknown value") from None
    return frozenset(out)


def encode_cursor(after: tuple[datetime, str]) -> str:
    """The `_cursor` of the page after the row (due, id): microseconds since 1970, then the id."""
    due, ident = after
    # Integer arithmetic: a float of seconds loses microseconds far from 1970 (hypothesis found it).
    micros = (due - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    return f"{micros}_{ident}"


def parse_inbox_query(params: Mapping[str, str], *, max_count: int) -> InboxQuery:
    """Read the work list's search parameters besides `organization`.

    `code` (comma-separated request kinds), `status` (comma-separated; default requested),
    `_count` (1–max_count, default 50), `_cursor` (from the Bundle's next link).
    """
    kinds = frozenset(RequestKind)
    statuses = frozenset({RequestStatus.REQUESTED})
    if "code" in params:
        kinds = _codes(params["code"], RequestKind, "code")
    if "status" in params:
        statuses = _codes(params["status"], RequestStatus, "status")
    count = 50
    if "_count" in params:
        raw = params["_count"]
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= max_count:
            raise BadInput(f"_count must be a whole number 1–{max_count}")
        count = int(raw)
    after = None
    if "_cursor" in params:
        match = _CURSOR.fullmatch(params["_cursor"])
        if match is None:
            raise BadInput("_cursor is not one this service gave")
        try:
            due = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(match.group(1)))
        except OverflowError:
            raise BadInput("_cursor is not one this service gave") from None
        after = (due, match.group(2))
    return InboxQuery(kinds, statuses, count, after)


def parse_move(body: Mapping[str, Any]) -> str:
    """Read $move: the new slot (`slot` valueReference Slot/{id})."""
    return _reference(_one(_parameters(body), "slot", "valueReference"), "Slot", "slot")


# --- rendering -------------------------------------------------------------------------------


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _patient(nin: str) -> dict[str, Any]:
    return {"identifier": {"system": FNR_SYSTEM, "value": nin}}


def _office(orgnr: str) -> dict[str, Any]:
    return {"identifier": {"system": ORGNR_SYSTEM, "value": orgnr}}


def communication_resource(m: Message) -> dict[str, Any]:
    """A message as a FHIR Communication (status completed)."""
    sender = _patient(m.author) if m.sender.value == "citizen" else _office(m.office)
    if m.sender.value == "office" and m.author_name:
        sender = {**sender, "display": m.author_name}
    resource: dict[str, Any] = {
        "resourceType": "Communication",
        "id": m.id,
        "extension": [{"url": THREAD_EXTENSION, "valueId": m.thread_id}],
        "status": "completed",
        "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": m.category.value}]}],
        "subject": _patient(m.patient),
        "sent": _stamp(m.sent),
        "sender": sender,
        "recipient": [_office(m.office) if m.sender.value == "citizen" else _patient(m.patient)],
        "payload": [{"contentString": m.text}]
        + [
            {
                "contentAttachment": {
                    "contentType": a.content_type,
                    "size": a.size,
                    "url": f"Binary/{a.id}",
                }
            }
            for a in m.attachments
        ],
    }
    if m.in_response_to:
        resource["inResponseTo"] = [{"reference": f"Communication/{m.in_response_to}"}]
    return resource


def task_resource(r: Request, *, now: datetime | None = None) -> dict[str, Any]:
    """A request as a FHIR Task, with its answer limit and, when answered, its outcome.

    `now` given (the work list): the extension `overdue` says whether a request still waiting
    is past its limit (at the service's clock, the rule of `calendar.answer_due`). The
    extension `notice-failed` (valueDateTime) says when the e-mail notice about it finally
    failed, where its latest one did (the office's reads only): the office calls instead.
    """
    resource: dict[str, Any] = {
        "resourceType": "Task",
        "id": r.id,
        "status": r.status.value,
        "intent": "order",
        "code": {"coding": [{"system": REQUEST_SYSTEM, "code": r.kind.value}]},
        "for": _patient(r.patient),
        "owner": _office(r.office),
        "authoredOn": _stamp(r.created),
        "restriction": {"period": {"end": _stamp(r.due)}},
    }
    if r.thread_id:
        resource["focus"] = {"reference": f"Communication/{r.thread_id}"}
    if r.medication_id:
        resource["focus"] = {"reference": f"MedicationRequest/{r.medication_id}"}
    if r.note:
        resource["note"] = [{"text": r.note}]
    if r.fee_acknowledged:
        resource["input"] = [
            {
                "type": {"text": "fee-acknowledged"},
                "valueDateTime": _stamp(r.fee_acknowledged),
            }
        ]
    if r.status_reason:
        resource["statusReason"] = {"text": r.status_reason}
    if r.handled:
        resource["lastModified"] = _stamp(r.handled)
    if now is not None:
        overdue = r.status is RequestStatus.REQUESTED and r.due < now
        resource["extension"] = [{"url": OVERDUE_EXTENSION, "valueBoolean": overdue}]
    if r.notice_failed is not None:
        resource.setdefault("extension", []).append(
            {"url": NOTICE_FAILED_EXTENSION, "valueDateTime": _stamp(r.notice_failed)}
        )
    return resource


def medication_resource(m: Medication) -> dict[str, Any]:
    """A current medication as a FHIR MedicationRequest."""
    return {
        "resourceType": "MedicationRequest",
        "id": m.id,
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"text": m.name},
        "subject": _patient(m.patient),
        "dosageInstruction": [{"text": m.dosage}],
    }


def service_types(mode: VisitMode, service: Service) -> list[dict[str, Any]]:
    """A slot's or appointment's `serviceType`: the visit mode first, then what it is for (a
    flu vaccine also in SNOMED CT)."""
    what: list[dict[str, Any]] = []
    if service is Service.FLU_VACCINE:
        what.append(
            {
                "system": SNOMED_SYSTEM,
                "code": SNOMED_FLU_VACCINATION,
                "display": "Influenza vaccination",
            }
        )
    what.append({"system": SERVICE_SYSTEM, "code": service.value})
    return [
        {"coding": [{"system": VISIT_SYSTEM, "code": mode.value}]},
        {"coding": what, "text": service.name_nb},
    ]


def slot_resource(s: Slot) -> dict[str, Any]:
    """A slot as a FHIR Slot."""
    return {
        "resourceType": "Slot",
        "id": s.id,
        "schedule": {"reference": f"Schedule/{s.office}"},
        "status": "free" if s.free else "busy",
        "start": _stamp(s.start),
        "end": _stamp(s.end),
        "serviceType": service_types(s.mode, s.service),
    }


def appointment_resource(a: Appointment) -> dict[str, Any]:
    """An appointment as a FHIR Appointment."""
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": a.id,
        "status": a.status.value,
        "serviceType": service_types(a.mode, a.service),
        "start": _stamp(a.start),
        "end": _stamp(a.end),
        "slot": [{"reference": f"Slot/{a.slot_id}"}],
        "participant": [
            {"actor": _patient(a.patient), "status": "accepted"},
            {"actor": _office(a.office), "status": "accepted"},
        ],
    }
    if a.note:
        resource["comment"] = a.note
    return resource


GP_EXTENSION = "urn:onerecord:dialogue:gp"
CONFIRM_BOOKINGS_EXTENSION = "urn:onerecord:dialogue:confirm-bookings"
"""On the appointment-booking service: the office confirms each booking (valueBoolean)."""
"""HealthcareService: the name of the patient's GP (valueString)."""
SUBSTITUTE_EXTENSION = "urn:onerecord:dialogue:substitute"
"""HealthcareService.notAvailable: the substitute the GP named (valueString)."""


def unit_resource(unit: Office) -> dict[str, Any]:
    """A treating unit at a hospital as an Organization: its name, phone and the services it
    offers on the portal (contact-office: the dialogue with the unit; appointment-booking: its
    appointments may be cancelled by the patient)."""
    return {
        "resourceType": "Organization",
        "id": unit.orgnr,
        "identifier": [{"system": ORGNR_SYSTEM, "value": unit.orgnr}],
        "name": unit.name,
        "telecom": [{"system": "phone", "value": unit.phone}],
        "type": [
            {"coding": [{"system": SERVICE_SYSTEM, "code": service.value}]}
            for service in sorted(unit.services)
        ],
    }


def healthcare_services(view: OfficeView) -> list[dict[str, Any]]:
    """The office's services as HealthcareService resources, each with its state now."""
    out = []
    for state in view.states:
        resource: dict[str, Any] = {
            "resourceType": "HealthcareService",
            "id": f"{view.office.orgnr}.{state.service.value}",
            "active": state.offered,
            "providedBy": {**_office(view.office.orgnr), "display": view.office.name},
            "type": [{"coding": [{"system": SERVICE_SYSTEM, "code": state.service.value}]}],
            "name": state.service.name_nb,
            "telecom": [{"system": "phone", "value": view.office.phone}],
            # Always shown beside the services: where to go when it cannot wait.
            "extraDetails": URGENT_HELP_NB,
        }
        if view.office.information:
            resource["comment"] = view.office.information
        if view.gp_name:
            resource["extension"] = [{"url": GP_EXTENSION, "valueString": view.gp_name}]
        if state.service is Service.APPOINTMENT_BOOKING:
            resource.setdefault("extension", []).append(
                {"url": CONFIRM_BOOKINGS_EXTENSION, "valueBoolean": view.office.confirm_bookings}
            )
        if state.absence is not None and state.sentence is not None:
            closed: dict[str, Any] = {
                "description": state.sentence,
                "during": {
                    "start": _stamp(state.absence.start_utc),
                    "end": _stamp(state.absence.end_utc),
                },
            }
            if state.absence.substitute:
                # For a client that says it in another language than the sentence's bokmål.
                closed["extension"] = [
                    {"url": SUBSTITUTE_EXTENSION, "valueString": state.absence.substitute}
                ]
            resource["notAvailable"] = [closed]
        out.append(resource)
    return out


def schedule_resource(view: OfficeView) -> dict[str, Any]:
    """The office's calendar as a FHIR Schedule (id: the organisation number, as `Slot.schedule`
    names it): `active` while appointment booking is on and open, the closed sentence as the
    comment while an absence closes it."""
    booking = next(s for s in view.states if s.service is Service.APPOINTMENT_BOOKING)
    resource: dict[str, Any] = {
        "resourceType": "Schedule",
        "id": view.office.orgnr,
        "active": booking.offered and booking.open,
        "serviceType": [
            {"coding": [{"system": VISIT_SYSTEM, "code": mode.value}]} for mode in VisitMode
        ],
        "actor": [{**_office(view.office.orgnr), "display": view.office.name}],
    }
    if booking.sentence:
        resource["comment"] = booking.sentence
    return resource


def absence_parameters(absence: Absence, sentences: Mapping[Service, str]) -> dict[str, Any]:
    """The registered absence and a preview of what patients will see, as Parameters."""
    params: list[dict[str, Any]] = [
        {"name": "id", "valueId": absence.id},
        {"name": "start", "valueDateTime": _stamp(absence.start_utc)},
        {"name": "end", "valueDateTime": _stamp(absence.end_utc)},
    ]
    for service, sentence in sorted(sentences.items()):
        params.append(
            {
                "name": "preview",
                "part": [
                    {"name": "service", "valueCode": service.value},
                    {"name": "text", "valueString": sentence},
                ],
            }
        )
    return {"resourceType": "Parameters", "parameter": params}


def bundle(
    resources: Sequence[Mapping[str, Any]],
    base: str,
    *,
    total: int | None = None,
    next_url: str | None = None,
) -> dict[str, Any]:
    """A searchset Bundle of `resources` (`total` over all pages, `next_url` the next page)."""
    out: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources) if total is None else total,
    }
    if next_url is not None:
        out["link"] = [{"relation": "next", "url": next_url}]
    return out | {
        "entry": [
            {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r} for r in resources
        ],
    }


def operation_outcome(status: int, code: str, text: str) -> dict[str, Any]:
    """An OperationOutcome with one issue."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error" if status < 500 else "fatal",
                "code": code,
                "diagnostics": text,
            }
        ],
    }
