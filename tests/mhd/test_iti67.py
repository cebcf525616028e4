from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onerecord.domain import (
    DEFAULT_PAGE_SIZE,
    DocumentQuery,
    DocumentStatus,
    NationalIdentityNumber,
    PageCursor,
    SortField,
    SortKey,
    TimeRange,
    TokenParam,
    TotalMode,
)
from onerecord.mhd import (
    BadRequest,
    Issue,
    NotAcceptable,
    document_reference,
    operation_outcome,
    parse_date_param,
    parse_find_query,
    render_query,
    searchset_bundle,
)
from onerecord.mhd.iti67 import LOCAL_ZONE, searchset_bundle_bytes
from tests.factories import SYNTHETIC_FNR, make_entry, synthetic_nin
from tests.mhd.oracle import validate

FNR = "urn:oid:2.16.578.1.12.4.1.4.1"
PATIENT = ("patient.identifier", f"{FNR}|{SYNTHETIC_FNR}")


def parse(*params: tuple[str, str], max_count: int = 100) -> DocumentQuery:
    return parse_find_query([PATIENT, *params], max_count=max_count)[0]


def bad(*params: tuple[str, str], with_patient: bool = True) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        parse_find_query([PATIENT, *params] if with_patient else list(params), max_count=100)
    assert caught.value.status == 400
    return caught.value


def test_minimal_query_defaults() -> None:
    query, cursor = parse_find_query([PATIENT], max_count=100)
    assert cursor is None
    assert query.patient_id == NationalIdentityNumber(SYNTHETIC_FNR)
    assert query.statuses == {DocumentStatus.CURRENT}
    assert query.count == DEFAULT_PAGE_SIZE
    assert query.sort == (SortKey(SortField.DATE, True),)
    assert parse_find_query([PATIENT], max_count=5)[0].count == 5


def test_patient_identifier_forms() -> None:
    dnr = synthetic_nin(0, birth="5583")
    assert (
        parse_find_query([("patient.identifier", SYNTHETIC_FNR)], max_count=10)[0].patient_id.value
        == SYNTHETIC_FNR
    )
    q = parse_find_query(
        [("patient.identifier", f"urn:oid:2.16.578.1.12.4.1.4.2|{dnr}")], max_count=10
    )[0]
    assert q.patient_id.value == dnr


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ([], "patient.identifier is required"),
        ([PATIENT, PATIENT], "once"),
        ([("patient.identifier", "urn:oid:1.2.3|" + SYNTHETIC_FNR)], "system"),
        ([("patient.identifier", f"{FNR}|12345678901")], "check digits"),
        ([("patient.identifier", f"urn:oid:2.16.578.1.12.4.1.4.2|{SYNTHETIC_FNR}")], "fnr"),
        ([("patient", "Patient/1")], "patient.identifier=system|value"),
    ],
)
def test_bad_patient_is_400(params: list[tuple[str, str]], word: str) -> None:
    exc = bad(*params, with_patient=False)
    assert word in exc.message


def test_status() -> None:
    assert parse(("status", "superseded,current")).statuses == {
        DocumentStatus.CURRENT,
        DocumentStatus.SUPERSEDED,
    }
    assert parse(("status", "current,superseded"), ("status", "superseded")).statuses == {
        DocumentStatus.SUPERSEDED
    }
    assert "draft" in bad(("status", "draft")).message
    assert bad(("status", "")).expression == "status"


OSLO = LOCAL_ZONE


