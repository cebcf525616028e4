"""KITH MsgHead + Dialogmelding and the iCalendar attachment, pure: round trips, schema
validity, hostile and mutated input refused with a KithRefusal and nothing else."""

from __future__ import annotations

import base64
import re
from datetime import UTC, date, datetime, timedelta
from importlib import resources

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree  # type: ignore[import-untyped]

from onerecord.dialogue.kith import (
    AnswerTopic,
    KithMessage,
    KithRefusal,
    MsgType,
    Party,
    RequestTopic,
    _schema_files,
    parse,
    render,
    schema,
)
from onerecord.dialogue.kith_ical import (
    CalendarEvent,
    CalendarRefusal,
    EventStatus,
    Summary,
    parse_event,
    render_event,
)
from tests.sts.fakes import synthetic_nin

NETWORK = Party("onerecord dialogue", "999999999", "8142")
OFFICE = Party("Sentrum legekontor", "974600013")
PATIENT = synthetic_nin(date(1980, 1, 10))

_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9\-.]{0,40}", fullmatch=True)
_text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff")
    | st.sampled_from("\n\t"),
    min_size=1,
    max_size=300,
).filter(lambda s: s.strip() != "")
_instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
)


@st.composite
def _events(draw: st.DrawFn) -> CalendarEvent:
    start = draw(_instants).replace(microsecond=0)
    minutes = draw(st.integers(5, 8 * 60))
    return CalendarEvent(
        uid=f"{draw(_ids)}@onerecord",
        start=start,
        end=start + timedelta(minutes=minutes),
        stamp=draw(_instants).replace(microsecond=0),
        summary=draw(st.sampled_from(Summary)),
        status=draw(st.sampled_from(EventStatus)),
        sequence=draw(st.integers(0, 100)),
    )


@st.composite
def _messages(draw: st.DrawFn) -> KithMessage:
    answer = draw(st.booleans())
    topic: RequestTopic | AnswerTopic = draw(
        st.sampled_from(AnswerTopic) if answer else st.sampled_from(RequestTopic)
    )
    needs_event = topic in (RequestTopic.APPOINTMENT, AnswerTopic.MOVED)
    may_event = needs_event or topic is AnswerTopic.CONFIRMED
    event = draw(_events()) if needs_event or (may_event and draw(st.booleans())) else None
    ref = draw(st.none() | st.tuples(_ids, _ids)) if not answer else draw(st.tuples(_ids, _ids))
    sender, receiver = (OFFICE, NETWORK) if answer else (NETWORK, OFFICE)
    return KithMessage(
        msg_type=MsgType.SVAR if answer else MsgType.FORESPORSEL,
        msg_id=draw(_ids),
        generated=draw(_instants),
        sender=sender,
        receiver=receiver,
        patient=PATIENT,
        topic=topic,
        text=draw(_text),
        parent=ref[0] if ref else None,
        conversation=ref[1] if ref else None,
        author=draw(st.none() | _text.filter(lambda s: len(s) <= 200)) if answer else None,
        event=event,
    )


@settings(max_examples=150, deadline=None)
@given(msg=_messages())
def test_render_then_parse_is_the_same_message_and_schema_valid(msg: KithMessage) -> None:
    data = render(msg)
    assert schema().validate(etree.fromstring(data)), schema().error_log
    assert parse(data) == msg


@settings(max_examples=200, deadline=None)
@given(event=_events())
def test_icalendar_round_trip_any_instant(event: CalendarEvent) -> None:
    data = render_event(event)
    assert all(len(line) <= 75 for line in data.split(b"\r\n"))
    assert parse_event(data) == event


def _event(start: datetime, minutes: int = 30) -> CalendarEvent:
    return CalendarEvent(
        "a1@onerecord",
        start,
        start + timedelta(minutes=minutes),
        datetime(2027, 3, 1, tzinfo=UTC),
        Summary.IN_PERSON,
        EventStatus.CONFIRMED,
    )


def test_icalendar_across_daylight_saving_changes() -> None:
    # 2027-03-28 (summer time begins 01:00 UTC) and 2027-10-31 (ends 01:00 UTC).
    before = parse_event(render_event(_event(datetime(2027, 3, 28, 0, 30, tzinfo=UTC), 60)))
    assert before.end - before.start == timedelta(minutes=60)
    lines = render_event(_event(datetime(2027, 3, 28, 0, 30, tzinfo=UTC), 60)).decode()
    assert "DTSTART;TZID=Europe/Oslo:20270328T013000" in lines
    assert "DTEND;TZID=Europe/Oslo:20270328T033000" in lines  # 02:xx does not exist
    autumn = render_event(_event(datetime(2027, 10, 31, 0, 30, tzinfo=UTC))).decode()
    assert "DTSTART:20271031T003000Z" in autumn  # 02:30 occurs twice: written in UTC
    summer = render_event(_event(datetime(2027, 6, 1, 8, 0, tzinfo=UTC))).decode()
    assert "DTSTART;TZID=Europe/Oslo:20270601T100000" in summer
    winter = render_event(_event(datetime(2027, 12, 1, 8, 0, tzinfo=UTC))).decode()
    assert "DTSTART;TZID=Europe/Oslo:20271201T090000" in winter
    assert "BEGIN:VTIMEZONE\r\nTZID:Europe/Oslo" in winter
    assert "SUMMARY:Time hos fastlegen" in winter


