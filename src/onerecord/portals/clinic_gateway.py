"""The clinic's work list as a client of the dialogue service (issue 15): token and calls.

The health worker's login token is exchanged (refresh grant, as for the hub) for a token of the
dialogue service's audience whose attestation names the worker's workplace and no patient: the
office's work list is not one patient's record, and the service decides from the workplace
(point of care) and the HPR number what the worker may do. Every call carries a DPoP proof
(RFC 9449; `htu` without the query). The service's answers are FHIR R4 (docs/dialogue.md);
this module reads them into the small views the pages show and nothing else.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from onerecord.portals.errors import HubRefused, HubUnavailable
from onerecord.portals.oauth import TokenSet, refresh
from onerecord.search_client import HubSession, StaffMember, practitioner_attestation
from onerecord.trust.keys import SigningKey

__all__ = [
    "CATEGORY_SYSTEM",
    "ClinicRefused",
    "DialogueClient",
    "InboxRow",
    "clinic_token",
    "thread_rows",
]

CATEGORY_SYSTEM = "urn:onerecord:dialogue:category"
_REQUEST_SYSTEM = "urn:onerecord:dialogue:request"
_OVERDUE = "urn:onerecord:dialogue:overdue"
_NOTICE_FAILED = "urn:onerecord:dialogue:notice-failed"
_THREAD = "urn:onerecord:dialogue:thread"
_VISIT_SYSTEM = "urn:onerecord:dialogue:visit-mode"
_SERVICE_SYSTEM = "urn:onerecord:dialogue:service"
_CONFIRM_BOOKINGS = "urn:onerecord:dialogue:confirm-bookings"
_ORGNR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.101"
_MAX_BYTES = 4 * 1024 * 1024
_PHOTO_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_PHOTO_TYPES = ("image/jpeg", "image/png")
_MAX_PHOTO_ANSWER = 16 * 1024 * 1024


class ClinicRefused(Exception):
    """The dialogue service refused (4xx): `status` and its OperationOutcome diagnostics."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"{status}: {text}")
        self.status = status
        self.text = text


async def clinic_token(
    http: httpx.AsyncClient,
    *,
    sts_url: str,
    client_id: str,
    client_key: SigningKey,
    audience: str,
    tokens: TokenSet,
    staff: StaffMember,
) -> TokenSet:
    """A token for the dialogue service: the worker's workplace attested, no patient bound.

    References: TRUST-FRAMEWORK §1.1 (attestation; `patients` may be empty, ATT-6).
    """
    attestation = practitioner_attestation(staff, patient_digest="", decision_ref=str(uuid.uuid4()))
    attestation["patients"] = []
    return await refresh(
        http,
        sts_url=sts_url,
        client_id=client_id,
        client_key=client_key,
        tokens=tokens,
        attestation=attestation,
        audience=audience,
    )


def _obj(value: Any) -> Mapping[str, Any]:
    """`value` when it is a JSON object, else empty: an answer of the wrong shape reads as
    having nothing there, never as a server error."""
    return value if isinstance(value, dict) else {}


