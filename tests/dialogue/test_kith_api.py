"""The KITH edge over HTTP with a real dialogue server on 127.0.0.1 (SQLite): the "EPJ" fetches
the office's outbox as MsgHead, answers in MsgHead, and the citizen sees the answer through the
FHIR API; appointments travel with iCalendar across a daylight-saving change; bad messages are
4xx with nothing written (hypothesis over HTTP)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree  # type: ignore[import-untyped]

from onerecord.dialogue.kith import (
    MH,
    AnswerTopic,
    KithMessage,
    MsgType,
    Party,
    RequestTopic,
    parse,
    render,
)
from onerecord.dialogue.kith_ical import CalendarEvent, EventStatus, Summary, parse_event
from tests.dialogue.harness import (
    ADULT,
    ELDER,
    ORG,
    START,
    Dialogue,
    Token,
    communication,
    running_dialogue,
)
from tests.dialogue.test_api import _audit, _booking, _renewal, _slot
from tests.dialogue.test_worklist_api import _rows

NETWORK = Party("onerecord dialogue", "999999999")
OFFICE = Party("Sentrum legekontor", ORG)
B64 = "{http://www.kith.no/xmlstds/base64container}Base64Container"


@pytest.fixture(scope="module")
def dialogue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dialogue]:
    path: Path = tmp_path_factory.mktemp("kith") / "dialogue.db"
    with running_dialogue(f"sqlite:///{path}", None) as running:
        yield running


@pytest.fixture(autouse=True)
def _clock_at_start(dialogue: Dialogue) -> None:
    dialogue.clock.now = START


def _outbox(dialogue: Dialogue, token: Token) -> list[KithMessage]:
    url = f"{dialogue.url}/kith/outbox"
    r = dialogue.client.get(url, params={"organization": ORG}, headers=token.headers("GET", url))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/xml")
    root = etree.fromstring(r.content)
    return [parse(etree.tostring(m)) for m in root.iter(f"{{{MH}}}MsgHead")]


def _inbox(dialogue: Dialogue, token: Token, data: bytes) -> httpx.Response:
    url = f"{dialogue.url}/kith/inbox"
    headers = {**token.headers("POST", url), "Content-Type": "application/xml"}
    return dialogue.client.post(url, content=data, headers=headers)


def _answer(
    asked: KithMessage,
    topic: AnswerTopic,
    text: str,
    event: CalendarEvent | None = None,
) -> bytes:
    return render(
        KithMessage(
            MsgType.SVAR,
            f"svar-{asked.msg_id}"[:64],
            START,
            OFFICE,
            NETWORK,
            asked.patient,
            topic,
            text,
            parent=asked.msg_id,
            conversation=asked.conversation or asked.msg_id,
            author="Kari Fastlege",
            event=event,
        )
    )


def test_an_e_consultation_is_fetched_answered_in_msghead_and_seen_by_the_citizen(
    dialogue: Dialogue,
) -> None:
    me, gp = dialogue.citizen(ADULT), dialogue.staff()
    made = dialogue.post(me, "Communication", communication(ADULT, "Utslett på armen i 3 uker"))
    assert made.status_code == 201, made.text
    sent = made.json()["id"]
    asked = [m for m in _outbox(dialogue, gp) if m.msg_id == sent]
    assert len(asked) == 1
    (q,) = asked
    assert q.msg_type is MsgType.FORESPORSEL and q.topic is RequestTopic.E_CONSULTATION
    assert q.patient == ADULT and q.text == "Utslett på armen i 3 uker"
    assert q.receiver.orgnr == ORG

    answer = _answer(q, AnswerTopic.REPLY, "Send gjerne et bilde.")
    r = _inbox(dialogue, gp, answer)
    assert r.status_code == 200, r.text
    assert r.json()["applied"] == "reply"
    again = _inbox(dialogue, gp, answer)  # the EPJ retries: not delivered twice
    assert again.status_code == 200 and again.json()["id"] == r.json()["id"]
    thread = dialogue.entries(me, "Communication", patient=ADULT, thread=sent)
    answers = [c for c in thread if c.get("inResponseTo")]
    assert [a["payload"][0]["contentString"] for a in answers] == ["Send gjerne et bilde."]
    assert answers[0]["inResponseTo"][0]["reference"] == f"Communication/{sent}"
    # Answered: off the work list, so out of the outbox.
    assert sent not in {m.msg_id for m in _outbox(dialogue, gp)}
    # The EPJ's reads and its answer are audited as the health worker's, by the token's jti.
    records = _audit(dialogue, ADULT)
    staff = [r for r in records if r.practitioner is not None]
    assert {r.action.value for r in staff} >= {"search", "retrieve", "store"}
    assert all(r.practitioner.hpr == "9144889" for r in staff if r.practitioner)


def test_a_renewal_is_handled_through_msghead(dialogue: Dialogue) -> None:
    me, gp = dialogue.citizen(ADULT), dialogue.staff()
    meds = dialogue.entries(me, "MedicationRequest", patient=ADULT)
    task = dialogue.post(me, "Task", _renewal(ADULT, meds[0]["id"], "Snart tom"))
    assert task.status_code == 201, task.text
    tid = task.json()["id"]
    (q,) = [m for m in _outbox(dialogue, gp) if m.msg_id == tid]
    assert q.topic is RequestTopic.PRESCRIPTION_RENEWAL and "Fornying av resept" in q.text
    refusal = _answer(q, AnswerTopic.REFUSED, "Trenger kontroll først")
    r = _inbox(dialogue, gp, refusal)
    assert r.status_code == 200, r.text
    assert _inbox(dialogue, gp, refusal).status_code == 200  # sent again: the same answer
    renewal = _inbox(dialogue, gp, _answer(q, AnswerTopic.RENEWED, "Fornyet"))
    assert renewal.status_code == 409  # a different answer to an answered request
    seen = dialogue.get(me, f"Task/{tid}").json()
    assert seen["status"] == "rejected"


def test_an_appointment_is_exported_with_icalendar_across_dst_and_moved(
    dialogue: Dialogue,
) -> None:
    me, gp = dialogue.citizen(ELDER), dialogue.staff()
    # 2027-03-28: summer time begins at 01:00 UTC (02:00 → 03:00 in Oslo).
    spring = datetime(2027, 3, 28, 0, 50, tzinfo=UTC)
    autumn = datetime(2027, 10, 31, 0, 40, tzinfo=UTC)  # 02:40 Oslo, the hour that repeats
    slot = dialogue.post(gp, "Slot", _slot(spring)).json()["id"]
    later = dialogue.post(gp, "Slot", _slot(autumn, "video")).json()["id"]
    booked = dialogue.post(me, "Appointment", _booking(ELDER, slot))
    assert booked.status_code == 201, booked.text
    aid = booked.json()["id"]
    (q,) = [m for m in _outbox(dialogue, gp) if m.msg_id == aid]
    assert q.topic is RequestTopic.APPOINTMENT and q.event is not None
    event = q.event
    assert (event.start, event.end) == (spring, spring + timedelta(minutes=20))
    assert event.uid == f"{aid}@onerecord" and event.status is EventStatus.CONFIRMED
    assert event.summary is Summary.IN_PERSON  # no note, no reason in SUMMARY

    # The iCalendar text itself: DTSTART in Oslo local time, DTEND after the jump.
    url = f"{dialogue.url}/kith/outbox"
    root = etree.fromstring(
        dialogue.client.get(
            url, params={"organization": ORG}, headers=gp.headers("GET", url)
        ).content
    )
    texts = [base64.b64decode(c.text).decode() for c in root.iter(B64)]
    (ics,) = [t for t in texts if f"UID:{aid}@onerecord" in t]
    assert "DTSTART;TZID=Europe/Oslo:20270328T015000" in ics
    assert "DTEND;TZID=Europe/Oslo:20270328T031000" in ics
    assert parse_event(ics.encode()) == CalendarEvent(
        event.uid, event.start, event.end, event.stamp, event.summary, event.status
    )

    r = _inbox(dialogue, gp, _answer(q, AnswerTopic.CONFIRMED, ""))
    assert r.status_code == 200, r.text
    moved_to = CalendarEvent(
        event.uid,
        autumn,
        autumn + timedelta(minutes=20),
        START,
        Summary.VIDEO,
        EventStatus.CONFIRMED,
        sequence=1,
    )
    r = _inbox(dialogue, gp, _answer(q, AnswerTopic.MOVED, "Flyttet", moved_to))
    assert r.status_code == 200, r.text
    assert _inbox(dialogue, gp, _answer(q, AnswerTopic.MOVED, "Flyttet", moved_to)).is_success
    (mine,) = [a for a in dialogue.entries(me, "Appointment", patient=ELDER) if a["id"] == aid]
    assert datetime.fromisoformat(mine["start"]) == autumn
    assert any(s["reference"] == f"Slot/{later}" for s in mine["slot"])
    r = _inbox(dialogue, gp, _answer(q, AnswerTopic.CANCELLED, "Avlyst"))
    assert r.status_code == 200, r.text
    assert _inbox(dialogue, gp, _answer(q, AnswerTopic.CANCELLED, "Avlyst")).is_success
    (mine,) = [a for a in dialogue.entries(me, "Appointment", patient=ELDER) if a["id"] == aid]
    assert mine["status"] == "cancelled"


def test_answers_from_the_wrong_office_patient_or_caller_are_refused(dialogue: Dialogue) -> None:
    me, gp = dialogue.citizen(ADULT), dialogue.staff()
    sent = dialogue.post(me, "Communication", communication(ADULT, "Et spørsmål")).json()["id"]
    (q,) = [m for m in _outbox(dialogue, gp) if m.msg_id == sent]
    before = _rows(dialogue)
    wrong_patient = KithMessage(
        MsgType.FORESPORSEL, q.msg_id, q.generated, q.sender, q.receiver, ELDER, q.topic, q.text
    )
    assert _inbox(dialogue, gp, _answer(wrong_patient, AnswerTopic.REPLY, "x")).status_code == 400
    assert _inbox(dialogue, me, _answer(q, AnswerTopic.REPLY, "x")).status_code == 403
    other = dialogue.staff(office="974600021")
    assert _inbox(dialogue, other, _answer(q, AnswerTopic.REPLY, "x")).status_code == 403
    url = f"{dialogue.url}/kith/outbox"
    r = dialogue.client.get(url, params={"organization": ORG}, headers=other.headers("GET", url))
    assert r.status_code == 403
    assert _rows(dialogue) == before


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=st.binary(max_size=400)
    | st.sampled_from(
        [
            b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>',
            b"<MsgHead xmlns='http://www.kith.no/xmlstds/msghead/2006-05-24'/>",
        ]
    )
    | st.integers(0, 3000).map(
        lambda i: render(
            KithMessage(
                MsgType.SVAR,
                "m1",
                START,
                OFFICE,
                NETWORK,
                ADULT,
                AnswerTopic.REPLY,
                "svar",
                parent="nosuch",
                conversation="nosuch",
            )
        )[:i]
    )
)
def test_bad_kith_messages_are_4xx_and_write_nothing(dialogue: Dialogue, body: bytes) -> None:
    _four_xx_and_nothing_written(dialogue, body)


_VALID_SHAPE = render(
    KithMessage(
        MsgType.SVAR,
        "m2",
        START,
        OFFICE,
        NETWORK,
        ADULT,
        AnswerTopic.MOVED,
        "Ny tid",
        parent="nosuch",
        conversation="nosuch",
        event=CalendarEvent(
            "nosuch@onerecord",
            START + timedelta(days=2),
            START + timedelta(days=2, minutes=20),
            START,
            Summary.IN_PERSON,
            EventStatus.CONFIRMED,
        ),
    )
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_mutated_kith_answers_are_4xx_and_write_nothing(
    dialogue: Dialogue, data: st.DataObject
) -> None:
    raw = bytearray(_VALID_SHAPE)
    for _ in range(data.draw(st.integers(1, 5))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    _four_xx_and_nothing_written(dialogue, bytes(raw))


def _four_xx_and_nothing_written(dialogue: Dialogue, body: bytes) -> None:
    gp = dialogue.staff()
    before = _rows(dialogue)
    r = _inbox(dialogue, gp, body)
    assert 400 <= r.status_code < 500, r.text
    assert _rows(dialogue) == before


def test_a_proposed_booking_is_tentative_and_confirmed_by_the_offices_system(
    dialogue: Dialogue,
) -> None:
    me, gp = dialogue.citizen(ELDER), dialogue.staff()
    setting = f"Organization/{ORG}/$set-confirm-bookings"

    def confirming(active: bool) -> dict[str, object]:
        return {
            "resourceType": "Parameters",
            "parameter": [{"name": "active", "valueBoolean": active}],
        }

    assert dialogue.post(gp, setting, confirming(True)).status_code == 200
    try:
        slot = dialogue.post(gp, "Slot", _slot(START + timedelta(days=12))).json()["id"]
        booked = dialogue.post(me, "Appointment", _booking(ELDER, slot))
        assert booked.status_code == 201 and booked.json()["status"] == "proposed", booked.text
        aid = booked.json()["id"]
        (q,) = [m for m in _outbox(dialogue, gp) if m.msg_id == aid]
        assert q.event is not None and q.event.status is EventStatus.TENTATIVE
        r = _inbox(dialogue, gp, _answer(q, AnswerTopic.CONFIRMED, ""))
        assert r.status_code == 200, r.text
        (mine,) = [a for a in dialogue.entries(me, "Appointment", patient=ELDER) if a["id"] == aid]
        assert mine["status"] == "booked"
        assert _inbox(dialogue, gp, _answer(q, AnswerTopic.CONFIRMED, "")).status_code == 200
    finally:
        assert dialogue.post(gp, setting, confirming(False)).status_code == 200
