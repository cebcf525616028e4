"""The documents list (issue 11, "The look"; defects 4 and 8): groups, labels, «Ny», the cache.

Pure parts (stays.py, code_labels.py, visits.py, listing_cache.py, listing.py grouping) and the
health-personnel portal over ASGI with the STS and the hub faked (test_app.py's fakes, which
record every hub search): sorting, paging and going back from a document do not search the hub
again; «Oppdater» does; the back link keeps filter, sort and page; «Ny» marks what came after
the user's last visit, in a later session; codes are said in English on English pages.
The citizen's page is tested in test_citizen_documents_list.py.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest

from onerecord.domain import code_tables
from onerecord.portals.code_labels import KINDS, CodeLabels, message_key
from onerecord.portals.i18n import LANGUAGE_COOKIE, LANGUAGES, Translator, catalog
from onerecord.portals.listing import apply_listing, parse_listing_query
from onerecord.portals.listing_cache import CachedOverview
from onerecord.portals.overview import Overview, build_overview
from onerecord.portals.stays import Stay, StayFacts, assign_stays
from onerecord.portals.visits import Visits, VisitStore, arrived_after
from onerecord.synth import documents as synth_documents
from onerecord.synth.population import PRACTICE_SETTING_SYSTEM
from tests.portals.test_app import (
    HSO,
    HUB,
    PATIENT_NIN,
    App,
    Fakes,
    _at_overview,
    _browser,
    running_portal,
)

pytestmark = pytest.mark.anyio

_EXT_HCID = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-HomeCommunityId"
_EXT_SUBMITTED = "https://onerecord.no/fhir/StructureDefinition/submission-time"
_VOLVEN_9602 = "urn:oid:2.16.578.1.12.4.1.1.9602"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- stays -----------------------------------------------------------------------------------


def test_a_stay_is_an_admission_period_and_gathers_what_was_written_during_it() -> None:
    facts = [
        StayFacts("OUS", "2024-03-10", "2024-03-01T08:00", "2024-03-09T12:00"),  # discharge
        StayFacts("OUS", "2024-03-04", "2024-03-04T09:00", "2024-03-04T09:40"),  # lab, inside
        StayFacts("OUS", "2024-05-01"),  # later note: no stay
        StayFacts("Haukeland", "2024-03-05", "2024-03-05T10:00", "2024-03-05T11:00"),  # elsewhere
        StayFacts("", "2024-03-05"),  # a blocked placeholder: no institution, no stay
    ]
    assert assign_stays(facts) == [
        Stay("2024-03-01", "2024-03-09"),
        Stay("2024-03-01", "2024-03-09"),
        None,
        None,
        None,
    ]


def test_overlapping_admissions_are_one_stay_and_an_encounter_wins() -> None:
    facts = [
        StayFacts("OUS", "2024-03-06", "2024-03-01", "2024-03-05"),
        StayFacts("OUS", "2024-03-09", "2024-03-05", "2024-03-08"),
        StayFacts("OUS", "2024-03-07", "2024-03-07T10:00", "2024-03-07T10:30"),
        StayFacts("OUS", "2024-06-02", "2024-06-02", "", encounter="Encounter/7"),
        StayFacts("OUS", "2024-06-04", "", "", encounter="Encounter/7"),
    ]
    stays = assign_stays(facts)
    assert stays[:3] == [Stay("2024-03-01", "2024-03-08")] * 3
    assert stays[3:] == [Stay("2024-06-02", "2024-06-04")] * 2


# --- grouping in the listing -------------------------------------------------------------------


def _doc(
    title: str,
    *,
    org: str = "Oslo universitetssykehus HF",
    dept: str = "Medisinsk klinikk",
    date: str = "2024-03-10T10:00:00+01:00",
    period: tuple[str, str] | None = None,
    class_code: str = "A00-1",
    type_code: str = "A03-2",
    fmt: str = "urn:no:ehelse:document:pdf",
    mime: str = "application/pdf",
    submitted: str = "2024-03-10T12:00:00+00:00",
    token: str | None = None,
) -> dict[str, Any]:
    token = token or re.sub(r"\W", "", title.lower())
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "masterIdentifier": {"value": f"urn:oid:1.2.{abs(hash(title)) % 10**9}"},
        "date": date,
        "extension": [
            {"url": _EXT_HCID, "valueIdentifier": {"value": HSO}},
            {"url": _EXT_SUBMITTED, "valueInstant": submitted},
        ],
        "contained": [
            {"resourceType": "PractitionerRole", "id": "author0"},
            {"resourceType": "Practitioner", "id": "p", "name": [{"family": "Lege"}]},
            {"resourceType": "Organization", "id": "o", "name": org},
            {"resourceType": "Organization", "id": "d", "name": dept, "partOf": {}},
        ],
        "category": [{"coding": [{"system": _VOLVEN_9602, "code": class_code}]}],
        "type": {"coding": [{"system": _VOLVEN_9602, "code": type_code, "display": "Norsk"}]},
        "content": [
            {
                "attachment": {"title": title, "contentType": mime, "url": f"{HUB}/Binary/{token}"},
                "format": {"code": fmt},
            }
        ],
        "context": {
            "practiceSetting": {"coding": [{"code": "14"}]},
            "facilityType": {"coding": [{"code": "86.101"}]},
        },
    }
    if period:
        resource["context"]["period"] = {"start": period[0], "end": period[1]}
    return resource


def _bundle(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(docs),
        "entry": [{"resource": d} for d in docs],
    }


REGIONS = ({"name": "Helse Sør-Øst", "home_community_id": HSO},)


def _overview(docs: list[dict[str, Any]]) -> Overview:
    return build_overview(_bundle(docs), REGIONS)


def test_rows_carry_department_codes_stay_and_arrival() -> None:
    overview = _overview(
        [_doc("Epikrise", period=("2024-03-01T08:00:00+01:00", "2024-03-09T12:00:00+01:00"))]
    )
    (row,) = overview.rows
    assert (row.organisation, row.department) == (
        "Oslo universitetssykehus HF",
        "Medisinsk klinikk",
    )
    assert (row.class_code, row.type_code, row.setting_code, row.facility_code) == (
        "A00-1",
        "A03-2",
        "14",
        "86.101",
    )
    assert row.stay == Stay("2024-03-01", "2024-03-09")
    assert row.arrived == "2024-03-10T12:00:00+00:00"


def _grouped_docs() -> list[dict[str, Any]]:
    return [
        _doc("OUS-epikrise", date="2024-03-10T10:00:00+01:00", period=("2024-03-01", "2024-03-09")),
        _doc(
            "OUS-prøvesvar", date="2024-03-04T10:00:00+01:00", period=("2024-03-04", "2024-03-04")
        ),
        _doc("Haukeland-notat", org="Haukeland", date="2024-03-08T10:00:00+01:00"),
        _doc("OUS-brev", date="2025-01-01T10:00:00+01:00"),
    ]


def test_the_list_groups_by_institution_and_stay_newest_group_first() -> None:
    page = apply_listing(_overview(_grouped_docs()).rows, parse_listing_query({}))
    assert [r.title for r in page.rows] == [
        "OUS-brev",
        "OUS-epikrise",
        "OUS-prøvesvar",
        "Haukeland-notat",
    ]
    runs = page.runs()
    assert [key for key, _ in runs] == [
        ("Oslo universitetssykehus HF", "", ""),
        ("Oslo universitetssykehus HF", "2024-03-01", "2024-03-09"),
        ("Haukeland", "", ""),
    ]
    assert [len(rows) for _, rows in runs] == [1, 2, 1]


def test_grouping_off_or_sorting_by_another_column_gives_one_flat_list() -> None:
    rows = _overview(_grouped_docs()).rows
    flat = apply_listing(rows, parse_listing_query({"gruppering": "ingen"}))
    assert [r.date for r in flat.rows] == sorted((r.date for r in rows), reverse=True)
    by_title = apply_listing(rows, parse_listing_query({"sorter": "tittel", "retning": "stigende"}))
    assert [r.title for r in by_title.rows] == sorted(r.title for r in rows)
    assert parse_listing_query({"gruppering": "ingen"}).params() == "gruppering=ingen"
    assert parse_listing_query({"gruppering": "x"}).problems == ("gruppering",)


def test_filters_take_the_code_or_the_text_a_region_sent() -> None:
    rows = _overview([*_grouped_docs(), _doc("Lab", class_code="C00-1", type_code="C01-2")]).rows
    assert len(apply_listing(rows, parse_listing_query({"klasse": "C00-1"})).rows) == 1
    assert len(apply_listing(rows, parse_listing_query({"type": "C01-2"})).rows) == 1
    page = apply_listing(rows, parse_listing_query({}))
    assert ("C00-1", "C00-1") in page.classes


# --- code labels ------------------------------------------------------------------------------


def _generator_codes() -> dict[str, set[str]]:
    """Every code the synthetic generator writes into a document's metadata."""
    kinds = synth_documents._KINDS.values()
    tables = code_tables()
    settings = set(tables.systems[PRACTICE_SETTING_SYSTEM])
    return {
        "class": {k.class_code for k in kinds},
        "type": {k.type_code for k in kinds},
        "format": {k.format_code for k in kinds},
        "mime": {k.mime_type for k in kinds},
        "confidentiality": {"N", "R", "V", "NORS", "NORU", *synth_documents._NORN},
        "facility": set(tables.systems["urn:oid:2.16.578.1.12.4.1.1.1303"]),
        "setting": settings,
        "event": set(tables.systems[synth_documents.EVENT_SYSTEM]),
    }


