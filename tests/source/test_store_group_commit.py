"""Group commit of registrations: concurrent register calls in one transaction, each answered alone.

On SQLite and PostgreSQL: concurrent single-document submissions all registered in fewer
transactions; a refused submission among good ones is refused alone and writes nothing; the
checks of a batch see what the earlier submissions of the same batch registered (duplicates,
idempotent repeats, RPLC); a transaction that fails for another reason is rolled back whole
and its submissions registered one by one, nothing half-written.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import event, func, select

from onerecord.domain import DocumentEntry, DocumentStatus
from onerecord.source.database import make_engine
from onerecord.source.migrate import upgrade
from onerecord.source.schema import document_code, document_entry, document_label, submission_set
from onerecord.source.store import (
    DuplicateDocument,
    InvalidReplacement,
    RegisterResult,
    SqlDocumentStore,
    SubmissionSetRecord,
)
from tests.conftest import Database
from tests.factories import make_entry

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(database: Database) -> AsyncIterator[SqlDocumentStore]:
    engine = make_engine(database.url, schema=database.schema)
    await upgrade(engine)
    store = SqlDocumentStore(engine, owns_engine=True, group_commit=True)
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


def commits(store: SqlDocumentStore) -> list[int]:
    """A list that grows by one at every committed transaction of the store's engine."""
    seen: list[int] = []

    @event.listens_for(store.engine.sync_engine, "commit")
    def _count(_conn: Any) -> None:
        seen.append(1)

    return seen


def submission(n: int) -> SubmissionSetRecord:
    from datetime import UTC, datetime

    return SubmissionSetRecord(
        unique_id=f"1.2.3.{n}",
        source_id="urn:oid:1.2.3",
        submission_time=datetime.now(UTC),
        entry_count=1,
    )


async def rows(store: SqlDocumentStore) -> dict[str, int]:
    async with store.engine.connect() as conn:
        return {
            table.name: int(
                (await conn.execute(select(func.count()).select_from(table))).scalar_one()
            )
            for table in (document_entry, document_label, document_code, submission_set)
        }


async def register_all(
    store: SqlDocumentStore, batches: list[list[DocumentEntry]]
) -> list[RegisterResult | BaseException]:
    """Register every batch concurrently: all are queued before the first transaction starts."""
    return await asyncio.gather(
        *(store.register(batch, submission_set=submission(i)) for i, batch in enumerate(batches)),
        return_exceptions=True,
    )


async def test_concurrent_single_document_bundles_share_one_transaction(
    store: SqlDocumentStore,
) -> None:
    docs = [entry() for _ in range(20)]
    seen = commits(store)
    outcomes = await register_all(store, [[d] for d in docs])
    assert len(seen) == 1
    for doc, outcome in zip(docs, outcomes, strict=True):
        assert isinstance(outcome, RegisterResult)
        assert outcome.entries == (doc,)
        assert await store.get(doc.unique_id) == doc
    assert len({o.stored[0].seq for o in outcomes if isinstance(o, RegisterResult)}) == 20
    counted = await rows(store)
    assert counted["document_entry"] == 20
    assert counted["submission_set"] == 20
    assert counted["document_label"] == 20  # one confidentiality code each
    assert counted["document_code"] == 40  # uniqueId and entryUUID identifiers each


async def test_a_bad_bundle_among_good_ones_is_refused_alone(store: SqlDocumentStore) -> None:
    registered = entry()
    await store.register([registered], submission_set=None)
    good = [entry() for _ in range(6)]
    clash = entry(unique_id=registered.unique_id.value)  # same uniqueId, other content
    taken_uuid = entry(entry_uuid=registered.entry_uuid)
    bad_rplc = entry(replaces="2.25.1")  # target not registered
    batches = [[good[0]], [clash], [good[1], good[2]], [bad_rplc], [good[3]], [taken_uuid]]
    batches += [[good[4]], [good[5]]]
    before = await rows(store)
    seen = commits(store)
    outcomes = await register_all(store, batches)
    assert len(seen) == 1
    assert isinstance(outcomes[1], DuplicateDocument)
    assert "already registered for other content" in str(outcomes[1])
    assert isinstance(outcomes[3], InvalidReplacement)
    assert "is not registered here" in str(outcomes[3])
    assert isinstance(outcomes[5], DuplicateDocument)
    assert "entryUUID" in str(outcomes[5])
    for i in (0, 2, 4, 6, 7):
        assert isinstance(outcomes[i], RegisterResult)
    for doc in good:
        assert await store.get(doc.unique_id) == doc
    assert await store.get(registered.unique_id) == registered
    assert await store.get(bad_rplc.unique_id) is None
    assert await store.get(taken_uuid.unique_id) is None
    after = await rows(store)
    assert after["document_entry"] == before["document_entry"] + 6
    # The refused bundles' SubmissionSets are not recorded either.
    assert after["submission_set"] == before["submission_set"] + 5


