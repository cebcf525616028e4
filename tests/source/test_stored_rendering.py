"""The stored DocumentReference rendering: spliced answers equal the renderer's, byte for byte.

A search splices each entry's rendering, stored at registration, into the Bundle's bytes
(onerecord.mhd.docref.document_reference_template, fill_document_reference); these tests hold
it to what rendering every entry per answer gives, for synthetic documents of every kind, an
entry with every optional field, superseded, entered-in-error and masked entries, and for a
registry upgraded in place by the migration that added the stored rendering.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from alembic import command
from sqlalchemy import column, select, table, update
from sqlalchemy.engine import Connection

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
    NationalIdentityNumber,
    OrganisationNumber,
    RepositoryUniqueId,
    TotalMode,
)
from onerecord.mhd import document_reference, searchset_bundle
from onerecord.mhd.docref import document_reference_template
from onerecord.source.access import (
    CallerContext,
    EntryView,
    NoAudit,
    OpenAccess,
    SearchGrant,
)
from onerecord.source.content import FolderContentStore
from onerecord.source.database import make_engine
from onerecord.source.migrate import alembic_config, upgrade
from onerecord.source.schema import document_entry
from onerecord.source.service import DocumentSource, masked_document_reference
from onerecord.source.store import SqlDocumentStore, entry_to_json, render_stored
from onerecord.synth.documents import fast_entries, generate_documents
from onerecord.synth.population import generate_population
from onerecord.synth.regions import DEFAULT_REGIONS
from onerecord.trust.policy import EntryFacts
from tests.conftest import Database
from tests.factories import make_entry
from tests.source.conftest import make_settings

pytestmark = pytest.mark.anyio

ALL_STATUSES = "current,superseded,entered-in-error"
FNR = "urn:oid:2.16.578.1.12.4.1.4.1"
T0 = datetime(2025, 1, 10, 9, 0, tzinfo=UTC)


def every_optional_field(
    patient: NationalIdentityNumber, replaces: DocumentUniqueId
) -> DocumentEntry:
    """An entry with each optional attribute set, and text that JSON has to escape."""
    base = make_entry(patient_id=patient.value)
    return replace(
        base,
        title='«Notat» "sitert" \\ tab\t 😀 </script>',
        authors=(
            *base.authors,
            Author(person=AuthorPerson(given="Ola", family="Nordmann", hpr=None)),
            Author(
                institution=AuthorInstitution(
                    name="Legesenteret", organisation_number=OrganisationNumber("983974899")
                ),
                role="FT",
            ),
            Author(person=AuthorPerson(given="Per Arne", family="Li", hpr=HprNumber("9144900"))),
        ),
        event_codes=(Coding("urn:oid:2.16.578.1.12.4.1.1.7010", "T90", "Diabetes"),),
        service_start_time=T0 - timedelta(days=2),
        service_stop_time=T0 - timedelta(days=1),
        replaces=replaces,
        reference_ids=("A-123^^^&2.16.578.1.12.4.1.2.1&ISO^urn:ihe:iti:xds:2013:referral",),
        citizen_release_time=T0 + timedelta(days=14),
        home_community_id=HomeCommunityId.parse("urn:oid:2.16.578.1.12.4.5.100.9"),
        repository_unique_id=RepositoryUniqueId.parse("2.16.578.1.12.4.5.100.9.2"),
        submission_time=T0 + timedelta(hours=1),
        creation_time=T0,
    )


def synthetic_entries() -> list[DocumentEntry]:
    """Documents of every kind the synthetic generator writes, and benchmark-style entries."""
    population = generate_population(seed=4, citizens=12, reference_date=date(2025, 6, 1))
    region = DEFAULT_REGIONS[0]
    written = [d.entry for d in generate_documents(population, region, seed=4)]
    patients = sorted({e.patient_id.value for e in written})
    fast = list(fast_entries(40, seed=4, region=region, patients=patients[:3]))
    # A replacement in the generated set points at an original in it: all register together.
    return written + fast


def masking_guard() -> Any:
    """A guard that shows NORS entries as placeholders and hides those labelled V."""

    def view(entry: EntryFacts) -> EntryView | None:
        labels = entry.confidentiality_code_values
        if "V" in labels:
            return None
        return EntryView(entry, masked="NORS" in labels)

    class Guard(OpenAccess):
        async def authorize_search(
            self, caller: CallerContext, query: DocumentQuery
        ) -> SearchGrant:
            return SearchGrant(query, viewer=view)

    return Guard()


@pytest.fixture
async def store(database: Database) -> AsyncIterator[SqlDocumentStore]:
    engine = make_engine(database.url, schema=database.schema)
    await upgrade(engine)
    store = SqlDocumentStore(engine, owns_engine=True)
    try:
        yield store
    finally:
        await store.close()


def source(
    store: SqlDocumentStore, database: Database, tmp_path: Path, guard: Any
) -> DocumentSource:
    return DocumentSource(
        settings=make_settings(database, tmp_path, 8080),
        store=store,
        content=FolderContentStore(tmp_path / "content"),
        guard=guard,
        recorder=NoAudit(),
    )


async def register(store: SqlDocumentStore, entries: list[DocumentEntry]) -> None:
    """Register in order; a replacement after its original (RPLC needs it registered)."""
    plain = [e for e in entries if e.replaces is None]
    await store.register(plain, submission_set=None)
    for entry in entries:
        if entry.replaces is not None:
            await store.register([entry], submission_set=None)


async def old_answer(src: DocumentSource, body: bytes) -> bytes:
    """The Bundle as rendering each entry per answer made it, with `body`'s random ids."""
    got = orjson.loads(body)
    resources: list[dict[str, Any]] = []
    for item in got.get("entry", []):
        shown = item["resource"]
        if shown["id"].startswith("masked-"):
            # A placeholder is rendered per answer: find its entry by what it shows.
            resources.append(await masked_origin(src, shown))
            continue
        unique_id = DocumentUniqueId(shown["masterIdentifier"]["value"])
        stored = await src.store.get(unique_id)
        assert stored is not None
        resources.append(
            document_reference(
                stored, id=str(stored.entry_uuid), attachment_url=src.attachment_url(stored)
            )
        )
    links = {link["relation"]: link["url"] for link in got["link"]}
    bundle = searchset_bundle(
        resources=resources,
        self_url=links["self"],
        next_url=links.get("next"),
        total=got.get("total"),
    )
    bundle["id"] = got["id"]
    return orjson.dumps(bundle)


