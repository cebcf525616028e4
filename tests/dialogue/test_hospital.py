"""The dialogue with a hospital's treating unit (helsekontakt) and the hospital's appointments.

A treating unit is an office of this service other than the person's GP office where the person
has a booked appointment (a course of treatment); it offers contact messages (no fee, no
e-consultation) when it switches contact-office on, and lets the patient cancel its appointments
only when it switches appointment booking on. Its staff (workplace = the unit) answer from the
work list; the GP office's staff do not see the unit's threads, nor the unit's the GP's.
A real server on 127.0.0.1 (tests/dialogue/harness.py), SQLite.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from onerecord.dialogue import (
    Appointment,
    AppointmentStatus,
    Office,
    Service,
    Slot,
    VisitMode,
    schema,
)
from onerecord.dialogue.database import make_engine
from onerecord.dialogue.fhir import FNR_SYSTEM, ORGNR_SYSTEM, VISIT_SYSTEM
from onerecord.dialogue.outbox import Notification
from onerecord.dialogue.store import SqlDialogueStore
from tests.dialogue.harness import (
    ADULT,
    CHILD_8,
    DOCTOR,
    ELDER,
    ORG,
    PARENT,
    START,
    STRANGER,
    TEEN_13,
    Dialogue,
    born,
    communication,
    running_dialogue,
)

UNIT = "974700107"
"""Hjertepoliklinikken at a hospital: contact on, cancelling off."""
OPEN_UNIT = "974700115"
"""A unit that lets its patients cancel (appointment booking on) but takes no messages."""
NURSE = born(1972, 2, 2)


async def _seed_units(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        store = SqlDialogueStore(engine)
        await store.put_office(
            Office(
                UNIT,
                "Hjertepoliklinikken, Testsykehuset",
                "23 00 00 00",
                frozenset({Service.CONTACT_OFFICE}),
            )
        )
        await store.put_office(
            Office(
                OPEN_UNIT,
                "Øyepoliklinikken, Testsykehuset",
                "23 00 00 01",
                frozenset({Service.APPOINTMENT_BOOKING}),
            )
        )
        plan = [
            (UNIT, ADULT, START + timedelta(days=10)),
            (UNIT, CHILD_8, START + timedelta(days=11)),
            (UNIT, TEEN_13, START + timedelta(days=12)),
            (OPEN_UNIT, ADULT, START + timedelta(days=13)),
            (UNIT, ELDER, START - timedelta(days=400)),  # a course of treatment long over
            (UNIT, PARENT, START + timedelta(days=14)),
        ]
        for i, (unit, patient, start) in enumerate(plan):
            end = start + timedelta(minutes=45)
            slot = f"hs-{i}"
            await store.add_slot(Slot(slot, unit, start, end, VisitMode.IN_PERSON))
            await store.book(
                Appointment(
                    f"ha-{i}",
                    slot,
                    unit,
                    patient,
                    patient,
                    start,
                    end,
                    VisitMode.IN_PERSON,
                    AppointmentStatus.BOOKED,
                    "Poliklinisk kontroll",
                )
            )
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def dialogue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dialogue]:
    path: Path = tmp_path_factory.mktemp("dialogue-hospital") / "dialogue.db"
    with running_dialogue(f"sqlite:///{path}", None) as running:
        asyncio.run(_seed_units(f"sqlite:///{path}"))
        yield running


@pytest.fixture(autouse=True)
def _clock_at_start(dialogue: Dialogue) -> None:
    dialogue.clock.now = START


def _to_unit(patient: str, text: str, unit: str = UNIT, **kw: object) -> dict[str, object]:
    body = communication(patient, text, category="contact-office", fee=None, **kw)  # type: ignore[arg-type]
    body["recipient"] = [{"identifier": {"system": ORGNR_SYSTEM, "value": unit}}]
    return body


def test_the_citizen_sees_the_treating_units_beside_the_appointments(dialogue: Dialogue) -> None:
    me = dialogue.citizen(ADULT)
    units = dialogue.entries(me, "Organization", patient=ADULT)
    assert [(u["id"], u["name"]) for u in units] == [
        (UNIT, "Hjertepoliklinikken, Testsykehuset"),
        (OPEN_UNIT, "Øyepoliklinikken, Testsykehuset"),
    ]
    assert [c["coding"][0]["code"] for c in units[0]["type"]] == ["contact-office"]
    appointments = dialogue.entries(me, "Appointment", patient=ADULT)
    assert {a["id"] for a in appointments} >= {"ha-0", "ha-3"}
    # A course of treatment over a year ago leaves no dialogue.
    assert dialogue.entries(dialogue.citizen(ELDER), "Organization", patient=ELDER) == []


def test_a_thread_with_the_treating_unit_is_answered_by_its_staff(dialogue: Dialogue) -> None:
    me = dialogue.citizen(ADULT)
    sent = dialogue.post(me, "Communication", _to_unit(ADULT, "Skal jeg ta medisinene før timen?"))
    assert sent.status_code == 201, sent.text
    assert sent.json()["recipient"][0]["identifier"]["value"] == UNIT
    first = sent.json()["id"]

    nurse = dialogue.staff(NURSE, office=UNIT)
    inbox = dialogue.entries(nurse, "Task", organization=UNIT)
    assert any(first in str(t) for t in inbox)
    # The GP office's staff do not see the unit's thread, nor may they answer it.
    gp = dialogue.staff(DOCTOR)
    assert all(first not in str(t) for t in dialogue.entries(gp, "Task", organization=ORG))
    answer = communication(None, "Ja, som vanlig.", category=None, fee=None, in_response_to=first)
    assert dialogue.post(gp, "Communication", answer).status_code == 403
    # The unit's nurse answers; the citizen reads it and writes again in the same thread.
    answered = dialogue.post(nurse, "Communication", answer)
    assert answered.status_code == 201, answered.text
    thread = dialogue.entries(me, "Communication", patient=ADULT)
    assert {m["id"] for m in thread} >= {first, answered.json()["id"]}
    again = communication(
        None, "Takk!", category=None, fee=None, in_response_to=answered.json()["id"]
    )
    assert dialogue.post(me, "Communication", again).status_code == 201


def test_a_treating_unit_takes_contact_messages_only(dialogue: Dialogue) -> None:
    me = dialogue.citizen(ADULT)
    econ = communication(ADULT, "Vondt i brystet", category="e-consultation", fee=True)
    econ["recipient"] = [{"identifier": {"system": ORGNR_SYSTEM, "value": UNIT}}]
    assert dialogue.post(me, "Communication", econ).status_code == 400
    # A unit with contact switched off, and an office that is not the person's unit.
    assert dialogue.post(me, "Communication", _to_unit(ADULT, "Hei", OPEN_UNIT)).status_code == 409
    assert (
        dialogue.post(me, "Communication", _to_unit(ADULT, "Hei", "974700123")).status_code == 404
    )
    elder = dialogue.citizen(ELDER)
    assert dialogue.post(elder, "Communication", _to_unit(ELDER, "Hei")).status_code == 404


def test_the_patient_cancels_a_hospital_appointment_only_where_the_unit_allows_it(
    dialogue: Dialogue,
) -> None:
    me = dialogue.citizen(ADULT)
    refused = dialogue.post(me, "Appointment/ha-0/$cancel", {})
    assert refused.status_code == 409, refused.text
    assert "call them" in refused.json()["issue"][0]["diagnostics"]
    still = {a["id"]: a["status"] for a in dialogue.entries(me, "Appointment", patient=ADULT)}
    assert still["ha-0"] == "booked"
    allowed = dialogue.post(me, "Appointment/ha-3/$cancel", {})
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["status"] == "cancelled"
    # The unit's own staff may cancel theirs.
    nurse = dialogue.staff(NURSE, office=UNIT)
    assert dialogue.post(nurse, "Appointment/ha-5/$cancel", {}).status_code == 200


def test_representation_holds_at_the_treating_unit(dialogue: Dialogue) -> None:
    # A parent of a child under 12 writes to the child's unit.
    parent = dialogue.citizen(PARENT, (CHILD_8, "parent"))
    assert dialogue.post(parent, "Communication", _to_unit(CHILD_8, "Spørsmål")).status_code == 201
    # A parent of a child of 13 sees the unit, but writes no message for the child.
    teen_parent = dialogue.citizen(PARENT, (TEEN_13, "parent"))
    assert [u["id"] for u in dialogue.entries(teen_parent, "Organization", patient=TEEN_13)] == [
        UNIT
    ]
    assert dialogue.post(teen_parent, "Communication", _to_unit(TEEN_13, "Hei")).status_code == 403
    # Nobody without a relation sees another person's units.
    stranger = dialogue.citizen(PARENT)
    assert dialogue.get(stranger, "Organization", patient=ADULT).status_code == 403
    # Health personnel do not use the citizen's list.
    assert dialogue.get(dialogue.staff(), "Organization", patient=ADULT).status_code == 403


def _unit_slot(start: datetime, office: str = UNIT) -> dict[str, object]:
    return {
        "resourceType": "Slot",
        "schedule": {"reference": f"Schedule/{office}"},
        "status": "free",
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=30)).isoformat(),
        "serviceType": [{"coding": [{"system": VISIT_SYSTEM, "code": "in-person"}]}],
    }


def _booking(patient: str, slot: str) -> dict[str, object]:
    return {
        "resourceType": "Appointment",
        "status": "booked",
        "slot": [{"reference": f"Slot/{slot}"}],
        "participant": [{"actor": {"identifier": {"system": FNR_SYSTEM, "value": patient}}}],
        "comment": "Poliklinisk kontroll, Hjertepoliklinikken",
    }


def _notices(dialogue: Dialogue, recipient: str) -> list[Notification]:
    async def read() -> list[Notification]:
        engine = make_engine(dialogue.db_url)
        try:
            return [
                n
                for n in await SqlDialogueStore(engine).notifications()
                if n.recipient == recipient
            ]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_the_units_system_gives_an_appointment_and_the_patient_sees_it_and_the_unit(
    dialogue: Dialogue,
) -> None:
    """The hospital's side feeds appointments in: its staff (or its patient administrative
    system, with a unit workplace) publish a slot and book it for a referred patient."""
    nurse = dialogue.staff(NURSE, office=UNIT)
    slot = dialogue.post(nurse, "Slot", _unit_slot(START + timedelta(days=20)))
    assert slot.status_code == 201, slot.text
    slot_id = slot.json()["id"]
    # STRANGER has had nothing to do with the unit until now.
    assert dialogue.entries(dialogue.citizen(STRANGER), "Organization", patient=STRANGER) == []

    # Another office's staff cannot book into the unit's slot: 404, as for no slot at all.
    gp = dialogue.staff(DOCTOR)
    assert dialogue.post(gp, "Appointment", _booking(STRANGER, slot_id)).status_code == 404
    assert dialogue.post(nurse, "Appointment", _booking(STRANGER, "no-such")).status_code == 404

    made = dialogue.post(nurse, "Appointment", _booking(STRANGER, slot_id))
    assert made.status_code == 201, made.text
    appointment = made.json()
    assert appointment["status"] == "booked"  # the unit made it: nothing to confirm
    assert {"identifier": {"system": ORGNR_SYSTEM, "value": UNIT}} in [
        p["actor"] for p in appointment["participant"]
    ]
    # The slot is taken; booking it again is a conflict.
    again = dialogue.post(nurse, "Appointment", _booking(ADULT, slot_id))
    assert again.status_code == 409, again.text

    # The patient sees the appointment and the unit (a treating unit, known from it) ...
    me = dialogue.citizen(STRANGER)
    assert appointment["id"] in [
        a["id"] for a in dialogue.entries(me, "Appointment", patient=STRANGER)
    ]
    assert [u["id"] for u in dialogue.entries(me, "Organization", patient=STRANGER)] == [UNIT]
    # ... and is told (the e-mail outbox: that there is something to read, nothing more).
    assert [n.kind.value for n in _notices(dialogue, STRANGER)] == ["booking-confirmed"]
    # The unit's upcoming list shows it.
    upcoming = dialogue.entries(nurse, "Appointment", organization=UNIT)
    assert appointment["id"] in [a["id"] for a in upcoming]


def test_the_office_books_only_its_own_future_slots_and_a_citizen_cannot_book_for_others(
    dialogue: Dialogue,
) -> None:
    nurse = dialogue.staff(NURSE, office=UNIT)
    past = dialogue.post(nurse, "Slot", _unit_slot(START + timedelta(hours=2))).json()["id"]
    dialogue.clock.now = START + timedelta(hours=3)
    late = dialogue.post(nurse, "Appointment", _booking(STRANGER, past))
    assert late.status_code == 409, late.text
    dialogue.clock.now = START
    # Health personnel without an HPR number book nothing.
    clerk = dialogue.staff(NURSE, office=UNIT, hpr=None)
    fresh = dialogue.post(nurse, "Slot", _unit_slot(START + timedelta(days=21))).json()["id"]
    assert dialogue.post(clerk, "Appointment", _booking(STRANGER, fresh)).status_code == 403
    # A citizen books only free slots of their own GP office, never a unit's.
    assert (
        dialogue.post(dialogue.citizen(ADULT), "Appointment", _booking(ADULT, fresh)).status_code
        == 404
    )


_SCALAR = st.none() | st.booleans() | st.integers() | st.text(max_size=12)
_IDENT = st.fixed_dictionaries(
    {
        "system": st.sampled_from([ORGNR_SYSTEM, "urn:oid:2.16.578.1.12.4.1.4.1"]) | _SCALAR,
        "value": st.sampled_from([UNIT, OPEN_UNIT, ORG, "974700123", "97470010"]) | _SCALAR,
    }
)
_RECIPIENT = (
    st.lists(st.fixed_dictionaries({"identifier": _IDENT | _SCALAR}), max_size=3)
    | _SCALAR
    | st.dictionaries(st.text(max_size=5), _SCALAR, max_size=2)
)


def _rows(dialogue: Dialogue) -> int:
    async def count() -> int:
        engine = make_engine(dialogue.db_url)
        try:
            async with engine.connect() as conn:
                return int(
                    (
                        await conn.execute(select(func.count()).select_from(schema.message))
                    ).scalar_one()
                )
        finally:
            await engine.dispose()

    return asyncio.run(count())


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(recipient=_RECIPIENT, category=st.sampled_from(["contact-office", "e-consultation"]))
def test_any_recipient_is_4xx_or_a_thread_with_the_unit_and_a_refusal_writes_nothing(
    dialogue: Dialogue, recipient: object, category: str
) -> None:
    me = dialogue.citizen(ADULT)
    body = communication(ADULT, "Hei", category=category, fee=True)
    body["recipient"] = recipient
    before = _rows(dialogue)
    r = dialogue.post(me, "Communication", body)
    assert r.status_code < 500, r.text
    if r.status_code == 201:
        assert r.json()["recipient"][0]["identifier"]["value"] == UNIT
        assert _rows(dialogue) == before + 1
    else:
        assert 400 <= r.status_code < 500 and _rows(dialogue) == before
