"""The dialogue service end to end: a real server on 127.0.0.1, on SQLite and PostgreSQL.

One server per database for the whole module; the service clock is moved by the tests
(START, then across an absence), tokens use the real time.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from onerecord.audit import AuditOutcome, AuditRecord, SqlAuditSink, audit_event_table
from onerecord.dialogue import OSLO, local_to_utc, schema
from onerecord.dialogue.database import make_engine
from onerecord.dialogue.fhir import FNR_SYSTEM, REQUEST_SYSTEM, VISIT_SYSTEM
from tests.conftest import POSTGRES_URL, _pg_execute
from tests.dialogue.harness import (
    ADULT,
    CHILD_8,
    ELDER,
    KID_15,
    ORG,
    OTHER_DOCTOR,
    OTHER_ORG,
    PARENT,
    PROTECTED_CHILD,
    START,
    STRANGER,
    TEEN_13,
    YOUNG_17,
    Dialogue,
    communication,
    running_dialogue,
)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def dialogue(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Dialogue]:
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("dialogue") / "dialogue.db"
        with running_dialogue(f"sqlite:///{path}", None) as running:
            yield running
        return
    if not request.getfixturevalue("postgres_ready"):
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not reachable (allowed outside CI)")
    schema = f"t_{secrets.token_hex(6)}"
    _pg_execute(f'CREATE SCHEMA "{schema}"')
    try:
        with running_dialogue(POSTGRES_URL, schema) as running:
            yield running
    finally:
        _pg_execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(autouse=True)
def _clock_at_start(dialogue: Dialogue) -> None:
    dialogue.clock.now = START


def _audit(dialogue: Dialogue, patient: str) -> list[AuditRecord]:
    async def read() -> list[AuditRecord]:
        engine = make_engine(dialogue.db_url, schema=dialogue.db_schema)
        try:
            sink = SqlAuditSink(engine, "onerecord-dialogue", group_commit=False)
            return await sink.records([patient])
        finally:
            await engine.dispose()

    return asyncio.run(read())


def _denied_office_changes(dialogue: Dialogue) -> list[dict[str, object]]:
    """The audited refusals that concern no patient (the office's settings)."""

    async def read() -> list[dict[str, object]]:
        t = audit_event_table.c
        engine = make_engine(dialogue.db_url, schema=dialogue.db_schema)
        try:
            async with engine.connect() as conn:
                rows = await conn.execute(
                    select(t.event).where(t.patient_id.is_(None), t.outcome == "denied")
                )
                return [row.event for row in rows]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def _stored_rows(dialogue: Dialogue) -> int:
    """How many messages and requests the service holds."""

    async def count() -> int:
        engine = make_engine(dialogue.db_url, schema=dialogue.db_schema)
        try:
            async with engine.connect() as conn:
                total = 0
                for table in (schema.message, schema.request):
                    total += (
                        await conn.execute(select(func.count()).select_from(table))
                    ).scalar_one()
                return total
        finally:
            await engine.dispose()

    return asyncio.run(count())


def _task_of(dialogue: Dialogue, token: object, patient: str, focus: str) -> dict[str, object]:
    tasks = dialogue.entries(token, "Task", patient=patient)  # type: ignore[arg-type]
    return next(t for t in tasks if t.get("focus", {}).get("reference") == focus)


# --- e-consultation ---------------------------------------------------------------------------


def test_citizen_sends_an_e_consultation_and_the_office_answers(dialogue: Dialogue) -> None:
    me, gp = dialogue.citizen(ADULT), dialogue.staff()
    r = dialogue.post(me, "Communication", communication(ADULT, "Utslett på armen i to uker."))
    assert r.status_code == 201, r.text
    sent = r.json()
    assert sent["category"][0]["coding"][0]["code"] == "e-consultation"

    task = _task_of(dialogue, me, ADULT, f"Communication/{sent['id']}")
    assert task["status"] == "requested"
    assert task["input"][0]["valueDateTime"] == "2027-03-20T09:00:00Z"  # fee acknowledged then
    # Sat 20 March 2027: Mon 22, Tue 23, Wed 24, (Easter: Thu 25 – Mon 29), Tue 30, Wed 31;
    # due when Wednesday 31 March ends in Oslo (summer time by then).
    assert task["restriction"]["period"]["end"] == "2027-03-31T22:00:00Z"

    inbox = dialogue.entries(gp, "Communication", organization=ORG)
    assert sent["id"] in [m["id"] for m in inbox]
    answer = dialogue.post(
        gp,
        "Communication",
        communication(
            None,
            "Smør med hydrokortison i en uke.",
            category=None,
            fee=None,
            in_response_to=sent["id"],
        ),
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["sender"]["display"] == "Kari Fastlege"

    thread = dialogue.entries(me, "Communication", patient=ADULT)
    replies = [m for m in thread if m.get("inResponseTo")]
    assert replies[0]["inResponseTo"] == [{"reference": f"Communication/{sent['id']}"}]
    assert _task_of(dialogue, me, ADULT, f"Communication/{sent['id']}")["status"] == "completed"

    # Audited as the record is: the citizen's send and the GP's inbox read and answer.
    records = _audit(dialogue, ADULT)
    assert any(r.citizen and r.query == "Communication" for r in records)
    assert any(r.practitioner and r.practitioner.hpr == "9144889" for r in records)


def test_e_consultation_without_the_fee_acknowledged_writes_nothing(dialogue: Dialogue) -> None:
    me = dialogue.citizen(ELDER)
    r = dialogue.post(me, "Communication", communication(ELDER, "Hoste", fee=False))
    assert r.status_code == 400
    assert r.json()["resourceType"] == "OperationOutcome"
    r = dialogue.post(me, "Communication", communication(ELDER, "Brystsmerter", priority="urgent"))
    assert r.status_code == 400
    assert "113" in r.json()["issue"][0]["diagnostics"]
    assert dialogue.entries(me, "Communication", patient=ELDER) == []
    assert dialogue.entries(me, "Task", patient=ELDER) == []


def test_contact_the_office_threads_go_both_ways(dialogue: Dialogue) -> None:
    me, gp = dialogue.citizen(STRANGER), dialogue.staff()
    first = dialogue.post(
        me,
        "Communication",
        communication(STRANGER, "Ny adresse", category="contact-office", fee=None),
    ).json()
    reply = dialogue.post(
        gp,
        "Communication",
        communication(
            None, "Takk, oppdatert.", category=None, fee=None, in_response_to=first["id"]
        ),
    ).json()
    again = dialogue.post(
        me,
        "Communication",
        communication(None, "Takk!", category=None, fee=None, in_response_to=reply["id"]),
    )
    assert again.status_code == 201, again.text
    assert len(dialogue.entries(me, "Communication", patient=STRANGER)) == 3
    assert dialogue.entries(me, "Task", patient=STRANGER) == []  # no answer limit for contact


# --- prescription renewal ---------------------------------------------------------------------


def _renewal(patient: str, medication: str, note: str | None = None) -> dict[str, object]:
    body: dict[str, object] = {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "code": {"coding": [{"system": REQUEST_SYSTEM, "code": "prescription-renewal"}]},
        "for": {"identifier": {"system": FNR_SYSTEM, "value": patient}},
        "focus": {"reference": f"MedicationRequest/{medication}"},
    }
    if note:
        body["note"] = [{"text": note}]
    return body


def _handling(status: str, reason: str | None = None) -> dict[str, object]:
    params: list[dict[str, str]] = [{"name": "status", "valueCode": status}]
    if reason is not None:
        params.append({"name": "reason", "valueString": reason})
    return {"resourceType": "Parameters", "parameter": params}


def test_citizen_renews_a_prescription_and_the_gp_renews_or_refuses(dialogue: Dialogue) -> None:
    me, gp = dialogue.citizen(ADULT), dialogue.staff()
    meds = dialogue.entries(me, "MedicationRequest", patient=ADULT)
    assert [m["medicationCodeableConcept"]["text"] for m in meds] == [
        "Atorvastatin 20 mg",
        "Metformin 500 mg",
    ]
    first = dialogue.post(me, "Task", _renewal(ADULT, meds[0]["id"], "Snart tom"))
    second = dialogue.post(me, "Task", _renewal(ADULT, meds[1]["id"]))
    assert first.status_code == second.status_code == 201
    assert dialogue.post(me, "Task", _renewal(ADULT, "not-mine")).status_code == 400

    no_reason = dialogue.post(gp, f"Task/{first.json()['id']}/$handle", _handling("rejected"))
    assert no_reason.status_code == 400
    renewed = dialogue.post(gp, f"Task/{first.json()['id']}/$handle", _handling("completed"))
    assert renewed.json()["status"] == "completed"
    refused = dialogue.post(
        gp, f"Task/{second.json()['id']}/$handle", _handling("rejected", "Trenger kontroll først")
    )
    assert refused.json()["status"] == "rejected"
    assert refused.json()["statusReason"] == {"text": "Trenger kontroll først"}
    twice = dialogue.post(gp, f"Task/{second.json()['id']}/$handle", _handling("completed"))
    assert twice.status_code == 409

    # The citizen may not answer their own request.
    third = dialogue.post(me, "Task", _renewal(ADULT, meds[0]["id"])).json()
    assert (
        dialogue.post(me, f"Task/{third['id']}/$handle", _handling("completed")).status_code == 403
    )


# --- appointments -----------------------------------------------------------------------------


def _slot(start: datetime, mode: str = "in-person", office: str = ORG) -> dict[str, object]:
    return {
        "resourceType": "Slot",
        "schedule": {"reference": f"Schedule/{office}"},
        "status": "free",
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=20)).isoformat(),
        "serviceType": [{"coding": [{"system": VISIT_SYSTEM, "code": mode}]}],
    }


