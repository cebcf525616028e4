"""check_moment / check_utc_offset: dates outside [EARLIEST_DATE, LATEST_DATE) or ±14:00 refused.

Regression for issue 10 B: year-1 and year-9999 times with extreme offsets overflowed (500).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onerecord.domain.limits import (
    EARLIEST_DATE,
    LATEST_DATE,
    DateOutOfRange,
    check_moment,
    check_utc_offset,
)

PLUS_14 = timezone(timedelta(hours=14))
MINUS_14 = timezone(timedelta(hours=-14))


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1, 1, 1, tzinfo=PLUS_14),
        datetime(1, 1, 1),
        datetime(9999, 12, 31, 23, 59, tzinfo=MINUS_14),
        datetime(9999, 12, 31),
        datetime(1799, 12, 31, 23, 59, tzinfo=UTC),
        datetime(1800, 1, 1, 0, 0, tzinfo=PLUS_14),  # 1799-12-31T10:00Z
        LATEST_DATE,
        datetime(2199, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-2))),
        datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=14, minutes=1))),
        datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=-23, minutes=-59))),
    ],
)
def test_moments_outside_the_limits_are_refused(moment: datetime) -> None:
    with pytest.raises(DateOutOfRange) as caught:
        check_moment(moment, name="date")
    assert caught.value.expression == "date"


@pytest.mark.parametrize(
    "moment",
    [
        EARLIEST_DATE,
        LATEST_DATE - timedelta(microseconds=1),
        datetime(2024, 6, 1, 12, tzinfo=PLUS_14),
        datetime(2024, 6, 1, 12, tzinfo=MINUS_14),
        datetime(2024, 6, 1),
    ],
)
def test_moments_within_the_limits_pass(moment: datetime) -> None:
    assert check_moment(moment, name="date") is moment


def test_offset_check_alone() -> None:
    assert check_utc_offset(datetime(2024, 1, 1), name="d").year == 2024
    with pytest.raises(DateOutOfRange):
        check_utc_offset(datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=15))), name="d")


@settings(max_examples=150, deadline=None)
@given(
    moment=st.datetimes(
        timezones=st.none()
        | st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
    )
)
def test_any_moment_is_checked_without_overflow(moment: datetime) -> None:
    try:
        checked = check_moment(moment, name="date")
    except DateOutOfRange:
        return
    # What passes converts to UTC and back without overflow, and lies within the limits.
    as_utc = checked.astimezone(UTC) if checked.tzinfo else checked.replace(tzinfo=UTC)
    assert EARLIEST_DATE <= as_utc < LATEST_DATE
    assert as_utc + timedelta(days=366) > as_utc
