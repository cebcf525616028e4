"""The outbox of pending control changes: order, supersede, back-off, refusal; memory and SQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onerecord.audit import make_audit_engine
from onerecord.hub.outbox import (
    ControlLocks,
    MemoryOutbox,
    Outbox,
    OutboxWorker,
    PendingChange,
    PendingState,
    Sequencer,
    Verdict,
    backoff_delay,
    verdict,
)
from onerecord.hub.outbox_db import SqlOutbox, create_outbox_table
from onerecord.hub.results import RegionResult, RegionStatus
from tests.conftest import Database
from tests.hub.conftest import HCID_MIDT, make_region

pytestmark = pytest.mark.anyio
MIDT = make_region(HCID_MIDT)
PATIENT = "13116900216"


def _change(seq: int, *, on: bool = True, target: str = "1234567", **kw: object) -> PendingChange:
    values: dict[str, object] = {
        "patient": PATIENT,
        "kind": "practitioner-blocks",
        "target": target,
        "region": MIDT.hcid,
        "on": on,
        "seq": seq,
        "accepted_at": 1000.0,
        "path_and_query": f"/controls/practitioner-blocks/{target}",
        "correlation_id": f"c{seq}",
        "asserted": {"iss": "sts", "sub": "s", "jti": "j", "jkt": "k", "claims": {"pid": PATIENT}},
        "next_at": 0.0,
    }
    values.update(kw)
    return PendingChange(**values)  # type: ignore[arg-type]


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_database(request: pytest.FixtureRequest) -> Database | None:
    """Where the outbox under test keeps its rows: nowhere (memory), SQLite or PostgreSQL."""
    if request.param == "memory":
        return None
    name = "sqlite_database" if request.param == "sqlite" else "postgres_schema"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture
async def outbox(store_database: Database | None) -> AsyncIterator[Outbox]:
    if store_database is None:
        yield MemoryOutbox()
        return
    db = store_database
    engine = make_audit_engine(db.url, schema=db.schema)
    await create_outbox_table(engine)
    try:
        yield SqlOutbox(engine)
    finally:
        await engine.dispose()


# --- pure rules ----------------------------------------------------------------------------


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    delays = [backoff_delay(n, base_s=2.0, cap_s=60.0) for n in range(0, 8)]
    assert delays == [0.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]


@given(st.integers(min_value=1, max_value=10_000), st.floats(0.001, 100), st.floats(0.001, 1e5))
def test_backoff_never_exceeds_the_cap_and_never_shrinks(n: int, base: float, cap: float) -> None:
    now = backoff_delay(n, base_s=base, cap_s=cap)
    assert 0 < now <= cap
    assert backoff_delay(n + 1, base_s=base, cap_s=cap) >= now


@pytest.mark.parametrize(
    ("status", "http", "expected"),
    [
        (RegionStatus.OK, 200, Verdict.CONFIRMED),
        (RegionStatus.UNAVAILABLE, None, Verdict.RETRY),
        (RegionStatus.TIMEOUT, None, Verdict.RETRY),
        (RegionStatus.ERROR, 503, Verdict.RETRY),
        (RegionStatus.REJECTED, 429, Verdict.RETRY),
        (RegionStatus.DENIED, 401, Verdict.RETRY),
        (RegionStatus.DENIED, 403, Verdict.REFUSED),
        (RegionStatus.REJECTED, 400, Verdict.REFUSED),
    ],
)
def test_verdict_of_a_region_answer(
    status: RegionStatus, http: int | None, expected: Verdict
) -> None:
    assert verdict(RegionResult(MIDT, status, 0.0, http_status=http)) is expected


def test_the_sequencer_only_goes_up_even_when_the_clock_stands_still() -> None:
    seq = Sequencer(clock=lambda: 5)
    assert [seq.next(), seq.next(), seq.next()] == [5, 6, 7]


# --- the store -----------------------------------------------------------------------------


async def test_a_newer_change_replaces_an_older_one_never_the_reverse(outbox: Outbox) -> None:
    block, unblock = _change(10, on=True), _change(20, on=False)
    assert await outbox.offer(block)
    assert await outbox.offer(unblock)
    assert not await outbox.offer(replace(block, correlation_id="late"))
    [row] = await outbox.for_patient(PATIENT)
    assert (row.on, row.seq, row.asserted) == (False, 20, unblock.asserted)


async def test_settle_removes_only_rows_not_newer_than_the_confirmed_change(outbox: Outbox) -> None:
    await outbox.offer(_change(20, on=False))
    await outbox.settle(_change(10).key, 10)  # an older change confirmed: the newer row stays
    assert [r.seq for r in await outbox.for_patient(PATIENT)] == [20]
    await outbox.settle(_change(30).key, 30)  # a newer change confirmed: the row is done
    assert await outbox.for_patient(PATIENT) == []


async def test_due_rows_reschedule_and_refuse_by_seq(outbox: Outbox) -> None:
    await outbox.offer(_change(10, next_at=50.0))
    await outbox.offer(_change(11, target="7654321", next_at=10.0))
    assert [r.target for r in await outbox.due(100.0, 10)] == ["7654321", "1234567"]
    assert await outbox.due(5.0, 10) == []
    key = _change(10).key
    await outbox.reschedule(key, 9, attempts=5, next_at=999.0, detail="stale")  # wrong seq
    await outbox.reschedule(key, 10, attempts=2, next_at=200.0, detail="HTTP 503")
    row = await outbox.get(key)
    assert row is not None and (row.attempts, row.next_at, row.detail) == (2, 200.0, "HTTP 503")
    await outbox.refuse(key, 10, "HTTP 403")
    row = await outbox.get(key)
    assert row is not None and row.state is PendingState.REFUSED
    assert [r.target for r in await outbox.due(1e9, 10)] == ["7654321"]


async def test_rows_survive_a_new_store_on_the_same_database(sqlite_database: Database) -> None:
    """Durable: what one hub process kept, the next one finds (a restart)."""
    engine = make_audit_engine(sqlite_database.url)
    await create_outbox_table(engine)
    await SqlOutbox(engine).offer(_change(10))
    await engine.dispose()
    engine = make_audit_engine(sqlite_database.url)
    await create_outbox_table(engine)
    try:
        [row] = await SqlOutbox(engine).due(1.0, 10)
        assert row == _change(10)
    finally:
        await engine.dispose()


# --- the worker ----------------------------------------------------------------------------


class Region:
    """A region that answers each row with the next status of its script and records it."""

    def __init__(self, *statuses: RegionStatus) -> None:
        self.statuses = list(statuses)
        self.got: list[tuple[int, bool]] = []

    async def send(self, row: PendingChange) -> RegionResult:
        self.got.append((row.seq, row.on))
        status = self.statuses.pop(0) if self.statuses else RegionStatus.OK
        http = {RegionStatus.OK: 200, RegionStatus.DENIED: 403}.get(status, 503)
        return RegionResult(MIDT, status, 0.0, http_status=http, detail=status.value)


def _worker(outbox: Outbox, region: Region, clock: list[float], locks: ControlLocks | None = None):  # type: ignore[no-untyped-def]
    return OutboxWorker(
        outbox,
        locks or ControlLocks(),
        region.send,
        base_s=2.0,
        cap_s=10.0,
        poll_s=0.01,
        clock=lambda: clock[0],
    )


async def test_the_worker_backs_off_then_confirms(outbox: Outbox) -> None:
    region = Region(RegionStatus.UNAVAILABLE, RegionStatus.TIMEOUT)
    clock = [100.0]
    worker = _worker(outbox, region, clock)
    await outbox.offer(_change(10, next_at=100.0))
    assert await worker.run_once() == 0
    row = await outbox.get(_change(10).key)
    assert row is not None and (row.attempts, row.next_at) == (1, 102.0)
    assert await worker.run_once() == 0 and len(region.got) == 1  # not due yet
    clock[0] = 102.0
    assert await worker.run_once() == 0
    row = await outbox.get(_change(10).key)
    assert row is not None and (row.attempts, row.next_at) == (2, 106.0)
    clock[0] = 106.0
    assert await worker.run_once() == 1
    assert await outbox.for_patient(PATIENT) == []


async def test_the_worker_stops_at_a_refusal(outbox: Outbox) -> None:
    region = Region(RegionStatus.DENIED)
    worker = _worker(outbox, region, [0.0])
    await outbox.offer(_change(10))
    await worker.run_once()
    await worker.run_once()
    assert region.got == [(10, True)]
    row = await outbox.get(_change(10).key)
    assert row is not None and row.state is PendingState.REFUSED


async def test_a_change_made_while_a_retry_waits_for_the_lock_wins() -> None:
    """The worker read the old «block» as due; a live «unblock» holds the control's lock and
    replaces it; the worker re-reads under the lock and sends nothing old."""
    outbox, locks, region = MemoryOutbox(), ControlLocks(), Region()
    worker = _worker(outbox, region, [1.0], locks)
    old = _change(10, on=True)
    await outbox.offer(old)
    async with locks.hold(old.control):
        retry = asyncio.create_task(worker.run_once())
        await asyncio.sleep(0.01)  # the worker now waits for the lock
        await outbox.settle(old.key, 20)  # the live unblock reached Midt itself
    assert await retry == 0
    assert region.got == []
