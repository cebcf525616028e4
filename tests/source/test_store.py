"""SqlDocumentStore on SQLite and PostgreSQL: register, find, page, replace, concurrency."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import anyio
import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from onerecord.domain import (
    Author,
    AuthorInstitution,
    AuthorPerson,
    Coding,
    DocumentEntry,
    DocumentQuery,
    DocumentStatus,
    DocumentUniqueId,
    HomeCommunityId,
    HprNumber,
    InvalidCursor,
    NationalIdentityNumber,
    OrganisationNumber,
    PageCursor,
    RepositoryUniqueId,
    SortField,
    SortKey,
    TimeRange,
    TokenParam,
    TotalMode,
)
from onerecord.source.database import make_engine
from onerecord.source.migrate import upgrade
from onerecord.source.schema import document_code, document_label
from onerecord.source.store import (
    DuplicateDocument,
    InvalidReplacement,
    SqlDocumentStore,
    SubmissionSetRecord,
    entry_from_json,
    entry_to_json,
)
from tests.conftest import Database

pytestmark = pytest.mark.anyio

V = "urn:oid:2.16.578.1.12.4.1.1."
DOC_TYPE = V + "9602"
VOLVEN_CONF = V + "9603"
HL7_CONF = "urn:oid:2.16.840.1.113883.5.25"
EVENT = V + "7210"
T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
_counter = itertools.count(1)


def _nin(day: int) -> str:
    """A synthetic fødselsnummer (month + 80)."""
    for individual in range(1000):
        value = NationalIdentityNumber.with_check_digits(f"{day:02d}8385{individual:03d}")
        if value:
            return value
    raise AssertionError("no valid number")


PATIENT = _nin(15)
OTHER = _nin(16)


def entry(**overrides: Any) -> DocumentEntry:
    n = next(_counter)
    content = f"document {n} {uuid4()}".encode()
    values: dict[str, Any] = {
        "unique_id": DocumentUniqueId(f"2.16.578.1.12.4.5.100.1.{n}"),
        "entry_uuid": uuid4(),
        "patient_id": NationalIdentityNumber(PATIENT),
        "class_code": Coding(DOC_TYPE, "A00-1", "Epikriser og sammenfatninger"),
        "type_code": Coding(DOC_TYPE, "A03-2", "Epikrise"),
        "confidentiality_codes": (Coding(HL7_CONF, "N"),),
        "format_code": Coding("urn:oid:1.3.6.1.4.1.19376.1.2.3", "urn:no:ehelse:document:pdf"),
        "mime_type": "application/pdf",
        "hash_sha256": hashlib.sha256(content).hexdigest(),
        "hash_sha1": hashlib.sha1(content).hexdigest(),
        "size": len(content),
        "creation_time": T0 + timedelta(hours=n),
        "title": f"Epikrise {n}",
        "language_code": "nb-NO",
        "healthcare_facility_type": Coding(V + "1303", "86.101"),
        "practice_setting": Coding(V + "8451", "14"),
    }
    for key, value in overrides.items():
        if key == "patient_id" and isinstance(value, str):
            value = NationalIdentityNumber(value)
        values[key] = value
    return DocumentEntry(**values)


def query(**overrides: Any) -> DocumentQuery:
    return DocumentQuery(patient_id=NationalIdentityNumber(PATIENT), **overrides)


@pytest.fixture
async def store(database: Database) -> AsyncIterator[SqlDocumentStore]:
    engine = make_engine(database.url, schema=database.schema)
    await upgrade(engine)
    store = SqlDocumentStore(engine, owns_engine=True)
    try:
        yield store
    finally:
        await store.close()


async def ids(store: SqlDocumentStore, q: DocumentQuery) -> list[str]:
    page = await store.find(q, None)
    assert page.total == len(page.entries) or page.next_cursor is not None
    return [s.entry.unique_id.value for s in page.entries]


def uid(e: DocumentEntry) -> str:
    return e.unique_id.value


# --- register and get --------------------------------------------------------------------------


def full_entry() -> DocumentEntry:
    return entry(
        authors=(
            Author(
                person=AuthorPerson("Kari Anne", "Nordmann", HprNumber("9144900")),
                institution=AuthorInstitution(
                    "Oslo universitetssykehus HF",
                    OrganisationNumber("993467049"),
                    "Medisinsk klinikk",
                    None,
                ),
                role="attending",
            ),
        ),
        event_codes=(Coding(EVENT, "2"),),
        service_start_time=datetime(2024, 1, 2, 9, 30, tzinfo=timezone(timedelta(hours=1))),
        service_stop_time=datetime(2024, 1, 5, 12, 0, tzinfo=UTC),
        reference_ids=("A123^^^&2.16.578.1.12.4.1.4.101&ISO^urn:ihe:iti:xds:2013:accession",),
        citizen_release_time=datetime(2024, 2, 1, tzinfo=UTC),
        repository_unique_id=RepositoryUniqueId.parse("2.16.578.1.12.4.5.100.1.2"),
        home_community_id=HomeCommunityId.parse("urn:oid:2.16.578.1.12.4.5.100.1"),
        submission_time=datetime(2024, 3, 1, 10, 0, 0, 123456, tzinfo=UTC),
        confidentiality_codes=(Coding(HL7_CONF, "N"), Coding(VOLVEN_CONF, "NORN_KUT")),
    )


def test_metadata_json_round_trip_is_exact() -> None:
    original = full_entry()
    assert entry_from_json(entry_to_json(original)) == original


async def test_register_then_get_round_trips_exactly(store: SqlDocumentStore) -> None:
    original = full_entry()
    result = await store.register([original], submission_set=None)
    assert result.entries == (original,)
    assert not result.already_present
    got = await store.get(original.unique_id)
    assert got == original
    assert got is not None and got.service_start_time is not None
    assert got.service_start_time.utcoffset() == timedelta(hours=1)
    assert await store.get(DocumentUniqueId("1.2.3.4.5")) is None
    assert await store.count() == 1
    assert await store.has_content(original.hash_sha256)
    assert not await store.has_content("0" * 64)


async def test_register_records_submission_set_once(store: SqlDocumentStore) -> None:
    from onerecord.source.schema import submission_set

    record = SubmissionSetRecord("1.2.3.99", "urn:oid:1.2.3", T0, 1)
    first = entry()
    await store.register([first], submission_set=record)
    await store.register([first], submission_set=record)  # resent bundle: idempotent
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(submission_set))).all()
    assert [(r.unique_id, r.source_id, r.entry_count) for r in rows] == [
        ("1.2.3.99", "urn:oid:1.2.3", 1)
    ]
    assert rows[0].submission_time == T0


async def test_same_unique_id_and_content_is_idempotent(store: SqlDocumentStore) -> None:
    first = entry()
    await store.register([first], submission_set=None)
    again = replace(first, entry_uuid=uuid4(), title="Sent again")
    result = await store.register([again], submission_set=None)
    assert result.already_present == {first.unique_id}
    assert result.entries == (first,)  # the stored one, unchanged
    assert await store.count() == 1


async def test_same_unique_id_other_content_conflicts(store: SqlDocumentStore) -> None:
    first = entry()
    await store.register([first], submission_set=None)
    clash = replace(first, entry_uuid=uuid4(), hash_sha256="f" * 64)
    with pytest.raises(DuplicateDocument) as info:
        await store.register([clash], submission_set=None)
    assert info.value.unique_id == first.unique_id
    other_patient = replace(first, entry_uuid=uuid4(), patient_id=NationalIdentityNumber(OTHER))
    with pytest.raises(DuplicateDocument):
        await store.register([other_patient], submission_set=None)
    assert await store.get(first.unique_id) == first


async def test_reused_entry_uuid_conflicts(store: SqlDocumentStore) -> None:
    first = entry()
    await store.register([first], submission_set=None)
    with pytest.raises(DuplicateDocument, match="entryUUID"):
        await store.register([entry(entry_uuid=first.entry_uuid)], submission_set=None)


async def test_conflict_inside_one_batch(store: SqlDocumentStore) -> None:
    first = entry()
    twin = replace(first, hash_sha256="e" * 64)
    with pytest.raises(DuplicateDocument):
        await store.register([first, twin], submission_set=None)
    result = await store.register([first, first], submission_set=None)
    assert result.entries == (first, first)
    assert await store.count() == 1


async def test_failing_batch_leaves_nothing(store: SqlDocumentStore) -> None:
    existing = entry()
    await store.register([existing], submission_set=None)
    good = [entry(), entry()]
    bad = replace(existing, entry_uuid=uuid4(), hash_sha256="d" * 64)
    with pytest.raises(DuplicateDocument):
        await store.register([*good, bad], submission_set=None)
    assert await store.count() == 1
    for e in good:
        assert await store.get(e.unique_id) is None


async def test_replaces_supersedes_target_atomically(store: SqlDocumentStore) -> None:
    first = entry()
    await store.register([first], submission_set=None)
    second = entry(replaces=first.unique_id)
    result = await store.register([second], submission_set=None)
    assert result.superseded == (first.unique_id,)
    old = await store.get(first.unique_id)
    assert old is not None and old.status is DocumentStatus.SUPERSEDED
    assert await ids(store, query()) == [uid(second)]
    both = await ids(
        store, query(statuses=frozenset({DocumentStatus.CURRENT, DocumentStatus.SUPERSEDED}))
    )
    assert sorted(both) == sorted([uid(first), uid(second)])


async def test_invalid_replacements_change_nothing(store: SqlDocumentStore) -> None:
    first = entry()
    theirs = entry(patient_id=OTHER)
    await store.register([first, theirs], submission_set=None)
    bystander = entry()
    cases = [
        entry(replaces=DocumentUniqueId("1.2.3.404")),  # missing
        entry(replaces=theirs.unique_id),  # another patient's
    ]
    for case in cases:
        with pytest.raises(InvalidReplacement):
            await store.register([bystander, case], submission_set=None)
    with pytest.raises(InvalidReplacement, match="twice"):
        await store.register(
            [entry(replaces=first.unique_id), entry(replaces=first.unique_id)], submission_set=None
        )
    assert await store.count() == 2
    await store.register([entry(replaces=first.unique_id)], submission_set=None)
    with pytest.raises(InvalidReplacement, match="superseded"):
        await store.register([entry(replaces=first.unique_id)], submission_set=None)
    assert await store.count() == 3


async def test_concurrent_register_of_one_unique_id(store: SqlDocumentStore) -> None:
    same = [entry() for _ in range(8)]
    clashes = [
        replace(e, entry_uuid=uuid4(), hash_sha256=f"{i:x}" * 64) for i, e in enumerate(same)
    ]
    outcomes: list[str] = []

    async def attempt(batch: list[DocumentEntry]) -> None:
        try:
            await store.register(batch, submission_set=None)
            outcomes.append("ok")
        except DuplicateDocument:
            outcomes.append("duplicate")

    async with anyio.create_task_group() as tg:
        for e, c in zip(same, clashes, strict=True):
            tg.start_soon(attempt, [e])
            tg.start_soon(attempt, [c])
            tg.start_soon(attempt, [replace(e, entry_uuid=uuid4())])  # idempotent repeat
    assert len(outcomes) == 24
    assert set(outcomes) <= {"ok", "duplicate"}
    assert await store.count() == 8
    for e, c in zip(same, clashes, strict=True):
        winner = await store.get(e.unique_id)
        assert winner is not None and winner.hash_sha256 in {e.hash_sha256, c.hash_sha256}


async def test_concurrent_race_on_insert_is_retried(
    store: SqlDocumentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that passed the pre-check but lost the insert answers, never crashes."""
    if store.engine.dialect.name == "sqlite":
        pytest.skip("SQLite serialises writers with BEGIN IMMEDIATE: this race cannot happen")
    winner = entry()
    loser = replace(winner, entry_uuid=uuid4(), hash_sha256="c" * 64)
    original = SqlDocumentStore._lookup
    raced = False

    async def sneak_in(self: SqlDocumentStore, conn: Any, submissions: Any, *, lock: bool) -> Any:
        nonlocal raced
        ledger = await original(self, conn, submissions, lock=lock)
        if lock and not raced:
            raced = True
            # Another writer commits the same uniqueId between our check and our insert.
            await SqlDocumentStore(self.engine).bulk_load([winner])
        return ledger

    monkeypatch.setattr(SqlDocumentStore, "_lookup", sneak_in)
    with pytest.raises(DuplicateDocument):
        await store.register([loser], submission_set=None)
    assert raced
    assert await store.get(winner.unique_id) == winner
    # The same race with identical content ends as an idempotent success.
    raced = False
    winner = entry()
    result = await store.register([replace(winner, entry_uuid=uuid4())], submission_set=None)
    assert raced
    assert result.already_present == {winner.unique_id}
    assert result.entries == (winner,)


