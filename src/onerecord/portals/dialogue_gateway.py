"""The citizen portal as a client of the dialogue service (the GP office, docs/dialogue.md).

Every call carries the citizen's own DPoP-bound token for the dialogue service's audience (a
fresh proof per request, `htu` without the query); the person the citizen acts for is named as
`patient=` and the service decides, from the token's representations, whether that is allowed.
The service's answers are FHIR R4; each is read here into small frozen values, checking types
first: anything else is `DialogueUnavailable`, never a crash of the page.

Failures: 401 ends the login (`SessionEnded`); 403 is `DialogueRefused` with the service's
reason code; 409 a business rule (service closed or off, slot taken, already answered) and 400
bad input are `DialogueDeclined`, shown as a notice on the page; anything else, or no answer,
is `DialogueUnavailable`.
"""

from __future__ import annotations

from base64 import b64encode
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import httpx

from onerecord.portals.errors import PortalError, SessionEnded
from onerecord.search_client import HubSession

__all__ = [
    "CATEGORY_SYSTEM",
    "FEE_EXTENSION",
    "GP_EXTENSION",
    "REQUEST_SYSTEM",
    "SERVICE_CODES",
    "SUBSTITUTE_EXTENSION",
    "THREAD_EXTENSION",
    "VISIT_SYSTEM",
    "AppointmentView",
    "DialogueClient",
    "DialogueDeclined",
    "DialogueRefused",
    "DialogueUnavailable",
    "GpOffice",
    "MedicationView",
    "MessageView",
    "RequestView",
    "ServiceView",
    "SlotView",
    "Thread",
    "UnitView",
    "threads_of",
]

FNR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.1"
ORGNR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.101"
CATEGORY_SYSTEM = "urn:onerecord:dialogue:category"
SERVICE_SYSTEM = "urn:onerecord:dialogue:service"
REQUEST_SYSTEM = "urn:onerecord:dialogue:request"
VISIT_SYSTEM = "urn:onerecord:dialogue:visit-mode"
FEE_EXTENSION = "urn:onerecord:dialogue:fee-acknowledged"
THREAD_EXTENSION = "urn:onerecord:dialogue:thread"
GP_EXTENSION = "urn:onerecord:dialogue:gp"
SUBSTITUTE_EXTENSION = "urn:onerecord:dialogue:substitute"
SERVICE_CODES = (
    "appointment-booking",
    "prescription-renewal",
    "e-consultation",
    "contact-office",
    "flu-vaccine",
)
_MAX_ENTRIES = 2000
T = TypeVar("T")


class DialogueUnavailable(PortalError):
    """The dialogue service did not answer, or not in a way the portal understands."""

    status_code = 502
    message_key = "citizen.gp.error.unavailable"
    advice_key = "citizen.gp.error.unavailable.advice"


class DialogueRefused(PortalError):
    """The dialogue service refused this person (a representation rule); `reason` its code."""

    status_code = 403
    message_key = "citizen.gp.error.refused"
    advice_key = "citizen.gp.error.refused.advice"
    reason: str = ""