def _all_table_codes() -> dict[str, set[str]]:
    """Every code of the tables the metadata comes from (a superset of the generator's)."""
    tables = code_tables()
    volven = tables.systems
    return {
        "class": {c.code for c in tables.codes("classCode")},
        "type": {c.code for c in tables.codes("typeCode")},
        "format": set(volven["urn:oid:1.3.6.1.4.1.19376.1.2.3"]),
        "confidentiality": set(volven["urn:oid:2.16.578.1.12.4.1.1.9603"])
        | set(volven["urn:oid:2.16.840.1.113883.5.25"]),
        "facility": set(volven["urn:oid:2.16.578.1.12.4.1.1.1303"]),
        "setting": set(volven[PRACTICE_SETTING_SYSTEM]),
        "event": set(volven[synth_documents.EVENT_SYSTEM]),
    }


@pytest.mark.parametrize("source", [_generator_codes, _all_table_codes])
def test_every_code_has_a_label_in_every_language(source: Any) -> None:
    """Defect 8: English mode left codes in Norwegian. Every code the generator can write."""
    missing = []
    for kind, codes in source().items():
        for code in codes:
            texts = catalog().get(message_key(kind, code), {})
            missing += [(kind, code, lang) for lang in LANGUAGES if not texts.get(lang)]
    assert not missing


