"""The demo's GP offices: the dialogue service's database seeded from the synthetic population.

Every citizen of the population is on the list of their fastlege (`synth.demographics.
general_practitioner`: a physician at a GP office of their home region); each of those offices
offers every service, has an information message and free slots (in person and video) on the
next working days from 08.30; each person has two current medications from the GP's list
(chosen by a digest of the number, no random state), and the adult of the cast one hospital
appointment at a hospital of their region, kept as a booked appointment at that hospital, whose
comment names the treating unit. The hospital is then the adult's treating unit (helsekontakt):
it takes contact messages (contact-office on) and does not let its appointments be cancelled
on the portal (appointment booking off). The adult's GP office also has two vaccination days
(flu-vaccine slots of 5 minutes from 09.00 to 11.00 on the 2nd and 5th working day ahead).

Everything is written straight into the service's database before it starts (the store, not
the API: the seeding is the registers' and the office's systems' part, not a user's).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

from onerecord.dialogue import (
    Appointment,
    AppointmentStatus,
    Medication,
    Office,
    Service,
    Slot,
    VisitMode,
    is_working_day,
    local_to_utc,
)
from onerecord.dialogue.database import make_engine, upgrade
from onerecord.dialogue.store import ListEntry, SqlDialogueStore
from onerecord.synth.demographics import contact_details, general_practitioner
from onerecord.synth.population import AddressProtection, Population

__all__ = ["DIALOGUE_AUDIENCE", "SeedSummary", "seed_dialogue", "write_contacts"]

DIALOGUE_AUDIENCE = "urn:onerecord:dialogue"
_HOSPITAL = "86.101"
_MEDICATIONS = (
    ("Metformin 500 mg tablett", "1 tablett morgen og kveld"),
    ("Atorvastatin 20 mg tablett", "1 tablett om kvelden"),
    ("Levotyroksin 50 mikrogram tablett", "1 tablett om morgenen"),
    ("Amlodipin 5 mg tablett", "1 tablett daglig"),
    ("Salbutamol 0,1 mg/dose inhalasjonsaerosol", "1–2 inhalasjoner ved behov"),
    ("Desloratadin 5 mg tablett", "1 tablett daglig i pollensesongen"),
)
_INFORMATION = (
    "Legekontoret holder stengt fredag ettermiddag fra kl. 12.00 denne uken. "
    "Husk å bestille influensavaksine før 1. desember."
)
_SLOT_TIMES = ((time(8, 30), VisitMode.IN_PERSON), (time(10, 0), VisitMode.VIDEO),
               (time(13, 15), VisitMode.IN_PERSON), (time(14, 40), VisitMode.VIDEO))  # fmt: skip
_SLOT_MINUTES = 20
_SLOT_DAYS = 8
_VACCINE_DAYS = (2, 5)
"""Which working days ahead are the vaccination days (1 = the next working day)."""
_VACCINE_HOURS = (time(9, 0), time(11, 0))
_VACCINE_MINUTES = 5


@dataclass(frozen=True, slots=True)
class SeedSummary:
    offices: int
    people: int
    slots: int
    vaccine_slots: int = 0


def _stable(nin: str, purpose: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{purpose}:{nin}".encode()).digest()[:8], "big")


def _phone(orgnr: str) -> str:
    digits = f"{_stable(orgnr, 'telefon') % 10**8:08d}"
    return f"2{digits[1]} {digits[2:4]} {digits[4:6]} {digits[6:8]}"


def write_contacts(path: Path, population: Population) -> int:
    """Write the contact register's extract the dialogue service reads (dialogue.contacts):
    e-mail, mobile and language of every living citizen, from `contact_details`; return how
    many. Written whole to a temporary file and renamed, mode 0600."""
    entries = {
        c.nin.value: asdict(contact_details(c, population.reference_date))
        for c in population.citizens
        if not c.deceased
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(entries, out, ensure_ascii=False)
    temporary.replace(path)
    return len(entries)


def _working_days(first: date, count: int) -> list[date]:
    days: list[date] = []
    day = first
    while len(days) < count:
        if is_working_day(day):
            days.append(day)
        day += timedelta(days=1)
    return days


async def seed_dialogue(
    db_url: str, population: Population, *, today: date, db_schema: str | None = None
) -> SeedSummary:
    """Write the offices, lists, medications, slots and the hospital appointment (idempotent:
    the same ids each run, so a demo started again in the same workdir rewrites them)."""
    engine = make_engine(db_url, schema=db_schema)
    try:
        await upgrade(engine)
        store = SqlDialogueStore(engine)
        offices: set[str] = set()
        people = 0
        for citizen in population.citizens:
            gp = general_practitioner(population, citizen)
            if gp is None:
                continue
            orgnr = gp.office.orgnr.value
            if orgnr not in offices:
                offices.add(orgnr)
                await store.put_office(
                    Office(orgnr, gp.office.name, _phone(orgnr), frozenset(Service), _INFORMATION)
                )
            nin = citizen.nin.value
            protected = citizen.protection is not AddressProtection.NONE
            await store.put_list_entry(
                ListEntry(nin, orgnr, gp.practitioner.name, address_protected=protected)
            )
            first = _stable(nin, "legemiddel") % len(_MEDICATIONS)
            for n in range(2):
                name, dosage = _MEDICATIONS[(first + n) % len(_MEDICATIONS)]
                await store.put_medication(Medication(f"med-{nin}-{n}", nin, orgnr, name, dosage))
            people += 1
        slots = 0
        for orgnr in sorted(offices):
            for day in _working_days(today + timedelta(days=1), _SLOT_DAYS):
                for at, mode in _SLOT_TIMES:
                    start = local_to_utc(datetime.combine(day, at))
                    slot = Slot(
                        f"slot-{orgnr}-{day:%Y%m%d}-{at:%H%M}",
                        orgnr,
                        start,
                        start + timedelta(minutes=_SLOT_MINUTES),
                        mode,
                    )
                    if await store.slot(slot.id) is None:
                        await store.add_slot(slot)
                        slots += 1
        await _hospital_appointment(store, population, today)
        vaccine = await _vaccination_days(store, population, today)
        return SeedSummary(len(offices), people, slots, vaccine)
    finally:
        await engine.dispose()


async def _vaccination_days(store: SqlDialogueStore, population: Population, today: date) -> int:
    """Flu-vaccine slots at the cast adult's GP office: many short slots on two days."""
    adult = population.cast.get("adult")
    gp = general_practitioner(population, adult) if adult is not None else None
    if gp is None:
        return 0
    orgnr = gp.office.orgnr.value
    days = _working_days(today + timedelta(days=1), max(_VACCINE_DAYS))
    first, last = _VACCINE_HOURS
    step = timedelta(minutes=_VACCINE_MINUTES)
    added = 0
    for n in _VACCINE_DAYS:
        day = days[n - 1]
        start, end = (
            local_to_utc(datetime.combine(day, first)),
            local_to_utc(datetime.combine(day, last)),
        )
        while start + step <= end:
            slot = Slot(
                f"flu-{orgnr}-{start:%Y%m%d%H%M}",
                orgnr,
                start,
                start + step,
                VisitMode.IN_PERSON,
                service=Service.FLU_VACCINE,
            )
            if await store.slot(slot.id) is None:
                await store.add_slot(slot)
                added += 1
            start += step
    return added


