"""The citizen's access log as visits: a person at an organisation, over a time span.

Issue 11, defect 4: one row per audit event made one GP visit thirteen rows (every overview load
writes one event per region; every sort click and back link another). The audit keeps every
event; this view groups them. Events of the same reader — the same person (an opaque keyed
reference, never the HPR number), at the same organisation and department — with gaps of at
most `VISIT_GAP` between them are one visit: from–to, the regions searched (each named once),
the reasons, the titles opened, the profession, and the emergency grant's basis and reason.

Pure functions; the keyed reference is made by `reader_ref` from a key the route holds.
References: TRUST-FRAMEWORK §5.4 (who, where, why), F2 (no reader identifiers), D2 (emergency
access shown explicitly).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from onerecord.portals.access_log import AccessLogRow
from onerecord.trust.emergency import ACUTE_BASES, REASON_CATEGORIES

__all__ = [
    "EMERGENCY_BASES",
    "EMERGENCY_REASONS",
    "PROFESSIONS",
    "VISIT_GAP",
    "Reader",
    "Visit",
    "group_visits",
    "reader_ref",
    "readers_of",
]

VISIT_GAP = timedelta(minutes=30)
"""Events further apart than this are two visits, even by the same reader."""
PROFESSIONS = frozenset(
    {"LE", "SP", "PS", "TL", "JO", "FT", "HP", "AA", "PM", "FA1", "BI", "ET", "XX"}
)
"""The HPR categories (Volven 9060) the messages name in words (`citizen.log.profession.*`)."""
EMERGENCY_BASES = ACUTE_BASES
EMERGENCY_REASONS = REASON_CATEGORIES
_EARLIEST = datetime.min.replace(tzinfo=UTC)


def reader_ref(key: bytes, patient: str, row: AccessLogRow) -> str:
    """Return the opaque reference of `row`'s reader in `patient`'s log (HMAC-SHA256, 128 bits).

    Keyed by the HPR number when the region gave one, else by the name (such a reader cannot
    be blocked by the reference). The patient is part of the message, so a reference from one
    person's log means nothing in another's.
    """
    who = f"hpr:{row.reader_hpr}" if row.reader_hpr else f"name:{row.who}"
    message = f"{patient}\x1f{who}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _moment(value: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


@dataclass(frozen=True, slots=True)
class Visit:
    """One visit: who, where, from–to, and what they searched, opened and why."""

    reader: str
    """The opaque reference of the reader (the «Sperr» form carries it)."""
    who: str
    profession: str
    organisation: str
    department: str
    start: datetime | None
    end: datetime | None
    regions: tuple[str, ...]
    reasons: tuple[str, ...]
    titles: tuple[str, ...]
    opened: bool
    emergency: bool
    """True when the visit ran under an emergency grant or opened blocked documents (D2)."""
    opened_blocked: bool
    """True when it opened documents the citizen had blocked."""
    emergency_bases: tuple[str, ...]
    emergency_reasons: tuple[str, ...]
    events: int
    blockable: bool
    """True when the reader is known by HPR number, so that «Sperr» can name them."""


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


def _visit(reader: str, rows: Sequence[tuple[datetime | None, AccessLogRow]]) -> Visit:
    first = rows[0][1]
    moments = [m for m, _ in rows if m is not None]
    return Visit(
        reader=reader,
        who=first.who,
        profession=next((r.profession for _, r in rows if r.profession), ""),
        organisation=first.organisation,
        department=first.department,
        start=min(moments) if moments else None,
        end=max(moments) if moments else None,
        regions=tuple(sorted(_unique(r.region for _, r in rows))),
        reasons=_unique(r.reason for _, r in rows),
        titles=_unique(t for _, r in rows for t in r.titles),
        opened=any(r.opened for _, r in rows),
        emergency=any(r.emergency or r.emergency_basis for _, r in rows),
        opened_blocked=any(r.emergency for _, r in rows),
        emergency_bases=_unique(r.emergency_basis for _, r in rows),
        emergency_reasons=_unique(r.emergency_reason for _, r in rows),
        events=len(rows),
        blockable=any(r.reader_hpr for _, r in rows),
    )


def group_visits(
    rows: Iterable[AccessLogRow], ref: Callable[[AccessLogRow], str], *, gap: timedelta = VISIT_GAP
) -> tuple[Visit, ...]:
    """Group log rows into visits, newest first.

    Rows of one reader (`ref`), organisation and department whose times are at most `gap`
    apart are one visit. A row without a readable time is a visit of its own, listed last.
    """
    timed: dict[tuple[str, str, str], list[tuple[datetime, AccessLogRow]]] = {}
    untimed: list[Visit] = []
    for row in rows:
        key = (ref(row), row.organisation, row.department)
        moment = _moment(row.recorded)
        if moment is None:
            untimed.append(_visit(key[0], [(None, row)]))
        else:
            timed.setdefault(key, []).append((moment, row))
    visits: list[Visit] = []
    for key, events in timed.items():
        events.sort(key=lambda pair: pair[0])
        current: list[tuple[datetime | None, AccessLogRow]] = []
        last: datetime | None = None
        for moment, row in events:
            if last is not None and moment - last > gap:
                visits.append(_visit(key[0], current))
                current = []
            current.append((moment, row))
            last = moment
        visits.append(_visit(key[0], current))
    visits.sort(key=lambda v: (v.end or _EARLIEST, v.start or _EARLIEST), reverse=True)
    return (*visits, *untimed)


@dataclass(frozen=True, slots=True)
class Reader:
    """A reader to filter by: the reference and the words to choose them by."""

    ref: str
    who: str
    organisation: str


def readers_of(visits: Iterable[Visit]) -> tuple[Reader, ...]:
    """Return each reader of the log once, by name, for the person filter."""
    seen: dict[str, Reader] = {}
    for v in visits:
        seen.setdefault(v.reader, Reader(v.reader, v.who, v.organisation))
    return tuple(sorted(seen.values(), key=lambda r: (r.who.casefold(), r.organisation, r.ref)))
