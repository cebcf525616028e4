"""Filter, sort and page the overview (listing.py): pure functions over the query string."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from urllib.parse import parse_qsl

import pytest

from onerecord.portals.listing import (
    PAGE_SIZES,
    SORT_KEYS,
    ListingQuery,
    apply_listing,
    parse_listing_query,
)


@dataclass(frozen=True)
class Row:
    date: str
    title: str
    type: str
    class_: str
    author: str
    organisation: str
    region: str


ROWS = (
    Row("2024-03-05", "epikrise b", "Epikrise", "Epikriser", "Ola", "OUS", "Helse Sør-Øst"),
    Row("2025-01-10", "Notat", "Journalnotat", "Journal", "berit", "Haukeland", "Helse Vest"),
    Row("2023-12-31", "Alfa", "Epikrise", "Epikriser", "Åse", "St. Olav", "Helse Midt-Norge"),
    Row("2024-07-01", "Svarrapport", "Biokjemi", "Prøvesvar", "Carl", "UNN", "Helse Nord"),
    Row("2024-03-06", "Zulu", "Brev", "Korrespondanse", "Dag", "OUS", "Helse Sør-Øst"),
)

# What each sort key reads, to check the order independently of listing.py.
FIELD = {
    "dato": "date",
    "tittel": "title",
    "type": "type",
    "klasse": "class_",
    "forfatter": "author",
    "virksomhet": "organisation",
    "region": "region",
}


def _view(**params: str) -> tuple[Row, ...]:
    return apply_listing(ROWS, parse_listing_query(params)).rows


def test_defaults_newest_first_one_page() -> None:
    query = parse_listing_query({})
    assert query == ListingQuery()
    assert not query.filtered and query.problems == ()
    page = apply_listing(ROWS, query)
    assert [r.date for r in page.rows] == sorted((r.date for r in ROWS), reverse=True)
    assert (page.matching, page.page, page.pages) == (5, 1, 1)
    assert page.regions == ("Helse Midt-Norge", "Helse Nord", "Helse Sør-Øst", "Helse Vest")
    # (value for the URL, text shown): rows without codes filter by the region's text.
    assert [v for v, _ in page.classes] == ["Epikriser", "Journal", "Korrespondanse", "Prøvesvar"]
    assert [v for v, _ in page.types] == ["Biokjemi", "Brev", "Epikrise", "Journalnotat"]


def test_filters_narrow_the_rows_and_keep_the_choices() -> None:
    by_region = apply_listing(ROWS, parse_listing_query({"region": "Helse Sør-Øst"}))
    assert {r.region for r in by_region.rows} == {"Helse Sør-Øst"} and by_region.matching == 2
    # The choices still name every value of the whole overview.
    assert len(by_region.regions) == 4
    assert {r.title for r in _view(klasse="Epikriser")} == {"epikrise b", "Alfa"}
    assert {r.title for r in _view(type="Brev")} == {"Zulu"}
    assert {r.title for r in _view(klasse="Epikriser", region="Helse Midt-Norge")} == {"Alfa"}
    assert _view(klasse="Finnes ikke") == ()
    assert parse_listing_query({"type": "Brev"}).filtered


def test_period_filter_includes_both_ends() -> None:
    rows = _view(fra="2024-03-05", til="2024-07-01")
    assert {r.title for r in rows} == {"epikrise b", "Zulu", "Svarrapport"}
    assert {r.title for r in _view(fra="2025-01-01")} == {"Notat"}
    assert {r.title for r in _view(til="2023-12-31")} == {"Alfa"}
    undated = Row("", "Udatert", "Brev", "Korrespondanse", "", "", "Helse Nord")
    assert apply_listing([undated], parse_listing_query({"fra": "2020-01-01"})).rows == ()
    assert apply_listing([undated], parse_listing_query({})).rows == (undated,)


@pytest.mark.parametrize("key", SORT_KEYS)
@pytest.mark.parametrize("direction", ["stigende", "synkende"])
def test_each_sort_key_in_both_directions(key: str, direction: str) -> None:
    query = parse_listing_query({"sorter": key, "retning": direction})
    assert query.problems == ()
    values = [getattr(r, FIELD[key]) for r in apply_listing(ROWS, query).rows]
    folded = [v if key == "dato" else v.casefold() for v in values]
    expected = sorted(folded, reverse=direction == "synkende")
    assert folded == expected
    assert len(values) == len(ROWS)


@pytest.mark.parametrize("direction", ["stigende", "synkende"])
def test_equal_keys_keep_newest_first(direction: str) -> None:
    rows = _view(sorter="virksomhet", retning=direction)
    assert [r.title for r in rows if r.organisation == "OUS"] == ["Zulu", "epikrise b"]
    by_region = _view(sorter="region", retning=direction)
    assert [r.title for r in by_region if r.region == "Helse Sør-Øst"] == ["Zulu", "epikrise b"]


def _rows(n: int) -> list[Row]:
    return [
        Row(f"2024-01-{1 + i % 28:02d}", f"Dok {i:03d}", "Brev", "K", "A", "O", "R")
        for i in range(n)
    ]


def test_paging_bounds() -> None:
    rows = _rows(60)
    first = apply_listing(rows, parse_listing_query({"antall": "25"}))
    assert (len(first.rows), first.page, first.pages, first.matching) == (25, 1, 3, 60)
    assert first.first_number(25) == 1
    last = apply_listing(rows, parse_listing_query({"side": "3"}))
    assert (len(last.rows), last.page) == (10, 3) and last.first_number(25) == 51
    # Past the end: the last page, not an empty one.
    beyond = apply_listing(rows, parse_listing_query({"side": "99"}))
    assert beyond.page == 3 and len(beyond.rows) == 10
    # The pages together hold every row once.
    seen = [
        r.title
        for n in (1, 2, 3)
        for r in apply_listing(rows, replace(ListingQuery(), page=n)).rows
    ]
    assert sorted(seen) == sorted(r.title for r in rows)
    exact = apply_listing(_rows(50), parse_listing_query({"antall": "50"}))
    assert exact.pages == 1 and len(exact.rows) == 50
    empty = apply_listing(list[Row](), ListingQuery())
    assert (empty.page, empty.pages, empty.matching, empty.first_number(25)) == (1, 1, 0, 0)
    assert empty.pages_around() == [1]


def test_pages_around_names_first_last_and_neighbours() -> None:
    page = apply_listing(_rows(250), parse_listing_query({"side": "5"}))
    assert page.pages == 10
    assert page.pages_around() == [1, 3, 4, 5, 6, 7, 10]
    assert apply_listing(_rows(250), ListingQuery()).pages_around() == [1, 2, 3, 10]


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"sorter": "pris"}, "sorter"),
        ({"retning": "opp"}, "retning"),
        ({"antall": "30"}, "antall"),
        ({"antall": "0"}, "antall"),
        ({"antall": "mange"}, "antall"),
        ({"side": "0"}, "side"),
        ({"side": "-1"}, "side"),
        ({"side": "en"}, "side"),
        ({"side": "²"}, "side"),
        ({"side": "1234567"}, "side"),
        ({"fra": "2024-13-01"}, "fra"),
        ({"til": "i går"}, "til"),
        ({"fra": "2025-01-01", "til": "2024-01-01"}, "til"),
    ],
)
def test_bad_values_fall_back_and_are_reported(params: dict[str, str], problem: str) -> None:
    query = parse_listing_query(params)
    assert query.problems == (problem,)
    assert query.sort in SORT_KEYS and query.per_page in PAGE_SIZES and query.page >= 1
    apply_listing(ROWS, query)  # still a view


@pytest.mark.parametrize(
    "value",
    [
        "20260101",
        "2026-W01-1",
        "2026-W01",
        "2026-001",
        "２０２６-０１-０１",
        "2026-1-1",
        "2026-01-01T00",
    ],
)
def test_only_yyyy_mm_dd_is_a_date(value: str) -> None:
    query = parse_listing_query({"fra": value, "til": value})
    assert query.problems == ("fra", "til")
    assert query.date_from is None and query.date_to is None
    ok = parse_listing_query({"fra": " 2026-01-01 ", "til": "2026-01-04"})
    assert (ok.date_from, ok.date_to, ok.problems) == (date(2026, 1, 1), date(2026, 1, 4), ())


def test_several_problems_are_all_named() -> None:
    query = parse_listing_query({"sorter": "x", "retning": "y", "antall": "7", "fra": "z"})
    assert set(query.problems) == {"sorter", "retning", "antall", "fra"}
    assert (query.sort, query.descending, query.per_page, query.date_from) == (
        "dato",
        True,
        25,
        None,
    )


@pytest.mark.parametrize(
    "query",
    [
        ListingQuery(),
        ListingQuery(
            class_="Epikriser og sammenfatninger",
            type="Brev & notat",
            region="Helse Sør-Øst",
            date_from=date(2024, 1, 1),
            date_to=date(2024, 12, 31),
            sort="tittel",
            descending=False,
            page=3,
            per_page=100,
        ),
        ListingQuery(sort="region", descending=True, per_page=200),
    ],
)
def test_params_round_trip(query: ListingQuery) -> None:
    again = parse_listing_query(dict(parse_qsl(query.params())))
    assert again == query


def test_params_leave_defaults_out_and_apply_changes() -> None:
    assert ListingQuery().params() == ""
    assert ListingQuery().params(page=2) == "side=2"
    query = ListingQuery(region="Helse Vest", page=4)
    assert dict(parse_qsl(query.params(page=1))) == {"region": "Helse Vest"}


def test_sort_link_reverses_the_active_key_and_starts_at_page_one() -> None:
    query = ListingQuery(region="Helse Vest", page=3)
    by_date = parse_listing_query(dict(parse_qsl(query.sort_link("dato"))))
    assert (by_date.sort, by_date.descending, by_date.page) == ("dato", False, 1)
    assert by_date.region == "Helse Vest"
    by_title = parse_listing_query(dict(parse_qsl(query.sort_link("tittel"))))
    assert (by_title.sort, by_title.descending) == ("tittel", False)
    reversed_title = parse_listing_query(dict(parse_qsl(by_title.sort_link("tittel"))))
    assert (reversed_title.sort, reversed_title.descending) == ("tittel", True)
    # A new key other than the date starts ascending; the date starts newest first.
    back_to_date = parse_listing_query(dict(parse_qsl(by_title.sort_link("dato"))))
    assert (back_to_date.sort, back_to_date.descending) == ("dato", True)