def _booking(patient: str, slot: str) -> dict[str, object]:
    return {
        "resourceType": "Appointment",
        "status": "booked",
        "slot": [{"reference": f"Slot/{slot}"}],
        "participant": [{"actor": {"identifier": {"system": FNR_SYSTEM, "value": patient}}}],
    }


def test_citizen_books_and_cancels(dialogue: Dialogue) -> None:
    me, gp = dialogue.citizen(ADULT), dialogue.staff()
    start = START + timedelta(days=3)
    made = dialogue.post(gp, "Slot", _slot(start, "video"))
    assert made.status_code == 201, made.text
    slot_id = made.json()["id"]
    assert slot_id in [s["id"] for s in dialogue.entries(me, "Slot", patient=ADULT)]

    booked = dialogue.post(me, "Appointment", _booking(ADULT, slot_id))
    assert booked.status_code == 201, booked.text
    assert booked.json()["serviceType"][0]["coding"][0]["code"] == "video"
    assert slot_id not in [s["id"] for s in dialogue.entries(me, "Slot", patient=ADULT)]
    taken = dialogue.post(dialogue.citizen(STRANGER), "Appointment", _booking(STRANGER, slot_id))
    assert taken.status_code == 409

    cancelled = dialogue.post(me, f"Appointment/{booked.json()['id']}/$cancel", {})
    assert cancelled.json()["status"] == "cancelled"
    assert slot_id in [s["id"] for s in dialogue.entries(me, "Slot", patient=ADULT)]
    assert [a["status"] for a in dialogue.entries(me, "Appointment", patient=ADULT)] == [
        "cancelled"
    ]