# --- find: every parameter ------------------------------------------------------------------


async def test_find_is_per_patient_and_status(store: SqlDocumentStore) -> None:
    mine = entry()
    theirs = entry(patient_id=OTHER)
    wrong = entry(status=DocumentStatus.ENTERED_IN_ERROR)
    await store.register([mine, theirs, wrong], submission_set=None)
    assert await ids(store, query()) == [uid(mine)]
    assert await ids(store, query(statuses=frozenset({DocumentStatus.ENTERED_IN_ERROR}))) == [
        uid(wrong)
    ]


async def test_find_by_date_and_creation(store: SqlDocumentStore) -> None:
    early = entry(creation_time=datetime(2023, 1, 1, tzinfo=UTC))
    middle = entry(creation_time=datetime(2023, 6, 1, 12, tzinfo=timezone(timedelta(hours=2))))
    late = entry(creation_time=datetime(2024, 1, 1, tzinfo=UTC))
    await store.register([early, middle, late], submission_set=None)
    span = TimeRange(datetime(2023, 6, 1, 10, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC))
    assert await ids(store, query(date=(span,))) == [uid(middle)]
    assert await ids(store, query(creation=(span,))) == [uid(middle)]
    open_end = TimeRange(lower=datetime(2023, 6, 1, 10, 0, 1, tzinfo=UTC))
    assert await ids(store, query(date=(open_end,))) == [uid(late)]
    assert set(await ids(store, query(date=(TimeRange(upper=late.creation_time),)))) == {
        uid(early),
        uid(middle),
    }


