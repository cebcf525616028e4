"""Grouping the access log into visits (issue 11 defect 4), and the log's filter parameters."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from onerecord.portals.access_log import HPR_CATEGORY_SYSTEM, AccessLogRow, build_access_log
from onerecord.portals.access_log_filter import (
    InvalidLogFilter,
    LogFilter,
    apply_filter,
    parse_log_filter,
)
from onerecord.portals.access_visits import VISIT_GAP, group_visits, reader_ref, readers_of

KEY = b"k" * 32
PATIENT = "14928301045"
T0 = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)


def row(
    minutes: float,
    *,
    who: str = "Ane Aasen",
    hpr: str = "6926956",
    organisation: str = "Legekontoret",
    department: str = "",
    region: str = "Helse Sør-Øst",
    opened: bool = False,
    titles: tuple[str, ...] = (),
    basis: str = "",
    reason: str = "",
    emergency: bool = False,
) -> AccessLogRow:
    return AccessLogRow(
        recorded=(T0 + timedelta(minutes=minutes)).isoformat(),
        who=who,
        organisation=organisation,
        department=department,
        reason="Behandling",
        opened=opened,
        emergency=emergency,
        region=region,
        profession="LE",
        titles=titles,
        emergency_basis=basis,
        emergency_reason=reason,
        reader_hpr=hpr,
    )


def ref(r: AccessLogRow) -> str:
    return reader_ref(KEY, PATIENT, r)


def test_a_gp_visit_of_thirteen_events_is_one_visit() -> None:
    regions = ("Helse Sør-Øst", "Helse Vest", "Helse Midt-Norge", "Helse Nord")
    events = [row(i, region=regions[i % 4]) for i in range(12)]
    events.append(row(12, opened=True, titles=("Epikrise",), region="Helse Vest"))
    (visit,) = group_visits(events, ref)
    assert visit.events == 13 and visit.opened and visit.titles == ("Epikrise",)
    assert visit.regions == tuple(sorted(regions))
    assert visit.start == T0 and visit.end == T0 + timedelta(minutes=12)
    assert visit.profession == "LE" and visit.blockable
    assert "6926956" not in visit.reader and "6926956" not in repr(visit)


def test_a_gap_of_more_than_thirty_minutes_or_another_place_is_another_visit() -> None:
    events = [row(0), row(30), row(61), row(62, organisation="Legevakten")]
    visits = group_visits(events, ref)
    assert [(v.events, v.organisation) for v in visits] == [
        (1, "Legevakten"),
        (1, "Legekontoret"),
        (2, "Legekontoret"),
    ]


def test_emergency_marks_the_visit_with_basis_and_reason() -> None:
    (visit,) = group_visits(
        [row(0), row(5, opened=True, basis="AKUTT", reason="unconscious", emergency=True)], ref
    )
    assert visit.emergency and visit.opened_blocked
    assert visit.emergency_bases == ("AKUTT",) and visit.emergency_reasons == ("unconscious",)


def test_the_reference_is_keyed_and_per_patient() -> None:
    r = row(0)
    assert reader_ref(KEY, PATIENT, r) == reader_ref(KEY, PATIENT, row(99))
    assert reader_ref(KEY, PATIENT, r) != reader_ref(b"x" * 32, PATIENT, r)
    assert reader_ref(KEY, PATIENT, r) != reader_ref(KEY, "07908621837", r)
    assert reader_ref(KEY, PATIENT, r) != reader_ref(KEY, PATIENT, row(0, hpr="1234567"))
    unnumbered = row(0, hpr="")
    (visit,) = group_visits([unnumbered], ref)
    assert not visit.blockable


def test_an_undated_event_is_a_visit_of_its_own_listed_last() -> None:
    undated = AccessLogRow("", "Ane Aasen", "Legekontoret", "", "", False, False, "Helse Vest")
    visits = group_visits([undated, row(0)], ref)
    assert [v.start is None for v in visits] == [False, True]


names = st.sampled_from(["Ane Aasen", "Per Pleier", "Kari Lege"])
places = st.sampled_from(["Legekontoret", "Legevakten"])
regions = st.sampled_from(["Helse Sør-Øst", "Helse Vest", "Helse Nord"])
events = st.lists(
    st.builds(
        lambda minutes, who, organisation, region: row(
            minutes, who=who, hpr=str(1000000 + len(who)), organisation=organisation, region=region
        ),
        st.integers(min_value=0, max_value=600),
        names,
        places,
        regions,
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(events)
def test_grouping_keeps_every_event_once_and_splits_exactly_at_the_gap(
    rows: list[AccessLogRow],
) -> None:
    visits = group_visits(rows, ref)
    assert sum(v.events for v in visits) == len(rows)
    by_key: dict[tuple[str, str, str], list[tuple[datetime, datetime]]] = {}
    for v in visits:
        assert v.start is not None and v.end is not None and v.start <= v.end
        members = [
            r
            for r in rows
            if (ref(r), r.organisation, r.department) == (v.reader, v.organisation, v.department)
            and v.start <= datetime.fromisoformat(r.recorded) <= v.end
        ]
        assert len(members) == v.events
        assert set(v.regions) == {r.region for r in members}
        times = sorted(datetime.fromisoformat(r.recorded) for r in members)
        assert all(b - a <= VISIT_GAP for a, b in zip(times, times[1:], strict=False))
        by_key.setdefault((v.reader, v.organisation, v.department), []).append((v.start, v.end))
    for spans in by_key.values():
        spans.sort()
        assert all(b[0] - a[1] > VISIT_GAP for a, b in zip(spans, spans[1:], strict=False))
    ends = [v.end for v in visits]
    assert ends == sorted(ends, reverse=True)
    assert {r.ref for r in readers_of(visits)} == {ref(r) for r in rows}


# --- the filter ----------------------------------------------------------------------------


def test_filter_reads_dates_and_person_and_keeps_meeting_visits() -> None:
    chosen = parse_log_filter({"fra": "2026-03-02", "til": "2026-03-02", "person": "abc_-9"})
    assert chosen == LogFilter(date(2026, 3, 2), date(2026, 3, 2), "abc_-9", 1)
    assert chosen.query(side=2) == {
        "fra": "2026-03-02",
        "til": "2026-03-02",
        "person": "abc_-9",
        "side": "2",
    }
    visits = group_visits([row(0), row(60 * 24), row(-60 * 13 - 1), row(-60 * 14 - 1)], ref)
    # 2 March in Norwegian time is 1 March 23:00 to 2 March 23:00 UTC.
    kept = apply_filter(visits, LogFilter(date(2026, 3, 2), date(2026, 3, 2)))
    assert [v.start for v in kept] == [T0, T0 - timedelta(minutes=60 * 13 + 1)]
    assert apply_filter(visits, LogFilter(person="nobody")) == ()
    assert apply_filter(visits, LogFilter()) == visits


def test_bad_filters_say_what_to_fix() -> None:
    for params, key in (
        ({"fra": "02.03.2026"}, "citizen.log.filter.bad-date"),
        ({"til": "2026-13-01"}, "citizen.log.filter.bad-date"),
        ({"fra": "1999-12-31"}, "citizen.log.filter.bad-date"),
        ({"fra": "２０２６-03-02"}, "citizen.log.filter.bad-date"),
        ({"fra": "2026-03-03", "til": "2026-03-02"}, "citizen.log.filter.reversed"),
        ({"person": "a b"}, "citizen.log.filter.bad-person"),
        ({"person": "x" * 65}, "citizen.log.filter.bad-person"),
    ):
        try:
            parse_log_filter(params)
        except InvalidLogFilter as exc:
            assert exc.message_key == key, params
        else:
            raise AssertionError(f"accepted {params}")
    assert parse_log_filter({"side": "²"}).page == 1
    assert parse_log_filter({"side": "0"}).page == 1


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["fra", "til", "person", "side", "other"]),
        st.one_of(
            st.text(max_size=80),
            st.dates().map(date.isoformat),
            st.from_regex(r"[A-Za-z0-9_-]{1,70}", fullmatch=True),
        ),
    )
)
def test_the_filter_parser_accepts_or_refuses_cleanly(params: dict[str, str]) -> None:
    try:
        chosen = parse_log_filter(params)
    except InvalidLogFilter as exc:
        assert exc.message_key.startswith("citizen.log.filter.")
        assert exc.field in {"fra", "til", "person"}
        return
    assert chosen.page >= 1
    if chosen.since and chosen.until:
        assert chosen.since <= chosen.until
    # What the parser accepts, the links it writes give back unchanged.
    assert parse_log_filter(chosen.query()) == LogFilter(chosen.since, chosen.until, chosen.person)


# --- reading the region's AuditEvent ---------------------------------------------------------

EXT = "https://onerecord.example/fhir/StructureDefinition"


def test_the_event_gives_profession_titles_grant_and_a_hidden_hpr_number() -> None:
    event = {
        "resourceType": "AuditEvent",
        "subtype": [{"code": "read"}],
        "action": "R",
        "recorded": "2026-03-02T13:05:00+00:00",
        "agent": [
            {
                "requestor": True,
                "who": {
                    "display": "Ane Aasen",
                    "identifier": {"system": "urn:oid:2.16.578.1.12.4.1.4.4", "value": "6926956"},
                },
                "role": [{"coding": [{"system": HPR_CATEGORY_SYSTEM, "code": "SP"}]}],
            },
            {"requestor": False, "who": {"display": "Legevakten"}},
        ],
        "entity": [{"description": "Dokumenter åpnet"}, {"name": "Epikrise"}, {"name": " "}],
        "extension": [
            {"url": f"{EXT}/emergency-access", "valueBoolean": True},
            {"url": f"{EXT}/emergency-basis", "valueCode": "AKUTT"},
            {"url": f"{EXT}/emergency-reason", "valueCode": "cannot-consent"},
        ],
    }
    bundle = {"resourceType": "Bundle", "entry": [{"resource": event}]}
    (r,) = build_access_log(bundle, []).rows
    assert (r.profession, r.titles, r.emergency_basis, r.emergency_reason) == (
        "SP",
        ("Epikrise",),
        "AKUTT",
        "cannot-consent",
    )
    assert r.reader_hpr == "6926956" and "6926956" not in repr(r)
    # A national identity number as identifier is no HPR number: not read at all.
    event["agent"][0]["who"]["identifier"] = {  # type: ignore[index]
        "system": "urn:oid:2.16.578.1.12.4.1.4.1",
        "value": "14928301045",
    }
    (r,) = build_access_log(bundle, []).rows
    assert r.reader_hpr == "" and "14928301045" not in repr(r)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=30,
)
event_keys = st.sampled_from(
    ["agent", "entity", "extension", "recorded", "subtype", "action", "purposeOfEvent", "who"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(event_keys, json_values, max_size=6), max_size=5))
def test_any_event_shape_reads_without_error_and_groups(events: list[dict[str, object]]) -> None:
    bundle = {
        "resourceType": "Bundle",
        "entry": [{"resource": {"resourceType": "AuditEvent", **e}} for e in events],
    }
    log = build_access_log(bundle, [])
    visits = group_visits(log.rows, ref)
    assert sum(v.events for v in visits) == len(events)
