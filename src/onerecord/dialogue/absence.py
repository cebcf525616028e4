"""The GP's absence: which services it closes, when, and the sentence the citizen sees.

An absence runs from a local (Europe/Oslo) wall-clock time to another, to the minute; the
services it names are closed from the first minute up to, not including, the last. A whole-day
absence from the 14th to the 24th is entered as 14th 00:00 to 25th 00:00, and the service
opens again on the 25th. Local times are turned into instants once (`calendar.local_to_utc`),
so the decision holds across daylight-saving changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time

from onerecord.dialogue.calendar import OSLO, local_to_utc
from onerecord.dialogue.errors import BadInput
from onerecord.dialogue.model import Service

__all__ = [
    "Absence",
    "closed_sentence",
    "closing_absence",
    "is_closed",
]

_MONTHS_NB = (
    "januar",
    "februar",
    "mars",
    "april",
    "mai",
    "juni",
    "juli",
    "august",
    "september",
    "oktober",
    "november",
    "desember",
)


@dataclass(frozen=True, slots=True)
class Absence:
    """The GP away from `start` to `end` (naive Oslo wall-clock times, whole minutes)."""

    id: str
    office: str
    start: datetime
    end: datetime
    services: frozenset[Service]
    substitute: str | None = None

    def __post_init__(self) -> None:
        for moment in (self.start, self.end):
            if moment.tzinfo is not None:
                raise BadInput("an absence is given in Oslo local time, without an offset")
            if moment.second or moment.microsecond:
                raise BadInput("an absence starts and ends on a whole minute")
        if self.start_utc >= self.end_utc:
            raise BadInput("an absence must end after it starts")
        if not self.services:
            raise BadInput("an absence closes at least one service")

    @property
    def start_utc(self) -> datetime:
        """The first instant the services are closed."""
        return local_to_utc(self.start)

    @property
    def end_utc(self) -> datetime:
        """The first instant the services are open again."""
        return local_to_utc(self.end)

    def closes(self, service: Service, at: datetime) -> bool:
        """True when this absence closes `service` at the instant `at`."""
        if at.tzinfo is None:
            raise ValueError("at must carry a time zone")
        return service in self.services and self.start_utc <= at < self.end_utc


def closing_absence(absences: Iterable[Absence], service: Service, at: datetime) -> Absence | None:
    """Return the absence that closes `service` at `at`, the one ending last if several."""
    closing = [a for a in absences if a.closes(service, at)]
    return max(closing, key=lambda a: a.end_utc) if closing else None


def is_closed(absences: Iterable[Absence], service: Service, at: datetime) -> bool:
    """True when any absence closes `service` at the instant `at`."""
    return closing_absence(absences, service, at) is not None


def _reopens(absence: Absence) -> str:
    local = absence.end_utc.astimezone(OSLO)
    day = f"{local.day}. {_MONTHS_NB[local.month - 1]}"
    if local.time() == time():
        return day
    return f"{day} kl. {local:%H.%M}"


def closed_sentence(absence: Absence, service: Service) -> str:
    """The sentence the citizen sees while `service` is closed (bokmål).

    "E-konsultasjon er midlertidig stengt av fastlegen din, og åpner igjen 25. april", and the
    substitute the GP named, if any.
    """
    sentence = (
        f"{service.name_nb} er midlertidig stengt av fastlegen din, "
        f"og åpner igjen {_reopens(absence)}."
    )
    if absence.substitute:
        sentence += f" Vikar i mellomtiden: {absence.substitute}."
    return sentence