async def test_find_by_period_overlap(store: SqlDocumentStore) -> None:
    def at(day: int) -> datetime:
        return datetime(2024, 1, day, tzinfo=UTC)

    closed = entry(service_start_time=at(5), service_stop_time=at(10))
    open_stop = entry(service_start_time=at(20))
    open_start = entry(service_stop_time=at(2))
    none = entry()
    await store.register([closed, open_stop, open_start, none], submission_set=None)
    assert await ids(store, query(period=(TimeRange(at(9), at(12)),))) == [uid(closed)]
    assert await ids(store, query(period=(TimeRange(at(10), at(11)),))) == [uid(closed)]
    assert await ids(store, query(period=(TimeRange(at(11), at(20)),))) == []
    assert set(await ids(store, query(period=(TimeRange(at(1), at(6)),)))) == {
        uid(closed),
        uid(open_start),
    }
    assert set(await ids(store, query(period=(TimeRange(lower=at(6)),)))) == {
        uid(closed),
        uid(open_stop),
    }


async def test_find_by_coded_attributes(store: SqlDocumentStore) -> None:
    plain = entry()
    referral = entry(
        class_code=Coding(DOC_TYPE, "B00-1"),
        type_code=Coding(DOC_TYPE, "B02-2"),
        format_code=Coding("urn:oid:1.3.6.1.4.1.19376.1.2.3", "urn:no:kith:xmlstds:henvisning"),
        healthcare_facility_type=Coding(V + "1303", "86.211"),
        practice_setting=Coding(V + "8451", "2"),
        mime_type="application/xml",
    )
    await store.register([plain, referral], submission_set=None)
    checks = {
        "category": ("B00-1", DOC_TYPE),
        "type": ("B02-2", DOC_TYPE),
        "format": ("urn:no:kith:xmlstds:henvisning", "urn:oid:1.3.6.1.4.1.19376.1.2.3"),
        "facility": ("86.211", V + "1303"),
        "setting": ("2", V + "8451"),
    }
    for name, (code, system) in checks.items():
        by_code = query(**{name: ((TokenParam(None, code),),)})
        assert await ids(store, by_code) == [uid(referral)], name
        by_both = query(**{name: ((TokenParam(system, code),),)})
        assert await ids(store, by_both) == [uid(referral)], name
        bare_oid = query(**{name: ((TokenParam(system.removeprefix("urn:oid:"), code),),)})
        assert await ids(store, bare_oid) == [uid(referral)], name
        wrong_system = query(**{name: ((TokenParam("urn:oid:9.9.9", code),),)})
        assert await ids(store, wrong_system) == [], name
        any_code = query(**{name: ((TokenParam(system, None),),)})
        assert len(await ids(store, any_code)) == 2, name
    # Comma (OR) inside one parameter, repetition (AND) across parameters.
    either = query(category=((TokenParam(None, "B00-1"), TokenParam(None, "A00-1")),))
    assert len(await ids(store, either)) == 2
    both = query(
        category=((TokenParam(None, "B00-1"), TokenParam(None, "A00-1")),),
        type=((TokenParam(None, "A03-2"),),),
    )
    assert await ids(store, both) == [uid(plain)]


