"""The registry lists, matches, counts and sorts a masked entry only by what its placeholder shows.

Findings F1–F3 of issue 10 at the store, on SQLite and PostgreSQL: a filter on a value the
placeholder hides never matches it (the same answer for the hidden value and any other), sorting
places it at "Sperret" and its shown date, and `total` counts only what policy lets through.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from onerecord.domain import (
    Author,
    AuthorInstitution,
    AuthorPerson,
    ClassWindow,
    Coding,
    DocumentEntry,
    DocumentQuery,
    DocumentUniqueId,
    HprNumber,
    OrganisationNumber,
    SortField,
    SortKey,
    TimeRange,
    TokenParam,
    TotalMode,
)
from onerecord.source.database import make_engine
from onerecord.source.migrate import upgrade
from onerecord.source.store import (
    ENTRY_ONLY_FILTERS,
    IDENTIFIER_SYSTEM,
    PLACEHOLDER_FILTERS,
    SqlDocumentStore,
)
from onerecord.trust.policy import EntryView as PolicyView
from onerecord.trust.policy import (
    PatientControls,
    PopulationFacts,
    RegionPolicy,
    SearchDecision,
    citizen_search_policy,
    hcp_search_policy,
)
from onerecord.trust.principal import KJ_FORSKRIFT_SCOPE, AccessBasis
from tests.conftest import Database
from tests.source.test_store import DOC_TYPE, HL7_CONF, VOLVEN_CONF, V, entry, query, uid
from tests.trust import policy_factories as pf

pytestmark = pytest.mark.anyio

NORS = Coding(VOLVEN_CONF, "NORS")
NORMAL = Coding(HL7_CONF, "N")
T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
async def store(database: Database) -> AsyncIterator[SqlDocumentStore]:
    engine = make_engine(database.url, schema=database.schema)
    await upgrade(engine)
    store = SqlDocumentStore(engine, owns_engine=True)
    try:
        yield store
    finally:
        await store.close()


def author(given: str, family: str) -> Author:
    return Author(
        person=AuthorPerson(given, family, HprNumber("9144900")),
        institution=AuthorInstitution("Testsykehuset HF", OrganisationNumber("983974899")),
    )


def blocked(**overrides: Any) -> DocumentEntry:
    """A NORS entry whose hidden metadata differs from the open one's in every field."""
    values: dict[str, Any] = {
        "class_code": Coding(DOC_TYPE, "I00-1"),
        "type_code": Coding(DOC_TYPE, "I02-2"),
        "confidentiality_codes": (NORMAL, NORS),
        "title": "Aab hemmelig brev",
        "healthcare_facility_type": Coding(V + "1303", "86.211"),
        "practice_setting": Coding(V + "8451", "27"),
        "format_code": Coding("urn:oid:1.3.6.1.4.1.19376.1.2.3", "urn:no:ehelse:document:text"),
        "event_codes": (Coding(V + "7210", "X1"),),
        "authors": (author("Ola", "Hemmelig"),),
        "creation_time": T0 + timedelta(days=40),
        "service_start_time": T0 - timedelta(days=400),
        "service_stop_time": T0 - timedelta(days=399),
    }
    values.update(overrides)
    return entry(**values)


def of_class(cls: str, **overrides: Any) -> DocumentEntry:
    return entry(
        class_code=Coding(DOC_TYPE, cls), type_code=Coding(DOC_TYPE, cls[0] + "01-2"), **overrides
    )


def is_open(**overrides: Any) -> DocumentEntry:
    values: dict[str, Any] = {
        "class_code": Coding(DOC_TYPE, "I00-1"),
        "type_code": Coding(DOC_TYPE, "I01-2"),
        "authors": (author("Kari", "Nordmann"),),
        "title": "Aaa notat",
    }
    values.update(overrides)
    return entry(**values)


def masking(**overrides: Any) -> DocumentQuery:
    return query(masked_labels=frozenset({"NORS"}), **overrides)


def token(system: str, code: str) -> tuple[tuple[TokenParam, ...], ...]:
    return ((TokenParam(system, code),),)


async def listed(store: SqlDocumentStore, q: DocumentQuery) -> tuple[list[str], int]:
    page = await store.find(q, None)
    return [uid(s.entry) for s in page.entries], page.total