def test_a_parent_books_for_a_child_under_12(dialogue: Dialogue) -> None:
    parent, gp = dialogue.citizen(PARENT, (CHILD_8, "parent")), dialogue.staff()
    slot_id = dialogue.post(gp, "Slot", _slot(START + timedelta(days=4))).json()["id"]
    booked = dialogue.post(parent, "Appointment", _booking(CHILD_8, slot_id))
    assert booked.status_code == 201, booked.text
    assert [a["id"] for a in dialogue.entries(parent, "Appointment", patient=CHILD_8)] == [
        booked.json()["id"]
    ]
    sent = dialogue.post(parent, "Communication", communication(CHILD_8, "Feber i tre dager"))
    assert sent.status_code == 201
    on_behalf = [r for r in _audit(dialogue, CHILD_8) if r.citizen is not None]
    assert on_behalf and all(r.citizen.relation == "parent" for r in on_behalf if r.citizen)
    assert all(r.citizen.on_behalf_of == CHILD_8 for r in on_behalf if r.citizen)


# --- refused representation -------------------------------------------------------------------


def test_refused_representation(dialogue: Dialogue) -> None:
    gp = dialogue.staff()
    slot_id = dialogue.post(gp, "Slot", _slot(START + timedelta(days=5))).json()["id"]

    def booking_status(token: object, patient: str) -> int:
        r = dialogue.post(token, "Appointment", _booking(patient, slot_id))  # type: ignore[arg-type]
        return r.status_code

    # No relation at all.
    assert booking_status(dialogue.citizen(STRANGER), ADULT) == 403
    # A parent of a child aged 12–15: appointments yes, e-consultation and messages no.
    parent = dialogue.citizen(PARENT, (TEEN_13, "parent"))
    econ = dialogue.post(parent, "Communication", communication(TEEN_13, "Vondt i magen"))
    assert econ.status_code == 403
    assert dialogue.get(parent, "Communication", patient=TEEN_13).status_code == 403
    # A child with a protected address is never represented.
    protected = dialogue.citizen(PARENT, (PROTECTED_CHILD, "parent"))
    assert booking_status(protected, PROTECTED_CHILD) == 403
    # A young person books only on their own behalf.
    assert booking_status(dialogue.citizen(YOUNG_17, (ELDER, "proxy")), ELDER) == 403
    # Under 16: no own digital access.
    assert booking_status(dialogue.citizen(KID_15), KID_15) == 403
    # Health personnel at another office, or without HPR, see nothing.
    assert (
        dialogue.get(
            dialogue.staff(OTHER_DOCTOR, office=OTHER_ORG), "Communication", organization=ORG
        ).status_code
        == 403
    )
    assert (
        dialogue.get(dialogue.staff(hpr=None), "Communication", organization=ORG).status_code == 403
    )
    # Refusals are audited (F5).
    denied = [r for r in _audit(dialogue, PROTECTED_CHILD) if r.outcome is AuditOutcome.DENIED]
    assert denied and denied[0].reason == "protected-address"
    # The slot is still free: nothing was written.
    assert slot_id in [
        s["id"] for s in dialogue.entries(dialogue.citizen(ADULT), "Slot", patient=ADULT)
    ]