async def test_find_by_event_related_identifier_and_label(store: SqlDocumentStore) -> None:
    tagged = full_entry()
    plain = entry()
    await store.register([tagged, plain], submission_set=None)
    event = query(event=((TokenParam(EVENT, "2"),),))
    assert await ids(store, event) == [uid(tagged)]
    assert await ids(store, query(event=((TokenParam(EVENT, "3"),),))) == []
    related = query(related=((TokenParam("urn:oid:2.16.578.1.12.4.1.4.101", "A123"),),))
    assert await ids(store, related) == [uid(tagged)]
    master = query(identifier=((TokenParam("urn:ietf:rfc:3986", plain.unique_id.urn),),))
    assert await ids(store, master) == [uid(plain)]
    by_uuid = query(identifier=((TokenParam(None, f"urn:uuid:{tagged.entry_uuid}"),),))
    assert await ids(store, by_uuid) == [uid(tagged)]
    label = query(security_label=((TokenParam(VOLVEN_CONF, "NORN_KUT"),),))
    assert await ids(store, label) == [uid(tagged)]
    normal = query(security_label=((TokenParam(HL7_CONF, "N"),),))
    assert len(await ids(store, normal)) == 2


async def test_find_by_author_prefix_case_insensitive(store: SqlDocumentStore) -> None:
    kari = full_entry()  # Kari Anne Nordmann
    ola = entry(authors=(Author(person=AuthorPerson("Ola", "Ødegård")),))
    odd = entry(authors=(Author(person=AuthorPerson("Per_%", "Hansen")),))
    await store.register([kari, ola, odd], submission_set=None)
    assert await ids(store, query(author_given=(("kar",),))) == [uid(kari)]
    assert await ids(store, query(author_given=(("ANNE",),))) == [uid(kari)]
    assert await ids(store, query(author_family=(("nord",),))) == [uid(kari)]
    assert await ids(store, query(author_family=(("ØDE",),))) == [uid(ola)]
    assert await ids(store, query(author_family=(("mann",),))) == []  # prefix, not infix
    assert await ids(store, query(author_given=(("nordmann",),))) == []  # given ≠ family
    assert set(await ids(store, query(author_given=(("ola", "kari"),)))) == {uid(kari), uid(ola)}
    assert await ids(store, query(author_given=(("ola",), ("kari",)))) == []
    assert await ids(store, query(author_given=(("per_",),))) == [uid(odd)]
    assert await ids(store, query(author_given=(("p%",),))) == []  # wildcards are literal