def test_classes_and_types_have_plain_words_and_english_is_english() -> None:
    for kind in ("class", "type"):
        for code in _generator_codes()[kind]:
            for lang in LANGUAGES:
                assert CodeLabels(Translator(lang)).plain(kind, code), (kind, code, lang)
    en, nb = CodeLabels(Translator("en")), CodeLabels(Translator("nb"))
    assert nb.label("type", "A03-2") == "Epikrise"
    assert nb.plain("type", "A03-2") == "sammendrag etter sykehusopphold"
    assert en.label("type", "A03-2") == "Discharge summary"
    assert en.label("class", "A00-1") != nb.label("class", "A00-1")
    assert en.format("urn:no:kith:xmlstds:svarrapport", "text/xml") == "Lab report (structured)"
    fhir = "urn:ihe:iti:xds:2017:mimeTypeSufficient"
    assert en.format(fhir, "application/fhir+json") == "Structured document (FHIR)"
    # Unknown codes fall back to what the region sent, never to nothing.
    assert en.label("type", "Z99-9", "Ukjent type") == "Ukjent type"
    assert en.format("urn:x", "application/x-odd") == "application/x-odd"
    assert set(KINDS) <= {k.split(".")[1] for k in catalog() if k.startswith("code.")}


# --- «Ny» since the last visit -----------------------------------------------------------------


def test_the_visit_store_keys_hide_the_numbers_and_return_the_visit_before(tmp_path: Path) -> None:
    store = VisitStore(tmp_path / "visits.sqlite3", "a-secret-of-sixteen-or-more")
    key = store.key("12345678901", PATIENT_NIN)
    first = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert store.swap(key, first) is None
    assert store.swap(key, first + timedelta(hours=1)) == first
    rows = sqlite3.connect(tmp_path / "visits.sqlite3").execute("SELECT * FROM visit").fetchall()
    assert len(rows) == 1 and PATIENT_NIN not in repr(rows) and "12345678901" not in repr(rows)
    # Another secret, another key: the file alone cannot be tried against numbers.
    assert (
        VisitStore(tmp_path / "x", "another-secret-of-length").key("12345678901", PATIENT_NIN)
        != key
    )
    assert store.key("12345678901", PATIENT_NIN) != store.key("12345678902", PATIENT_NIN)


