"""The office's rules for each request, pure: is the service open, is the input acceptable.

References: issue 15 (e-consultation for non-urgent matters only, the fee acknowledged before
writing and stored with its time, the answer within 5 working days; a renewal only of a current
medication; a slot booked once, cancelled appointments free their slot).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from onerecord.dialogue.absence import Absence, closed_sentence, closing_absence
from onerecord.dialogue.errors import BadInput, Conflict
from onerecord.dialogue.model import Office, Service

__all__ = [
    "MAX_NOTE_CHARS",
    "MAX_TEXT_CHARS",
    "URGENT_HELP_NB",
    "ServiceState",
    "check_e_consultation",
    "check_text",
    "require_open",
    "service_state",
]

MAX_TEXT_CHARS = 4000
MAX_NOTE_CHARS = 500
URGENT_HELP_NB = (
    "Ved akutt sykdom eller skade: ring 113. Trenger du legehjelp som ikke kan vente: ring "
    "legevakten på 116 117, eller legekontoret ditt."
)


@dataclass(frozen=True, slots=True)
class ServiceState:
    """Whether a service is open now and, when closed by an absence, what the citizen reads."""

    service: Service
    offered: bool
    open: bool
    sentence: str | None = None
    absence: Absence | None = None


def service_state(
    office: Office, absences: Iterable[Absence], service: Service, at: datetime
) -> ServiceState:
    """Return the state of `service` at `at`: off, closed by an absence, or open."""
    if service not in office.services:
        return ServiceState(service, offered=False, open=False)
    absence = closing_absence(absences, service, at)
    if absence is not None:
        return ServiceState(
            service, True, False, closed_sentence(absence, service), absence=absence
        )
    return ServiceState(service, offered=True, open=True)


def require_open(state: ServiceState) -> None:
    """Raise Conflict unless the service is on and open."""
    if not state.offered:
        raise Conflict(
            f"the office does not offer {state.service.value}", reason="service-not-offered"
        )
    if not state.open:
        raise Conflict(state.sentence or "the service is closed", reason="service-closed")


def check_text(text: str, *, what: str = "text", limit: int = MAX_TEXT_CHARS) -> str:
    """Return the stripped text, or raise BadInput when empty, too long or with control codes."""
    cleaned = text.strip()
    if not cleaned:
        raise BadInput(f"{what} is empty")
    if len(cleaned) > limit:
        raise BadInput(f"{what} is longer than {limit} characters")
    if any(not (c.isprintable() or c in "\n\r\t") for c in cleaned):
        raise BadInput(f"{what} holds control characters")
    return cleaned


def check_e_consultation(*, fee_acknowledged: bool, urgent: bool) -> None:
    """An e-consultation is for non-urgent matters, with the patient fee acknowledged."""
    if urgent:
        raise BadInput(
            "e-consultation is for non-urgent matters only: " + URGENT_HELP_NB,
            reason="urgent-not-allowed",
        )
    if not fee_acknowledged:
        raise BadInput(
            "the patient fee and the answer time must be acknowledged before sending",
            reason="fee-not-acknowledged",
        )