async def test_hidden_labels_and_citizen_release(store: SqlDocumentStore) -> None:
    secret = entry(confidentiality_codes=(Coding(HL7_CONF, "N"), Coding(VOLVEN_CONF, "NORS")))
    later = entry(citizen_release_time=datetime(2024, 6, 1, tzinfo=UTC))
    open_ = entry()
    await store.register([secret, later, open_], submission_set=None)
    hidden = await ids(store, query(hidden_labels=frozenset({"NORS", "V"})))
    assert set(hidden) == {uid(later), uid(open_)}
    before = await ids(store, query(released_by=datetime(2024, 5, 31, tzinfo=UTC)))
    assert set(before) == {uid(secret), uid(open_)}
    after = await ids(store, query(released_by=datetime(2024, 6, 1, tzinfo=UTC)))
    assert len(after) == 3


# --- sorting and paging -----------------------------------------------------------------------


async def _sorted_set(store: SqlDocumentStore) -> list[DocumentEntry]:
    entries = [
        entry(
            creation_time=T0 + timedelta(days=d),
            title=t,
            service_start_time=None if p is None else T0 + timedelta(days=p),
        )
        for d, t, p in [(3, "b", 1), (1, "a", None), (2, "C", 5), (3, "a", 5), (0, "é", None)]
    ]
    await store.register(entries, submission_set=None)
    return entries


def _expected(entries: list[DocumentEntry], keys: list[SortKey], seqs: dict[str, int]) -> list[str]:
    def value(e: DocumentEntry, key: SortKey) -> Any:
        if key.field in (SortField.DATE, SortField.CREATION):
            return e.creation_time
        if key.field is SortField.PERIOD:
            return e.service_start_time or datetime(1, 1, 1, tzinfo=UTC)
        return e.title.encode()

    ordered = sorted(entries, key=lambda e: seqs[uid(e)], reverse=keys[0].descending)
    for key in reversed(keys):
        ordered.sort(key=lambda e, k=key: value(e, k), reverse=key.descending)
    return [uid(e) for e in ordered]