async def masked_origin(src: DocumentSource, shown: dict[str, Any]) -> dict[str, Any]:
    """The placeholder rendered per answer of the NORS entry that `shown` stands for."""
    patient = NationalIdentityNumber(shown["subject"]["identifier"]["value"])
    query = DocumentQuery(patient_id=patient, statuses=frozenset(DocumentStatus), count=500)
    page = await src.store.find(query, None)
    placeholders = [
        {**masked_document_reference(f.entry), "id": shown["id"]}
        for f in page.entries
        if "NORS" in f.confidentiality_code_values
    ]
    return next((p for p in placeholders if p == shown), placeholders[0])


async def test_spliced_answers_equal_the_renderer_byte_for_byte(
    store: SqlDocumentStore, database: Database, tmp_path: Path
) -> None:
    entries = synthetic_entries()
    patient = entries[0].patient_id
    original = make_entry(patient_id=patient.value)
    full = every_optional_field(patient, original.unique_id)
    withdrawn = make_entry(patient_id=patient.value)
    unrendered = make_entry(patient_id=patient.value)
    nors = make_entry(
        patient_id=patient.value,
        confidentiality_codes=(Coding("urn:oid:2.16.578.1.12.4.1.1.9603", "NORS"),),
    )
    await register(store, [*entries, original, withdrawn, unrendered, nors, full])
    assert await store.mark_entered_in_error(withdrawn.unique_id)
    # A row without a stored rendering (see test_ambiguous_text_is_rendered_per_answer).
    async with store.engine.begin() as conn:
        await conn.execute(
            update(document_entry)
            .where(document_entry.c.unique_id == unrendered.unique_id.value)
            .values(rendered=None)
        )
    everything = DocumentQuery(patient_id=patient, statuses=frozenset(DocumentStatus), count=500)
    statuses = {f.status for f in (await store.find(everything, None)).entries}
    assert statuses == {"current", "superseded", "entered-in-error"}

    patients = sorted({e.patient_id.value for e in [*entries, full]})
    for guard, masks in ((OpenAccess(), False), (masking_guard(), True)):
        src = source(store, database, tmp_path, guard)
        masked = 0
        for nin in patients:
            who = ("patient.identifier", f"{FNR}|{nin}")
            for params in (
                [who, ("status", ALL_STATUSES), ("_count", "3"), ("_total", "accurate")],
                [who, ("status", ALL_STATUSES)],
                [who, ("_sort", "title")],
            ):
                found = await src.find(CallerContext("c"), params)
                assert found.body == await old_answer(src, found.body)
                masked += found.masked_count
        assert (masked > 0) is masks


def test_ambiguous_text_is_rendered_per_answer() -> None:
    """Text that looks like a slot leaves no stored rendering: the entry is rendered per answer.

    The parsers refuse control characters, so this does not arrive from outside; the template
    refuses it all the same rather than splice in the wrong place.
    """
    for title in ("\x00retrieve-url\x00x", "\x00status\x00"):
        assert document_reference_template(replace(make_entry(), title=title)) is None
    assert document_reference_template(replace(make_entry(), title="a\x00status\x00")) is not None