async def _hospital_appointment(
    store: SqlDialogueStore, population: Population, today: date
) -> None:
    """One outpatient appointment for the cast's adult at a hospital of their region."""
    adult = population.cast.get("adult")
    if adult is None:
        return
    region = population.address_of(adult.nin).region_slug
    hospitals = [
        o for o in population.organisations_in(region) if o.facility_type.code == _HOSPITAL
    ]
    if not hospitals:
        return
    hospital = hospitals[0]
    orgnr = hospital.orgnr.value
    await store.put_office(
        Office(orgnr, hospital.name, _phone(orgnr), frozenset({Service.CONTACT_OFFICE}), None)
    )
    day = _working_days(today + timedelta(days=10), 1)[0]
    start = local_to_utc(datetime.combine(day, time(11, 0)))
    slot_id = f"slot-{orgnr}-{adult.nin.value}"
    if await store.slot(slot_id) is not None:
        return
    await store.add_slot(  # free, then taken by the booking below
        Slot(slot_id, orgnr, start, start + timedelta(minutes=45), VisitMode.IN_PERSON)
    )
    await store.book(
        Appointment(
            f"appt-{orgnr}-{adult.nin.value}",
            slot_id,
            orgnr,
            adult.nin.value,
            adult.nin.value,
            start,
            start + timedelta(minutes=45),
            VisitMode.IN_PERSON,
            AppointmentStatus.BOOKED,
            f"Poliklinikk for hjertesykdommer, {hospital.name}",
        )
    )
