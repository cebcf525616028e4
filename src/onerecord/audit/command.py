"""`onerecord audit verify`: recompute every audit chain in a database and report.

Given the checkpoint file and the checkpoint public key, every chain is also held against its
signed checkpoints (checkpoint.py): a chain that was recomputed, cut short or deleted fails, and
so does a checkpoint whose signature does not verify. Without them only the chains are checked,
and a database emptied by someone who could write it cannot be told from a new one.

Exit codes: 0 every chain verifies; 1 a chain or the checkpoint file is broken; 2 the command
could not check (unreadable key or checkpoint file, a development key without --dev).

The engine is built here from the URL (sqlite:// → aiosqlite, postgresql:// → asyncpg) so that
the audit package needs nothing from the source package; `cli.py` only calls this.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from joserfc.errors import JoseError
from sqlalchemy import inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from onerecord.audit.chain import ChainVerifier, VerifyResult
from onerecord.audit.checkpoint import (
    CheckpointError,
    FileCheckpointLog,
    InvalidCheckpoint,
    checkpoint_keys,
    read_checkpoints,
)
from onerecord.audit.store import SqlAuditSink, audit_chain_head, audit_event_table

__all__ = ["CheckpointedHeads", "audit_verify_command", "verify_all"]

CheckpointedHeads = Mapping[str, Mapping[int, str]]
"""Per source_id, the checkpointed (seq → hash) pairs."""


def _engine(db_url: str, schema: str | None) -> AsyncEngine:
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        return create_async_engine(url.set(drivername="sqlite+aiosqlite"))
    if url.get_backend_name() in {"postgresql", "postgres"}:
        args = {"server_settings": {"search_path": schema}} if schema else {}
        return create_async_engine(url.set(drivername="postgresql+asyncpg"), connect_args=args)
    raise ValueError(f"unsupported database {url.get_backend_name()!r}")


async def verify_all(
    engine: AsyncEngine, checkpoints: CheckpointedHeads | None = None
) -> dict[str, VerifyResult]:
    """Verify the chain of every source that has audit rows, a chain head or a checkpoint."""
    checkpoints = checkpoints or {}
    async with engine.connect() as conn:
        tables = await conn.run_sync(
            lambda sync: (
                inspect(sync).has_table(audit_event_table.name)
                and inspect(sync).has_table(audit_chain_head.name)
            )
        )
        heads: list[str] = []
        with_rows: list[str] = []
        if tables:
            heads = list((await conn.execute(select(audit_chain_head.c.source_id))).scalars())
            with_rows = list(
                (await conn.execute(select(audit_event_table.c.source_id).distinct())).scalars()
            )
    results: dict[str, VerifyResult] = {}
    for source_id in sorted({*heads, *with_rows, *checkpoints}):
        expected = checkpoints.get(source_id)
        if tables:
            results[source_id] = await SqlAuditSink(engine, source_id).verify(expected)
        else:  # the audit tables themselves are gone
            results[source_id] = ChainVerifier(expected).finish(None)
    return results


@dataclass(frozen=True, slots=True)
class _Checked:
    results: dict[str, VerifyResult]
    checkpointed: dict[str, int]


async def _heads_from(checkpoints: Path, key: Path, dev_mode: bool) -> dict[str, dict[int, str]]:
    """Read and verify the checkpoint file; raise InvalidCheckpoint if two disagree."""
    keys = checkpoint_keys(key, dev_mode=dev_mode)
    found = await read_checkpoints(await FileCheckpointLog(checkpoints).lines(), keys)
    heads: dict[str, dict[int, str]] = {}
    for source_id, items in found.items():
        pairs = heads.setdefault(source_id, {})
        for c in items:
            if pairs.setdefault(c.seq, c.hash) != c.hash:
                raise InvalidCheckpoint(f"two checkpoints of {source_id} disagree at seq {c.seq}")
    return heads


def audit_verify_command(
    db_url: str,
    schema: str | None = None,
    *,
    checkpoints: Path | None = None,
    checkpoint_key: Path | None = None,
    dev_mode: bool = False,
    out: TextIO | None = None,
) -> int:
    """Verify all audit chains, print one line per source; 0 ok, 1 broken, 2 cannot check."""
    stream = out or sys.stdout
    if (checkpoints is None) != (checkpoint_key is None):
        stream.write("error: --checkpoints and --checkpoint-key go together\n")
        return 2

    async def run() -> _Checked:
        heads: dict[str, dict[int, str]] = {}
        if checkpoints is not None and checkpoint_key is not None:
            heads = await _heads_from(checkpoints, checkpoint_key, dev_mode)
        engine = _engine(db_url, schema)
        try:
            results = await verify_all(engine, heads)
        finally:
            await engine.dispose()
        return _Checked(results, {s: max(p, default=0) for s, p in heads.items()})

    try:
        checked = asyncio.run(run())
    except InvalidCheckpoint as exc:
        stream.write(f"checkpoints: BROKEN: {exc}\n")
        return 1
    except (OSError, ValueError, KeyError, CheckpointError, JoseError, SQLAlchemyError) as exc:
        stream.write(f"error: cannot check the audit: {exc}\n")
        return 2
    broken = False
    for source_id, result in checked.results.items():
        if result.ok:
            note = (
                f", checkpointed to seq {checked.checkpointed[source_id]}"
                if source_id in checked.checkpointed
                else ""
            )
            stream.write(f"{source_id}: ok ({result.checked} events{note})\n")
        else:
            broken = True
            stream.write(
                f"{source_id}: BROKEN at seq {result.first_bad_seq}: {result.reason} "
                f"({result.checked} events verified before it)\n"
            )
    if not checked.results:
        stream.write("no audit chains found\n")
    if checkpoints is None:
        sys.stderr.write(
            "warning: no --checkpoints given: a chain rewritten or cut short as a whole "
            "is not detected\n"
        )
    return 1 if broken else 0
