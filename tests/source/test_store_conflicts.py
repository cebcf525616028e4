"""SqlDocumentStore: a clash on a unique index is a conflict answered at once, never a retried race.

Regression for issue 10 B: two entries with one entryUUID in one submission collided at the
unique index, were retried as a race with concurrent writers and ended in a 500 after seconds.
Also: cursors whose values the registry cannot hold (year 1 with +14:00, a bool as a sequence
number) are refused with InvalidCursor before any SQL. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from onerecord.domain import (
    DocumentEntry,
    DocumentQuery,
    InvalidCursor,
    NationalIdentityNumber,
    PageCursor,
    SortField,
    SortKey,
)
from onerecord.domain.search import MAX_SEQUENCE
from onerecord.source.database import make_engine
from onerecord.source.migrate import upgrade
from onerecord.source.store import DuplicateDocument, SqlDocumentStore
from tests.conftest import Database
from tests.factories import make_entry

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(database: Database) -> AsyncIterator[SqlDocumentStore]:
    engine = make_engine(database.url, schema=database.schema)
    await upgrade(engine)
    store = SqlDocumentStore(engine, owns_engine=True)
    try:
        yield store
    finally:
        await store.close()


def entry(**overrides: Any) -> DocumentEntry:
    content = f"document {uuid4()}".encode()
    return make_entry(
        content=content,
        mime_type="text/plain",
        hash_sha256=hashlib.sha256(content).hexdigest(),
        **overrides,
    )


async def count(store: SqlDocumentStore, patient: NationalIdentityNumber) -> int:
    page = await store.find(DocumentQuery(patient_id=patient), None)
    return page.total


async def test_one_entry_uuid_twice_in_a_submission_is_a_conflict_at_once(
    store: SqlDocumentStore,
) -> None:
    first = entry()
    second = entry(entry_uuid=first.entry_uuid)
    started = time.monotonic()
    with pytest.raises(DuplicateDocument, match="appears twice"):
        await store.register([first, second])
    assert time.monotonic() - started < 2.0
    assert await count(store, first.patient_id) == 0


async def test_an_entry_uuid_already_registered_is_a_conflict_at_once(
    store: SqlDocumentStore,
) -> None:
    first = entry()
    await store.register([first])
    started = time.monotonic()
    with pytest.raises(DuplicateDocument, match="already registered"):
        await store.register([entry(entry_uuid=first.entry_uuid)])
    assert time.monotonic() - started < 2.0
    assert await count(store, first.patient_id) == 1


@pytest.mark.parametrize(
    ("sort", "after"),
    [
        (SortField.DATE, ("0001-01-01T00:00:00+14:00", 1)),
        (SortField.DATE, ("9999-12-31T23:59:59-14:00", 1)),
        (SortField.PERIOD, ("0001-01-01T00:00:00-14:00", 1)),
        (SortField.DATE, ("2024-01-01T00:00:00+00:00", True)),
        (SortField.TITLE, (True, 1)),
    ],
)
async def test_cursor_values_the_registry_cannot_hold_are_refused(
    store: SqlDocumentStore, sort: SortField, after: tuple[str | int | None, ...]
) -> None:
    query = DocumentQuery(
        patient_id=make_entry().patient_id, sort=(SortKey(sort, descending=False),)
    )
    with pytest.raises(InvalidCursor):
        await store.find(query, PageCursor(snapshot=5, after=after))


async def test_cursor_at_the_edges_of_the_registry_is_served(store: SqlDocumentStore) -> None:
    stored = entry(creation_time=datetime(2024, 1, 1, tzinfo=UTC))
    await store.register([stored])
    query = DocumentQuery(
        patient_id=stored.patient_id, sort=(SortKey(SortField.PERIOD, descending=False),)
    )
    # An entry without a service period sorts at NO_PERIOD (year 1): a cursor may carry it.
    page = await store.find(
        query, PageCursor(snapshot=MAX_SEQUENCE, after=("0001-01-01T00:00:00+00:00", 0))
    )
    assert [s.entry.unique_id for s in page.entries] == [stored.unique_id]