async def test_a_session_keeps_the_visit_it_started_with(tmp_path: Path) -> None:
    visits = Visits(VisitStore(tmp_path / "v.sqlite3", "a-secret-of-sixteen-or-more"))
    seen: dict[str, datetime | None] = {}
    assert await visits.since(seen, user="u", patient="p") is None  # first visit
    assert await visits.since(seen, user="u", patient="p") is None  # same session: still first
    later: dict[str, datetime | None] = {}
    since = await visits.since(later, user="u", patient="p")  # a new session
    assert since is not None and await visits.since(later, user="u", patient="p") == since


def test_new_means_arrived_after_the_last_visit() -> None:
    since = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert not arrived_after("2026-03-02T00:00:00+00:00", None)  # first visit: nothing
    assert arrived_after("2026-03-01T13:00:00+01:00", since) is False  # 12:00 UTC, not after
    assert arrived_after("2026-03-01T12:00:01Z", since)
    assert arrived_after("2026-03-02", since) and not arrived_after("2026-03-01", since)
    assert not arrived_after("garbage", since) and not arrived_after("", since)


def test_a_cached_overview_serves_only_its_owner_and_only_while_young() -> None:
    cached = CachedOverview(("hcp", 1), 100.0, datetime.now(UTC), _overview([]), None)
    assert cached.usable(("hcp", 1), 219.0, 120)
    assert not cached.usable(("hcp", 1), 221.0, 120)
    assert not cached.usable(("hcp", 2), 101.0, 120)
    assert not cached.usable(("hcp", 1), 99.0, 120)  # a clock that went back


# --- the health-personnel portal over ASGI -----------------------------------------------------


@dataclass
class ListFakes(Fakes):
    """test_app's STS and hub, the hub answering with `docs` (changeable between visits)."""

    docs: list[dict[str, Any]] = field(default_factory=list)

    def handler(self, request: httpx.Request) -> httpx.Response:
        if str(request.url).startswith(f"{HUB}/DocumentReference"):
            self.hub_requests.append(request)
            return httpx.Response(200, json=_bundle(self.docs))
        if str(request.url).startswith(f"{HUB}/Binary/"):
            return httpx.Response(
                200, content=b"%PDF-1.4", headers={"content-type": "application/pdf"}
            )
        return super().handler(request)


def _many_docs(n: int) -> list[dict[str, Any]]:
    day = datetime(2024, 1, 1, 10, tzinfo=UTC)
    return [
        _doc(f"Notat {i:02d}", date=(day + timedelta(days=i)).isoformat(), token=f"t{i:02d}")
        for i in range(n)
    ]


@pytest.fixture
async def listing_portal(tmp_path: Path) -> AsyncIterator[App]:
    fakes = ListFakes(docs=_many_docs(30))
    async with running_portal(tmp_path, fakes) as app:
        yield app


def _searches(app: App) -> int:
    return len(app.fakes.hub_requests)


def _document_links(page: httpx.Response) -> list[str]:
    return [
        unescape(h) for h in re.findall(r'<a href="(/helsepersonell/dokument/[^"]+)"', page.text)
    ]


def _back_link(page: httpx.Response) -> str:
    match = re.search(r'<p><a href="([^"]+)">[^<]+</a></p>\s*<h1>', page.text)
    assert match, page.text[:3000]
    return unescape(match.group(1))


async def test_sorting_paging_and_going_back_do_not_search_the_hub_again(
    listing_portal: App,
) -> None:
    """Defect 4: every sort click, page change and back link re-ran the hub search."""
    client = listing_portal.client
    first = await _at_overview(client)
    assert first.status_code == 200 and _searches(listing_portal) == 1
    view = {"sorter": "tittel", "retning": "stigende", "side": "2", "antall": "25"}
    sorted_page = await client.get("/helsepersonell/oversikt", params={"sorter": "tittel"})
    paged = await client.get("/helsepersonell/oversikt", params=view)
    assert sorted_page.status_code == paged.status_code == 200
    assert "Notat 25" in paged.text and "Notat 24" not in paged.text
    link = _document_links(paged)[0]
    document = await client.get(link)
    assert document.status_code == 200
    back = await client.get(_back_link(document))
    assert back.status_code == 200 and "Notat 25" in back.text
    assert _searches(listing_portal) == 1
    # «Oppdater» fetches afresh, and keeps the view.
    refreshed = await client.get("/helsepersonell/oversikt", params={**view, "oppdater": "1"})
    assert refreshed.status_code == 200 and "Notat 25" in refreshed.text
    assert _searches(listing_portal) == 2