@pytest.mark.parametrize(
    ("value", "lower", "upper"),
    [
        ("2024", datetime(2024, 1, 1, tzinfo=OSLO), datetime(2025, 1, 1, tzinfo=OSLO)),
        ("2024-12", datetime(2024, 12, 1, tzinfo=OSLO), datetime(2025, 1, 1, tzinfo=OSLO)),
        ("2024-02", datetime(2024, 2, 1, tzinfo=OSLO), datetime(2024, 3, 1, tzinfo=OSLO)),
        ("2024-03-31", datetime(2024, 3, 31, tzinfo=OSLO), datetime(2024, 4, 1, tzinfo=OSLO)),
        ("eq2024-03-31", datetime(2024, 3, 31, tzinfo=OSLO), datetime(2024, 4, 1, tzinfo=OSLO)),
        (
            "2024-03-31T10:15Z",
            datetime(2024, 3, 31, 10, 15, tzinfo=UTC),
            datetime(2024, 3, 31, 10, 16, tzinfo=UTC),
        ),
        (
            "2024-03-31T10:15:30+02:00",
            datetime(2024, 3, 31, 8, 15, 30, tzinfo=UTC),
            datetime(2024, 3, 31, 8, 15, 31, tzinfo=UTC),
        ),
        (
            "2024-03-31T10:15:30.25-01:00",
            datetime(2024, 3, 31, 11, 15, 30, 250000, tzinfo=UTC),
            datetime(2024, 3, 31, 11, 15, 30, 260000, tzinfo=UTC),
        ),
    ],
)
def test_date_precisions(value: str, lower: datetime, upper: datetime) -> None:
    assert parse_date_param(value, name="date") == TimeRange(lower, upper)


def test_date_prefixes() -> None:
    start = datetime(2024, 1, 1, tzinfo=OSLO)
    end = datetime(2025, 1, 1, tzinfo=OSLO)
    assert parse_date_param("gt2024", name="d") == TimeRange(lower=end)
    assert parse_date_param("ge2024", name="d") == TimeRange(lower=start)
    assert parse_date_param("lt2024", name="d") == TimeRange(upper=start)
    assert parse_date_param("le2024", name="d") == TimeRange(upper=end)


def test_repeated_dates_intersect_and_each_parameter_is_separate() -> None:
    q = parse(
        ("date", "ge2024-01-01"),
        ("date", "lt2024-06-01"),
        ("date", "le2024-12"),
        ("creation", "2023"),
        ("period", "gt2020-05-05T00:00:00Z"),
    )
    assert q.date == (
        TimeRange(datetime(2024, 1, 1, tzinfo=OSLO), datetime(2024, 6, 1, tzinfo=OSLO)),
    )
    assert q.creation == (
        TimeRange(datetime(2023, 1, 1, tzinfo=OSLO), datetime(2024, 1, 1, tzinfo=OSLO)),
    )
    assert q.period == (TimeRange(lower=datetime(2020, 5, 5, 0, 0, 1, tzinfo=UTC)),)


@pytest.mark.parametrize(
    ("value", "word"),
    [
        ("ne2024", "'ne'"),
        ("sa2024", "'sa'"),
        ("2024-13", "real date"),
        ("2024-02-30", "real date"),
        ("2024-03-01T10:00", "time zone"),
        ("24-03-01", "not a FHIR date"),
        ("2024-03-01T25:00Z", "real date"),
        ("yesterday", "not a FHIR date"),
    ],
)
def test_bad_dates_are_400(value: str, word: str) -> None:
    for name in ("date", "creation", "period"):
        exc = bad((name, value))
        assert word in exc.message and exc.expression == name


@pytest.mark.parametrize(
    ("name", "attr"),
    [
        ("category", "category"),
        ("type", "type"),
        ("setting", "setting"),
        ("facility", "facility"),
        ("event", "event"),
        ("security-label", "security_label"),
        ("format", "format"),
        ("identifier", "identifier"),
        ("related", "related"),
    ],
)
def test_token_parameters(name: str, attr: str) -> None:
    q = parse(
        (name, "2.16.578.1.12.4.1.1.9602|A00-1,B00-1"),
        (name, "urn:oid:1.2|"),
        (name, "|x\\,y"),
    )
    assert getattr(q, attr) == (
        (TokenParam("urn:oid:2.16.578.1.12.4.1.1.9602", "A00-1"), TokenParam(None, "B00-1")),
        (TokenParam("urn:oid:1.2", None),),
        (TokenParam("", "x,y"),),
    )
    assert bad((name, "|")).expression == name
    assert bad((name, "")).expression == name


def test_author_names() -> None:
    q = parse(("author.given", "Kari,Ola"), ("author.given", "K"), ("author.family", "Nord"))
    assert q.author_given == (("Kari", "Ola"), ("K",))
    assert q.author_family == (("Nord",),)
    assert bad(("author.family", "a,")).expression == "author.family"