async def test_read_answers_the_renderer_bytes(
    store: SqlDocumentStore, database: Database, tmp_path: Path
) -> None:
    entry = every_optional_field(
        NationalIdentityNumber(make_entry().patient_id.value), DocumentUniqueId("2.25.1")
    )
    entry = replace(entry, replaces=None)
    await store.register([entry], submission_set=None)
    src = source(store, database, tmp_path, OpenAccess())
    body = await src.read(CallerContext("c"), str(entry.entry_uuid), patient=entry.patient_id.value)
    want = document_reference(
        entry, id=str(entry.entry_uuid), attachment_url=src.attachment_url(entry)
    )
    assert body == orjson.dumps(want)


async def test_total_is_counted_only_when_asked_or_free(
    store: SqlDocumentStore, database: Database, tmp_path: Path
) -> None:
    entry = make_entry()
    patient = entry.patient_id
    await store.register(
        [
            replace(make_entry(), patient_id=patient, creation_time=T0 + timedelta(minutes=i))
            for i in range(9)
        ],
        submission_set=None,
    )
    src = source(store, database, tmp_path, OpenAccess())
    caller = CallerContext("c")
    who = ("patient.identifier", f"{FNR}|{patient.value}")

    async def answer(*params: tuple[str, str]) -> dict[str, Any]:
        return orjson.loads((await src.find(caller, [who, *params])).body)  # type: ignore[no-any-return]

    first = await answer(("_count", "4"))
    assert "total" not in first and len(first["entry"]) == 4
    counted = await answer(("_count", "4"), ("_total", "accurate"))
    assert counted["total"] == 9
    assert "_total=accurate" in counted["link"][0]["url"]
    next_url = next(link["url"] for link in counted["link"] if link["relation"] == "next")
    assert "_total=accurate" in next_url
    assert (await answer(("_count", "4"), ("_total", "estimate")))["total"] == 9
    assert (await answer())["total"] == 9  # one page holds all: free
    assert "total" not in await answer(("_total", "none"))
    assert (await answer(("_summary", "count")))["total"] == 9
    # A later page does not know what came before: counted only when asked.
    page = await store.find(DocumentQuery(patient_id=patient, count=4), None)
    assert page.total is None and page.next_cursor is not None
    later = await store.find(DocumentQuery(patient_id=patient, count=4), page.next_cursor)
    assert later.total is None
    asked = await store.find(
        DocumentQuery(patient_id=patient, count=4, total=TotalMode.ACCURATE), page.next_cursor
    )
    assert asked.total == 9


async def test_migration_fills_an_existing_registry_in_place(database: Database) -> None:
    """A registry at the revision before (rows without a rendering) upgrades and answers alike."""
    engine = make_engine(database.url, schema=database.schema)
    try:

        def to_previous(conn: Connection) -> None:
            command.upgrade(alembic_config(conn), "0002_audit_and_controls")

        async with engine.connect() as conn:
            await conn.run_sync(to_previous)
            await conn.commit()
        patient = NationalIdentityNumber(make_entry().patient_id.value)
        entries = [
            *fast_entries(2500, seed=9, region=DEFAULT_REGIONS[1], patients=[patient]),
            every_optional_field(patient, DocumentUniqueId("2.25.7")),
        ]
        new_columns = {"rendered", "confidentiality_codes"}
        old_table = table(
            "document_entry",
            *(column(c.name, c.type) for c in document_entry.c if c.name not in new_columns),
        )
        rows = [
            {**{k: v for k, v in _row(entry).items() if k not in new_columns}, "seq": seq}
            for seq, entry in enumerate(entries, start=1)
        ]
        async with engine.begin() as conn:
            await conn.execute(old_table.insert(), rows)
        await upgrade(engine)
        e = document_entry.c
        async with engine.connect() as conn:
            stored = (
                await conn.execute(
                    select(e.unique_id, e.rendered, e.confidentiality_codes).order_by(e.seq)
                )
            ).all()
        assert len(stored) == len(entries)
        for (unique_id, rendered, codes), entry in zip(stored, entries, strict=True):
            assert unique_id == entry.unique_id.value
            assert {"rendered": rendered, "confidentiality_codes": codes} == render_stored(entry)
        store = SqlDocumentStore(engine)
        page = await store.find(DocumentQuery(patient_id=patient, count=5), None)
        assert all(f.rendered is not None for f in page.entries)
    finally:
        await engine.dispose()


def _row(entry: DocumentEntry) -> dict[str, Any]:
    from onerecord.source.store import _entry_row  # the row as registration writes it

    row = _entry_row(entry)
    assert row["metadata"] == entry_to_json(entry)
    return row
