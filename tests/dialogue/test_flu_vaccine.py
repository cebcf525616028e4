"""Flu-vaccine booking (issue 15): the office switches the service on and off (an absence can
close it), publishes vaccine slots apart from its consultations (a vaccination day of many
short slots, `Slot/$publish-series`), and the patient's side books and cancels them as FHIR
Slot/Appointment with serviceType SNOMED CT 86198006 |Influenza vaccination|.

A real dialogue service on 127.0.0.1 with SQLite (harness); the outbox and the rows read from
the store. Bad input over HTTP (hypothesis) is 4xx, never 5xx, and writes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from onerecord.dialogue import BadInput, Service, local_to_utc, schema
from onerecord.dialogue.database import make_engine
from onerecord.dialogue.fhir import (
    SERVICE_SYSTEM,
    SNOMED_FLU_VACCINATION,
    SNOMED_SYSTEM,
    VISIT_SYSTEM,
    parse_series,
    parse_slot,
    parse_slot_service,
)
from onerecord.dialogue.store import SqlDialogueStore
from tests.dialogue.harness import (
    ADULT,
    CHILD_8,
    ORG,
    OTHER_ORG,
    PARENT,
    START,
    STRANGER,
    TEEN_13,
    YOUNG_17,
    Dialogue,
    running_dialogue,
)
from tests.dialogue.test_api import _absence, _booking, _slot

SNOMED_FLU = f"{SNOMED_SYSTEM}|{SNOMED_FLU_VACCINATION}"


@pytest.fixture(scope="module")
def dialogue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dialogue]:
    path: Path = tmp_path_factory.mktemp("flu") / "dialogue.db"
    with running_dialogue(f"sqlite:///{path}", None) as running:
        yield running


@pytest.fixture(autouse=True)
def _start_clock(dialogue: Dialogue) -> Iterator[None]:
    dialogue.clock.now = START
    yield
    dialogue.clock.now = START


def _series(
    day: str, first: str = "09:00", last: str = "11:00", minutes: Any = 5, **more: Any
) -> dict[str, Any]:
    """A vaccination day at ORG (Oslo winter time, +01:00, before 28 March 2027)."""
    params: list[dict[str, Any]] = [
        {
            "name": "schedule",
            "valueReference": {"reference": f"Schedule/{more.get('office', ORG)}"},
        },
        {"name": "start", "valueDateTime": f"{day}T{first}:00+01:00"},
        {"name": "end", "valueDateTime": f"{day}T{last}:00+01:00"},
        {"name": "minutes", "valuePositiveInt": minutes},
    ]
    if "service" in more:
        params.append({"name": "service", "valueCode": more["service"]})
    return {"resourceType": "Parameters", "parameter": params}


def _publish(dialogue: Dialogue, day: str, *times: str, **kw: Any) -> list[dict[str, Any]]:
    r = dialogue.post(dialogue.staff(), "Slot/$publish-series", _series(day, *times, **kw))
    assert r.status_code == 201, r.text
    return [e["resource"] for e in r.json()["entry"]]


def _codes(resource: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c["system"], c["code"]) for st_ in resource["serviceType"] for c in st_["coding"]}


def _is_flu(resource: dict[str, Any]) -> bool:
    return (SERVICE_SYSTEM, "flu-vaccine") in _codes(resource)


def _notices(dialogue: Dialogue, person: str) -> list[str]:
    async def read() -> list[Any]:
        engine = make_engine(dialogue.db_url)
        try:
            return list(await SqlDialogueStore(engine).notifications(person))
        finally:
            await engine.dispose()

    return [n.id for n in asyncio.run(read())]


def _rows(dialogue: Dialogue) -> int:
    async def count() -> int:
        engine = make_engine(dialogue.db_url)
        try:
            async with engine.connect() as conn:
                total = 0
                for table in (schema.slot, schema.appointment, schema.absence, schema.office):
                    total += (
                        await conn.execute(select(func.count()).select_from(table))
                    ).scalar_one()
                return total
        finally:
            await engine.dispose()

    return asyncio.run(count())


def _switch(dialogue: Dialogue, active: bool) -> None:
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "service", "valueCode": "flu-vaccine"},
            {"name": "active", "valueBoolean": active},
        ],
    }
    r = dialogue.post(dialogue.staff(), f"Organization/{ORG}/$set-service", body)
    assert r.status_code == 200, r.text


def test_a_vaccination_day_is_published_booked_seen_by_the_office_and_cancelled(
    dialogue: Dialogue,
) -> None:
    me, gp = dialogue.citizen(ADULT), dialogue.staff()
    slots = _publish(dialogue, "2027-03-23")
    assert len(slots) == 24  # 09.00–11.00 in 5-minute slots
    assert (
        slots[0]["start"] == "2027-03-23T08:00:00Z" and slots[-1]["end"] == "2027-03-23T10:00:00Z"
    )
    for s in slots:
        assert s["serviceType"][0]["coding"] == [{"system": VISIT_SYSTEM, "code": "in-person"}]
        assert (SNOMED_SYSTEM, SNOMED_FLU_VACCINATION) in _codes(s)
        assert _is_flu(s)
    ids = {s["id"] for s in slots}
    # An ordinary consultation beside them: the two kinds are listed apart.
    consultation = dialogue.post(gp, "Slot", _slot(START + timedelta(days=3))).json()
    assert (SERVICE_SYSTEM, "appointment-booking") in _codes(consultation)

    ordinary = {s["id"] for s in dialogue.entries(me, "Slot", patient=ADULT)}
    assert consultation["id"] in ordinary and not ordinary & ids
    for token in ("flu-vaccine", f"{SERVICE_SYSTEM}|flu-vaccine", SNOMED_FLU):
        listed = dialogue.entries(me, "Slot", patient=ADULT, **{"service-type": token})
        assert {s["id"] for s in listed} == ids
    office_view = {s["id"] for s in dialogue.entries(gp, "Slot", organization=ORG)}
    assert ids | {consultation["id"]} <= office_view

    chosen = slots[3]["id"]
    booked = dialogue.post(me, "Appointment", _booking(ADULT, chosen))
    assert booked.status_code == 201, booked.text
    appointment = booked.json()
    assert appointment["status"] == "booked" and _is_flu(appointment)
    assert (SNOMED_SYSTEM, SNOMED_FLU_VACCINATION) in _codes(appointment)
    assert f"booking-confirmed-{appointment['id']}" in _notices(dialogue, ADULT)
    flu_now = dialogue.entries(me, "Slot", patient=ADULT, **{"service-type": "flu-vaccine"})
    assert chosen not in {s["id"] for s in flu_now}

    mine = {a["id"]: a for a in dialogue.entries(me, "Appointment", patient=ADULT)}
    assert _is_flu(mine[appointment["id"]])
    at_office = {a["id"]: a for a in dialogue.entries(gp, "Appointment", organization=ORG)}
    assert _is_flu(at_office[appointment["id"]])

    # The office cannot move it to a consultation, only to another vaccine slot.
    move = {
        "resourceType": "Parameters",
        "parameter": [{"name": "slot", "valueReference": {"reference": ""}}],
    }
    move["parameter"][0]["valueReference"]["reference"] = f"Slot/{consultation['id']}"
    assert dialogue.post(gp, f"Appointment/{appointment['id']}/$move", move).status_code == 409
    move["parameter"][0]["valueReference"]["reference"] = f"Slot/{slots[5]['id']}"
    moved = dialogue.post(gp, f"Appointment/{appointment['id']}/$move", move)
    assert moved.status_code == 200, moved.text
    assert _is_flu(moved.json())

    cancelled = dialogue.post(me, f"Appointment/{appointment['id']}/$cancel", {})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    again = dialogue.entries(me, "Slot", patient=ADULT, **{"service-type": "flu-vaccine"})
    assert slots[5]["id"] in {s["id"] for s in again}


def test_a_single_vaccine_slot_is_published_with_its_snomed_code(dialogue: Dialogue) -> None:
    gp = dialogue.staff()
    body = _slot(START + timedelta(days=4, hours=1))
    body["serviceType"].append({"coding": [{"system": SNOMED_SYSTEM, "code": "86198006"}]})
    made = dialogue.post(gp, "Slot", body)
    assert made.status_code == 201, made.text
    assert _is_flu(made.json())
    video = _slot(START + timedelta(days=4, hours=2), "video")
    video["serviceType"].append({"coding": [{"system": SERVICE_SYSTEM, "code": "flu-vaccine"}]})
    refused = dialogue.post(gp, "Slot", video)
    assert refused.status_code == 400 and "in person" in refused.text


def test_switched_off_or_closed_by_an_absence_the_vaccine_is_not_booked(
    dialogue: Dialogue,
) -> None:
    me, gp = dialogue.citizen(STRANGER), dialogue.staff()
    slots = _publish(dialogue, "2027-03-24", "14:00", "14:30")
    ordinary = dialogue.post(gp, "Slot", _slot(START + timedelta(days=4, hours=5))).json()["id"]
    flu = {"service-type": "flu-vaccine"}

    _switch(dialogue, False)
    try:
        assert dialogue.get(me, "Slot", patient=STRANGER, **flu).status_code == 409
        refused = dialogue.post(me, "Appointment", _booking(STRANGER, slots[0]["id"]))
        assert refused.status_code == 409
        services = {
            s["type"][0]["coding"][0]["code"]: s
            for s in dialogue.entries(me, "HealthcareService", patient=STRANGER)
        }
        assert services["flu-vaccine"]["active"] is False
        # Consultations go on as before.
        assert dialogue.get(me, "Slot", patient=STRANGER).status_code == 200
    finally:
        _switch(dialogue, True)

    r = dialogue.post(
        gp,
        f"Organization/{ORG}/$register-absence",
        _absence("2027-03-21T00:00", "2027-03-22T00:00", "flu-vaccine"),
    )
    assert r.status_code == 201, r.text
    dialogue.clock.now = local_to_utc(datetime(2027, 3, 21, 12, 0))
    closed = dialogue.get(me, "Slot", patient=STRANGER, **flu)
    assert closed.status_code == 409
    assert "Bestilling av influensavaksine er midlertidig stengt" in closed.text
    assert dialogue.post(me, "Appointment", _booking(STRANGER, slots[0]["id"])).status_code == 409
    assert dialogue.post(me, "Appointment", _booking(STRANGER, ordinary)).status_code == 201

    dialogue.clock.now = local_to_utc(datetime(2027, 3, 22, 0, 0))
    assert dialogue.get(me, "Slot", patient=STRANGER, **flu).status_code == 200
    assert dialogue.post(me, "Appointment", _booking(STRANGER, slots[0]["id"])).status_code == 201


def test_a_parent_books_for_a_child_and_a_young_person_only_for_themselves(
    dialogue: Dialogue,
) -> None:
    slots = [s["id"] for s in _publish(dialogue, "2027-03-25", "08:00", "08:30")]
    parent = dialogue.citizen(PARENT, (CHILD_8, "parent"), (TEEN_13, "parent"))
    for n, child in enumerate((CHILD_8, TEEN_13)):
        made = dialogue.post(parent, "Appointment", _booking(child, slots[n]))
        assert made.status_code == 201, made.text
        assert f"booking-confirmed-{made.json()['id']}" in _notices(dialogue, PARENT)
    young = dialogue.citizen(YOUNG_17, (CHILD_8, "parent"))
    assert dialogue.post(young, "Appointment", _booking(CHILD_8, slots[2])).status_code == 403
    assert dialogue.post(young, "Appointment", _booking(YOUNG_17, slots[2])).status_code == 201
    stranger = dialogue.citizen(STRANGER)
    assert dialogue.post(stranger, "Appointment", _booking(ADULT, slots[3])).status_code == 403
    listed = dialogue.get(stranger, "Slot", patient=ADULT, **{"service-type": "flu-vaccine"})
    assert listed.status_code == 403


def test_only_the_offices_staff_publish_and_bad_series_are_refused(dialogue: Dialogue) -> None:
    before = _rows(dialogue)
    me, elsewhere = dialogue.citizen(ADULT), dialogue.staff(office=OTHER_ORG)
    day = _series("2027-03-26")
    assert dialogue.post(me, "Slot/$publish-series", day).status_code == 403
    assert dialogue.post(elsewhere, "Slot/$publish-series", day).status_code == 403
    gp = dialogue.staff()
    for bad in (
        _series("2027-03-26", minutes=1),
        _series("2027-03-26", minutes=61),
        _series("2027-03-26", minutes="5"),
        _series("2027-03-26", minutes=True),
        _series("2027-03-26", "11:00", "09:00"),
        _series("2027-03-26", "09:00", "09:03"),
        _series("2027-03-26", "06:00", "16:00", minutes=2),  # 300 slots
        _series("2027-03-26", service="e-consultation"),
        _series("2027-03-26", service="nonsense"),
    ):
        assert dialogue.post(gp, "Slot/$publish-series", bad).status_code == 400, bad
    assert dialogue.get(gp, "Slot", organization=ORG, **{"service-type": "x"}).status_code == 400
    assert _rows(dialogue) == before


_VALUES = st.none() | st.booleans() | st.integers(-10, 400) | st.text(max_size=30)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    start=_VALUES | st.sampled_from(["2027-03-29T09:00:00+02:00", "2027-03-29T09:00"]),
    end=_VALUES | st.sampled_from(["2027-03-29T09:10:00+02:00", "1999-01-01T00:00:00Z"]),
    minutes=_VALUES,
    service=_VALUES | st.sampled_from(["appointment-booking", "e-consultation"]),
    token=st.text(max_size=40) | st.sampled_from(["flu-vaccine", "http://snomed.info/sct|1"]),
)
def test_bad_vaccine_input_over_http_is_4xx_and_writes_nothing(
    dialogue: Dialogue, start: Any, end: Any, minutes: Any, service: Any, token: str
) -> None:
    gp = dialogue.staff()
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "schedule", "valueReference": {"reference": f"Schedule/{ORG}"}},
            {"name": "start", "valueDateTime": start},
            {"name": "end", "valueDateTime": end},
            {"name": "minutes", "valuePositiveInt": minutes},
            {"name": "service", "valueCode": service},
        ],
    }
    before = _rows(dialogue)
    r = dialogue.post(gp, "Slot/$publish-series", body)
    if r.status_code == 201:  # a valid series (e.g. 10 minutes of 5): written, and fine
        assert _rows(dialogue) > before
    else:
        assert 400 <= r.status_code < 500, r.text
        assert _rows(dialogue) == before
    searched = dialogue.get(gp, "Slot", organization=ORG, **{"service-type": token})
    assert searched.status_code in (200, 400), searched.text


# -- the parsers (pure): only BadInput comes out ----------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["parameter", "name", "valueReference", "reference", "valueDateTime"]
                + ["valuePositiveInt", "valueCode", "serviceType", "coding", "system", "code"]
                + ["schedule", "start", "end"]
            )
            | st.text(max_size=6),
            children,
            max_size=5,
        )
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(value=_JSON)
def test_the_series_and_slot_parsers_raise_only_bad_input(value: Any) -> None:
    if not isinstance(value, dict):
        return
    for parser in (parse_series, parse_slot):
        try:
            parser(value)
        except BadInput:
            pass


@settings(max_examples=300, deadline=None)
@given(
    value=st.text(max_size=60)
    | st.sampled_from(["flu-vaccine", "appointment-booking", SNOMED_FLU, "|", "a|b|flu-vaccine"])
)
def test_the_service_type_token_is_a_slot_service_or_bad_input(value: str) -> None:
    try:
        found = parse_slot_service(value)
    except BadInput:
        return
    assert found in (Service.APPOINTMENT_BOOKING, Service.FLU_VACCINE)
