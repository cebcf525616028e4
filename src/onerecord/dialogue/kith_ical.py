"""An appointment as an iCalendar object (RFC 5545), written and read strictly; no I/O.

One VEVENT in Europe/Oslo time with its VTIMEZONE (the EU rules: summer time from the last
Sunday of March 01:00 UTC to the last Sunday of October 01:00 UTC). A local time that occurs
twice (the October hour) is written in UTC ("...Z") so that the instant is never ambiguous; the
reader accepts both forms and refuses a local time that does not exist (the March gap) or that
occurs twice. SUMMARY says only that there is an appointment, never why (no health data).

The reader is ours and strict: CRLF lines, folded lines unfolded, only the components and
properties written here, each once, values checked; anything else is a `CalendarRefusal`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from onerecord.dialogue.calendar import OSLO

__all__ = [
    "MAX_ICAL_BYTES",
    "CalendarEvent",
    "CalendarRefusal",
    "EventStatus",
    "Summary",
    "parse_event",
    "render_event",
]

MAX_ICAL_BYTES = 16 * 1024
PRODID = "-//onerecord//dialogue//NB"
TZID = "Europe/Oslo"
_UID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]{0,63}@onerecord")
_LOCAL = re.compile(r"(\d{8})T(\d{6})")
_UTC = re.compile(r"(\d{8})T(\d{6})Z")

_VTIMEZONE = (
    "BEGIN:VTIMEZONE",
    f"TZID:{TZID}",
    "BEGIN:DAYLIGHT",
    "TZOFFSETFROM:+0100",
    "TZOFFSETTO:+0200",
    "TZNAME:CEST",
    "DTSTART:19700329T020000",
    "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
    "END:DAYLIGHT",
    "BEGIN:STANDARD",
    "TZOFFSETFROM:+0200",
    "TZOFFSETTO:+0100",
    "TZNAME:CET",
    "DTSTART:19701025T030000",
    "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU",
    "END:STANDARD",
    "END:VTIMEZONE",
)


class CalendarRefusal(ValueError):
    """The iCalendar object is not one this reader accepts; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EventStatus(StrEnum):
    """VEVENT STATUS values used (RFC 5545 3.8.1.11)."""

    TENTATIVE = "TENTATIVE"
    CONFIRMED = "CONFIRMED"
    CANCELLED = "CANCELLED"


class Summary(StrEnum):
    """The only summaries written: what kind of appointment, never its reason."""

    IN_PERSON = "Time hos fastlegen"
    VIDEO = "Videokonsultasjon med fastlegen"


@dataclass(frozen=True, slots=True)
class CalendarEvent:
    """One appointment: `uid` is "<appointment id>@onerecord"; times are aware (UTC)."""

    uid: str
    start: datetime
    end: datetime
    stamp: datetime
    summary: Summary
    status: EventStatus
    sequence: int = 0


def _utc_text(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _is_ambiguous(local: datetime) -> bool:
    """A naive Oslo wall time that occurs twice, or never."""
    a = local.replace(tzinfo=OSLO, fold=0)
    b = local.replace(tzinfo=OSLO, fold=1)
    if a.utcoffset() != b.utcoffset():
        return True
    return a.astimezone(UTC).astimezone(OSLO).replace(tzinfo=None) != local


def _time_property(name: str, at: datetime) -> str:
    local = at.astimezone(OSLO).replace(tzinfo=None)
    if _is_ambiguous(local):
        return f"{name}:{_utc_text(at)}"
    return f"{name};TZID={TZID}:{local.strftime('%Y%m%dT%H%M%S')}"


def _fold(line: str) -> list[str]:
    """Lines of at most 75 octets (RFC 5545 3.1), continuation lines begin with a space."""
    out: list[str] = []
    current, size = "", 0
    for ch in line:
        n = len(ch.encode())
        if size + n > (75 if not out else 74):
            out.append(current)
            current, size = "", 0
        current += ch
        size += n
    out.append(current)
    return [out[0], *(" " + part for part in out[1:])]


def render_event(event: CalendarEvent) -> bytes:
    """The event as a VCALENDAR (METHOD:REQUEST) with the Oslo VTIMEZONE, CRLF, UTF-8."""
    _check_event(event)
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODID}",
        "METHOD:REQUEST",
        *_VTIMEZONE,
        "BEGIN:VEVENT",
        f"UID:{event.uid}",
        f"DTSTAMP:{_utc_text(event.stamp)}",
        _time_property("DTSTART", event.start),
        _time_property("DTEND", event.end),
        f"SUMMARY:{event.summary.value}",
        f"STATUS:{event.status.value}",
        f"SEQUENCE:{event.sequence}",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    folded = [part for line in lines for part in _fold(line)]
    return ("\r\n".join(folded) + "\r\n").encode()


def _check_event(event: CalendarEvent) -> None:
    if not _UID.fullmatch(event.uid):
        raise CalendarRefusal("UID must be <id>@onerecord")
    for at in (event.start, event.end, event.stamp):
        if at.tzinfo is None:
            raise CalendarRefusal("times must carry an offset")
    if not event.start < event.end <= event.start + timedelta(hours=8):
        raise CalendarRefusal("DTEND must follow DTSTART within eight hours")
    if not 0 <= event.sequence <= 10_000:
        raise CalendarRefusal("SEQUENCE out of range")


