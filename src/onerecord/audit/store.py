"""Where audit records go: the `AuditSink` protocol, an append-only SQL sink and a fake.

`SqlAuditSink` keeps one hash chain per source (`audit_event` rows numbered 1, 2, … per
`source_id`, the newest link in `audit_chain_head`). Appends are serialised per source by locking
the chain-head row with an UPDATE as the transaction's first write: a row lock on PostgreSQL, the
database write lock on SQLite. Nothing here updates or deletes an audit row. Given a
`Checkpointer`, the sink has the committed head signed and kept outside the database
(checkpoint.py), so that a rewritten or truncated chain fails `verify`.

Concurrent appends in one process are group-committed (group_commit.py): one transaction takes
every append queued while the previous one was committing, and each caller's `append` returns
only after the transaction holding its records has committed (and raises if it failed).

Invariant: a transaction reads the head under the head-row lock it takes first, links its rows
from that head in the order they are inserted, and moves the head to its last row before it
commits. Nothing is carried from one transaction to the next (no cached head), so appends from
several processes sharing a chain (`--workers 2` on one database) stay one contiguous chain
whatever the grouping: each committed row links to the row committed just before it.

References: IHE ITI BALP; ATNA (audit is required for every transaction, denials included);
TRUST-FRAMEWORK §3.2, F1, F5; /work/shared/ANCHORS.md (append-only, hash-chained audit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Literal, Protocol

import anyio.to_thread
from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    MetaData,
    String,
    Table,
    bindparam,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from onerecord.audit.chain import (
    GENESIS_HASH,
    ChainHead,
    ChainRow,
    ChainVerifier,
    VerifyResult,
    canonical,
    link_hash,
)
from onerecord.audit.checkpoint import Checkpointer
from onerecord.audit.citizen_log import CitizenLogEntry, citizen_log_entries
from onerecord.audit.group_commit import GroupCommit
from onerecord.audit.record import AuditAction, AuditOutcome, AuditRecord
from onerecord.sqldb import JsonDocument, UtcDateTime, sqlite_sync_twin

_VERIFY_BATCH = 1000

__all__ = [
    "AuditSink",
    "MemoryAuditSink",
    "SqlAuditSink",
    "audit_chain_head",
    "audit_event_table",
    "audit_metadata",
]


audit_metadata = MetaData(
    naming_convention={"ix": "ix_%(table_name)s_%(column_0_N_name)s", "pk": "pk_%(table_name)s"}
)

audit_event_table = Table(
    "audit_event",
    audit_metadata,
    Column("source_id", String(64), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("recorded", UtcDateTime, nullable=False),
    Column("patient_id", String(11), nullable=True),
    Column("action", String(32), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("event", JsonDocument, nullable=False),
    Index(None, "patient_id", "recorded"),
)

audit_chain_head = Table(
    "audit_chain_head",
    audit_metadata,
    Column("source_id", String(64), primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
    Column("last_hash", String(64), nullable=False),
)


def _stamp(moment: datetime) -> str:
    """The text form of `recorded` that enters the hash."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


class AuditSink(Protocol):
    """Where audit records are written."""

    async def append(self, records: Sequence[AuditRecord]) -> None:
        """Store the records, in order, durably before returning, or raise: an access must not
        pass unaudited."""


class MemoryAuditSink:
    """Keeps records in a list: the fake for tests and the development profile."""

    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    async def append(self, records: Sequence[AuditRecord]) -> None:
        self.records.extend(records)

    async def citizen_log(
        self, patient_ids: Sequence[str], *, since: datetime | None = None
    ) -> list[CitizenLogEntry]:
        wanted = set(patient_ids)
        return citizen_log_entries(
            r
            for r in self.records
            if r.patient_id in wanted and (since is None or r.recorded >= since)
        )


