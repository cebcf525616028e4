"""Time at the GP office: Europe/Oslo local time, working days and the answer limit.

The office answers an e-consultation "normally within 5 working days" (issue 15). A working
day is Monday to Friday except the Norwegian public holidays: 1 January, Maundy Thursday, Good
Friday, Easter Monday, 1 May, 17 May, Ascension Day, Whit Monday, 25 and 26 December
(References: lov om helligdager og helligdagsfred §1; lov om 1. og 17. mai som høgtidsdager).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = [
    "OSLO",
    "answer_due",
    "easter_sunday",
    "is_working_day",
    "local_to_utc",
    "public_holidays",
]

OSLO = ZoneInfo("Europe/Oslo")


def easter_sunday(year: int) -> date:
    """Return Easter Sunday of the Gregorian calendar (the anonymous Gregorian algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    el = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * el) // 451
    month, day = divmod(h + el - 7 * m + 114, 31)
    return date(year, month, day + 1)


def public_holidays(year: int) -> frozenset[date]:
    """Return the Norwegian public holidays of `year` that can fall on a weekday."""
    easter = easter_sunday(year)
    moving = (-3, -2, 1, 39, 50)  # Maundy Thursday, Good Friday, Easter/Ascension/Whit Monday
    fixed = (date(year, 1, 1), date(year, 5, 1), date(year, 5, 17))
    christmas = (date(year, 12, 25), date(year, 12, 26))
    return frozenset((*fixed, *christmas, *(easter + timedelta(days=n) for n in moving)))


def is_working_day(day: date) -> bool:
    """True for Monday to Friday outside the public holidays."""
    return day.weekday() < 5 and day not in public_holidays(day.year)


def answer_due(sent: datetime, *, working_days: int = 5) -> datetime:
    """Return when the answer to a request sent at `sent` is due: the end of the Nth working day.

    Day one is the first working day after the local (Oslo) date the request was sent; the
    answer is due at midnight that ends day N (returned in UTC-aware form).
    """
    if sent.tzinfo is None:
        raise ValueError("sent must carry a time zone")
    if working_days < 1:
        raise ValueError("working_days must be at least 1")
    day = sent.astimezone(OSLO).date()
    counted = 0
    while counted < working_days:
        day += timedelta(days=1)
        if is_working_day(day):
            counted += 1
    return local_to_utc(datetime.combine(day + timedelta(days=1), time()))


def local_to_utc(local: datetime) -> datetime:
    """Read a naive Europe/Oslo wall-clock time as an instant.

    An ambiguous time (the repeated hour in October) is read as the first of the two (fold=0);
    a time that does not exist (the skipped hour in March) is read with the offset before the
    change, so 02:30 becomes 03:30 summer time. Both are what a clock on the wall shows.
    """
    if local.tzinfo is not None:
        raise ValueError("local must be a naive wall-clock time")
    aware = local.replace(tzinfo=OSLO, fold=0)
    return aware.astimezone(UTC)
