"""Group commit of audit appends: the writer alone, and SqlAuditSink on SQLite and PostgreSQL.

Each caller is answered only after the transaction holding its records has committed; a
failed transaction fails every caller in it and stores nothing; the chain, the checkpoints and
`verify` keep their meaning; fewer transactions than appends under concurrency.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from onerecord.audit import (
    Checkpointer,
    MemoryCheckpointLog,
    SqlAuditSink,
    audit_event_table,
    read_checkpoints,
)
from onerecord.audit.group_commit import GroupCommit
from onerecord.source.database import make_engine
from onerecord.source.migrate import upgrade
from onerecord.trust.keys import SigningKey, StaticJwks
from tests.audit.factories import T0, retrieve_record, search_record
from tests.conftest import Database

pytestmark = pytest.mark.anyio
SOURCE = "helse-sor-ost"


class Injected(Exception):
    """The failure a test puts into a commit."""


# The writer alone, with a fake commit.


class FakeCommit:
    """Records each batch; holds every commit until released, fails the ones asked to."""

    def __init__(self, fail: set[int] | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail = fail or set()
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, items: Sequence[int]) -> None:
        self.batches.append(list(items))
        await self.release.wait()
        if len(self.batches) in self.fail:
            raise Injected(len(self.batches))


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_first_submission_commits_alone_and_the_queued_ones_join_the_next() -> None:
    commit = FakeCommit()
    commit.release.clear()
    group = GroupCommit(commit)
    first = asyncio.create_task(group.submit([1]))
    await _settle()
    assert commit.batches == [[1]]  # no waiting for company
    later = [asyncio.create_task(group.submit([n, n])) for n in (2, 3, 4)]
    await _settle()
    assert not first.done()  # answered only after its commit returns
    commit.release.set()
    await asyncio.gather(first, *later)
    assert commit.batches == [[1], [2, 2, 3, 3, 4, 4]]


async def test_a_batch_holds_at_most_max_items_and_never_splits_a_submission() -> None:
    commit = FakeCommit()
    commit.release.clear()
    group = GroupCommit(commit, max_items=4)
    tasks = [asyncio.create_task(group.submit([0]))]
    await _settle()
    tasks += [asyncio.create_task(group.submit([n] * 3)) for n in (1, 2, 3)]
    await _settle()
    commit.release.set()
    await asyncio.gather(*tasks)
    assert commit.batches == [[0], [1, 1, 1], [2, 2, 2], [3, 3, 3]]


async def test_a_failed_commit_fails_every_caller_in_it_and_the_next_batch_works() -> None:
    commit = FakeCommit(fail={2})
    commit.release.clear()
    group = GroupCommit(commit)
    first = asyncio.create_task(group.submit([1]))
    await _settle()
    doomed = [asyncio.create_task(group.submit([n])) for n in (2, 3)]
    await _settle()
    commit.release.set()
    await first
    for task in doomed:
        with pytest.raises(Injected):
            await task
    await group.submit([4])
    assert commit.batches == [[1], [2, 3], [4]]


async def test_a_cancelled_caller_withdraws_what_is_queued_but_not_what_is_committing() -> None:
    commit = FakeCommit()
    commit.release.clear()
    group = GroupCommit(commit)
    in_flight = asyncio.create_task(group.submit([1]))
    await _settle()
    queued = asyncio.create_task(group.submit([2]))
    kept = asyncio.create_task(group.submit([3]))
    await _settle()
    in_flight.cancel()
    queued.cancel()
    await _settle()
    commit.release.set()
    await kept
    await group.wait_idle()
    assert commit.batches == [[1], [3]]
    assert in_flight.cancelled() and queued.cancelled()


# SqlAuditSink on SQLite and PostgreSQL.


@pytest.fixture
async def engine(database: Database) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database.url, schema=database.schema)
    await upgrade(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


@contextmanager
def counted_commits(engine: AsyncEngine) -> Iterator[list[int]]:
    """Count the transactions committed on the engine's database (one list item per commit):
    on the engine and on any other engine of this process, such as SQLite's synchronous twin
    (sqldb.sqlite_sync_twin) that the sink commits on."""
    commits: list[int] = []

    def on_commit(_conn: Any) -> None:
        commits.append(1)

    event.listen(Engine, "commit", on_commit)
    try:
        yield commits
    finally:
        event.remove(Engine, "commit", on_commit)


async def _append_concurrently(sink: SqlAuditSink, callers: int) -> None:
    async def caller(k: int) -> None:
        records = [search_record(k)] if k % 2 else [search_record(k), retrieve_record(k)]
        await sink.append(records)

    await asyncio.gather(*(caller(k) for k in range(callers)))


def _rows(callers: int) -> int:
    return sum(1 if k % 2 else 2 for k in range(callers))


async def _seqs(engine: AsyncEngine) -> list[int]:
    t = audit_event_table.c
    async with engine.connect() as conn:
        return list((await conn.execute(select(t.seq).order_by(t.seq))).scalars())


@pytest.mark.parametrize("grouped", [True, False])
async def test_concurrent_appends_make_one_chain_in_fewer_transactions(
    engine: AsyncEngine, grouped: bool
) -> None:
    sink = SqlAuditSink(engine, SOURCE, group_commit=grouped)
    await sink.append([search_record(0)])  # the head row exists: one commit per append below
    callers = 40
    with counted_commits(engine) as commits:
        await _append_concurrently(sink, callers)
    result = await sink.verify()
    assert result.ok and result.checked == 1 + _rows(callers)
    assert await _seqs(engine) == list(range(1, 2 + _rows(callers)))
    if grouped:
        assert len(commits) < callers / 4
    else:
        assert len(commits) == callers  # the counter counts: one transaction per append


async def test_two_writers_sharing_a_chain_stay_one_chain(
    engine: AsyncEngine, database: Database
) -> None:
    # Two processes of one source (`--workers 2`): two engines, two writers, one chain.
    other = make_engine(database.url, schema=database.schema)
    try:
        one, two = SqlAuditSink(engine, SOURCE), SqlAuditSink(other, SOURCE)
        await asyncio.gather(_append_concurrently(one, 30), _append_concurrently(two, 30))
    finally:
        await other.dispose()
    result = await one.verify()
    assert result.ok and result.checked == 2 * _rows(30)


_WRITER = """
import asyncio, sys, time
from pathlib import Path
from onerecord.audit import SqlAuditSink
from onerecord.source.database import make_engine
from tests.audit.factories import search_record