class SqlAuditSink:
    """The append-only, hash-chained audit table of one source (region or hub)."""

    def __init__(
        self,
        engine: AsyncEngine,
        source_id: str,
        *,
        checkpoints: Checkpointer | None = None,
        group_commit: bool = True,
        max_batch: int = 500,
    ) -> None:
        if not source_id or len(source_id) > 64:
            raise ValueError("source_id must be 1 to 64 characters")
        if checkpoints is not None and checkpoints.source_id != source_id:
            raise ValueError("the checkpointer signs another source's chain")
        self._engine = engine
        self.source_id = source_id
        self.checkpoints = checkpoints
        self._group = GroupCommit(self._commit, max_items=max_batch) if group_commit else None
        self._twin: Engine | Literal[False] | None = None  # SQLite's sync twin, on first use
        head = audit_chain_head.c
        # Built once: building a statement costs more CPU than running it on SQLite.
        # The lock is the first write of the transaction: PostgreSQL locks the row, SQLite the
        # database; RETURNING reads the head in the same statement.
        self._lock = (
            update(audit_chain_head)
            .where(head.source_id == source_id)
            .values(last_seq=head.last_seq)
            .returning(head.last_seq, head.last_hash)
        )
        self._advance = (
            update(audit_chain_head)
            .where(head.source_id == source_id)
            .values(last_seq=bindparam("seq"), last_hash=bindparam("hash"))
        )
        self._insert_events = audit_event_table.insert()

    async def head(self) -> ChainHead | None:
        """The chain head as stored (None before the first append)."""
        h = audit_chain_head.c
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(h.last_seq, h.last_hash).where(h.source_id == self.source_id)
                )
            ).one_or_none()
        return ChainHead(int(row.last_seq), row.last_hash) if row else None

    async def checkpoint_head(self) -> None:
        """Open the checkpoint log and checkpoint the stored head (at start-up), if kept."""
        if self.checkpoints is None:
            return
        await self.checkpoints.open()
        head = await self.head()
        if head is not None and head.last_seq > 0:
            await self.checkpoints.checkpoint(head.last_seq, head.last_hash)

    async def close(self) -> None:
        """Finish the appends in flight and write the pending checkpoint (at shutdown)."""
        if self._group is not None:
            await self._group.wait_idle()
        if self.checkpoints is not None:
            await self.checkpoints.close()
        if self._twin:
            self._twin.dispose()
        self._twin = None

    async def append(self, records: Sequence[AuditRecord]) -> None:
        """Append records to this source's chain; return once their transaction has committed."""
        if not records:
            return
        if self._group is None:
            await self._commit(records)
        else:
            await self._group.submit(records)

    async def _commit(self, records: Sequence[AuditRecord]) -> None:
        """Link the records from the locked head, insert them and move the head: one transaction.

        On a SQLite file the transaction runs whole in one worker thread on the engine's
        synchronous twin (sqldb.sqlite_sync_twin): one thread hand-over instead of one per call.
        """
        if self._twin is None:
            self._twin = sqlite_sync_twin(self._engine) or False
        if self._twin:
            written = await anyio.to_thread.run_sync(self._commit_on_twin, records)
        else:
            async with self._engine.begin() as conn:
                written = await conn.run_sync(self.append_in, records)
        await self.appended(written)

    def _commit_on_twin(self, records: Sequence[AuditRecord]) -> tuple[int, str, int]:
        assert self._twin
        with self._twin.begin() as conn:
            return self.append_in(conn, records)

    def append_in(self, conn: Connection, records: Sequence[AuditRecord]) -> tuple[int, str, int]:
        """Append records inside the caller's open transaction (they commit or roll back with
        it; synchronous: `AsyncConnection.run_sync`, or a worker thread's own connection); once
        it has committed, pass the returned value to `appended`."""
        seq, prev = self._lock_head(conn)
        rows = []
        for record in records:
            seq += 1
            event = record.to_dict()
            row_hash = link_hash(
                prev,
                canonical(
                    seq=seq,
                    recorded=_stamp(record.recorded),
                    patient_id=record.patient_id,
                    action=record.action.value,
                    outcome=record.outcome.value,
                    event=event,
                ),
            )
            rows.append(
                {
                    "source_id": self.source_id,
                    "seq": seq,
                    "recorded": record.recorded,
                    "patient_id": record.patient_id,
                    "action": record.action.value,
                    "outcome": record.outcome.value,
                    "prev_hash": prev,
                    "hash": row_hash,
                    "event": event,
                }
            )
            prev = row_hash
        if rows:
            conn.execute(self._insert_events, rows)
            conn.execute(self._advance, {"seq": seq, "hash": prev})
        return seq, prev, len(rows)

    async def appended(self, written: tuple[int, str, int]) -> None:
        """After the transaction of `append_in` committed: advance the checkpoint log."""
        seq, prev, count = written
        if self.checkpoints is not None and count:
            await self.checkpoints.advanced(seq, prev, appended=count)

    def _lock_head(self, conn: Connection) -> tuple[int, str]:
        """Create the chain head if needed, lock it, and return (last_seq, last_hash)."""
        lock = self._lock
        row = conn.execute(lock).first()
        if row is None:
            insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            conn.execute(
                insert(audit_chain_head)
                .values(source_id=self.source_id, last_seq=0, last_hash=GENESIS_HASH)
                .on_conflict_do_nothing()
            )
            row = conn.execute(lock).one()
        return int(row.last_seq), str(row.last_hash)

    async def verify(self, checkpoints: Mapping[int, str] | None = None) -> VerifyResult:
        """Recompute this source's chain from the stored rows, against (seq → hash) checkpoints."""
        async with self._engine.connect() as conn:
            head_row = (
                await conn.execute(
                    select(audit_chain_head.c.last_seq, audit_chain_head.c.last_hash).where(
                        audit_chain_head.c.source_id == self.source_id
                    )
                )
            ).one_or_none()
            t = audit_event_table.c
            verifier = ChainVerifier(checkpoints)
            # Streamed in batches: a source's chain grows by one row per access.
            result = await conn.stream(
                select(
                    t.seq,
                    t.recorded,
                    t.patient_id,
                    t.action,
                    t.outcome,
                    t.prev_hash,
                    t.hash,
                    t.event,
                )
                .where(t.source_id == self.source_id)
                .order_by(t.seq)
                .execution_options(yield_per=_VERIFY_BATCH)
            )
            async for r in result:
                row = ChainRow(
                    seq=int(r.seq),
                    recorded=_stamp(r.recorded),
                    patient_id=r.patient_id,
                    action=r.action,
                    outcome=r.outcome,
                    event=r.event,
                    prev_hash=r.prev_hash,
                    hash=r.hash,
                )
                if not verifier.feed(row):
                    break
            await result.close()
        head = ChainHead(int(head_row.last_seq), head_row.last_hash) if head_row else None
        return verifier.finish(head)

    async def records(
        self, patient_ids: Sequence[str], *, since: datetime | None = None
    ) -> list[AuditRecord]:
        """Return this source's records about the given patients, oldest first."""
        t = audit_event_table.c
        query = (
            select(t.event)
            .where(t.source_id == self.source_id, t.patient_id.in_(list(patient_ids)))
            .order_by(t.seq)
        )
        if since is not None:
            query = query.where(t.recorded >= since)
        async with self._engine.connect() as conn:
            events = (await conn.execute(query)).scalars().all()
        return [AuditRecord.from_dict(e) for e in events]

    async def citizen_log(
        self, patient_ids: Sequence[str], *, since: datetime | None = None
    ) -> list[CitizenLogEntry]:
        """Return the citizen's access log for themselves and the persons they represent."""
        t = audit_event_table.c
        query = (
            select(t.event)
            .where(
                t.source_id == self.source_id,
                t.patient_id.in_(list(patient_ids)),
                t.outcome == AuditOutcome.SUCCESS.value,
                t.action.in_([AuditAction.SEARCH.value, AuditAction.RETRIEVE.value]),
            )
            .order_by(t.seq)
        )
        if since is not None:
            query = query.where(t.recorded >= since)
        async with self._engine.connect() as conn:
            events = (await conn.execute(query)).scalars().all()
        return citizen_log_entries(AuditRecord.from_dict(e) for e in events)