@pytest.mark.parametrize(
    "sort",
    [
        "-date",
        "date",
        "creation",
        "-creation",
        "period",
        "-period",
        "title",
        "-title",
        "title,-date",
        "-date,title",
        "-period,-title",
    ],
)
@pytest.mark.parametrize("count", [1, 2, 20])
async def test_sort_and_page(store: SqlDocumentStore, sort: str, count: int) -> None:
    entries = await _sorted_set(store)
    seqs = {}
    for e in entries:
        page = await store.find(query(identifier=((TokenParam(None, e.unique_id.urn),),)), None)
        seqs[uid(e)] = page.entries[0].seq
    keys = [SortKey(SortField(k.lstrip("-")), k.startswith("-")) for k in sort.split(",")]
    # `_total=accurate`: the total of every page, not only of a first page that holds all.
    q = query(sort=tuple(keys), count=count, total=TotalMode.ACCURATE)
    seen: list[str] = []
    cursor: PageCursor | None = None
    while True:
        page = await store.find(q, cursor)
        assert page.total == 5
        assert len(page.entries) <= count
        seen += [uid(s.entry) for s in page.entries]
        if page.next_cursor is None:
            break
        cursor = PageCursor.decode(page.next_cursor.encode())
    assert seen == _expected(entries, keys, seqs)


async def test_paging_snapshot_ignores_entries_registered_meanwhile(
    store: SqlDocumentStore,
) -> None:
    first = [entry(creation_time=T0 + timedelta(minutes=i)) for i in range(25)]
    await store.register(first, submission_set=None)
    q = query(count=7, total=TotalMode.ACCURATE)  # the total of every page over the snapshot
    seen: list[str] = []
    cursor: PageCursor | None = None
    pages = 0
    while True:
        page = await store.find(q, cursor)
        assert page.total == 25
        seen += [uid(s.entry) for s in page.entries]
        pages += 1
        # Newer (sorts first under -date) and older entries arrive between pages.
        await store.register(
            [
                entry(creation_time=T0 + timedelta(days=30, minutes=pages)),
                entry(creation_time=T0 - timedelta(days=30, minutes=pages)),
            ],
            submission_set=None,
        )
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 4
    assert sorted(seen) == sorted(uid(e) for e in first)
    assert len(set(seen)) == 25
    fresh = await store.find(q, None)
    assert fresh.total == 25 + 2 * pages


async def test_count_zero_gives_only_the_total(store: SqlDocumentStore) -> None:
    await store.register([entry(), entry()], submission_set=None)
    page = await store.find(query(count=0), None)
    assert (page.entries, page.next_cursor, page.total) == ((), None, 2)


async def test_cursor_that_does_not_fit_is_refused(store: SqlDocumentStore) -> None:
    await store.register([entry(), entry()], submission_set=None)
    with pytest.raises(InvalidCursor):
        await store.find(query(), PageCursor(snapshot=5, after=("x",)))
    with pytest.raises(InvalidCursor):
        await store.find(query(), PageCursor(snapshot=5, after=("not a time", 1)))
    with pytest.raises(InvalidCursor):
        await store.find(query(sort=(SortKey(SortField.TITLE, False),)), PageCursor(5, (1, 1)))


# --- bulk -------------------------------------------------------------------------------------


async def test_bulk_load_is_findable_and_indexed(store: SqlDocumentStore) -> None:
    docs = [entry(event_codes=(Coding(EVENT, "1"),)) for _ in range(120)]
    assert await store.bulk_load(iter(docs), batch_size=50) == 120
    assert await store.count() == 120
    page = await store.find(query(event=((TokenParam(EVENT, "1"),),), count=500), None)
    assert page.total == 120
    assert {s.entry for s in page.entries} == set(docs)
    async with store.engine.connect() as conn:
        labels = (await conn.execute(select(document_label.c.entry_seq))).all()
        codes = (await conn.execute(select(document_code.c.kind))).all()
    assert len(labels) == 120
    assert sorted({c[0] for c in codes}) == ["event", "identifier"]
    with pytest.raises(IntegrityError):  # bulk_load skips the checks, not the constraints
        await store.bulk_load([docs[0]])
