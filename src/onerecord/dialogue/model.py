"""What the dialogue with the GP office is made of: pure, frozen value types, no I/O.

A GP office (legekontor, by its organisation number) offers services, each switchable
(`Service`); it has an information message; citizens on its list write in threads of messages
(`Message`, FHIR Communication with inResponseTo); e-consultations and prescription renewals
are requests with a state (`Request`, FHIR Task); the office publishes slots that citizens book
as appointments (FHIR Slot/Appointment); an absence closes chosen services for a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

__all__ = [
    "SLOT_SERVICES",
    "Appointment",
    "AppointmentStatus",
    "Attachment",
    "Medication",
    "Message",
    "Office",
    "Request",
    "RequestKind",
    "RequestStatus",
    "Sender",
    "Service",
    "Slot",
    "ThreadCategory",
    "VisitMode",
]


class Service(StrEnum):
    """The services a GP office may offer on the portal, each switched on or off by the office."""

    APPOINTMENT_BOOKING = "appointment-booking"
    PRESCRIPTION_RENEWAL = "prescription-renewal"
    E_CONSULTATION = "e-consultation"
    CONTACT_OFFICE = "contact-office"
    FLU_VACCINE = "flu-vaccine"

    @property
    def name_nb(self) -> str:
        """The name a citizen sees (bokmål), as the first word of a sentence."""
        return _SERVICE_NAMES_NB[self]


_SERVICE_NAMES_NB = {
    Service.APPOINTMENT_BOOKING: "Timebestilling",
    Service.PRESCRIPTION_RENEWAL: "Fornying av resept",
    Service.E_CONSULTATION: "E-konsultasjon",
    Service.CONTACT_OFFICE: "Kontakt med legekontoret",
    Service.FLU_VACCINE: "Bestilling av influensavaksine",
}


SLOT_SERVICES = frozenset({Service.APPOINTMENT_BOOKING, Service.FLU_VACCINE})
"""The services booked through slots: an ordinary consultation, or a flu vaccine (its own
slots, often many short ones on a vaccination day)."""


class ThreadCategory(StrEnum):
    """What a thread is about: a clinical e-consultation or an administrative message."""

    E_CONSULTATION = "e-consultation"
    CONTACT_OFFICE = "contact-office"

    @property
    def service(self) -> Service:
        """The office service a new thread of this kind needs."""
        return Service(self.value)


class Sender(StrEnum):
    """Who wrote a message: the citizen's side or the office."""

    CITIZEN = "citizen"
    OFFICE = "office"


class RequestKind(StrEnum):
    """A request the office must answer (each is a row of the clinic's work list).

    A contact-office thread is one too, so that the work list holds every thread and request;
    the citizen's Task search does not show it (it carries no fee and no promised answer time).
    """

    E_CONSULTATION = "e-consultation"
    PRESCRIPTION_RENEWAL = "prescription-renewal"
    CONTACT_OFFICE = "contact-office"


class RequestStatus(StrEnum):
    """Where a request stands (FHIR Task.status values)."""

    REQUESTED = "requested"
    COMPLETED = "completed"
    REJECTED = "rejected"


class VisitMode(StrEnum):
    """How the consultation of a slot takes place."""

    IN_PERSON = "in-person"
    VIDEO = "video"


class AppointmentStatus(StrEnum):
    """FHIR Appointment.status values used here."""

    PROPOSED = "proposed"
    """Booked by the patient at an office that confirms bookings: waits for its `$confirm`."""
    BOOKED = "booked"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Office:
    """A GP office: its services switched on, and its information message."""

    orgnr: str
    name: str
    phone: str
    services: frozenset[Service]
    information: str | None = None
    confirm_bookings: bool = False
    """The office confirms each booking by a patient (`proposed` until then)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a thread; `in_response_to` is the message it answers."""

    id: str
    thread_id: str
    office: str
    patient: str
    category: ThreadCategory
    sender: Sender
    author: str
    """Who wrote it: the citizen's or the health worker's identity number (never shown)."""
    author_name: str | None
    text: str
    sent: datetime
    in_response_to: str | None = None
    attachments: tuple[Attachment, ...] = ()
    """The photos sent with it: with their bytes when stored, listed without them when read
    (`DialogueStore.attachment` reads one with its bytes)."""


@dataclass(frozen=True, slots=True)
class Request:
    """An e-consultation or a prescription renewal, with its state and answer limit."""

    id: str
    kind: RequestKind
    office: str
    patient: str
    requester: str
    created: datetime
    due: datetime
    status: RequestStatus
    thread_id: str | None = None
    medication_id: str | None = None
    note: str | None = None
    fee_acknowledged: datetime | None = None
    status_reason: str | None = None
    handled: datetime | None = None
    notice_failed: datetime | None = None
    """When the last e-mail notice about it finally failed (the office's view only)."""


@dataclass(frozen=True, slots=True)
class Medication:
    """A medication on the person's current list (synthetic, from the GP's list)."""

    id: str
    patient: str
    office: str
    name: str
    dosage: str


@dataclass(frozen=True, slots=True)
class Slot:
    """A time the office offers; `free` until booked."""

    id: str
    office: str
    start: datetime
    end: datetime
    mode: VisitMode
    free: bool = True
    service: Service = Service.APPOINTMENT_BOOKING
    """What the slot is for (one of `SLOT_SERVICES`): a consultation or a flu vaccine."""


@dataclass(frozen=True, slots=True)
class Appointment:
    """A booked slot for a patient; cancelled appointments free their slot."""

    id: str
    slot_id: str
    office: str
    patient: str
    booked_by: str
    start: datetime
    end: datetime
    mode: VisitMode
    status: AppointmentStatus
    note: str | None = None
    service: Service = Service.APPOINTMENT_BOOKING
    """What was booked: its slot's service (a consultation or a flu vaccine)."""


@dataclass(frozen=True, slots=True)
class Attachment:
    """A photo sent with a message: checked and stripped of metadata (`dialogue.images`)."""

    id: str
    message_id: str
    content_type: str
    size: int
    data: bytes = b""