async def test_a_batch_checks_each_bundle_against_the_ones_before_it(
    store: SqlDocumentStore,
) -> None:
    first = entry()
    same_again = replace(first, entry_uuid=uuid4())  # idempotent repeat, other entryUUID
    other_content = entry(unique_id=first.unique_id.value)
    replacement = entry(replaces=first.unique_id.value)
    second_replacement = entry(replaces=first.unique_id.value)
    seen = commits(store)
    outcomes = await register_all(
        store, [[first], [same_again], [other_content], [replacement], [second_replacement]]
    )
    assert len(seen) == 1
    assert isinstance(outcomes[0], RegisterResult)
    assert isinstance(outcomes[1], RegisterResult)
    assert outcomes[1].already_present == {first.unique_id}
    assert outcomes[1].stored[0].seq == outcomes[0].stored[0].seq
    assert isinstance(outcomes[2], DuplicateDocument)
    assert isinstance(outcomes[3], RegisterResult)
    assert outcomes[3].superseded == (first.unique_id,)
    assert isinstance(outcomes[4], InvalidReplacement)
    assert "superseded, not current" in str(outcomes[4])
    stored = await store.get(first.unique_id)
    assert stored is not None and stored.status is DocumentStatus.SUPERSEDED
    assert await store.get(replacement.unique_id) == replacement
    assert await store.get(second_replacement.unique_id) is None


async def test_a_failing_transaction_is_rolled_back_and_its_bundles_registered_one_by_one(
    store: SqlDocumentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after the batch's rows were written: nothing of it stays, then one by one."""
    original = SqlDocumentStore._flush
    failed: list[int] = []

    async def flush_then_fail(self: SqlDocumentStore, conn: Any, plan: Any) -> None:
        planned = len(plan.new)
        await original(self, conn, plan)
        if planned > 1 and not failed:
            failed.append(planned)
            raise RuntimeError("the connection broke after the inserts")

    monkeypatch.setattr(SqlDocumentStore, "_flush", flush_then_fail)
    docs = [entry() for _ in range(5)]
    clash_base = entry()
    await store.register([clash_base], submission_set=None)
    clash = entry(unique_id=clash_base.unique_id.value)
    seen = commits(store)
    outcomes = await register_all(store, [[d] for d in docs[:3]] + [[clash]] + [[docs[3], docs[4]]])
    assert failed == [5]
    # The failed batch committed nothing; then each bundle alone: 4 registered, 1 refused.
    assert len(seen) == 5
    assert isinstance(outcomes[3], DuplicateDocument)
    for i in (0, 1, 2, 4):
        assert isinstance(outcomes[i], RegisterResult)
    counted = await rows(store)
    assert counted["document_entry"] == 6
    assert counted["document_code"] == 12
    assert counted["submission_set"] == 4
    for doc in docs:
        assert await store.get(doc.unique_id) == doc


async def test_a_concurrent_writer_winning_the_insert_fails_only_its_rival(
    store: SqlDocumentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process registers one uniqueId between the batch's lookup and its insert."""
    if store.engine.dialect.name == "sqlite":
        pytest.skip("SQLite serialises writers with BEGIN IMMEDIATE: this race cannot happen")
    winner = entry()
    loser = replace(winner, entry_uuid=uuid4(), hash_sha256="c" * 64)
    others = [entry() for _ in range(4)]
    original = SqlDocumentStore._lookup
    raced = False

    async def sneak_in(self: SqlDocumentStore, conn: Any, submissions: Any, *, lock: bool) -> Any:
        nonlocal raced
        ledger = await original(self, conn, submissions, lock=lock)
        if lock and not raced:
            raced = True
            await SqlDocumentStore(self.engine).bulk_load([winner])
        return ledger

    monkeypatch.setattr(SqlDocumentStore, "_lookup", sneak_in)
    outcomes = await register_all(store, [[others[0]], [loser], *[[d] for d in others[1:]]])
    assert raced
    assert isinstance(outcomes[1], DuplicateDocument)
    for i in (0, 2, 3, 4):
        assert isinstance(outcomes[i], RegisterResult)
    for doc in others:
        assert await store.get(doc.unique_id) == doc
    assert await store.get(winner.unique_id) == winner


async def test_the_pre_checks_of_concurrent_bundles_share_one_read(
    store: SqlDocumentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    registered = entry()
    await store.register([registered], submission_set=None)
    checked: list[int] = []
    original = SqlDocumentStore._check_group

    async def counting(self: SqlDocumentStore, submissions: Any) -> list[None | Exception]:
        checked.append(len(submissions))
        return await original(self, submissions)

    monkeypatch.setattr(SqlDocumentStore, "_check_group", counting)
    store = SqlDocumentStore(store.engine, group_commit=True)
    good = [[entry()] for _ in range(5)]
    clash = [entry(unique_id=registered.unique_id.value)]
    outcomes = await asyncio.gather(
        *(store.check_registrable(b) for b in [*good, clash]), return_exceptions=True
    )
    assert checked == [6]
    assert outcomes[:5] == [None] * 5
    assert isinstance(outcomes[5], DuplicateDocument)
    # A check writes nothing, and checks are independent: two new bundles with one uniqueId
    # both pass (the registration decides).
    twin = entry()
    both = await asyncio.gather(
        store.check_registrable([twin]),
        store.check_registrable([replace(twin, entry_uuid=uuid4(), hash_sha256="d" * 64)]),
    )
    assert both == [None, None]
    assert await store.get(twin.unique_id) is None