async def main(url, schema, base, folder):
    engine = make_engine(url, schema=schema or None)
    sink = SqlAuditSink(engine, "helse-sor-ost")
    async def caller(k):
        for i in range(10):
            await sink.append([search_record(base + k * 10 + i)])
            await asyncio.sleep(0.005)  # as requests arrive: the other process gets the lock too
    # A barrier: both processes are up (imports done, engine made) before either appends.
    Path(folder, f"ready-{base}").touch()
    deadline = time.monotonic() + 60
    while len(list(Path(folder).glob("ready-*"))) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await asyncio.gather(*(caller(k) for k in range(12)))
    await engine.dispose()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))
"""


def test_two_processes_sharing_a_chain_stay_one_chain(database: Database, tmp_path: Path) -> None:
    # `--workers 2`: two processes, each with its own writer, on one chain; the head-row lock
    # serialises their transactions.
    async def prepare() -> None:
        engine = make_engine(database.url, schema=database.schema)
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(prepare())
    root = Path(__file__).resolve().parents[2]
    args = [database.url, database.schema or ""]
    workers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, *args, str(base), str(tmp_path)], cwd=root)
        for base in (0, 1000)
    ]
    assert [w.wait(timeout=120) for w in workers] == [0, 0]

    async def check() -> None:
        engine = make_engine(database.url, schema=database.schema)
        try:
            result = await SqlAuditSink(engine, SOURCE).verify()
            t = audit_event_table.c
            async with engine.connect() as conn:
                moments = (await conn.execute(select(t.recorded).order_by(t.seq))).scalars()
                writers = [m >= T0 + timedelta(seconds=1000) for m in moments]
        finally:
            await engine.dispose()
        assert result.ok and result.checked == 2 * 12 * 10
        # The two processes' transactions interleaved (not one after the other).
        assert sum(a != b for a, b in zip(writers, writers[1:], strict=False)) > 1

    asyncio.run(check())


@contextmanager
def failing(engine: AsyncEngine, where: str) -> Iterator[list[int]]:
    """Fail the first transaction that moves the chain head: at that UPDATE, or at its COMMIT."""
    failed: list[int] = []
    moving: list[bool] = []

    def before_execute(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.startswith("UPDATE audit_chain_head") and "last_hash" in statement:
            moving.append(True)
            if where == "head" and not failed:
                failed.append(1)
                raise Injected("the head update fails")

    def on_commit(_conn: Any) -> None:
        if where == "commit" and moving and not failed:
            failed.append(1)
            raise Injected("the commit fails")
        moving.clear()

    # On every engine: the sink commits on SQLite's synchronous twin (sqldb.sqlite_sync_twin).
    event.listen(Engine, "before_cursor_execute", before_execute)
    event.listen(Engine, "commit", on_commit)
    try:
        yield failed
    finally:
        event.remove(Engine, "before_cursor_execute", before_execute)
        event.remove(Engine, "commit", on_commit)


@pytest.mark.parametrize("where", ["head", "commit"])
async def test_a_failed_transaction_fails_all_its_callers_and_stores_none_of_it(
    engine: AsyncEngine, where: str
) -> None:
    sink = SqlAuditSink(engine, SOURCE)
    await sink.append([search_record(0)])
    with failing(engine, where) as failed:
        outcomes = await asyncio.gather(
            *(sink.append([search_record(k), retrieve_record(k)]) for k in range(1, 9)),
            return_exceptions=True,
        )
    assert failed == [1]
    # All eight were queued before the writer ran: one batch, one failure for all of them.
    assert all(isinstance(o, Injected) for o in outcomes), outcomes
    assert await _seqs(engine) == [1]
    await sink.append([search_record(9)])  # the next batch works, from the kept head
    result = await sink.verify()
    assert result.ok and result.checked == 2
    t = audit_event_table.c
    async with engine.connect() as conn:
        stored = (await conn.execute(select(func.count()).select_from(audit_event_table))).scalar()
        last = (await conn.execute(select(t.event).where(t.seq == 2))).scalar_one()
    assert stored == 2 and last == search_record(9).to_dict()


class SeenCheckpointer(Checkpointer):
    """A checkpointer that also notes every head it is told of."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seen: list[tuple[int, int]] = []

    async def advanced(self, seq: int, digest: str, *, appended: int) -> None:
        self.seen.append((seq, appended))
        await super().advanced(seq, digest, appended=appended)