def test_tokens_are_checked(dialogue: Dialogue) -> None:
    url = f"{dialogue.fhir}/Communication"
    assert dialogue.client.get(url, params={"patient": ADULT}).status_code == 401
    me = dialogue.citizen(ADULT)
    no_proof = {"Authorization": f"DPoP {me.value}"}
    r = dialogue.client.get(url, params={"patient": ADULT}, headers=no_proof)
    assert r.status_code == 401 and "WWW-Authenticate" in r.headers
    low = dialogue.citizen(ADULT, level="3")
    assert dialogue.get(low, "Communication", patient=ADULT).status_code == 403


# --- absence ----------------------------------------------------------------------------------


def _absence(
    start: str, end: str, *services: str, substitute: str | None = None
) -> dict[str, object]:
    params: list[dict[str, str]] = [
        {"name": "start", "valueDateTime": start},
        {"name": "end", "valueDateTime": end},
        *({"name": "service", "valueCode": s} for s in services),
    ]
    if substitute:
        params.append({"name": "substitute", "valueString": substitute})
    return {"resourceType": "Parameters", "parameter": params}


def test_absence_closes_the_service_to_the_minute_across_daylight_saving(
    dialogue: Dialogue,
) -> None:
    gp, me = dialogue.staff(), dialogue.citizen(ELDER)
    # 27–29 March 2027; summer time begins in the night to Sunday 28 March.
    r = dialogue.post(
        gp,
        f"Organization/{ORG}/$register-absence",
        _absence("2027-03-27T00:00", "2027-03-30T00:00", "e-consultation"),
    )
    assert r.status_code == 201, r.text
    preview = r.json()["parameter"][-1]["part"][1]["valueString"]
    assert preview == (
        "E-konsultasjon er midlertidig stengt av fastlegen din, og åpner igjen 30. mars."
    )

    def send() -> int:
        body = communication(ELDER, "Kontroll av blodtrykk")
        return dialogue.post(me, "Communication", body).status_code

    first_minute = local_to_utc(datetime(2027, 3, 27, 0, 0))
    dialogue.clock.now = first_minute - timedelta(minutes=1)
    assert send() == 201
    dialogue.clock.now = first_minute
    assert send() == 409
    services = {
        s["type"][0]["coding"][0]["code"]: s
        for s in dialogue.entries(me, "HealthcareService", patient=ELDER)
    }
    assert services["e-consultation"]["notAvailable"][0]["description"] == preview
    assert "notAvailable" not in services["appointment-booking"]
    assert "116 117" in services["e-consultation"]["extraDetails"]
    # After the change to summer time the last minute is still closed (CEST, UTC+2).
    dialogue.clock.now = datetime(2027, 3, 29, 23, 59, tzinfo=OSLO).astimezone(UTC)
    assert send() == 409
    dialogue.clock.now = datetime(2027, 3, 30, 0, 0, tzinfo=OSLO).astimezone(UTC)
    assert send() == 201