@pytest.mark.parametrize("value", ["0", "101", "-1", "ten", "1.5", "٣"])
def test_bad_count_is_400(value: str) -> None:
    assert bad(("_count", value)).expression == "_count"


def test_count_and_sort() -> None:
    q = parse(("_count", "100"), ("_sort", "-period,title,creation"))
    assert q.count == 100
    assert q.sort == (
        SortKey(SortField.PERIOD, True),
        SortKey(SortField.TITLE, False),
        SortKey(SortField.CREATION, False),
    )
    assert "relevance" in bad(("_sort", "relevance")).message
    assert "twice" in bad(("_sort", "date,-date")).message
    assert bad(("_sort", "date"), ("_sort", "title")).expression == "_sort"


def test_cursor() -> None:
    cursor = PageCursor(snapshot=42, after=("2024-01-01T00:00:00+00:00", 7))
    assert parse_find_query([PATIENT, ("_cursor", cursor.encode())], max_count=10)[1] == cursor
    assert bad(("_cursor", "not-a-cursor")).expression == "_cursor"


def test_format_and_ignored_and_unknown_parameters() -> None:
    for fmt in ("json", "application/fhir+json", "application/json"):
        parse(("_format", fmt))
    with pytest.raises(NotAcceptable):
        parse(("_format", "xml"))
    parse(("_pretty", "true"))
    assert bad(("_pretty", "maybe")).expression == "_pretty"
    exc = bad(("_summary", "count"), ("type:text", "epikrise"))
    assert "_summary" in exc.message and "type:text" in exc.message


def test_total_is_parsed_checked_and_rendered() -> None:
    """`_total` (FHIR R4 search.html#total): none, estimate or accurate, once; else a 400."""
    assert parse().total is None
    for mode in TotalMode:
        query = parse(("_total", mode.value))
        assert query.total is mode
        assert ("_total", mode.value) in render_query(query, None)
    assert ("_total", "accurate") not in render_query(parse(), None)
    for value in ("maybe", "ACCURATE", "", "accurate "):
        assert bad(("_total", value)).expression == "_total"
    assert bad(("_total", "none"), ("_total", "none")).expression == "_total"


def test_render_query_round_trips_a_full_query() -> None:
    cursor = PageCursor(snapshot=3, after=(None, "x", 5))
    params = [
        PATIENT,
        ("status", "current,entered-in-error"),
        ("date", "2024"),
        ("creation", "ge2023-05-01T10:00:00+02:00"),
        ("period", "lt2025-01"),
        ("category", "urn:oid:2.16.578.1.12.4.1.1.9602|A00-1,B00-1"),
        ("category", "|a\\|b"),
        ("security-label", "urn:oid:2.16.578.1.12.4.1.1.9603|"),
        ("identifier", "urn:ietf:rfc:3986|urn:oid:1.2.3^x\\,y"),
        ("author.family", "Nord\\,mann,Hansen"),
        ("_sort", "-date,title"),
        ("_count", "7"),
        ("_total", "accurate"),
        ("_cursor", cursor.encode()),
    ]
    query, parsed_cursor = parse_find_query(params, max_count=10)
    rendered = render_query(query, parsed_cursor)
    assert parse_find_query(rendered, max_count=10) == (query, cursor)
    assert ("_cursor", cursor.encode()) in rendered
    assert ("_count", "7") in rendered


def test_render_never_includes_policy_fields() -> None:
    query = parse()
    from dataclasses import replace

    hidden = replace(query, hidden_labels=frozenset({"NORS"}), released_by=datetime.now(UTC))
    assert render_query(hidden, None) == render_query(query, None)
    empty = replace(query, statuses=frozenset())
    assert parse_find_query(render_query(empty, None), max_count=100)[0] == empty


_zones = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))])
_moments = st.datetimes(
    min_value=datetime(1950, 1, 1), max_value=datetime(2050, 1, 1), timezones=_zones
)
_tokens = st.builds(
    TokenParam,
    system=st.none() | st.sampled_from(["", "urn:oid:1.2.3", "http://x|y,z$"]),
    code=st.text(min_size=1, max_size=8),
).filter(lambda t: t.system is not None or t.code is not None)