async def test_the_checkpointer_sees_every_append_and_the_committed_head(
    engine: AsyncEngine,
) -> None:
    key = SigningKey.generate(kid="checkpoints")
    log = MemoryCheckpointLog()
    checkpoints = SeenCheckpointer(key=key, log=log, source_id=SOURCE, every=1)
    sink = SqlAuditSink(engine, SOURCE, checkpoints=checkpoints)
    callers = 40
    first = asyncio.create_task(sink.append([search_record(100)]))
    await asyncio.sleep(0)  # the first commits alone; the 40 queue behind it
    await asyncio.gather(first, _append_concurrently(sink, callers))
    await sink.close()
    rows = 1 + _rows(callers)
    head = await sink.head()
    assert head is not None and head.last_seq == rows
    # Told once per committed transaction, in commit order, of every record appended.
    assert [seq for seq, _ in checkpoints.seen] == [1, rows]
    assert sum(appended for _, appended in checkpoints.seen) == rows
    written = (await read_checkpoints(await log.lines(), StaticJwks([key])))[SOURCE]
    assert [(c.seq, c.hash) for c in written][-1] == (head.last_seq, head.last_hash)
    assert [c.seq for c in written] == [1, rows]
    result = await sink.verify({c.seq: c.hash for c in written})
    assert result.ok and result.checked == rows