def test_office_switches_a_service_and_sets_its_message(dialogue: Dialogue) -> None:
    gp, me = dialogue.staff(), dialogue.citizen(STRANGER)
    switch = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "service", "valueCode": "flu-vaccine"},
            {"name": "active", "valueBoolean": False},
        ],
    }
    assert dialogue.post(gp, f"Organization/{ORG}/$set-service", switch).status_code == 200
    info = {
        "resourceType": "Parameters",
        "parameter": [{"name": "message", "valueString": "Stengt 2. påskedag."}],
    }
    assert dialogue.post(gp, f"Organization/{ORG}/$set-information", info).status_code == 200
    services = {
        s["type"][0]["coding"][0]["code"]: s
        for s in dialogue.entries(me, "HealthcareService", patient=STRANGER)
    }
    assert services["flu-vaccine"]["active"] is False
    assert services["e-consultation"]["comment"] == "Stengt 2. påskedag."
    # A citizen may not change the office, and the attempt is audited.
    assert dialogue.post(me, f"Organization/{ORG}/$set-service", switch).status_code == 403
    assert any(
        e["reason"] == "staff-only" and e["query"] == "HealthcareService"
        for e in _denied_office_changes(dialogue)
    )
    switch["parameter"][1]["valueBoolean"] = True  # type: ignore[index]
    assert dialogue.post(gp, f"Organization/{ORG}/$set-service", switch).status_code == 200


# --- the wire ---------------------------------------------------------------------------------


def test_openapi_document_is_served(dialogue: Dialogue) -> None:
    r = dialogue.client.get(f"{dialogue.url}/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    for path in ("/fhir/Communication", "/fhir/Task", "/fhir/Slot", "/fhir/Appointment"):
        assert path in paths


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[]",
        b'{"resourceType": "Patient"}',
        b'{"resourceType": "Communication"}',
        b'{"resourceType": "Communication", "payload": [{"contentString": 5}]}',
        b'{"resourceType": "Communication", "payload": [{"contentString": "x"}],'
        b' "subject": {"identifier": {"value": "12345678901"}}}',
        b'{"resourceType": "Communication", "payload": [{"contentString": "x"}],'
        b' "inResponseTo": [{"reference": "Communication/../../etc"}]}',
        b"{" * 5000,
        b'{"resourceType": "Communication", "payload": [{"contentString": "'
        + b"x" * 300_000
        + b'"}]}',
    ],
)
def test_bad_bodies_are_4xx_and_write_nothing(dialogue: Dialogue, raw: bytes) -> None:
    me = dialogue.citizen(ADULT)
    before = _stored_rows(dialogue)
    r = dialogue.post(me, "Communication", None, raw=raw)
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["resourceType"] == "OperationOutcome"
    assert _stored_rows(dialogue) == before


def test_bad_search_parameters_are_400(dialogue: Dialogue) -> None:
    me = dialogue.citizen(ADULT)
    assert dialogue.get(me, "Communication").status_code == 400
    assert dialogue.get(me, "Communication", patient="123").status_code == 400
    assert dialogue.get(me, "Communication", patient=ADULT, _sort="x").status_code == 400
    assert dialogue.get(me, "Communication/" + "x" * 65).status_code == 400
    assert dialogue.get(me, "Communication/nosuchmessage").status_code == 404
