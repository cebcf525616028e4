"""Dialogue with the GP office: threads, e-consultations, renewals, appointments and absence.

The pure rules live in `model`, `calendar`, `absence`, `representation` and `rules`; the
service, its store and its FHIR API are built on them (docs/dialogue.md).
"""

from __future__ import annotations

from onerecord.dialogue.absence import Absence, closed_sentence, closing_absence, is_closed
from onerecord.dialogue.calendar import OSLO, answer_due, is_working_day, local_to_utc
from onerecord.dialogue.errors import BadInput, Conflict, DialogueError, NotAllowed, NotFound
from onerecord.dialogue.model import (
    Appointment,
    AppointmentStatus,
    Attachment,
    Medication,
    Message,
    Office,
    Request,
    RequestKind,
    RequestStatus,
    Sender,
    Service,
    Slot,
    ThreadCategory,
    VisitMode,
)
from onerecord.dialogue.representation import (
    ActingFacts,
    Relation,
    RepresentationRefusal,
    may_act,
)
from onerecord.dialogue.rules import ServiceState, service_state

__all__ = [
    "OSLO",
    "Absence",
    "ActingFacts",
    "Appointment",
    "AppointmentStatus",
    "Attachment",
    "BadInput",
    "Conflict",
    "DialogueError",
    "Medication",
    "Message",
    "NotAllowed",
    "NotFound",
    "Office",
    "Relation",
    "RepresentationRefusal",
    "Request",
    "RequestKind",
    "RequestStatus",
    "Sender",
    "Service",
    "ServiceState",
    "Slot",
    "ThreadCategory",
    "VisitMode",
    "answer_due",
    "closed_sentence",
    "closing_absence",
    "is_closed",
    "is_working_day",
    "local_to_utc",
    "may_act",
    "service_state",
]