def _arr(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _s(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _code(concept: Any, system: str) -> str:
    if isinstance(concept, list):
        concept = concept[0] if concept else {}
    for coding in _arr(_obj(concept).get("coding")):
        if _obj(coding).get("system") == system:
            return _s(_obj(coding).get("code"))
    return ""


def _what_for(concepts: Any) -> str:
    """The service a slot or appointment is for: flu-vaccine when its serviceType says so."""
    for concept in _arr(concepts):
        for coding in _arr(_obj(concept).get("coding")):
            if _obj(coding).get("system") == _SERVICE_SYSTEM:
                if _obj(coding).get("code") == "flu-vaccine":
                    return "flu-vaccine"
    return "appointment-booking"


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _nin(reference: Any) -> str:
    return _s(_obj(_obj(reference).get("identifier")).get("value"))


def _ref_id(reference: Any, kind: str) -> str | None:
    ref = _s(_obj(reference).get("reference"))
    return ref.removeprefix(f"{kind}/") if ref.startswith(f"{kind}/") else None


@dataclass(frozen=True, slots=True)
class InboxRow:
    """One row of the work list: a thread or a request, its age and its answer limit."""

    id: str
    kind: str
    status: str
    patient: str
    created: datetime | None
    due: datetime | None
    overdue: bool
    thread_id: str | None
    medication_id: str | None
    note: str
    reason: str
    notice_failed: datetime | None = None
    """When the e-mail notice to the patient about it finally failed: the office calls."""

    @property
    def due_day(self) -> datetime | None:
        """The last day to answer: the limit is the midnight that ends it."""
        return self.due - timedelta(minutes=1) if self.due is not None else None

    @classmethod
    def from_task(cls, task: Mapping[str, Any]) -> InboxRow:
        overdue = any(
            _obj(e).get("url") == _OVERDUE and _obj(e).get("valueBoolean") is True
            for e in _arr(task.get("extension"))
        )
        notes = _arr(task.get("note"))
        failed = [
            _obj(e).get("valueDateTime")
            for e in _arr(task.get("extension"))
            if _obj(e).get("url") == _NOTICE_FAILED
        ]
        return cls(
            id=_s(task.get("id")),
            kind=_code(task.get("code"), _REQUEST_SYSTEM),
            status=_s(task.get("status")),
            patient=_nin(task.get("for")),
            created=_when(task.get("authoredOn")),
            due=_when(_obj(_obj(task.get("restriction")).get("period")).get("end")),
            overdue=overdue,
            thread_id=_ref_id(task.get("focus"), "Communication"),
            medication_id=_ref_id(task.get("focus"), "MedicationRequest"),
            note=_s(_obj(notes[0]).get("text")) if notes else "",
            reason=_s(_obj(task.get("statusReason")).get("text")),
            notice_failed=_when(failed[0]) if failed else None,
        )


@dataclass(frozen=True, slots=True)
class MessageRow:
    """One message of a thread as the office reads it."""

    id: str
    thread_id: str
    category: str
    from_office: bool
    author: str
    text: str
    sent: datetime | None
    patient: str
    photos: tuple[str, ...] = ()
    """The ids of the message's photos (`Binary/{id}` of the dialogue service)."""


def _photo_ids(payload: list[Any]) -> tuple[str, ...]:
    """The Binary ids of a message's photos; a URL of any other shape is left out."""
    ids = []
    for item in payload[1:]:
        url = _s(_obj(_obj(item).get("contentAttachment")).get("url"))
        found = url.removeprefix("Binary/")
        if url.startswith("Binary/") and _PHOTO_ID.fullmatch(found):
            ids.append(found)
    return tuple(ids)


def thread_rows(resources: Sequence[Mapping[str, Any]]) -> list[MessageRow]:
    """The messages of a thread, oldest first."""
    out = []
    for m in resources:
        thread = next(
            (
                _s(_obj(e).get("valueId"))
                for e in _arr(m.get("extension"))
                if _obj(e).get("url") == _THREAD
            ),
            _s(m.get("id")),
        )
        sender = _obj(m.get("sender"))
        items = _arr(m.get("payload"))
        payload = _obj((items or [{}])[0])
        out.append(
            MessageRow(
                id=_s(m.get("id")),
                thread_id=thread,
                category=_code(m.get("category"), CATEGORY_SYSTEM),
                from_office=_obj(sender.get("identifier")).get("system") == _ORGNR_SYSTEM,
                author=_s(sender.get("display")),
                text=_s(payload.get("contentString")),
                sent=_when(m.get("sent")),
                patient=_nin(m.get("subject")),
                photos=_photo_ids(items),
            )
        )
    out.sort(key=lambda r: (r.sent.timestamp() if r.sent else 0.0, r.id))
    return out


@dataclass(frozen=True, slots=True)
class SlotRow:
    id: str
    start: datetime | None
    end: datetime | None
    mode: str
    service: str = "appointment-booking"
    """What the slot is for: appointment-booking (a consultation) or flu-vaccine."""


@dataclass(frozen=True, slots=True)
class AppointmentRow:
    id: str
    patient: str
    start: datetime | None
    end: datetime | None
    mode: str
    note: str
    status: str = "booked"
    """booked, or proposed: waiting for the office to confirm it."""
    service: str = "appointment-booking"
    """What was booked: appointment-booking (a consultation) or flu-vaccine."""


@dataclass(frozen=True, slots=True)
class ServiceRow:
    code: str
    active: bool
    closed: str
    """The sentence patients see while an absence closes it ("" when open)."""


@dataclass(frozen=True, slots=True)
class OfficeState:
    name: str
    information: str
    services: tuple[ServiceRow, ...]
    confirm_bookings: bool = False
    """The office confirms each booking by a patient."""


@dataclass
class DialogueClient:
    """Calls to the dialogue service with one DPoP-bound token of its audience."""

    http: httpx.AsyncClient
    fhir: str
    session: HubSession
    deadline_s: float

    async def _send(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None, body: Any = None
    ) -> dict[str, Any]:
        url = f"{self.fhir}/{path}"
        headers = self.session.headers(method, url)
        if body is not None:
            headers["content-type"] = "application/fhir+json"
        try:
            response = await self.http.request(
                method,
                url,
                params=dict(params or {}),
                json=body,
                headers=headers,
                timeout=self.deadline_s,
            )
        except httpx.HTTPError:
            raise HubUnavailable() from None
        if len(response.content) > _MAX_BYTES:
            raise HubUnavailable()
        try:
            answer = response.json()
        except ValueError:
            raise HubUnavailable() from None
        if not isinstance(answer, dict):
            raise HubUnavailable()
        if response.status_code in (401, 403) and "issue" not in answer:
            raise HubRefused()
        if 400 <= response.status_code < 500:
            issue = _obj((_arr(answer.get("issue")) or [{}])[0])
            raise ClinicRefused(response.status_code, _s(issue.get("diagnostics")))
        if response.status_code >= 500:
            raise HubUnavailable()
        return answer

    @staticmethod
    def _resources(bundle: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [
            e["resource"]
            for e in _arr(bundle.get("entry"))
            if isinstance(e, dict) and isinstance(e.get("resource"), dict)
        ]

    async def inbox(
        self, office: str, *, kind: str | None, status: str, count: int, cursor: str | None
    ) -> tuple[list[InboxRow], int, str | None]:
        """One page of the work list, its total, and the next page's cursor."""
        params = {"organization": office, "status": status, "_count": str(count)}
        if kind:
            params["code"] = kind
        if cursor:
            params["_cursor"] = cursor
        bundle = await self._send("GET", "Task", params=params)
        rows = [InboxRow.from_task(t) for t in self._resources(bundle)]
        following = None
        for link in _arr(bundle.get("link")):
            if _obj(link).get("relation") == "next":
                try:
                    query = parse_qs(urlsplit(_s(_obj(link).get("url"))).query)
                except ValueError:
                    query = {}
                found = query.get("_cursor")
                following = found[0] if found else None
        total = bundle.get("total")
        count = total if isinstance(total, int) and not isinstance(total, bool) else len(rows)
        return rows, max(count, 0), following

    async def failed_notices(self, office: str) -> list[InboxRow]:
        """The office's threads and requests whose notice to the patient failed (recent)."""
        bundle = await self._send("GET", f"Organization/{office}/$failed-notices")
        return [InboxRow.from_task(t) for t in self._resources(bundle)]

    async def task(self, task_id: str) -> InboxRow:
        return InboxRow.from_task(await self._send("GET", f"Task/{task_id}"))

    async def thread(self, office: str, thread_id: str) -> list[MessageRow]:
        bundle = await self._send(
            "GET", "Communication", params={"organization": office, "thread": thread_id}
        )
        return thread_rows(self._resources(bundle))

    async def answer(
        self, in_response_to: str, text: str, photos: Sequence[tuple[str, bytes]] = ()
    ) -> None:
        """Answer in a thread; `photos` (content type, bytes) already checked and cleaned."""
        payload: list[dict[str, Any]] = [{"contentString": text}]
        payload += [
            {
                "contentAttachment": {
                    "contentType": kind,
                    "data": base64.b64encode(data).decode("ascii"),
                }
            }
            for kind, data in photos
        ]
        await self._send(
            "POST",
            "Communication",
            body={
                "resourceType": "Communication",
                "status": "completed",
                "inResponseTo": [{"reference": f"Communication/{in_response_to}"}],
                "payload": payload,
            },
        )

    async def photo(self, attachment_id: str) -> tuple[str, bytes]:
        """One photo of a message the worker may read: (content type, bytes). Anything but a
        JPEG or PNG from the service is refused as unavailable, never passed on."""
        url = f"{self.fhir}/Binary/{attachment_id}"
        try:
            response = await self.http.get(
                url, headers=self.session.headers("GET", url), timeout=self.deadline_s
            )
        except httpx.HTTPError:
            raise HubUnavailable() from None
        if response.status_code in (403, 404):
            raise ClinicRefused(response.status_code, "")
        if response.status_code == 401:
            raise HubRefused()
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if (
            response.status_code != 200
            or kind not in _PHOTO_TYPES
            or len(response.content) > _MAX_PHOTO_ANSWER
        ):
            raise HubUnavailable()
        return kind, response.content

    async def close(self, task_id: str) -> None:
        await self._send("POST", f"Task/{task_id}/$close", body={"resourceType": "Parameters"})

    async def handle(self, task_id: str, *, renewed: bool, reason: str | None) -> None:
        params: list[dict[str, Any]] = [
            {"name": "status", "valueCode": "completed" if renewed else "rejected"}
        ]
        if reason:
            params.append({"name": "reason", "valueString": reason})
        await self._send(
            "POST",
            f"Task/{task_id}/$handle",
            body={"resourceType": "Parameters", "parameter": params},
        )

    async def medication_name(self, patient: str, medication_id: str) -> str:
        bundle = await self._send("GET", "MedicationRequest", params={"patient": patient})
        for m in self._resources(bundle):
            if m.get("id") == medication_id:
                concept = _obj(m.get("medicationCodeableConcept"))
                dosage = _obj((_arr(m.get("dosageInstruction")) or [{}])[0])
                return f"{_s(concept.get('text'))} – {_s(dosage.get('text'))}".strip(" –")
        return ""

    async def free_slots(self, office: str) -> list[SlotRow]:
        bundle = await self._send("GET", "Slot", params={"organization": office})
        return [
            SlotRow(
                _s(s.get("id")),
                _when(s.get("start")),
                _when(s.get("end")),
                _code(s.get("serviceType"), _VISIT_SYSTEM),
                _what_for(s.get("serviceType")),
            )
            for s in self._resources(bundle)
        ]

    async def appointments(self, office: str) -> list[AppointmentRow]:
        bundle = await self._send("GET", "Appointment", params={"organization": office})
        out = []
        for a in self._resources(bundle):
            patient = next(
                (
                    _nin(_obj(p).get("actor"))
                    for p in _arr(a.get("participant"))
                    if _nin(_obj(p).get("actor"))
                ),
                "",
            )
            out.append(
                AppointmentRow(
                    _s(a.get("id")),
                    patient,
                    _when(a.get("start")),
                    _when(a.get("end")),
                    _code(a.get("serviceType"), _VISIT_SYSTEM),
                    _s(a.get("comment")),
                    "proposed" if a.get("status") == "proposed" else "booked",
                    _what_for(a.get("serviceType")),
                )
            )
        return out

    async def confirm(self, appointment_id: str) -> None:
        await self._send(
            "POST", f"Appointment/{appointment_id}/$confirm", body={"resourceType": "Parameters"}
        )

    async def publish_slot(self, office: str, start: datetime, end: datetime, mode: str) -> None:
        await self._send(
            "POST",
            "Slot",
            body={
                "resourceType": "Slot",
                "schedule": {"reference": f"Schedule/{office}"},
                "status": "free",
                "start": start.isoformat(),
                "end": end.isoformat(),
                "serviceType": [{"coding": [{"system": _VISIT_SYSTEM, "code": mode}]}],
            },
        )

    async def publish_series(
        self, office: str, start: datetime, end: datetime, minutes: int
    ) -> None:
        """Publish back-to-back flu-vaccine slots of `minutes` from `start` until `end`."""
        await self._send(
            "POST",
            "Slot/$publish-series",
            body={
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "schedule", "valueReference": {"reference": f"Schedule/{office}"}},
                    {"name": "start", "valueDateTime": start.isoformat()},
                    {"name": "end", "valueDateTime": end.isoformat()},
                    {"name": "minutes", "valuePositiveInt": minutes},
                    {"name": "service", "valueCode": "flu-vaccine"},
                ],
            },
        )

    async def cancel(self, appointment_id: str) -> None:
        await self._send(
            "POST", f"Appointment/{appointment_id}/$cancel", body={"resourceType": "Parameters"}
        )

    async def move(self, appointment_id: str, slot_id: str) -> None:
        await self._send(
            "POST",
            f"Appointment/{appointment_id}/$move",
            body={
                "resourceType": "Parameters",
                "parameter": [{"name": "slot", "valueReference": {"reference": f"Slot/{slot_id}"}}],
            },
        )

    async def office(self, office: str) -> OfficeState:
        bundle = await self._send("GET", "HealthcareService", params={"organization": office})
        services = []
        name = information = ""
        confirming = False
        for s in self._resources(bundle):
            for e in _arr(s.get("extension")):
                if _obj(e).get("url") == _CONFIRM_BOOKINGS:
                    confirming = confirming or _obj(e).get("valueBoolean") is True
            name = _s(_obj(s.get("providedBy")).get("display")) or name
            information = _s(s.get("comment"))
            closed = ""
            for n in _arr(s.get("notAvailable")):
                closed = _s(_obj(n).get("description")) or closed
            services.append(
                ServiceRow(_code(s.get("type"), _SERVICE_SYSTEM), s.get("active") is True, closed)
            )
        return OfficeState(name, information, tuple(services), confirming)

    async def set_confirm_bookings(self, office: str, active: bool) -> None:
        await self._send(
            "POST",
            f"Organization/{office}/$set-confirm-bookings",
            body={
                "resourceType": "Parameters",
                "parameter": [{"name": "active", "valueBoolean": active}],
            },
        )

    async def set_service(self, office: str, service: str, active: bool) -> None:
        await self._send(
            "POST",
            f"Organization/{office}/$set-service",
            body={
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "service", "valueCode": service},
                    {"name": "active", "valueBoolean": active},
                ],
            },
        )

    async def set_information(self, office: str, text: str) -> None:
        params = [{"name": "message", "valueString": text}] if text else []
        await self._send(
            "POST",
            f"Organization/{office}/$set-information",
            body={"resourceType": "Parameters", "parameter": params},
        )

    async def register_absence(
        self,
        office: str,
        *,
        start: str,
        end: str,
        services: Sequence[str],
        substitute: str | None,
    ) -> None:
        params: list[dict[str, Any]] = [
            {"name": "start", "valueDateTime": start},
            {"name": "end", "valueDateTime": end},
            *({"name": "service", "valueCode": s} for s in services),
        ]
        if substitute:
            params.append({"name": "substitute", "valueString": substitute})
        await self._send(
            "POST",
            f"Organization/{office}/$register-absence",
            body={"resourceType": "Parameters", "parameter": params},
        )