class DialogueDeclined(Exception):
    """A request the service declined (400 bad input, 409 a rule): shown as a notice."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


# -- values -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServiceView:
    """One service of the office as the person sees it now."""

    code: str
    offered: bool
    closed_until: datetime | None = None
    """When an absence closes it: the first instant it is open again."""
    closed_text_nb: str | None = None
    substitute: str | None = None

    @property
    def open(self) -> bool:
        return self.offered and self.closed_until is None


@dataclass(frozen=True, slots=True)
class GpOffice:
    orgnr: str
    name: str
    phone: str
    gp_name: str | None
    information: str | None
    services: tuple[ServiceView, ...]

    def service(self, code: str) -> ServiceView:
        for s in self.services:
            if s.code == code:
                return s
        return ServiceView(code, offered=False)


@dataclass(frozen=True, slots=True)
class MessageView:
    id: str
    thread_id: str
    category: str
    from_office: bool
    author: str | None
    text: str
    sent: datetime
    in_response_to: str | None
    photos: tuple[str, ...] = ()
    """The ids of the photos sent with it (`DialogueClient.photo` reads one)."""


@dataclass(frozen=True, slots=True)
class RequestView:
    id: str
    kind: str
    status: str
    created: datetime
    due: datetime | None
    thread_id: str | None
    medication_id: str | None
    note: str | None
    fee_acknowledged: datetime | None
    reason: str | None
    handled: datetime | None


@dataclass(frozen=True, slots=True)
class Thread:
    id: str
    category: str
    messages: tuple[MessageView, ...]
    request: RequestView | None

    @property
    def answered(self) -> bool:
        return any(m.from_office for m in self.messages)

    @property
    def last(self) -> datetime:
        return self.messages[-1].sent


@dataclass(frozen=True, slots=True)
class MedicationView:
    id: str
    name: str
    dosage: str


@dataclass(frozen=True, slots=True)
class SlotView:
    id: str
    start: datetime
    end: datetime
    mode: str
    service: str = "appointment-booking"
    """What the slot is for: appointment-booking (a consultation) or flu-vaccine."""


@dataclass(frozen=True, slots=True)
class AppointmentView:
    id: str
    start: datetime
    end: datetime
    mode: str
    status: str
    office: str
    comment: str | None
    service: str = "appointment-booking"
    """What was booked: appointment-booking (a consultation) or flu-vaccine."""


# -- reading ----------------------------------------------------------------------------------


class _Garbled(ValueError):
    pass


def _obj(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _Garbled("not an object")
    return value


def _list(value: Any) -> Sequence[Any]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > _MAX_ENTRIES:
        raise _Garbled("not a list")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 10_000:
        raise _Garbled("not a string")
    return value


def _opt_str(value: Any) -> str | None:
    return None if value is None else _str(value)


def _instant(value: Any) -> datetime:
    try:
        moment = datetime.fromisoformat(_str(value).replace("Z", "+00:00"))
    except ValueError:
        raise _Garbled("not an instant") from None
    if moment.tzinfo is None:
        raise _Garbled("an instant without offset")
    return moment


def _opt_instant(value: Any) -> datetime | None:
    return None if value is None else _instant(value)


def _code(concept: Any, system: str) -> str:
    for coding in _list(_obj(concept).get("coding")):
        coding = _obj(coding)
        if coding.get("system") == system:
            return _str(coding.get("code"))
    raise _Garbled(f"no code of {system}")


def _extension(resource: Mapping[str, Any], url: str) -> Mapping[str, Any] | None:
    for ext in _list(resource.get("extension")):
        ext = _obj(ext)
        if ext.get("url") == url:
            return ext
    return None


def _ref_id(value: Any, resource_type: str) -> str | None:
    reference = _str(_obj(value).get("reference"))
    prefix = f"{resource_type}/"
    return reference.removeprefix(prefix) if reference.startswith(prefix) else None


def _entries(body: Any, resource_type: str) -> list[Mapping[str, Any]]:
    bundle = _obj(body)
    if bundle.get("resourceType") != "Bundle":
        raise _Garbled("not a Bundle")
    out = []
    for entry in _list(bundle.get("entry")):
        resource = _obj(_obj(entry).get("resource"))
        if resource.get("resourceType") == resource_type:
            out.append(resource)
    return out


def _office_of(resources: Sequence[Mapping[str, Any]]) -> GpOffice:
    if not resources:
        raise _Garbled("no services")
    first = resources[0]
    provider = _obj(first.get("providedBy"))
    orgnr = _str(_obj(provider.get("identifier")).get("value"))
    phone = ""
    for telecom in _list(first.get("telecom")):
        if _obj(telecom).get("system") == "phone":
            phone = _str(_obj(telecom).get("value"))
    gp = _extension(first, GP_EXTENSION)
    services = []
    for resource in resources:
        code = _code(_list(resource.get("type"))[0], SERVICE_SYSTEM)
        active = resource.get("active")
        if not isinstance(active, bool):
            raise _Garbled("active is not a boolean")
        until = text = substitute = None
        closed = _list(resource.get("notAvailable"))
        if closed:
            item = _obj(closed[0])
            text = _opt_str(item.get("description"))
            until = _instant(_obj(item.get("during")).get("end"))
            named = _extension(item, SUBSTITUTE_EXTENSION)
            substitute = _opt_str(named.get("valueString")) if named else None
        services.append(ServiceView(code, active, until, text, substitute))
    return GpOffice(
        orgnr=orgnr,
        name=_str(provider.get("display", orgnr)),
        phone=phone,
        gp_name=_opt_str(gp.get("valueString")) if gp else None,
        information=_opt_str(first.get("comment")),
        services=tuple(services),
    )


def _message(resource: Mapping[str, Any]) -> MessageView:
    thread = _extension(resource, THREAD_EXTENSION)
    sender = _obj(resource.get("sender"))
    identifier = _obj(sender.get("identifier"))
    from_office = identifier.get("system") == ORGNR_SYSTEM
    replies = _list(resource.get("inResponseTo"))
    photos = []
    for item in _list(resource.get("payload"))[1:]:
        url = _str(_obj(_obj(item).get("contentAttachment")).get("url"))
        if not url.startswith("Binary/"):
            raise _Garbled("an attachment is not a Binary of this service")
        photos.append(url.removeprefix("Binary/"))
    return MessageView(
        id=_str(resource.get("id")),
        thread_id=_str(thread.get("valueId")) if thread else _str(resource.get("id")),
        category=_code(_list(resource.get("category"))[0], CATEGORY_SYSTEM),
        from_office=from_office,
        author=_opt_str(sender.get("display")) if from_office else None,
        text=_str(_obj(_list(resource.get("payload"))[0]).get("contentString")),
        sent=_instant(resource.get("sent")),
        in_response_to=_ref_id(replies[0], "Communication") if replies else None,
        photos=tuple(photos),
    )


def _request(resource: Mapping[str, Any]) -> RequestView:
    focus = resource.get("focus")
    thread = _ref_id(focus, "Communication") if focus is not None else None
    medication = _ref_id(focus, "MedicationRequest") if focus is not None else None
    notes = _list(resource.get("note"))
    fee = None
    for item in _list(resource.get("input")):
        item = _obj(item)
        if _obj(item.get("type")).get("text") == "fee-acknowledged":
            fee = _instant(item.get("valueDateTime"))
    reason = resource.get("statusReason")
    period = _obj(_obj(resource.get("restriction", {})).get("period", {}))
    return RequestView(
        id=_str(resource.get("id")),
        kind=_code(resource.get("code"), REQUEST_SYSTEM),
        status=_str(resource.get("status")),
        created=_instant(resource.get("authoredOn")),
        due=_opt_instant(period.get("end")),
        thread_id=thread,
        medication_id=medication,
        note=_opt_str(_obj(notes[0]).get("text")) if notes else None,
        fee_acknowledged=fee,
        reason=_opt_str(_obj(reason).get("text")) if reason is not None else None,
        handled=_opt_instant(resource.get("lastModified")),
    )


def _medication(resource: Mapping[str, Any]) -> MedicationView:
    dosage = _list(resource.get("dosageInstruction"))
    return MedicationView(
        id=_str(resource.get("id")),
        name=_str(_obj(resource.get("medicationCodeableConcept")).get("text")),
        dosage=_str(_obj(dosage[0]).get("text")) if dosage else "",
    )


def _what_for(resource: Mapping[str, Any]) -> str:
    """The service a slot or appointment is for (its serviceType from SERVICE_SYSTEM), a
    consultation when none is named."""
    for concept in _list(resource.get("serviceType")):
        for coding in _list(_obj(concept).get("coding")):
            coding = _obj(coding)
            if coding.get("system") == SERVICE_SYSTEM:
                code = _str(coding.get("code"))
                if code not in ("appointment-booking", "flu-vaccine"):
                    raise _Garbled("a slot for an unknown service")
                return code
    return "appointment-booking"


def _slot(resource: Mapping[str, Any]) -> SlotView:
    return SlotView(
        id=_str(resource.get("id")),
        start=_instant(resource.get("start")),
        end=_instant(resource.get("end")),
        mode=_code(_list(resource.get("serviceType"))[0], VISIT_SYSTEM),
        service=_what_for(resource),
    )


def _appointment(resource: Mapping[str, Any]) -> AppointmentView:
    office = ""
    for participant in _list(resource.get("participant")):
        identifier = _obj(_obj(_obj(participant).get("actor")).get("identifier"))
        if identifier.get("system") == ORGNR_SYSTEM:
            office = _str(identifier.get("value"))
    return AppointmentView(
        id=_str(resource.get("id")),
        start=_instant(resource.get("start")),
        end=_instant(resource.get("end")),
        mode=_code(_list(resource.get("serviceType"))[0], VISIT_SYSTEM),
        status=_str(resource.get("status")),
        office=office,
        comment=_opt_str(resource.get("comment")),
        service=_what_for(resource),
    )


@dataclass(frozen=True, slots=True)
class UnitView:
    """A treating unit at a hospital the person has a dialogue with (helsekontakt)."""

    orgnr: str
    name: str
    phone: str
    contact: bool
    """The unit takes messages (contact-office on)."""


def _unit(resource: Mapping[str, Any]) -> UnitView:
    codes = {_code(c, SERVICE_SYSTEM) for c in _list(resource.get("type"))}
    phones = [_obj(t).get("value") for t in _list(resource.get("telecom"))]
    return UnitView(
        orgnr=_str(resource.get("id")),
        name=_str(resource.get("name")),
        phone=_str(phones[0]) if phones else "",
        contact="contact-office" in codes,
    )


def threads_of(messages: Sequence[MessageView], requests: Sequence[RequestView]) -> list[Thread]:
    """Group messages into threads (oldest message first), newest thread first."""
    by_thread: dict[str, list[MessageView]] = {}
    for m in messages:
        by_thread.setdefault(m.thread_id, []).append(m)
    tasks = {r.thread_id: r for r in requests if r.thread_id}
    threads = [
        Thread(tid, ms[0].category, tuple(sorted(ms, key=lambda m: (m.sent, m.id))), tasks.get(tid))
        for tid, ms in by_thread.items()
    ]
    return sorted(threads, key=lambda t: t.last, reverse=True)


def _patient(nin: str) -> dict[str, Any]:
    return {"identifier": {"system": FNR_SYSTEM, "value": nin}}


# -- the client -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DialogueClient:
    """The dialogue service at `fhir_base`, called with one citizen's dialogue token."""

    http: httpx.AsyncClient
    session: HubSession
    fhir_base: str
    timeout_s: float = 10.0

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        key: str | None = None,
    ) -> Any:
        url = f"{self.fhir_base}/{path}"
        headers = self.session.headers(method, url)
        if body is not None:
            headers["content-type"] = "application/fhir+json"
        if key is not None:  # the form's own key: a form sent twice makes one thing
            headers["idempotency-key"] = key
        try:
            response = await self.http.request(
                method, url, params=params, json=body, headers=headers, timeout=self.timeout_s
            )
        except httpx.HTTPError:
            raise DialogueUnavailable() from None
        if response.status_code == 401:
            raise SessionEnded()
        if response.status_code in (400, 403, 404, 409, 413):
            text = _diagnostics(response)
            if response.status_code == 403:
                refused = DialogueRefused()
                refused.reason = text
                raise refused
            raise DialogueDeclined(response.status_code, text)
        if response.status_code not in (200, 201):
            raise DialogueUnavailable()
        try:
            return response.json()
        except ValueError:
            raise DialogueUnavailable() from None

    async def _search(self, path: str, resource_type: str, patient: str) -> list[Any]:
        body = await self._call("GET", path, params={"patient": patient})
        try:
            return _entries(body, resource_type)
        except _Garbled:
            raise DialogueUnavailable() from None

    async def office(self, patient: str) -> GpOffice:
        try:
            return _office_of(await self._search("HealthcareService", "HealthcareService", patient))
        except _Garbled:
            raise DialogueUnavailable() from None

    async def messages(self, patient: str) -> list[MessageView]:
        return _read(_message, await self._search("Communication", "Communication", patient))

    async def requests(self, patient: str) -> list[RequestView]:
        return _read(_request, await self._search("Task", "Task", patient))

    async def medications(self, patient: str) -> list[MedicationView]:
        found = await self._search("MedicationRequest", "MedicationRequest", patient)
        return _read(_medication, found)

    async def slots(self, patient: str) -> list[SlotView]:
        return _read(_slot, await self._search("Slot", "Slot", patient))

    async def vaccine_slots(self, patient: str) -> list[SlotView]:
        """The free flu-vaccine slots of the person's office."""
        body = await self._call(
            "GET", "Slot", params={"patient": patient, "service-type": "flu-vaccine"}
        )
        try:
            found = _read(_slot, _entries(body, "Slot"))
        except _Garbled:
            raise DialogueUnavailable() from None
        return [s for s in found if s.service == "flu-vaccine"]

    async def appointments(self, patient: str) -> list[AppointmentView]:
        return _read(_appointment, await self._search("Appointment", "Appointment", patient))

    async def units(self, patient: str) -> list[UnitView]:
        """The person's treating units at hospitals."""
        return _read(_unit, await self._search("Organization", "Organization", patient))

    async def write_to_unit(self, patient: str, unit: str, text: str) -> MessageView:
        """Start a contact thread with a treating unit (no fee)."""
        body: dict[str, Any] = {
            "resourceType": "Communication",
            "subject": _patient(patient),
            "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": "contact-office"}]}],
            "recipient": [{"identifier": {"system": ORGNR_SYSTEM, "value": unit}}],
            "payload": [{"contentString": text}],
        }
        return _read_one(_message, await self._call("POST", "Communication", body=body))

    async def start_thread(
        self,
        patient: str,
        category: str,
        text: str,
        *,
        fee_acknowledged: bool,
        photos: Sequence[tuple[str, bytes]] = (),
        key: str | None = None,
    ) -> MessageView:
        """Start a thread; `photos` (content type, bytes) already checked and stripped."""
        body: dict[str, Any] = {
            "resourceType": "Communication",
            "subject": _patient(patient),
            "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": category}]}],
            "priority": "routine",
            "payload": [{"contentString": text}]
            + [
                {"contentAttachment": {"contentType": kind, "data": b64encode(data).decode()}}
                for kind, data in photos
            ],
        }
        if category == "e-consultation":
            body["extension"] = [{"url": FEE_EXTENSION, "valueBoolean": fee_acknowledged}]
        return _read_one(_message, await self._call("POST", "Communication", body=body, key=key))

    async def reply(self, message_id: str, text: str, key: str | None = None) -> MessageView:
        body = {
            "resourceType": "Communication",
            "inResponseTo": [{"reference": f"Communication/{message_id}"}],
            "payload": [{"contentString": text}],
        }
        return _read_one(_message, await self._call("POST", "Communication", body=body, key=key))

    async def renew(
        self, patient: str, medication_id: str, note: str | None, key: str | None = None
    ) -> RequestView:
        body: dict[str, Any] = {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "code": {"coding": [{"system": REQUEST_SYSTEM, "code": "prescription-renewal"}]},
            "for": _patient(patient),
            "focus": {"reference": f"MedicationRequest/{medication_id}"},
        }
        if note:
            body["note"] = [{"text": note}]
        return _read_one(_request, await self._call("POST", "Task", body=body, key=key))

    async def book(
        self, patient: str, slot_id: str, note: str | None, key: str | None = None
    ) -> AppointmentView:
        body: dict[str, Any] = {
            "resourceType": "Appointment",
            "status": "booked",
            "slot": [{"reference": f"Slot/{slot_id}"}],
            "participant": [{"actor": _patient(patient), "status": "accepted"}],
        }
        if note:
            body["comment"] = note
        return _read_one(_appointment, await self._call("POST", "Appointment", body=body, key=key))

    async def photo(self, attachment_id: str) -> tuple[str, bytes]:
        """One photo of a message the citizen may read: (content type, bytes)."""
        url = f"{self.fhir_base}/Binary/{attachment_id}"
        try:
            response = await self.http.get(
                url, headers=self.session.headers("GET", url), timeout=self.timeout_s
            )
        except httpx.HTTPError:
            raise DialogueUnavailable() from None
        if response.status_code == 401:
            raise SessionEnded()
        kind = response.headers.get("content-type", "")
        if response.status_code != 200 or kind not in ("image/jpeg", "image/png"):
            raise DialogueUnavailable()
        return kind, response.content

    async def cancel(self, appointment_id: str) -> AppointmentView:
        answer = await self._call("POST", f"Appointment/{appointment_id}/$cancel")
        return _read_one(_appointment, answer)


def _read(
    reader: Callable[[Mapping[str, Any]], T], resources: Sequence[Mapping[str, Any]]
) -> list[T]:
    try:
        return [reader(r) for r in resources]
    except (_Garbled, IndexError, KeyError):
        raise DialogueUnavailable() from None


def _read_one(reader: Callable[[Mapping[str, Any]], T], body: Any) -> T:
    try:
        return reader(_obj(body))
    except (_Garbled, IndexError, KeyError):
        raise DialogueUnavailable() from None


def _diagnostics(response: httpx.Response) -> str:
    try:
        outcome = response.json()
        issue = outcome["issue"][0]
        text = issue.get("diagnostics")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return ""
    return text[:500] if isinstance(text, str) else ""
