"""The KITH adapter's work over the dialogue service: the office's outbox, answers applied.

`outbox` renders what waits for the office (open threads and renewals from the work list, the
office's upcoming appointments) as MsgHead messages; `apply_answer` reads an answer
(`kith.parse`) and does what the FHIR API would do with it, through the same `DialogueService`
methods, so the same checks and audit apply. A message that does not parse, is not an answer,
names another patient than the thing it answers or is not from the caller's office is refused
before anything is written.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from lxml import etree  # type: ignore[import-untyped]

from onerecord.dialogue.errors import BadInput, Conflict, NotAllowed, NotFound
from onerecord.dialogue.kith import (
    AnswerTopic,
    KithMessage,
    KithRefusal,
    MsgType,
    Party,
    RequestTopic,
    parse,
    render,
)
from onerecord.dialogue.kith_ical import CalendarEvent, EventStatus, Summary
from onerecord.dialogue.model import (
    Appointment,
    AppointmentStatus,
    RequestKind,
    RequestStatus,
    Sender,
    VisitMode,
)
from onerecord.dialogue.service import Caller, DialogueService
from onerecord.domain.xml import hardened_xml_parser

__all__ = ["OUTBOX_NS", "Applied", "apply_answer", "appointment_event", "outbox", "reply_id"]

OUTBOX_NS = "urn:onerecord:dialogue:kith-outbox"


@dataclass(frozen=True, slots=True)
class Applied:
    """What an answer did: its topic and the id of what it changed or confirmed."""

    topic: AnswerTopic
    target: str
    result: str


def appointment_event(a: Appointment, stamp: datetime) -> CalendarEvent:
    """The appointment as an iCalendar VEVENT (no note, no reason: no health data)."""
    return CalendarEvent(
        uid=f"{a.id}@onerecord",
        start=a.start,
        end=a.end,
        stamp=stamp,
        summary=Summary.VIDEO if a.mode is VisitMode.VIDEO else Summary.IN_PERSON,
        status=(
            EventStatus.CONFIRMED
            if a.status is AppointmentStatus.BOOKED
            else EventStatus.TENTATIVE
            if a.status is AppointmentStatus.PROPOSED
            else EventStatus.CANCELLED
        ),
    )


async def outbox(svc: DialogueService, caller: Caller, *, office: str, network: Party) -> bytes:
    """The office's pending requests and upcoming appointments as MsgHead XML in one envelope."""
    now = svc.clock()
    page = await svc.inbox(caller, office=office, count=100)
    view = await svc.office_view(caller, office=office)
    receiver = Party(view.office.name, office)
    out: list[KithMessage] = []
    for req in page.items:
        if req.kind is RequestKind.PRESCRIPTION_RENEWAL:
            meds = await svc.medications(caller, patient=req.patient)
            name = next((m.name for m in meds if m.id == req.medication_id), "ukjent legemiddel")
            text = f"Fornying av resept: {name}" + (f"\n{req.note}" if req.note else "")
            out.append(
                KithMessage(
                    MsgType.FORESPORSEL,
                    req.id,
                    now,
                    network,
                    receiver,
                    req.patient,
                    RequestTopic.PRESCRIPTION_RENEWAL,
                    text,
                )
            )
            continue
        if req.thread_id is None:
            continue
        thread = await svc.messages(caller, office=office, thread=req.thread_id)
        asked = [m for m in thread if m.sender is Sender.CITIZEN]
        if not asked:
            continue
        last = max(asked, key=lambda m: (m.sent, m.id))
        topic = (
            RequestTopic.E_CONSULTATION
            if req.kind is RequestKind.E_CONSULTATION
            else RequestTopic.CONTACT_OFFICE
        )
        ref = last.in_response_to
        out.append(
            KithMessage(
                MsgType.FORESPORSEL,
                last.id,
                now,
                network,
                receiver,
                last.patient,
                topic,
                last.text,
                parent=ref,
                conversation=last.thread_id if ref is not None else None,
            )
        )
    for a in await svc.office_appointments(caller, office=office):
        out.append(
            KithMessage(
                MsgType.FORESPORSEL,
                a.id,
                now,
                network,
                receiver,
                a.patient,
                RequestTopic.APPOINTMENT,
                a.note or "Timebestilling fra innbygger",
                event=appointment_event(a, now),
            )
        )
    root = etree.Element(f"{{{OUTBOX_NS}}}Outbox", organization=office, count=str(len(out)))
    for msg in out:
        root.append(etree.fromstring(render(msg), hardened_xml_parser()))
    body: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return body


