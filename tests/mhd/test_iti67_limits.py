"""ITI-67 query parser against hostile input: limits first, 400 naming the limit, never a 500.

Regressions for issue 10 B (dates out of range, offsets, a 1,000-code OR-list, a 50,000-character
`author.given`, too many parameters or repeats, `_count` above MAX_PAGE_SIZE) and the property
that any query whatever either parses or raises a 4xx MhdError.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onerecord.domain.limits import (
    LATEST_DATE,
    MAX_CURSOR_LENGTH,
    MAX_OR_VALUES,
    MAX_PAGE_SIZE,
    MAX_PARAMETER_REPEATS,
    MAX_PARAMETERS,
    MAX_STRING_LENGTH,
)
from onerecord.mhd import BadRequest, MhdError, parse_find_query
from onerecord.mhd.iti67 import _KNOWN
from tests.factories import SYNTHETIC_FNR

PATIENT = ("patient.identifier", f"urn:oid:2.16.578.1.12.4.1.4.1|{SYNTHETIC_FNR}")
TYPE = "urn:oid:2.16.578.1.12.4.1.1.9602"


def refused(*params: tuple[str, str], max_count: int = 200) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        parse_find_query([PATIENT, *params], max_count=max_count)
    assert caught.value.status == 400
    return caught.value


@pytest.mark.parametrize(
    "value",
    [
        "9999-12-31",
        "0001",
        "ge0001-01-01T00:00:00+14:00",
        "le9999-12-31T23:59:59-14:00",
        "1799-12-31",
        "2200",
        "lt2199-12-31T23:00:00-14:00",
    ],
)
def test_date_out_of_range_is_400_naming_the_limits(value: str) -> None:
    for name in ("date", "creation", "period"):
        exc = refused((name, value))
        assert "EARLIEST_DATE" in exc.message and "LATEST_DATE" in exc.message
        assert exc.expression == name


@pytest.mark.parametrize(
    "value", ["2024-01-01T00:00+24:00", "2024-01-01T00:00+99:99", "2024-01-01T10:00:00-14:01"]
)
def test_utc_offset_beyond_14_hours_is_400(value: str) -> None:
    exc = refused(("date", value))
    assert "±14:00" in exc.message and exc.expression == "date"


def test_dates_at_the_edges_of_the_range_parse_without_overflow() -> None:
    query = parse_find_query(
        [PATIENT, ("date", "ge1800-01-01T00:00:00Z"), ("date", "le2199-12-31T23:59:59Z")]
    )[0]
    (time_range,) = query.date
    assert time_range.lower == datetime(1800, 1, 1, tzinfo=UTC)
    assert time_range.upper == LATEST_DATE


def test_unicode_digits_are_not_a_year() -> None:
    assert "not a FHIR date" in refused(("date", "٢٠٢٤")).message


def test_or_list_of_1000_type_codes_is_400_naming_max_or_values() -> None:
    codes = ",".join(f"{TYPE}|A{i:03d}-1" for i in range(1000))
    exc = refused(("type", codes))
    assert "MAX_OR_VALUES" in exc.message and exc.code == "too-costly"
    short = ",".join("a" for _ in range(MAX_OR_VALUES + 1))
    assert "MAX_OR_VALUES" in refused(("type", short)).message
    assert parse_find_query([PATIENT, ("type", ",".join("a" * MAX_OR_VALUES))])


def test_author_given_of_50000_characters_is_400_naming_max_string_length() -> None:
    exc = refused(("author.given", "x" * 50_000))
    assert "MAX_STRING_LENGTH" in exc.message and exc.expression == "author.given"
    assert "MAX_STRING_LENGTH" in refused(("author.family", "y" * 257)).message
    assert "MAX_STRING_LENGTH" in refused(("status", "current" * 100)).message


def test_too_many_parameters_is_400_naming_max_parameters() -> None:
    params = [("author.given", f"n{i}") for i in range(MAX_PARAMETERS)]
    exc = refused(*params)
    assert "MAX_PARAMETERS" in exc.message
    with pytest.raises(BadRequest, match="MAX_PARAMETERS"):
        parse_find_query([("x", "1")] * 100_000)


def test_too_many_repeats_of_one_parameter_is_400_naming_max_parameter_repeats() -> None:
    exc = refused(*[("type", "a")] * (MAX_PARAMETER_REPEATS + 1))
    assert "MAX_PARAMETER_REPEATS" in exc.message and exc.expression == "type"


def test_count_above_max_page_size_is_refused_not_clamped() -> None:
    exc = refused(("_count", str(MAX_PAGE_SIZE + 1)), max_count=10_000)
    assert "MAX_PAGE_SIZE" in exc.message and exc.expression == "_count"
    assert "MAX_PAGE_SIZE" in refused(("_count", "9" * 200)).message
    # Within MAX_PAGE_SIZE the server's own maximum still applies, as before.
    assert "1 to 200" in refused(("_count", "201")).message
    assert parse_find_query([PATIENT, ("_count", "500")], max_count=10_000)[0].count == 500


def test_long_parameter_name_is_400() -> None:
    assert "MAX_STRING_LENGTH" in refused(("x" * 10_000, "1")).message


def test_cursor_longer_than_max_cursor_length_is_400_naming_it() -> None:
    exc = refused(("_cursor", "A" * (MAX_CURSOR_LENGTH + 1)))
    assert "MAX_CURSOR_LENGTH" in exc.message and exc.expression == "_cursor"


@pytest.mark.parametrize(
    "data",
    [
        {"s": 2**64 - 1, "a": None},
        {"s": True, "a": None},
        {"s": 1, "a": ["0001-01-01T00:00:00+14:00", True]},
        {"s": 1, "a": [{"a": {"b": 1}}, 1]},
    ],
)
def test_tampered_cursor_is_400(data: object) -> None:
    token = base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")
    assert refused(("_cursor", token)).expression == "_cursor"


# --- property: any query parses or is a 4xx MhdError -------------------------------------------

_names = st.sampled_from(sorted(_KNOWN)) | st.text(max_size=12)
_offsets = st.builds(
    lambda sign, h, m: f"{sign}{h:02d}:{m:02d}",
    st.sampled_from("+-"),
    st.integers(0, 99),
    st.integers(0, 99),
)
_dates = st.builds(
    lambda prefix, year, month, day, hour, offset: (
        f"{prefix}{year:04d}-{month:02d}-{day:02d}T{hour:02d}:00:00{offset}"
    ),
    st.sampled_from(["", "eq", "ge", "gt", "le", "lt", "sa", "ap"]),
    st.integers(0, 9999),
    st.integers(0, 13),
    st.integers(0, 32),
    st.integers(0, 25),
    _offsets | st.just("Z"),
) | st.integers(0, 9999).map(lambda y: f"{y:04d}")
_values = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=",|\\$", max_size=30),
    _dates,
    st.integers(-(2**70), 2**70).map(str),
    st.integers(1, 3).map(lambda n: "x" * (MAX_STRING_LENGTH * n)),
    st.integers(1, 120).map(lambda n: ",".join(["a"] * n)),
    st.binary(max_size=60).map(lambda b: base64.urlsafe_b64encode(b).decode()),
)
_param = st.tuples(_names, _values) | st.tuples(
    st.sampled_from(["date", "creation", "period"]), _dates
)


@settings(max_examples=150, deadline=None)
@given(
    params=st.lists(_param, max_size=12)
    | st.tuples(_param, st.integers(1, 80)).map(lambda t: [t[0]] * t[1]),
    with_patient=st.booleans(),
)
def test_hostile_queries_parse_or_raise_only_4xx(
    params: list[tuple[str, str]], with_patient: bool
) -> None:
    try:
        parse_find_query([PATIENT, *params] if with_patient else params, max_count=200)
    except MhdError as exc:
        assert 400 <= exc.status < 500, exc


def test_limit_exceeded_anywhere_is_a_400_too_costly_outcome() -> None:
    from onerecord.domain.limits import LimitExceeded
    from onerecord.mhd import outcome_for

    status, body = outcome_for(LimitExceeded("MAX_OR_VALUES", 50, 51, expression="type"))
    assert status == 400
    (issue,) = body["issue"]
    assert issue["code"] == "too-costly" and "MAX_OR_VALUES" in issue["diagnostics"]
    assert issue["expression"] == ["type"]
