"""The outbox and the idempotency keys in the store (SQLite and PostgreSQL), and the mail sender
against a real SMTP server on 127.0.0.1 (the demo's MailSink): retries with back-off, each
attempt recorded, one mail per event even when a sender dies after the SMTP server accepted it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from onerecord.demo_mail import MailSink
from onerecord.dialogue import (
    Message,
    Office,
    Request,
    RequestKind,
    RequestStatus,
    Sender,
    Service,
    ThreadCategory,
)
from onerecord.dialogue.contacts import ContactDetails, StaticContacts
from onerecord.dialogue.database import make_engine, upgrade
from onerecord.dialogue.notify import MailSettings, NotificationSender, compose
from onerecord.dialogue.outbox import (
    IdempotencyClaim,
    Notification,
    NotificationKind,
    NotificationStatus,
    notification_id,
)
from onerecord.dialogue.store import KeyTaken, SqlDialogueStore
from tests.conftest import Database
from tests.support.servers import free_port

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
ORG = "974600019"
PERSON = "01528012345"
MAIL = "kari.nordmann.123@innbygger.example"


@dataclass
class MovableClock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def store(database: Database) -> AsyncIterator[SqlDialogueStore]:
    engine = make_engine(database.url, schema=database.schema)
    await upgrade(engine)
    store = SqlDialogueStore(engine)
    await store.put_office(Office(ORG, "Legesenter", "22 00 00 00", frozenset(Service), None))
    try:
        yield store
    finally:
        await engine.dispose()


def _message(ident: str) -> Message:
    return Message(
        ident, ident, ORG, PERSON, ThreadCategory.CONTACT_OFFICE, Sender.OFFICE,
        "01017512345", "Dr. Lege", "Svar", NOW,
    )  # fmt: skip


def _notice(event: str) -> Notification:
    return Notification(notification_id(NotificationKind.ANSWER, event), NotificationKind.ANSWER,
                        PERSON, NOW)  # fmt: skip


async def test_a_notice_is_stored_with_its_event_or_not_at_all(store: SqlDialogueStore) -> None:
    await store.add_message(_message("m1"), notices=[_notice("m1")])
    [queued] = await store.notifications(PERSON)
    assert (queued.id, queued.status, queued.attempts) == ("answer-m1", "pending", 0)
    # The same event cannot queue a second notice: the second write fails whole.
    with pytest.raises(Exception):  # noqa: B017 - the driver's IntegrityError
        await store.add_message(_message("m2"), notices=[_notice("m1")])
    assert await store.message("m2") is None
    assert len(await store.notifications(PERSON)) == 1
    # A request answered twice queues one notice: the second answer changes nothing.
    request = Request("r1", RequestKind.PRESCRIPTION_RENEWAL, ORG, PERSON, PERSON, NOW, NOW,
                      RequestStatus.REQUESTED, medication_id="x")  # fmt: skip
    await store.add_request(request)
    handled = Notification("renewal-handled-r1", NotificationKind.RENEWAL_HANDLED, PERSON, NOW)
    assert await store.handle_request(
        "r1", status=RequestStatus.COMPLETED, reason=None, at=NOW, notices=[handled]
    )
    assert not await store.handle_request(
        "r1", status=RequestStatus.COMPLETED, reason=None, at=NOW, notices=[handled]
    )
    assert [n.id for n in await store.notifications(PERSON)] == ["answer-m1", "renewal-handled-r1"]


async def test_an_idempotency_key_names_one_resource(store: SqlDialogueStore) -> None:
    claim = IdempotencyClaim("k" * 64, "f" * 64, "Communication")
    await store.add_message(_message("m1"), claim=claim)
    with pytest.raises(KeyTaken):
        await store.add_message(_message("m2"), claim=claim)
    assert await store.message("m2") is None  # the whole transaction rolled back
    found = await store.idempotent("k" * 64)
    assert found is not None and found.resource_id == "m1"
    assert await store.idempotent("j" * 64) is None


async def test_an_idempotency_key_expires_after_its_retention(store: SqlDialogueStore) -> None:
    """A key older than its retention counts as none, gives way to a new claim, and is purged."""
    cutoff = NOW + timedelta(hours=1)  # a claim made at NOW has expired by then
    await store.add_message(_message("m1"), claim=IdempotencyClaim("k" * 64, "f" * 64, "C"))
    await store.add_message(_message("m2"), claim=IdempotencyClaim("j" * 64, "f" * 64, "C"))
    assert await store.idempotent("k" * 64, since=NOW) is not None
    assert await store.idempotent("k" * 64, since=cutoff) is None
    # The same key claimed again after its retention names the new resource.
    later = replace(_message("m3"), sent=cutoff)
    again = IdempotencyClaim("k" * 64, "e" * 64, "C", expired_before=cutoff)
    await store.add_message(later, claim=again)
    found = await store.idempotent("k" * 64, since=cutoff)
    assert found is not None and (found.resource_id, found.fingerprint) == ("m3", "e" * 64)
    # Within its retention the key stays taken (nothing written).
    with pytest.raises(KeyTaken):
        await store.add_message(_message("m4"), claim=replace(again, expired_before=NOW))
    assert await store.message("m4") is None
    # The purge deletes what is older than the cutoff only.
    assert await store.purge_idempotency(before=cutoff) == 1  # "j…", stored at NOW
    assert await store.idempotent("j" * 64) is None
    assert await store.idempotent("k" * 64) is not None


async def test_a_failed_notice_is_told_on_its_request_until_a_later_one_goes_out(
    store: SqlDialogueStore,
) -> None:
    request = Request("r1", RequestKind.CONTACT_OFFICE, ORG, PERSON, PERSON, NOW, NOW,
                      RequestStatus.REQUESTED, thread_id="m1")  # fmt: skip
    await store.add_request(request)
    first = replace(_notice("m1"), request_id="r1")
    await store.add_message(_message("m1"), notices=[first])
    assert await store.failed_notices(["r1", "r2"]) == {}
    failed_at = NOW + timedelta(minutes=5)
    await store.notification_done(
        first.id, status=NotificationStatus.FAILED, error="X", failed_at=failed_at
    )
    assert await store.failed_notices(["r1", "r2"]) == {"r1": failed_at}
    # The office's list of its rows with a failed notice, within the window asked for.
    assert await store.office_failed_notices(ORG, since=NOW, limit=10) == ["r1"]
    assert await store.office_failed_notices(ORG, since=failed_at + timedelta(1), limit=10) == []
    assert await store.office_failed_notices("974600027", since=NOW, limit=10) == []
    # A later notice about the same request that went out: the failure is no longer told.
    second = replace(_notice("m2"), request_id="r1", created=NOW + timedelta(hours=1))
    await store.add_message(_message("m2"), notices=[second])
    await store.notification_done(second.id, status=NotificationStatus.SENT, sent_at=NOW)
    assert await store.failed_notices(["r1"]) == {}
    assert await store.failed_notices([]) == {}


@pytest.fixture
def sink(tmp_path: Path) -> AsyncIterator[MailSink]:
    mail_sink = MailSink(tmp_path / "mail", port=free_port()).start()
    try:
        yield mail_sink  # type: ignore[misc]
    finally:
        mail_sink.stop()


def _settings(port: int, **more: float) -> MailSettings:
    return MailSettings(
        host="127.0.0.1",
        port=port,
        sender="ikke-svar@helse.example",
        portal_url="http://127.0.0.1:8106/innbygger/fastlege",
        timeout_s=2.0,
        **more,  # type: ignore[arg-type]
    )


CONTACTS = StaticContacts({PERSON: ContactDetails(MAIL, "40000000", "nn")})


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_a_notice_is_mailed_once_in_the_persons_language(
    store: SqlDialogueStore, sink: MailSink
) -> None:
    await store.add_message(_message("m1"), notices=[_notice("m1")])
    sender = NotificationSender(store, CONTACTS, _settings(sink.port), clock=MovableClock())
    assert await sender.run_once() == 1
    assert await sender.run_once() == 0  # sent: never again
    [mail] = sink.mails()
    assert mail["To"] == MAIL
    assert mail["Message-ID"] == "<answer-m1@helse.example>"
    assert mail["Subject"] == "Du har ei ny melding i helseportalen"
    assert "Legekontoret ditt har svart deg." in mail.get_content()
    [row] = await store.notifications(PERSON)
    assert (row.status, row.attempts, row.sent_at, row.last_error) == ("sent", 1, NOW, None)


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_a_failed_attempt_is_recorded_and_retried_after_a_doubling_pause(
    store: SqlDialogueStore, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there yet
    clock = MovableClock()
    settings = _settings(port, backoff_s=60.0, attempts=4)
    sender = NotificationSender(store, CONTACTS, settings, clock=clock)
    await store.add_message(_message("m1"), notices=[_notice("m1")])
    assert await sender.run_once() == 1
    [row] = await store.notifications(PERSON)
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "ConnectionRefusedError")
    assert row.next_attempt == NOW + timedelta(seconds=60)
    assert await sender.run_once() == 0  # not due before the pause is over
    clock.now = NOW + timedelta(seconds=60)
    assert await sender.run_once() == 1
    [row] = await store.notifications(PERSON)
    assert row.attempts == 2 and row.next_attempt == clock.now + timedelta(seconds=120)
    mail_sink = MailSink(tmp_path / "mail", port=port).start()  # the server is back
    try:
        clock.now += timedelta(seconds=120)
        assert await sender.run_once() == 1
        [row] = await store.notifications(PERSON)
        assert (row.status, row.attempts, row.sent_at) == ("sent", 3, clock.now)
        assert row.last_error == "ConnectionRefusedError"  # the last failure stays on record
        assert len(mail_sink.mails()) == 1
    finally:
        mail_sink.stop()


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_the_last_failed_attempt_marks_the_notice_failed(store: SqlDialogueStore) -> None:
    clock = MovableClock()
    sender = NotificationSender(
        store, CONTACTS, _settings(free_port(), backoff_s=1.0, attempts=2), clock=clock
    )
    await store.add_message(_message("m1"), notices=[_notice("m1")])
    await sender.run_once()
    clock.now += timedelta(seconds=1)
    await sender.run_once()
    [row] = await store.notifications(PERSON)
    assert (row.status, row.attempts) == ("failed", 2)
    assert row.failed_at == clock.now  # when the last attempt failed: shown on the work list
    clock.now += timedelta(days=1)
    assert await sender.run_once() == 0


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_no_address_in_the_register_sends_nothing(
    store: SqlDialogueStore, sink: MailSink
) -> None:
    await store.add_message(_message("m1"), notices=[_notice("m1")])
    register = StaticContacts({PERSON: ContactDetails(None, None, "nb")})  # e.g. under 16
    sender = NotificationSender(store, register, _settings(sink.port), clock=MovableClock())
    await sender.run_once()
    [row] = await store.notifications(PERSON)
    assert row.status == NotificationStatus.NO_ADDRESS
    assert sink.mails() == []


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_a_sender_dying_after_the_smtp_accept_delivers_once(
    store: SqlDialogueStore, sink: MailSink
) -> None:
    """The window: the SMTP server said 250, the sender died before storing `sent`."""
    clock = MovableClock()
    settings = _settings(sink.port)
    await store.add_message(_message("m1"), notices=[_notice("m1")])
    [queued] = await store.notifications(PERSON)
    # What the dead sender did: claimed the notice, sent its mail, and stored nothing more.
    assert await store.claim_notification(
        queued.id, now=NOW, lease_until=NOW + timedelta(seconds=settings.lease_s)
    )
    dead = NotificationSender(store, CONTACTS, settings, clock=clock)
    dead._send(compose(queued, to=MAIL, language="nn", settings=settings, now=NOW))
    assert len(sink.mails()) == 1
    restarted = NotificationSender(store, CONTACTS, settings, clock=clock)
    assert await restarted.run_once() == 0  # still leased to the dead sender
    clock.now = NOW + timedelta(seconds=settings.lease_s)
    assert await restarted.run_once() == 1  # the lease ran out: sent again, same Message-ID
    [row] = await store.notifications(PERSON)
    assert (row.status, row.attempts) == ("sent", 2)
    [mail] = sink.mails()  # the mailbox holds it once
    assert mail["Message-ID"] == "<answer-m1@helse.example>"


def test_the_mail_holds_no_health_information() -> None:
    settings = _settings(25)
    for kind in NotificationKind:
        for language in ("nb", "nn", "en"):
            notice = Notification(notification_id(kind, "abc123"), kind, PERSON, NOW)
            mail = compose(notice, to=MAIL, language=language, settings=settings, now=NOW)
            text = f"{mail['Subject']}\n{mail.get_content()}"
            assert not re.search(r"\d{11}", text)
            assert "abc123" not in mail.get_content()
            for word in ("Metformin", "tablett", "resept", "prescription", "medis"):
                assert word.lower() not in text.lower()
            assert mail["Content-Language"] == language