async def apply_answer(
    svc: DialogueService, caller: Caller, data: bytes, *, network: Party
) -> Applied:
    """Read an answer in MsgHead + Dialogmelding and apply it as the FHIR API would."""
    try:
        msg = parse(data)
    except KithRefusal as exc:
        raise BadInput(f"the message was refused: {exc.reason}", reason="kith") from None
    if msg.msg_type is not MsgType.SVAR or not isinstance(msg.topic, AnswerTopic):
        raise BadInput("only answers (DIALOG_SVAR) are accepted here", reason="kith")
    if msg.receiver.orgnr != network.orgnr:
        raise BadInput("the answer is not addressed to this service", reason="kith")
    staff = caller.staff
    if staff is None or staff.point_of_care.id != msg.sender.orgnr:
        raise NotAllowed("the sender is not your office", reason="other-office")
    assert msg.parent is not None
    topic = msg.topic
    if topic is AnswerTopic.REPLY:
        earlier = await svc.message(caller, message_id=msg.parent)
        _same_patient(earlier.patient, msg)
        if not msg.text.strip():
            raise BadInput("a reply has text", reason="kith")
        sent, _ = await svc.send(
            caller,
            patient=None,
            text=msg.text,
            category=None,
            in_response_to=earlier.id,
            message_id=reply_id(msg),
        )
        return Applied(topic, sent.id, "replied")
    if topic in (AnswerTopic.RENEWED, AnswerTopic.REFUSED):
        req = await svc.request(caller, request_id=msg.parent)
        _same_patient(req.patient, msg)
        if req.kind is not RequestKind.PRESCRIPTION_RENEWAL:
            raise BadInput("renewed/refused answers a prescription renewal", reason="kith")
        wanted = RequestStatus.COMPLETED if topic is AnswerTopic.RENEWED else RequestStatus.REJECTED
        same_reason = topic is AnswerTopic.RENEWED or (req.status_reason or "") == msg.text.strip()
        if req.status is wanted and same_reason:
            return Applied(topic, req.id, req.status.value)  # the same answer, sent again
        done = await svc.handle_renewal(
            caller,
            request_id=req.id,
            renewed=topic is AnswerTopic.RENEWED,
            reason=msg.text.strip() or None,
        )
        return Applied(topic, done.id, done.status.value)
    appointment = await _appointment(svc, caller, msg)
    if topic is AnswerTopic.CONFIRMED:
        if appointment.status is AppointmentStatus.PROPOSED:
            appointment = await svc.confirm(caller, appointment_id=appointment.id)
        if appointment.status is not AppointmentStatus.BOOKED:
            raise Conflict("the appointment is not booked", reason="not-booked")
        return Applied(topic, appointment.id, appointment.status.value)
    if topic is AnswerTopic.CANCELLED:
        if appointment.status is AppointmentStatus.CANCELLED:
            return Applied(topic, appointment.id, appointment.status.value)  # sent again
        cancelled = await svc.cancel(caller, appointment_id=appointment.id)
        return Applied(topic, cancelled.id, cancelled.status.value)
    event = msg.event
    assert event is not None  # kith.parse requires it for MOVED
    if event.uid != f"{appointment.id}@onerecord":
        raise BadInput("the iCalendar UID is not the appointment's", reason="kith")
    if (appointment.start, appointment.end) == (event.start, event.end):
        return Applied(topic, appointment.id, appointment.status.value)  # already there
    slots = await svc.free_slots(caller, office=appointment.office)
    slot = next((s for s in slots if s.start == event.start and s.end == event.end), None)
    if slot is None:
        raise NotFound("no free slot of the office at that time")
    moved = await svc.move(caller, appointment_id=appointment.id, slot_id=slot.id)
    return Applied(topic, moved.id, moved.status.value)


def reply_id(msg: KithMessage) -> str:
    """The id of the reply an answer makes: the same for the same sender and MsgId, so that
    an answer sent again is not delivered twice."""
    digest = hashlib.sha256(f"kith:{msg.sender.orgnr}:{msg.msg_id}".encode()).hexdigest()
    return f"k{digest[:31]}"


def _same_patient(patient: str, msg: KithMessage) -> None:
    if patient != msg.patient:
        raise BadInput("the patient is not the one of the message answered", reason="kith")


async def _appointment(svc: DialogueService, caller: Caller, msg: KithMessage) -> Appointment:
    assert msg.parent is not None
    found = [a for a in await svc.appointments(caller, patient=msg.patient) if a.id == msg.parent]
    if not found:
        raise NotFound("no such appointment of this patient")
    return found[0]