def test_icalendar_refuses_local_times_that_do_not_exist_or_repeat() -> None:
    good = render_event(_event(datetime(2027, 6, 1, 8, 0, tzinfo=UTC)))
    for bad_local in ("20270328T023000", "20271031T023000"):
        bad = good.replace(b"20270601T100000", bad_local.encode())
        with pytest.raises(CalendarRefusal):
            parse_event(bad)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_icalendar_is_refused_or_read_never_another_error(data: st.DataObject) -> None:
    raw = bytearray(render_event(_event(datetime(2027, 6, 1, 8, 0, tzinfo=UTC))))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    try:
        parse_event(bytes(raw))
    except CalendarRefusal:
        pass


_SAMPLE = render(
    KithMessage(
        MsgType.SVAR,
        "m1",
        datetime(2027, 3, 20, 10, tzinfo=UTC),
        OFFICE,
        NETWORK,
        PATIENT,
        AnswerTopic.MOVED,
        "Ny tid",
        parent="a1",
        conversation="a1",
        author="Fastlege",
        event=_event(datetime(2027, 10, 31, 0, 30, tzinfo=UTC)),
    )
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_messages_are_refused_never_another_error(data: st.DataObject) -> None:
    raw = bytearray(_SAMPLE)
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(raw) - 1))
        how = data.draw(st.sampled_from(["set", "delete", "insert"]))
        if how == "set":
            raw[i] = data.draw(st.integers(0, 255))
        elif how == "delete":
            del raw[i]
        else:
            raw[i:i] = data.draw(st.sampled_from([b"<", b">", b"&", b"<x/>", b'"', b"\x00"]))
    try:
        parse(bytes(raw))
    except KithRefusal:
        pass


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=2000) | st.text(max_size=500).map(str.encode))
def test_arbitrary_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(KithRefusal):
        parse(data)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
            b'<MsgHead xmlns="http://www.kith.no/xmlstds/msghead/2006-05-24">&b;</MsgHead>',
            "DOCTYPE",
        ),
        (
            b'<!DOCTYPE x SYSTEM "file:///etc/passwd"><x/>',
            "DOCTYPE",
        ),
        (b"<a>" * 5000 + b"</a>" * 5000, "well-formed"),
        (b"x" * (300 * 1024), "larger"),
        (b"<Other/>", "root element"),
        (_SAMPLE.replace(b"<MIGversion>v1.2 2006-05-24", b"<MIGversion>v1.1"), "not valid"),
        (_SAMPLE.replace(b'V="FNR"', b'V="DNR"'), "FNR"),
        (_SAMPLE.replace(PATIENT.encode(), b"12345678901"), "fødselsnummer"),
        (_SAMPLE.replace(b'V="moved"', b'V="deleted"'), "TemaKodet"),
        (_SAMPLE.replace(b"974600013", b"97460001"), "nine digits"),
        (
            _SAMPLE.replace(
                b"</MsgHead>",
                b'<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/></MsgHead>',
            ),
            "signed",
        ),
        (_SAMPLE.replace(b"dia:TekstNotatInnhold", b"dia:Tekst"), "not valid"),
        (_SAMPLE.replace(b"<dia:Notat>", b"<dia:Notat><dia:Ukjent/>"), "not valid"),
        (_SAMPLE.replace(b'V="A"', b'V="XML"'), "attachment"),
        # our MsgHead subset: Patient required, GenDate with offset, no Ack, known Content only
        (re.sub(rb"<Patient>.*?</Patient>", b"", _SAMPLE), "not valid"),
        (_SAMPLE.replace(b"+00:00</GenDate>", b"</GenDate>"), "not valid"),
        (_SAMPLE.replace(b"<Sender>", b'<Ack V="J"/><Sender>'), "not valid"),
        (_SAMPLE.replace(b"<MsgId>m1<", b"<MsgId>m/1<"), "not valid"),
        (_SAMPLE.replace(b"<dia:Dialogmelding>", b"<x/><dia:Dialogmelding>"), "not valid"),
    ],
)
def test_hostile_messages_get_a_clear_reason(data: bytes, why: str) -> None:
    with pytest.raises(KithRefusal) as refused:
        parse(data)
    assert why in refused.value.reason


def test_a_bad_calendar_attachment_is_refused() -> None:
    root = etree.fromstring(_SAMPLE)
    (container,) = root.iter("{http://www.kith.no/xmlstds/base64container}Base64Container")
    container.text = base64.b64encode(b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n").decode()
    with pytest.raises(KithRefusal, match="iCalendar"):
        parse(etree.tostring(root))


def test_every_schema_is_our_own_subset() -> None:
    """Nothing vendored: each namespace is validated against a file we wrote (README)."""
    folder = resources.files("onerecord.dialogue").joinpath("kith_schemas")
    names = sorted(e.name for e in folder.iterdir() if e.name.endswith(".xsd"))
    assert all(n.endswith(("-subset.xsd", "-stub.xsd")) for n in names), names
    assert sorted(_schema_files().values()) == names
