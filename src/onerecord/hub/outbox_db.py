"""The outbox of pending control changes in the hub's store: SQLite or PostgreSQL.

One table, `hub_control_outbox`, beside the hub's audit tables in the same database (the hub's
only store). Its key is (patient, kind, target, region); every write that depends on the row's
`seq` says so in its WHERE clause, so that an older change never overwrites a newer one even
when two writers race (the loser of an insert race retries as an update).
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import BigInteger

from onerecord.hub.outbox import PendingChange, PendingState, RowKey

__all__ = ["SqlOutbox", "create_outbox_table", "outbox_metadata", "outbox_table"]

outbox_metadata = MetaData()

outbox_table = Table(
    "hub_control_outbox",
    outbox_metadata,
    Column("patient", String(16), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("target", String(128), primary_key=True),
    Column("region", String(128), primary_key=True),
    Column("on", Boolean, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("accepted_at", Float, nullable=False),
    Column("path_and_query", String(512), nullable=False),
    Column("correlation_id", String(128), nullable=False),
    Column("asserted", Text, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_at", Float, nullable=False, index=True),
    Column("state", String(16), nullable=False),
    Column("detail", String(256), nullable=True),
)


async def create_outbox_table(engine: AsyncEngine) -> None:
    """Create the outbox table if it is missing."""
    async with engine.begin() as conn:
        await conn.run_sync(outbox_metadata.create_all)


def _key_clause(key: RowKey) -> Any:
    patient, kind, target, region = key
    t = outbox_table.c
    return and_(t.patient == patient, t.kind == kind, t.target == target, t.region == region)


def _values(change: PendingChange) -> dict[str, Any]:
    return {
        "patient": change.patient,
        "kind": change.kind,
        "target": change.target,
        "region": change.region,
        "on": change.on,
        "seq": change.seq,
        "accepted_at": change.accepted_at,
        "path_and_query": change.path_and_query,
        "correlation_id": change.correlation_id,
        "asserted": orjson.dumps(change.asserted).decode() if change.asserted else None,
        "attempts": change.attempts,
        "next_at": change.next_at,
        "state": change.state.value,
        "detail": (change.detail or "")[:256] or None,
    }


def _row(row: Any) -> PendingChange:
    m = row._mapping
    asserted = orjson.loads(m["asserted"]) if m["asserted"] else None
    return PendingChange(
        patient=m["patient"],
        kind=m["kind"],
        target=m["target"],
        region=m["region"],
        on=bool(m["on"]),
        seq=int(m["seq"]),
        accepted_at=float(m["accepted_at"]),
        path_and_query=m["path_and_query"],
        correlation_id=m["correlation_id"],
        asserted=asserted,
        attempts=int(m["attempts"]),
        next_at=float(m["next_at"]),
        state=PendingState(m["state"]),
        detail=m["detail"],
    )


class SqlOutbox:
    """The Outbox in the hub's database (durable across restarts)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def offer(self, change: PendingChange) -> bool:
        values = _values(change)
        newer_only = and_(_key_clause(change.key), outbox_table.c.seq < change.seq)
        for _ in range(2):
            async with self.engine.begin() as conn:
                done = await conn.execute(update(outbox_table).where(newer_only).values(values))
                if done.rowcount:
                    return True
                exists = await conn.execute(
                    select(outbox_table.c.seq).where(_key_clause(change.key))
                )
                if exists.first() is not None:
                    return False  # a change at least as new is stored
            try:
                async with self.engine.begin() as conn:
                    await conn.execute(outbox_table.insert().values(values))
                return True
            except IntegrityError:
                continue  # another writer inserted meanwhile: compare seqs again
        return False

    async def settle(self, key: RowKey, seq: int) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(outbox_table).where(and_(_key_clause(key), outbox_table.c.seq <= seq))
            )

    async def get(self, key: RowKey) -> PendingChange | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(outbox_table).where(_key_clause(key)))).first()
        return _row(row) if row is not None else None

    async def due(self, now: float, limit: int) -> list[PendingChange]:
        t = outbox_table.c
        query = (
            select(outbox_table)
            .where(and_(t.state == PendingState.PENDING.value, t.next_at <= now))
            .order_by(t.next_at, t.seq)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [_row(r) for r in await conn.execute(query)]

    async def reschedule(
        self,
        key: RowKey,
        seq: int,
        *,
        attempts: int,
        next_at: float,
        detail: str,
    ) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(outbox_table)
                .where(and_(_key_clause(key), outbox_table.c.seq == seq))
                .values(attempts=attempts, next_at=next_at, detail=detail[:256])
            )

    async def refuse(self, key: RowKey, seq: int, detail: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(outbox_table)
                .where(and_(_key_clause(key), outbox_table.c.seq == seq))
                .values(state=PendingState.REFUSED.value, detail=detail[:256])
            )

    async def for_patient(self, patient: str) -> list[PendingChange]:
        query = (
            select(outbox_table)
            .where(outbox_table.c.patient == patient)
            .order_by(outbox_table.c.seq)
        )
        async with self.engine.connect() as conn:
            return [_row(r) for r in await conn.execute(query)]