def hidden_value_filters(secret: DocumentEntry) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Per filter on a hidden field: (the masked entry's hidden value, another value)."""
    day = TimeRange(secret.creation_time - timedelta(hours=1), secret.creation_time + timedelta(1))
    other_day = TimeRange(T0 - timedelta(days=900), T0 - timedelta(days=899))
    assert secret.service_start_time is not None
    period = TimeRange(secret.service_start_time, secret.service_start_time + timedelta(days=1))
    return {
        "type": ({"type": token(DOC_TYPE, "I02-2")}, {"type": token(DOC_TYPE, "B03-2")}),
        "facility": (
            {"facility": token(V + "1303", "86.211")},
            {"facility": token(V + "1303", "86.999")},
        ),
        "setting": ({"setting": token(V + "8451", "27")}, {"setting": token(V + "8451", "99")}),
        "event": ({"event": token(V + "7210", "X1")}, {"event": token(V + "7210", "X2")}),
        "format": (
            {"format": token("urn:oid:1.3.6.1.4.1.19376.1.2.3", "urn:no:ehelse:document:text")},
            {"format": token("urn:oid:1.3.6.1.4.1.19376.1.2.3", "urn:no:ehelse:document:x")},
        ),
        "identifier": (
            {"identifier": token(IDENTIFIER_SYSTEM, secret.unique_id.urn)},
            {"identifier": token(IDENTIFIER_SYSTEM, "urn:oid:1.2.3.4")},
        ),
        "author_family": ({"author_family": (("hemmelig",),)}, {"author_family": (("zz",),)}),
        "author_given": ({"author_given": (("ola",),)}, {"author_given": (("zz",),)}),
        "creation": ({"creation": (day,)}, {"creation": (other_day,)}),
        "period": ({"period": (period,)}, {"period": (other_day,)}),
    }


def test_every_query_field_is_classified_for_placeholders() -> None:
    """A new search parameter must say whether a placeholder shows what it matches."""
    policy_and_paging = {
        "patient_id",
        "statuses",
        "sort",
        "count",
        "total",
        "hidden_labels",
        "released_by",
        "shown_classes",
        "masked_labels",
        "masked_documents",
        "unmasked_classes",
    }
    names = {f.name for f in dataclasses.fields(DocumentQuery)}
    assert names == PLACEHOLDER_FILTERS | ENTRY_ONLY_FILTERS | policy_and_paging
    assert not PLACEHOLDER_FILTERS & ENTRY_ONLY_FILTERS


async def test_blocked_entry_is_not_matched_by_its_hidden_values(store: SqlDocumentStore) -> None:
    """type/author/facility/identifier/… of a NORS entry: the hidden value and another alike."""
    secret, visible = blocked(), is_open()
    await store.register([secret, visible], submission_set=None)
    # Without masking the filters do match the entry: the test can tell.
    for name, (hit, miss) in hidden_value_filters(secret).items():
        assert uid(secret) in (await listed(store, query(**hit)))[0], name
        assert uid(secret) not in (await listed(store, query(**miss)))[0], name
        with_hidden = await listed(store, masking(**hit))
        with_other = await listed(store, masking(**miss))
        assert uid(secret) not in with_hidden[0], name
        assert uid(secret) not in with_other[0], name
        assert with_hidden[1] == len(with_hidden[0]), name
    # Unfiltered, the placeholder is listed and counted.
    assert set((await listed(store, masking()))[0]) == {uid(secret), uid(visible)}
    assert (await listed(store, masking()))[1] == 2


async def test_blocked_document_is_not_matched_by_its_hidden_type(store: SqlDocumentStore) -> None:
    """A block of one document (no NORS label) masks the same way."""
    secret = blocked(confidentiality_codes=(NORMAL,))
    await store.register([secret, is_open()], submission_set=None)
    q = query(masked_documents=frozenset({secret.unique_id}))
    assert uid(secret) in (await listed(store, q))[0]
    for types in (token(DOC_TYPE, "I02-2"), token(DOC_TYPE, "B02-2")):
        assert uid(secret) not in (await listed(store, dataclasses.replace(q, type=types)))[0]


async def test_blocked_entry_is_matched_on_what_its_placeholder_shows(
    store: SqlDocumentStore,
) -> None:
    """Category, the shown date and the NORS label match; the hidden label N does not."""
    secret, visible = blocked(), is_open()
    await store.register([secret, visible], submission_set=None)
    assert secret.service_start_time is not None
    shown = secret.service_start_time
    assert uid(secret) in (await listed(store, masking(category=token(DOC_TYPE, "I00-1"))))[0]
    assert uid(secret) not in (await listed(store, masking(category=token(DOC_TYPE, "A00-1"))))[0]
    around_shown = (TimeRange(shown - timedelta(hours=1), shown + timedelta(hours=1)),)
    around_created = (
        TimeRange(secret.creation_time - timedelta(hours=1), secret.creation_time + timedelta(1)),
    )
    assert uid(secret) in (await listed(store, masking(date=around_shown)))[0]
    assert uid(secret) not in (await listed(store, masking(date=around_created)))[0]
    nors = token(VOLVEN_CONF, "NORS")
    assert (await listed(store, masking(security_label=nors)))[0] == [uid(secret)]
    normal = (await listed(store, masking(security_label=token(HL7_CONF, "N"))))[0]
    assert normal == [uid(visible)]


async def test_sort_by_title_places_blocked_entry_at_placeholder_title(
    store: SqlDocumentStore,
) -> None:
    """Its hidden title "Aab…" sorts second; the placeholder's "Sperret" sorts third."""
    secret = blocked()
    first, middle, last = (is_open(title=t) for t in ("Aaa notat", "Mmm notat", "Zzz notat"))
    await store.register([last, secret, middle, first], submission_set=None)
    ascending = (SortKey(SortField.TITLE, descending=False),)
    unmasked = [uid(first), uid(secret), uid(middle), uid(last)]
    assert (await listed(store, query(sort=ascending)))[0] == unmasked
    want = [uid(first), uid(middle), uid(secret), uid(last)]
    assert (await listed(store, masking(sort=ascending)))[0] == want
    # Page by page the cursor keeps the placeholder's order.
    seen: list[str] = []
    q = masking(sort=ascending, count=1)
    cursor = None
    while True:
        page = await store.find(q, cursor)
        seen.extend(uid(s.entry) for s in page.entries)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == want


async def test_sort_by_date_places_blocked_entry_at_its_shown_date(
    store: SqlDocumentStore,
) -> None:
    """The placeholder shows serviceStartTime: sorted there, not at the hidden creationTime."""
    secret = blocked()  # created T0+40 d, started T0-400 d
    middle = is_open(creation_time=T0)
    await store.register([secret, middle], submission_set=None)
    newest_first = (SortKey(SortField.DATE, descending=True),)
    assert (await listed(store, query(sort=newest_first)))[0] == [uid(secret), uid(middle)]
    assert (await listed(store, masking(sort=newest_first)))[0] == [uid(middle), uid(secret)]
    # Neither the period nor the creation time is shown: the placeholder sorts as having none.
    for field in (SortField.PERIOD, SortField.CREATION):
        oldest_first = (SortKey(field, descending=False),)
        assert (await listed(store, masking(sort=oldest_first)))[0][0] == uid(secret)


async def test_total_counts_only_what_policy_lets_through(store: SqlDocumentStore) -> None:
    """Class windows (kjernejournalforskriften) are applied by the registry: total = listed."""
    recent_lab = of_class("C00-1", service_start_time=T0)
    old_lab = of_class("C00-1", service_start_time=T0 - timedelta(days=400))
    note = of_class("B00-1")
    summary = of_class("A00-1", service_start_time=T0 - timedelta(days=3000))
    await store.register([recent_lab, old_lab, note, summary], submission_set=None)
    windows = (
        ClassWindow(DOC_TYPE, "A00-1", None),
        ClassWindow(DOC_TYPE, "C00-1", T0 - timedelta(days=365)),
    )
    shown, total = await listed(store, query(shown_classes=windows))
    assert set(shown) == {uid(recent_lab), uid(summary)} and total == 2
    page = await store.find(query(shown_classes=windows, count=1, total=TotalMode.ACCURATE), None)
    assert page.total == 2 and page.next_cursor is not None
    assert (await listed(store, query(shown_classes=())))[1] == 0
    masked = query(masked_documents=frozenset({DocumentUniqueId(uid(note))}))
    assert (await listed(store, masked))[1] == 4


# --- the registry and the policy's per-entry view agree --------------------------------------


def _varied_entries() -> list[DocumentEntry]:
    """Entries around every rule's edge: labels, classes, kjernejournalforskriften limits."""
    rng = random.Random(10)
    one_year = datetime.combine(pf.TODAY.replace(year=pf.TODAY.year - 1), time(), tzinfo=UTC)
    edges = [one_year + timedelta(hours=h) for h in (-25, -1, 0, 1, 25)]
    label_sets = [("N",), ("R",), ("V",), ("N", "NORS"), ("N", "NORN_KUT"), ("N", "NORU")]
    made = []
    for i in range(60):
        started = (
            edges[i % len(edges)] if i % 3 == 0 else pf.NOW - timedelta(days=rng.randint(0, 3000))
        )
        labels = label_sets[i % len(label_sets)]
        release = None
        if "NORU" in labels or i % 7 == 0:
            release = pf.NOW + timedelta(days=rng.choice([-3, 3]))
        made.append(
            pf.entry(
                labels=labels,
                class_code=rng.choice(["A00-1", "B00-1", "C00-1", "E00-1", "I00-1"]),
                service_start=started,
                release=release,
            )
        )
    return made


def _decisions(blocked_ids: frozenset[DocumentUniqueId]) -> dict[str, SearchDecision]:
    controls = PatientControls(pf.PATIENT, blocked_documents=blocked_ids)
    policy = RegionPolicy()

    def hcp(**kw: Any) -> SearchDecision:
        return hcp_search_policy(
            pf.hcp(**kw), pf.PATIENT, region_policy=policy, controls=controls, today=pf.TODAY
        )

    kj = frozenset({KJ_FORSKRIFT_SCOPE})
    return {
        "treat": hcp(),
        "kj": hcp(scope=kj, access_basis=AccessBasis.AKUTT),
        "etreat": hcp(purpose="ETREAT"),
        "own-record": hcp(nin=pf.PATIENT),
        "citizen": citizen_search_policy(
            pf.citizen(pf.PATIENT),
            pf.PATIENT,
            facts=PopulationFacts(patient_birth_date=pf.PATIENT.birth_date),
            now=pf.NOW,
        ),
    }


async def _all_pages(store: SqlDocumentStore, q: DocumentQuery) -> tuple[list[str], int]:
    seen: list[str] = []
    q = replace(q, total=TotalMode.ACCURATE)  # a total over several pages is counted when asked
    page = await store.find(q, None)
    total = page.total
    while True:
        seen.extend(uid(s.entry) for s in page.entries)
        if page.next_cursor is None:
            return seen, total
        page = await store.find(q, page.next_cursor)


async def test_registry_lists_exactly_what_the_policy_view_shows(store: SqlDocumentStore) -> None:
    """For every kind of caller: listed = not HIDDEN, total = listed, placeholders = MASKED."""
    entries = _varied_entries()
    await store.register(entries, submission_set=None)
    blocked_ids = frozenset(e.unique_id for e in entries[1::9])
    base = DocumentQuery(patient_id=pf.PATIENT, count=7)
    type_filter = ((TokenParam(None, "A01-2"), TokenParam(None, "C01-2")),)
    for name, decision in _decisions(blocked_ids).items():
        views = {uid(e): decision.view(e) for e in entries}
        want = {u for u, v in views.items() if v is not PolicyView.HIDDEN}
        listed, total = await _all_pages(store, decision.restrict(base))
        assert sorted(listed) == sorted(want) and total == len(want), name
        filtered, _ = await _all_pages(store, decision.restrict(replace(base, type=type_filter)))
        full_of_type = {
            uid(e)
            for e in entries
            if views[uid(e)] is PolicyView.FULL and e.type_code.code in ("A01-2", "C01-2")
        }
        assert set(filtered) == full_of_type, name