def _unfold(data: bytes) -> list[str]:
    if len(data) > MAX_ICAL_BYTES:
        raise CalendarRefusal("the calendar is too large")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CalendarRefusal("the calendar is not UTF-8") from None
    if not text.endswith("\r\n"):
        raise CalendarRefusal("the calendar must end with CRLF")
    raw = text[:-2].split("\r\n")
    lines: list[str] = []
    for line in raw:
        if line.startswith((" ", "\t")):
            if not lines:
                raise CalendarRefusal("a continuation line comes first")
            lines[-1] += line[1:]
        else:
            lines.append(line)
    for line in lines:
        if not line or any(ord(c) < 32 or ord(c) == 127 for c in line):
            raise CalendarRefusal("empty line or control character")
    return lines


def _parse_time(name: str, params: str, value: str) -> datetime:
    if params == f";TZID={TZID}":
        m = _LOCAL.fullmatch(value)
        if m is None:
            raise CalendarRefusal(f"{name} is not a local date-time")
        local = _datetime(name, m.group(1) + m.group(2))
        if _is_ambiguous(local):
            raise CalendarRefusal(f"{name} is a local time that does not exist or occurs twice")
        return local.replace(tzinfo=OSLO).astimezone(UTC)
    if params == "":
        m = _UTC.fullmatch(value)
        if m is None:
            raise CalendarRefusal(f"{name} must be UTC (…Z) or carry TZID={TZID}")
        return _datetime(name, m.group(1) + m.group(2)).replace(tzinfo=UTC)
    raise CalendarRefusal(f"{name} has parameters this reader does not accept")


def _datetime(name: str, digits: str) -> datetime:
    try:
        return datetime.strptime(digits, "%Y%m%d%H%M%S")
    except ValueError:
        raise CalendarRefusal(f"{name} is not a valid date-time") from None


_ALLOWED_PROPS = frozenset({"UID", "DTSTAMP", "DTSTART", "DTEND", "SUMMARY", "STATUS", "SEQUENCE"})


def parse_event(data: bytes) -> CalendarEvent:
    """Read a VCALENDAR written as `render_event` writes it, or raise CalendarRefusal."""
    lines = _unfold(data)
    head = ["BEGIN:VCALENDAR", "VERSION:2.0"]
    if lines[:2] != head or lines[-1] != "END:VCALENDAR":
        raise CalendarRefusal("not a VCALENDAR 2.0 object")
    body = lines[2:-1]
    props: dict[str, tuple[str, str]] = {}
    i = 0
    seen_tz = seen_event = False
    while i < len(body):
        line = body[i]
        if line == "BEGIN:VTIMEZONE":
            end = i + len(_VTIMEZONE)
            if seen_tz or tuple(body[i:end]) != _VTIMEZONE:
                raise CalendarRefusal(f"the VTIMEZONE must be the {TZID} one, given once")
            seen_tz, i = True, end
            continue
        if line == "BEGIN:VEVENT":
            if seen_event:
                raise CalendarRefusal("exactly one VEVENT")
            seen_event = True
            i += 1
            while i < len(body) and body[i] != "END:VEVENT":
                name, params, value = _split(body[i])
                if name not in _ALLOWED_PROPS or name in props:
                    raise CalendarRefusal(f"VEVENT property {name!r} unknown or repeated")
                props[name] = (params, value)
                i += 1
            if i == len(body):
                raise CalendarRefusal("VEVENT is not closed")
            i += 1
            continue
        name, params, value = _split(line)
        if (name, params, value) not in (("PRODID", "", PRODID), ("METHOD", "", "REQUEST")):
            raise CalendarRefusal(f"VCALENDAR property {name!r} is not accepted")
        i += 1
    if not seen_event:
        raise CalendarRefusal("exactly one VEVENT")
    missing = _ALLOWED_PROPS - props.keys()
    if missing:
        raise CalendarRefusal(f"VEVENT lacks {', '.join(sorted(missing))}")
    uses_local = any(props[n][0] for n in ("DTSTART", "DTEND"))
    if uses_local and not seen_tz:
        raise CalendarRefusal(f"TZID={TZID} is used without its VTIMEZONE")
    for name in ("UID", "DTSTAMP", "SUMMARY", "STATUS", "SEQUENCE"):
        if props[name][0]:
            raise CalendarRefusal(f"{name} takes no parameters")
    try:
        summary = Summary(props["SUMMARY"][1])
        status = EventStatus(props["STATUS"][1])
    except ValueError:
        raise CalendarRefusal("SUMMARY or STATUS is not one this service writes") from None
    seq = props["SEQUENCE"][1]
    if not seq.isdigit() or len(seq) > 5:
        raise CalendarRefusal("SEQUENCE is not a small number")
    stamp_m = _UTC.fullmatch(props["DTSTAMP"][1])
    if stamp_m is None:
        raise CalendarRefusal("DTSTAMP must be UTC")
    event = CalendarEvent(
        uid=props["UID"][1],
        start=_parse_time("DTSTART", *props["DTSTART"]),
        end=_parse_time("DTEND", *props["DTEND"]),
        stamp=_datetime("DTSTAMP", stamp_m.group(1) + stamp_m.group(2)).replace(tzinfo=UTC),
        summary=summary,
        status=status,
        sequence=int(seq),
    )
    _check_event(event)
    return event


def _split(line: str) -> tuple[str, str, str]:
    """NAME[;PARAMS]:VALUE (no quoted parameters are accepted)."""
    head, sep, value = line.partition(":")
    if not sep or '"' in head:
        raise CalendarRefusal("a content line lacks ':'")
    name, semi, params = head.partition(";")
    if not re.fullmatch(r"[A-Z][A-Z\-]{0,30}", name):
        raise CalendarRefusal("a property name is malformed")
    return name, (semi + params), value
