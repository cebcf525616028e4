"""The clinic's work list over the API: paging, filters, overdue, close and reopen, move.

A real dialogue server on 127.0.0.1 (SQLite; the PostgreSQL store is the same code, covered
by test_store and bench/dialogue.py --postgres). Bad search parameters and bodies are 4xx
with nothing written (hypothesis over HTTP).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from onerecord.dialogue import schema
from onerecord.dialogue.database import make_engine
from onerecord.dialogue.fhir import OVERDUE_EXTENSION
from tests.dialogue.harness import (
    ADULT,
    ELDER,
    ORG,
    OTHER_ORG,
    START,
    STRANGER,
    Dialogue,
    communication,
    running_dialogue,
)
from tests.dialogue.test_api import _audit, _booking, _slot


@pytest.fixture(scope="module")
def dialogue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dialogue]:
    path: Path = tmp_path_factory.mktemp("worklist") / "dialogue.db"
    with running_dialogue(f"sqlite:///{path}", None) as running:
        yield running


@pytest.fixture(autouse=True)
def _clock_at_start(dialogue: Dialogue) -> None:
    dialogue.clock.now = START


def _rows(dialogue: Dialogue) -> int:
    async def count() -> int:
        engine = make_engine(dialogue.db_url)
        try:
            async with engine.connect() as conn:
                total = 0
                for table in (schema.message, schema.request, schema.appointment, schema.slot):
                    total += (
                        await conn.execute(select(func.count()).select_from(table))
                    ).scalar_one()
                return total
        finally:
            await engine.dispose()

    return asyncio.run(count())


def _overdue(task: dict[str, object]) -> bool:
    (ext,) = [e for e in task["extension"] if e["url"] == OVERDUE_EXTENSION]  # type: ignore[attr-defined]
    return bool(ext["valueBoolean"])


def test_the_work_list_pages_filters_and_flags_overdue(dialogue: Dialogue) -> None:
    gp = dialogue.staff()
    sent = []
    for i, who in enumerate((ADULT, ELDER, STRANGER)):
        dialogue.clock.now = START + timedelta(hours=i)
        me = dialogue.citizen(who)
        r = dialogue.post(me, "Communication", communication(who, f"Spørsmål {i}"))
        assert r.status_code == 201, r.text
        sent.append(r.json()["id"])
    contact = dialogue.post(
        dialogue.citizen(ADULT),
        "Communication",
        communication(ADULT, "Ny adresse", category="contact-office", fee=None),
    ).json()

    # Page by page, the earliest answer limit first, a next link until the last page.
    first = dialogue.get(gp, "Task", organization=ORG, _count="2")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["total"] == 4
    assert len(body["entry"]) == 2
    cursor = parse_qs(urlsplit(body["link"][0]["url"]).query)["_cursor"][0]
    rest = dialogue.get(gp, "Task", organization=ORG, _count="2", _cursor=cursor).json()
    assert "link" not in rest
    ids = [e["resource"]["id"] for e in body["entry"] + rest["entry"]]
    assert len(set(ids)) == 4
    dues = [e["resource"]["restriction"]["period"]["end"] for e in body["entry"] + rest["entry"]]
    assert dues == sorted(dues)
    assert not any(_overdue(e["resource"]) for e in body["entry"] + rest["entry"])

    only = dialogue.entries(gp, "Task", organization=ORG, code="contact-office")
    assert [t["focus"]["reference"] for t in only] == [f"Communication/{contact['id']}"]
    # The contact thread is the office's row: the citizen's own Task list does not show it.
    assert all(
        t["code"]["coding"][0]["code"] != "contact-office"
        for t in dialogue.entries(dialogue.citizen(ADULT), "Task", patient=ADULT)
    )

    # A week and a half later every one is past its 5-working-day limit.
    dialogue.clock.now = START + timedelta(days=12)
    late = dialogue.entries(gp, "Task", organization=ORG)
    assert late and all(_overdue(t) for t in late)

    # The office answers one (off the list), closes another (off the list).
    answer = dialogue.post(
        gp,
        "Communication",
        communication(None, "Svar", category=None, fee=None, in_response_to=sent[0]),
    )
    assert answer.status_code == 201, answer.text
    closing = next(t for t in late if t["focus"]["reference"] == f"Communication/{contact['id']}")
    closed = dialogue.post(gp, f"Task/{closing['id']}/$close", {})
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "completed"
    assert dialogue.post(gp, f"Task/{closing['id']}/$close", {}).status_code == 409
    waiting = {t["focus"]["reference"] for t in dialogue.entries(gp, "Task", organization=ORG)}
    assert f"Communication/{sent[0]}" not in waiting
    assert f"Communication/{contact['id']}" not in waiting

    # The patient writes again in the closed thread: back on the list with a new limit.
    again = dialogue.post(
        dialogue.citizen(ADULT),
        "Communication",
        communication(None, "Glemte noe", category=None, fee=None, in_response_to=contact["id"]),
    )
    assert again.status_code == 201, again.text
    back = dialogue.entries(gp, "Task", organization=ORG, code="contact-office")
    assert [t["id"] for t in back] == [closing["id"]]
    assert not _overdue(back[0])

    # The thread, read by the office: all its messages, and each read audited.
    thread = dialogue.entries(gp, "Communication", organization=ORG, thread=contact["id"])
    assert [m["payload"][0]["contentString"] for m in thread] == ["Ny adresse", "Glemte noe"]
    reads = [r for r in _audit(dialogue, ADULT) if r.practitioner and r.query == "Communication"]
    assert reads and all(r.practitioner.hpr == "9144889" for r in reads if r.practitioner)

    # Another office's staff see none of it.
    other = dialogue.staff(office=OTHER_ORG)
    assert dialogue.get(other, "Task", organization=ORG).status_code == 403


def test_the_office_moves_and_lists_appointments(dialogue: Dialogue) -> None:
    gp, me = dialogue.staff(), dialogue.citizen(ELDER)
    one = dialogue.post(gp, "Slot", _slot(START + timedelta(days=2))).json()["id"]
    two = dialogue.post(gp, "Slot", _slot(START + timedelta(days=4), "video")).json()["id"]
    booked = dialogue.post(me, "Appointment", _booking(ELDER, one)).json()
    upcoming = dialogue.entries(gp, "Appointment", organization=ORG)
    assert booked["id"] in [a["id"] for a in upcoming]

    moved = dialogue.post(
        gp,
        f"Appointment/{booked['id']}/$move",
        {
            "resourceType": "Parameters",
            "parameter": [{"name": "slot", "valueReference": {"reference": f"Slot/{two}"}}],
        },
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["slot"] == [{"reference": f"Slot/{two}"}]
    free = [s["id"] for s in dialogue.entries(gp, "Slot", organization=ORG)]
    assert one in free and two not in free
    # The slot is taken now: moving another booking there is a conflict, nothing changes.
    other = dialogue.post(dialogue.citizen(STRANGER), "Appointment", _booking(STRANGER, one))
    again = dialogue.post(
        gp,
        f"Appointment/{other.json()['id']}/$move",
        {
            "resourceType": "Parameters",
            "parameter": [{"name": "slot", "valueReference": {"reference": f"Slot/{two}"}}],
        },
    )
    assert again.status_code == 409
    mine = dialogue.entries(dialogue.citizen(STRANGER), "Appointment", patient=STRANGER)
    assert mine[-1]["slot"] == [{"reference": f"Slot/{one}"}]
    # A citizen does not move appointments.
    assert (
        dialogue.post(
            me,
            f"Appointment/{booked['id']}/$move",
            {
                "resourceType": "Parameters",
                "parameter": [{"name": "slot", "valueReference": {"reference": f"Slot/{one}"}}],
            },
        ).status_code
        == 403
    )


_VALUES = st.text(max_size=30) | st.sampled_from(
    ["0", "101", "-1", "1_", "99999999999999999999_x", "1_a/b", "requested,foo", ""]
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    params=st.dictionaries(
        st.sampled_from(["code", "status", "_count", "_cursor", "thread", "x"]),
        _VALUES,
        max_size=3,
    ),
    body=st.binary(max_size=60)
    | st.sampled_from(
        [
            b'{"resourceType": "Parameters", "parameter": [{"name": "slot"}]}',
            b'{"resourceType": "Parameters", "parameter": [{"name": "slot",'
            b' "valueReference": {"reference": "Slot/../x"}}]}',
        ]
    ),
)
def test_bad_work_list_input_is_4xx_and_writes_nothing(
    dialogue: Dialogue, params: dict[str, str], body: bytes
) -> None:
    gp = dialogue.staff()
    before = _rows(dialogue)
    r = dialogue.get(gp, "Task", organization=ORG, **params)
    assert r.status_code < 500, r.text
    assert dialogue.post(gp, "Appointment/nosuch/$move", None, raw=body).status_code in (
        400,
        404,
    )
    assert dialogue.post(gp, "Task/nosuch/$close", None, raw=body).status_code == 404
    assert _rows(dialogue) == before


def test_the_citizen_sees_who_at_the_clinic_read_their_messages(dialogue: Dialogue) -> None:
    me, gp = dialogue.citizen(STRANGER), dialogue.staff()
    first = dialogue.post(
        me,
        "Communication",
        communication(STRANGER, "Adresseendring", category="contact-office", fee=None),
    ).json()
    assert dialogue.get(gp, f"Communication/{first['id']}").status_code == 200

    log = dialogue.get(me, "AuditEvent", patient=STRANGER)
    assert log.status_code == 200, log.text
    events = [e["resource"] for e in log.json()["entry"]]
    read = next(e for e in events if e["subtype"][0]["code"] == "read")
    reader = read["agent"][0]["who"]
    assert reader["display"] == "Kari Fastlege"
    assert reader["identifier"]["value"] == "9144889"  # for the portal's keyed reference
    assert [x.get("name") for x in read["entity"] if "name" in x] == ["Meldinger med legekontoret"]
    assert read["source"]["observer"]["display"] == "onerecord dialogue service"
    # Only health personnel's reads are listed; never the citizen's own, never an identity number.
    assert all(e["agent"][0]["who"]["display"] == "Kari Fastlege" for e in events)
    assert STRANGER not in log.text
    # The log is the citizen's: staff are refused, and its reading is audited.
    assert dialogue.get(gp, "AuditEvent", patient=STRANGER).status_code == 403
    assert any(r.action.value == "access-log-read" for r in _audit(dialogue, STRANGER))


def test_the_offices_schedule_resolves_the_slots_reference(dialogue: Dialogue) -> None:
    gp, me = dialogue.staff(), dialogue.citizen(ADULT)
    slot = dialogue.post(gp, "Slot", _slot(START + timedelta(days=6))).json()
    assert slot["schedule"] == {"reference": f"Schedule/{ORG}"}
    own = dialogue.get(gp, f"Schedule/{ORG}")
    assert own.status_code == 200, own.text
    assert own.json()["id"] == ORG and own.json()["active"] is True
    (mine,) = dialogue.entries(me, "Schedule", patient=ADULT)
    assert mine["actor"][0]["display"] == "Sentrum legekontor"
    assert dialogue.get(dialogue.staff(office=OTHER_ORG), f"Schedule/{ORG}").status_code == 403
    assert dialogue.get(gp, "Schedule/12").status_code == 400
