"""Issue 15 through the API of a real dialogue server on 127.0.0.1: e-mail notices reach a real
SMTP server (the demo's MailSink) for an answer, a handled renewal and a booking confirmed, moved
or cancelled, in the person's language and with no health information; creations carry an
`Idempotency-Key`, so a resend gives back the first result; the development clock is refused
outside dev mode and moves only the service's time."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import func, select

from onerecord.demo_mail import MailSink
from onerecord.dialogue import schema
from onerecord.dialogue.contacts import ContactDetails, StaticContacts
from onerecord.dialogue.database import make_engine
from onerecord.dialogue.settings import DialogueSettings
from onerecord.dialogue.store import SqlDialogueStore
from tests.dialogue.harness import (
    ADULT,
    CHILD_8,
    ELDER,
    ISSUER,
    PARENT,
    START,
    Dialogue,
    communication,
    running_dialogue,
)
from tests.dialogue.test_api import _booking, _handling, _renewal, _slot
from tests.support.servers import free_port

ADULT_MAIL = "ragnhild.nilsen.602@innbygger.example"
PARENT_MAIL = "anne.bakke.032@innbygger.example"
CONTACTS = StaticContacts(
    {
        ADULT: ContactDetails(ADULT_MAIL, "40443516", "nn"),
        PARENT: ContactDetails(PARENT_MAIL, "40879878", "en"),
        CHILD_8: ContactDetails(None, None, "nb"),  # under 16: no e-mail in the register
        ELDER: ContactDetails(None, None, "nb"),
    }
)
SECRET_TEXT = "Brystsmerter etter Metformin"


@pytest.fixture(scope="module")
def sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailSink]:
    mail_sink = MailSink(tmp_path_factory.mktemp("mail"), port=free_port()).start()
    try:
        yield mail_sink
    finally:
        mail_sink.stop()


@pytest.fixture(scope="module")
def dialogue(tmp_path_factory: pytest.TempPathFactory, sink: MailSink) -> Iterator[Dialogue]:
    path: Path = tmp_path_factory.mktemp("dialogue") / "dialogue.db"
    with running_dialogue(
        f"sqlite:///{path}",
        None,
        contacts=CONTACTS,
        smtp_host=sink.host,
        smtp_port=sink.port,
        smtp_from="ikke-svar@helse.example",
        notify_poll_s=0.1,
        dev_mode=True,
        dev_clock=True,
    ) as running:
        yield running


@pytest.fixture(autouse=True)
def _clock_at_start(dialogue: Dialogue) -> None:
    dialogue.clock.now = START


def _mails_to(sink: MailSink, address: str, count: int, timeout: float = 10) -> list[EmailMessage]:
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in sink.mails() if m["To"] == address]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _outbox(dialogue: Dialogue) -> list[Any]:
    async def read() -> list[Any]:
        engine = make_engine(dialogue.db_url)
        try:
            return list(await SqlDialogueStore(engine).notifications())
        finally:
            await engine.dispose()

    return asyncio.run(read())


def _row_when_done(dialogue: Dialogue, ident: str) -> Any:
    """The outbox row once its attempt has ended (the mail may arrive before `sent` is stored)."""
    deadline = time.monotonic() + 10
    while True:
        row = next(n for n in _outbox(dialogue) if n.id == ident)
        if row.status not in ("pending", "sending") or time.monotonic() > deadline:
            return row
        time.sleep(0.05)


def _count(dialogue: Dialogue, table: Any) -> int:
    async def count() -> int:
        engine = make_engine(dialogue.db_url)
        try:
            async with engine.connect() as conn:
                return int(
                    (await conn.execute(select(func.count()).select_from(table))).scalar_one()
                )
        finally:
            await engine.dispose()

    return asyncio.run(count())


def _no_health_data(mail: EmailMessage) -> None:
    text = f"{mail['Subject']}\n{mail.get_content()}"
    assert SECRET_TEXT not in text and "Metformin" not in text
    assert not re.search(r"\d{11}", text), "no national identity number"


def test_an_answer_is_mailed_in_the_persons_language_with_no_health_data(
    dialogue: Dialogue, sink: MailSink
) -> None:
    me, gp = dialogue.citizen(ADULT), dialogue.staff()
    sent = dialogue.post(me, "Communication", communication(ADULT, SECRET_TEXT))
    assert sent.status_code == 201, sent.text
    assert _mails_to(sink, ADULT_MAIL, 1, timeout=0.5) == []  # the citizen's own message: none
    answer = dialogue.post(
        gp,
        "Communication",
        communication(
            None, "Slutt med Metformin", category=None, fee=None, in_response_to=sent.json()["id"]
        ),  # fmt: skip
    )
    assert answer.status_code == 201, answer.text
    [mail] = _mails_to(sink, ADULT_MAIL, 1)
    assert mail["Subject"] == "Du har ei ny melding i helseportalen"  # nynorsk, as registered
    assert mail["Message-ID"] == f"<answer-{answer.json()['id']}@helse.example>"
    assert "http://127.0.0.1:8106/innbygger/fastlege" in mail.get_content()
    _no_health_data(mail)
    row = _row_when_done(dialogue, f"answer-{answer.json()['id']}")
    assert (row.status, row.attempts, row.recipient) == ("sent", 1, ADULT)
    assert row.sent_at is not None


def test_renewal_and_bookings_are_mailed_to_whoever_acted(
    dialogue: Dialogue, sink: MailSink
) -> None:
    parent, gp = dialogue.citizen(PARENT, (CHILD_8, "parent")), dialogue.staff()
    before = len(_mails_to(sink, PARENT_MAIL, 0, timeout=0))
    # A renewal for the child, asked by the parent: the parent is told it was handled.
    [med, *_] = dialogue.entries(parent, "MedicationRequest", patient=CHILD_8)
    task = dialogue.post(parent, "Task", _renewal(CHILD_8, med["id"]))
    assert task.status_code == 201, task.text
    handled = dialogue.post(gp, f"Task/{task.json()['id']}/$handle", _handling("completed"))
    assert handled.status_code == 200, handled.text
    # Booked, moved and cancelled by the office: three notices more.
    first = dialogue.post(gp, "Slot", _slot(START + timedelta(days=3))).json()["id"]
    second = dialogue.post(gp, "Slot", _slot(START + timedelta(days=4))).json()["id"]
    booked = dialogue.post(parent, "Appointment", _booking(CHILD_8, first))
    assert booked.status_code == 201, booked.text
    appointment = booked.json()["id"]
    moved = dialogue.post(gp, f"Appointment/{appointment}/$move", {
        "resourceType": "Parameters", "parameter": [{"name": "slot", "valueReference":
                                                     {"reference": f"Slot/{second}"}}]
    })  # fmt: skip
    assert moved.status_code == 200, moved.text
    assert dialogue.post(gp, f"Appointment/{appointment}/$cancel", {}).status_code == 200
    mails = _mails_to(sink, PARENT_MAIL, before + 4)[before:]
    assert [m["Message-ID"].split("-")[0] for m in mails].count("<booking") == 3
    assert {m["Subject"] for m in mails} == {"You have something new to read in the health portal"}
    bodies = "\n".join(m.get_content() for m in mails)
    for said in ("dealt with a request", "is confirmed", "has been changed", "cancelled"):
        assert said in bodies
    for mail in mails:
        _no_health_data(mail)
    kinds = {n.kind for n in _outbox(dialogue) if n.recipient == PARENT}
    assert kinds >= {"renewal-handled", "booking-confirmed", "booking-changed", "booking-cancelled"}


def test_a_person_without_an_e_mail_gets_none(dialogue: Dialogue, sink: MailSink) -> None:
    me, gp = dialogue.citizen(ELDER), dialogue.staff()
    sent = dialogue.post(me, "Communication", communication(ELDER, "Et spørsmål"))
    dialogue.post(gp, "Communication", communication(
        None, "Svar", category=None, fee=None, in_response_to=sent.json()["id"]))  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = [n for n in _outbox(dialogue) if n.recipient == ELDER]
        if rows and rows[0].status not in ("pending", "sending"):
            break
        time.sleep(0.05)
    assert [n.status for n in rows] == ["no-address"]


def _post(
    dialogue: Dialogue, token: Any, path: str, body: dict[str, Any], key: str
) -> httpx.Response:
    url = f"{dialogue.fhir}/{path}"
    headers = {
        **token.headers("POST", url),
        "Content-Type": "application/fhir+json",
        "Idempotency-Key": key,
    }
    return dialogue.client.post(url, json=body, headers=headers)


def test_a_resent_creation_gives_back_the_first_result(dialogue: Dialogue) -> None:
    me = dialogue.citizen(ADULT)
    body = communication(ADULT, "Sendt to ganger", category="contact-office", fee=None)
    before = _count(dialogue, schema.message)
    first = _post(dialogue, me, "Communication", body, "form-3f9a1c2e-0001")
    again = _post(dialogue, me, "Communication", body, "form-3f9a1c2e-0001")
    assert first.status_code == again.status_code == 201, again.text
    assert first.json()["id"] == again.json()["id"]
    assert first.headers["location"] == again.headers["location"]
    assert _count(dialogue, schema.message) == before + 1
    # The same key with another body is the client's error, and writes nothing.
    other = communication(ADULT, "Noe annet", category="contact-office", fee=None)
    reused = _post(dialogue, me, "Communication", other, "form-3f9a1c2e-0001")
    assert reused.status_code == 409 and "Idempotency-Key" in reused.text
    # Another person's same key is theirs alone.
    parent = dialogue.citizen(PARENT)
    theirs = _post(dialogue, parent, "Communication",
                   communication(PARENT, "Sendt to ganger", category="contact-office", fee=None),
                   "form-3f9a1c2e-0001")  # fmt: skip
    assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]
    assert _count(dialogue, schema.message) == before + 2


def test_a_resent_booking_gives_back_the_appointment(dialogue: Dialogue) -> None:
    me, gp = dialogue.citizen(ADULT), dialogue.staff()
    slot = dialogue.post(gp, "Slot", _slot(START + timedelta(days=5))).json()["id"]
    first = _post(dialogue, me, "Appointment", _booking(ADULT, slot), "booking-key-0001")
    again = _post(dialogue, me, "Appointment", _booking(ADULT, slot), "booking-key-0001")
    assert first.status_code == again.status_code == 201, again.text
    assert first.json()["id"] == again.json()["id"]  # not 409 "slot taken"


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(key=st.text(max_size=80).filter(lambda k: k.isprintable() and k.isascii()))
def test_a_bad_idempotency_key_is_4xx_and_writes_nothing(dialogue: Dialogue, key: str) -> None:
    ok = re.fullmatch(r'"?[A-Za-z0-9\-._:]{8,64}"?', key.strip())
    if ok and (key.strip().count('"') in (0, 2)):
        return  # a well-formed key: tested above
    me = dialogue.citizen(ADULT)
    before = _count(dialogue, schema.message), _count(dialogue, schema.idempotency)
    body = communication(ADULT, "x", category="contact-office", fee=None)
    r = _post(dialogue, me, "Communication", body, key)
    assert 400 <= r.status_code < 500, r.text
    assert (_count(dialogue, schema.message), _count(dialogue, schema.idempotency)) == before


def test_the_dev_clock_is_refused_outside_dev_mode() -> None:
    with pytest.raises(ValidationError, match="development clock"):
        DialogueSettings(issuer=ISSUER, jwks_url=f"{ISSUER}/jwks", dev_clock=True)


def test_the_dev_clock_moves_the_services_time_only(dialogue: Dialogue) -> None:
    url = f"{dialogue.url}/dev/clock"
    try:
        moved = dialogue.client.post(url, json={"offset_seconds": 3600})
        assert moved.status_code == 200, moved.text
        assert moved.json()["now"].startswith((START + timedelta(hours=1)).isoformat()[:16])
        # A token of the real time is still taken.
        me = dialogue.citizen(ADULT)
        assert dialogue.get(me, "HealthcareService", patient=ADULT).status_code == 200
    finally:
        dialogue.client.post(url, json={"offset_seconds": 0})


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.one_of(
        st.binary(max_size=40),
        st.dictionaries(
            st.sampled_from(["offset_seconds", "offset", "x"]),
            st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5)),
            max_size=2,
        ).map(lambda d: __import__("json").dumps(d).encode()),
    )
)
def test_bad_dev_clock_bodies_are_4xx(dialogue: Dialogue, body: bytes) -> None:
    url = f"{dialogue.url}/dev/clock"
    try:
        r = dialogue.client.post(url, content=body)
        assert r.status_code < 500, r.text
        if r.status_code == 200:
            seconds = r.json()["offset_seconds"]
            assert 0 <= seconds <= 400 * 86400
    finally:
        dialogue.client.post(url, json={"offset_seconds": 0})


def test_no_dev_clock_unless_asked(tmp_path: Path) -> None:
    with running_dialogue(f"sqlite:///{tmp_path / 'd.db'}", None) as plain:
        assert (
            plain.client.post(f"{plain.url}/dev/clock", json={"offset_seconds": 1}).status_code
            == 404
        )


def test_a_resent_renewal_gives_back_the_task(dialogue: Dialogue) -> None:
    me = dialogue.citizen(ADULT)
    [med, *_] = dialogue.entries(me, "MedicationRequest", patient=ADULT)
    before = _count(dialogue, schema.request)
    first = _post(dialogue, me, "Task", _renewal(ADULT, med["id"]), "renewal-key-0001")
    again = _post(dialogue, me, "Task", _renewal(ADULT, med["id"]), "renewal-key-0001")
    assert first.status_code == again.status_code == 201, again.text
    assert first.json()["id"] == again.json()["id"]
    assert _count(dialogue, schema.request) == before + 1
