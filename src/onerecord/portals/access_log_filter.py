"""The access log's filters: a time span (`fra`, `til`: dates) and a person (`person`).

Query parameters from outside, read in one place: a date is `YYYY-MM-DD` (what a date input
sends), `fra` not after `til`, years 2000–2999; `person` is an opaque reader reference (what the
page's own select sends). Anything else is an `InvalidLogFilter` with the message that says
what to fix; the page then answers 400 with the form, never 5xx. `side` (the page) is read
leniently, as before: anything but a small number is page 1.

A visit is kept when its time span meets the chosen days in Norwegian time (both ends
inclusive) and, with a person chosen, when it is theirs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from onerecord.portals.access_visits import Visit

__all__ = ["InvalidLogFilter", "LogFilter", "apply_filter", "parse_log_filter"]

_OSLO = ZoneInfo("Europe/Oslo")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_REF = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PAGE = re.compile(r"[0-9]{1,6}")


class InvalidLogFilter(ValueError):
    """A filter value the page cannot use; `message_key` says what to fix, `field` where."""

    def __init__(self, message_key: str, field: str) -> None:
        super().__init__(message_key)
        self.message_key = message_key
        self.field = field


@dataclass(frozen=True, slots=True)
class LogFilter:
    """The chosen span and person (None: not chosen) and the page number."""

    since: date | None = None
    until: date | None = None
    person: str | None = None
    page: int = 1

    @property
    def active(self) -> bool:
        return self.since is not None or self.until is not None or self.person is not None

    def query(self, **changes: object) -> dict[str, str]:
        """Return the query parameters of this filter (for links that keep it)."""
        params: dict[str, str] = {}
        if self.since is not None:
            params["fra"] = self.since.isoformat()
        if self.until is not None:
            params["til"] = self.until.isoformat()
        if self.person is not None:
            params["person"] = self.person
        params.update({k: str(v) for k, v in changes.items()})
        return params


def _date(params: Mapping[str, str], name: str) -> date | None:
    raw = (params.get(name) or "").strip()
    if not raw:
        return None
    if not _DATE.fullmatch(raw):
        raise InvalidLogFilter("citizen.log.filter.bad-date", name)
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        raise InvalidLogFilter("citizen.log.filter.bad-date", name) from None
    if not 2000 <= value.year <= 2999:
        raise InvalidLogFilter("citizen.log.filter.bad-date", name)
    return value


def parse_log_filter(params: Mapping[str, str]) -> LogFilter:
    """Read the filter from the query; raise InvalidLogFilter on the first bad value."""
    since, until = _date(params, "fra"), _date(params, "til")
    if since is not None and until is not None and since > until:
        raise InvalidLogFilter("citizen.log.filter.reversed", "til")
    raw_person = (params.get("person") or "").strip()
    if raw_person and not _REF.fullmatch(raw_person):
        raise InvalidLogFilter("citizen.log.filter.bad-person", "person")
    raw_page = params.get("side") or "1"
    page = int(raw_page) if _PAGE.fullmatch(raw_page) else 1
    return LogFilter(since, until, raw_person or None, max(page, 1))


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, _OSLO)


def apply_filter(visits: Iterable[Visit], chosen: LogFilter) -> tuple[Visit, ...]:
    """Return the visits that meet the chosen days and belong to the chosen person."""
    low = _start_of(chosen.since) if chosen.since else None
    high = _start_of(chosen.until + timedelta(days=1)) if chosen.until else None
    kept = []
    for v in visits:
        if chosen.person is not None and v.reader != chosen.person:
            continue
        if (low is not None or high is not None) and (v.start is None or v.end is None):
            continue
        if low is not None and v.end is not None and v.end < low:
            continue
        if high is not None and v.start is not None and v.start >= high:
            continue
        kept.append(v)
    return tuple(kept)