@settings(max_examples=80, deadline=None)
@given(
    lower=st.none() | _moments,
    upper=st.none() | _moments,
    category=st.lists(st.lists(_tokens, min_size=1, max_size=3).map(tuple), max_size=2),
    family=st.lists(
        st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=2).map(tuple), max_size=2
    ),
    count=st.integers(1, 50),
    total=st.none() | st.sampled_from(TotalMode),
    snapshot=st.none() | st.integers(0, 10**9),
)
def test_render_then_parse_is_identity(
    lower: datetime | None,
    upper: datetime | None,
    category: list[tuple[TokenParam, ...]],
    family: list[tuple[str, ...]],
    count: int,
    total: TotalMode | None,
    snapshot: int | None,
) -> None:
    from dataclasses import replace

    query = replace(
        parse(),
        date=() if lower is None and upper is None else (TimeRange(lower, upper),),
        category=tuple(category),
        author_family=tuple(family),
        count=count,
        total=total,
    )
    cursor = None if snapshot is None else PageCursor(snapshot=snapshot, after=(snapshot, "k"))
    assert parse_find_query(render_query(query, cursor), max_count=50) == (query, cursor)


def test_searchset_bundle_validates_and_carries_links_and_outcomes() -> None:
    entries = [make_entry(), make_entry()]
    resources = [
        document_reference(e, id=str(e.entry_uuid), attachment_url="http://s/fhir/Binary/t")
        for e in entries
    ]
    outcome = operation_outcome(
        [Issue(code="timeout", diagnostics="urn:oid:1.2.3 timed out", severity="warning")]
    )
    bundle: dict[str, Any] = searchset_bundle(
        resources=resources,
        self_url="http://s/fhir/DocumentReference?patient.identifier=x",
        next_url="http://s/fhir/DocumentReference?_cursor=abc",
        total=12,
        outcomes=[outcome],
    )
    validate(bundle)
    assert bundle["total"] == 12
    assert [link["relation"] for link in bundle["link"]] == ["self", "next"]
    assert [e["search"]["mode"] for e in bundle["entry"]] == ["match", "match", "outcome"]
    assert (
        bundle["entry"][0]["fullUrl"] == f"http://s/fhir/DocumentReference/{entries[0].entry_uuid}"
    )
    empty = searchset_bundle(
        resources=[], self_url="http://s/fhir/DocumentReference", next_url=None, total=None
    )
    validate(empty)
    assert "entry" not in empty and "total" not in empty and len(empty["link"]) == 1


@pytest.mark.parametrize("matches", [0, 1, 3])
@pytest.mark.parametrize("with_outcome", [False, True])
@pytest.mark.parametrize("total", [None, 0, 12])
def test_searchset_bundle_bytes_equal_the_dumped_bundle(
    matches: int, with_outcome: bool, total: int | None
) -> None:
    """Resources spliced in as bytes give exactly `orjson.dumps(searchset_bundle(...))`."""
    entries = [make_entry() for _ in range(matches)]
    resources = [
        document_reference(e, id=str(e.entry_uuid), attachment_url="http://s/fhir/Binary/t")
        for e in entries
    ]
    outcomes = (
        [operation_outcome([Issue(code="timeout", diagnostics="x", severity="warning")])]
        if with_outcome
        else []
    )
    kwargs: dict[str, Any] = {
        "self_url": 'http://s/fhir/DocumentReference?patient.identifier=x&title="q"',
        "next_url": None if matches < 3 else "http://s/fhir/DocumentReference?_cursor=abc",
        "total": total,
        "outcomes": outcomes,
    }
    body = searchset_bundle_bytes(matches=[(r["id"], orjson.dumps(r)) for r in resources], **kwargs)
    got = orjson.loads(body)
    want = searchset_bundle(resources=resources, **kwargs)
    want["id"] = got["id"]
    if with_outcome:  # its fullUrl is a fresh urn:uuid
        want["entry"][-1]["fullUrl"] = got["entry"][-1]["fullUrl"]
    assert body == orjson.dumps(want)
    validate(got)