async def test_rows_older_than_the_setting_are_fetched_again(tmp_path: Path) -> None:
    async with running_portal(tmp_path, ListFakes(docs=_many_docs(3)), listing_max_age_s=0) as app:
        await _at_overview(app.client)
        await app.client.get("/helsepersonell/oversikt", params={"sorter": "tittel"})
        assert _searches(app) == 2


async def test_the_back_link_keeps_filter_sort_and_page(listing_portal: App) -> None:
    """Defect 8: «Tilbake til oversikten» lost filter, sort and page."""
    client = listing_portal.client
    await _at_overview(client)
    view = {
        "klasse": "A00-1",
        "fra": "2024-01-05",
        "sorter": "tittel",
        "retning": "stigende",
        "side": "2",
        "antall": "25",
        "gruppering": "ingen",
    }
    page = await client.get("/helsepersonell/oversikt", params=view)
    link = _document_links(page)[0]
    document = await client.get(link)
    back = _back_link(document)
    assert back.startswith("/helsepersonell/oversikt?")
    assert parse_listing_query(dict(httpx.URL(back).params)) == parse_listing_query(view)
    assert "Tilbake til oversikten" in document.text
    # Without a view the way back is the plain overview; junk in the link is dropped.
    plain = await client.get(link.split("?")[0], params={"x": "<script>", "side": "abc"})
    assert _back_link(plain) == "/helsepersonell/oversikt"


async def test_the_list_shows_groups_department_format_and_english_labels(
    tmp_path: Path,
) -> None:
    async with running_portal(tmp_path, ListFakes(docs=_grouped_docs())) as app:
        page = await _at_overview(app.client)
        body = unescape(page.text)
        assert body.count('<th scope="rowgroup"') == 3
        assert "Opphold 01.03.2024–09.03.2024" in body
        assert "Medisinsk klinikk" in body and 'data-label="Format">PDF' in body
        assert 'Epikrise <span class="plain">(sammendrag etter sykehusopphold)</span>' in body
        assert all("data-label=" in td for td in re.findall(r"<td[^>]*>", page.text))
        app.client.cookies.set(LANGUAGE_COOKIE, "en")
        english = unescape((await app.client.get("/helsepersonell/oversikt")).text)
        assert "Discharge summary" in english and "summary after a hospital stay" in english
        assert "Stay 1 March 2024–9 March 2024" in english
        assert "Discharge summaries and summaries" in english
        assert "Epikriser og sammenfatninger" not in english
        assert _searches(app) == 1  # the language switch re-renders the rows already fetched


async def test_new_since_the_last_visit_is_marked_in_a_later_session(tmp_path: Path) -> None:
    fakes = ListFakes(docs=_grouped_docs())
    async with running_portal(tmp_path, fakes) as app:
        first = await _at_overview(app.client)
        assert first.status_code == 200 and 'class="tag new' not in first.text  # first visit
        arrived = (datetime.now(UTC) + timedelta(seconds=5)).isoformat()
        fakes.docs = [*fakes.docs, _doc("Nytt prøvesvar", submitted=arrived, token="nytt")]
        async with _browser(app) as later:  # another day, another login
            second = await _at_overview(later)
        rows = re.findall(r"<tr class=\"document[^\"]*\".*?</tr>", second.text, re.S)
        new = [r for r in rows if 'class="tag new' in r]
        assert len(rows) == 5 and len(new) == 1 and "Nytt prøvesvar" in new[0]
        assert "«Ny» betyr at dokumentet har kommet etter forrige gang" in second.text
        # The store holds neither number.
        db = sqlite3.connect(tmp_path / "portal" / "visits.sqlite3")
        dump = "\n".join(db.iterdump())
        assert PATIENT_NIN not in dump and fakes.subject not in dump


async def test_an_empty_list_says_so_in_grouped_and_flat_views(tmp_path: Path) -> None:
    none = Translator("nb")("overview.none")
    async with running_portal(tmp_path, ListFakes(docs=[])) as app:
        grouped = await _at_overview(app.client)
        flat = await app.client.get("/helsepersonell/oversikt", params={"gruppering": "ingen"})
        for page in (grouped, flat):
            assert page.status_code == 200 and none in unescape(page.text)
            assert re.search(r"<tbody[ >]", page.text) and 'class="group"' not in page.text
            assert 'scope="rowgroup"' not in page.text
