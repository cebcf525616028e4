"""Signed audit checkpoints: truncation and rewriting of a chain fail `verify`, on SQLite and
PostgreSQL.

Regression tests for issue 10 E ("`onerecord audit verify` exits 0 with 'no audit chains found'
when every row and the chain head were deleted; deleting the tail and rewinding the head, or
recomputing the plain SHA-256 chain, also verifies").
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from onerecord.audit import (
    Checkpointer,
    FileCheckpointLog,
    MemoryCheckpointLog,
    SqlAuditSink,
    audit_chain_head,
    audit_event_table,
    audit_verify_command,
    canonical,
    checkpoint_keys,
    link_hash,
    load_checkpoint_key,
    read_checkpoints,
    sign_checkpoint,
)
from onerecord.audit.chain import GENESIS_HASH
from onerecord.source.database import make_engine
from onerecord.source.migrate import upgrade
from onerecord.trust.errors import DevelopmentKeyRefused
from onerecord.trust.keys import SigningKey, StaticJwks, load_or_create_dev_key
from tests.audit.factories import retrieve_record, search_record
from tests.conftest import Database

pytestmark = pytest.mark.anyio
SOURCE = "helse-sor-ost"


@pytest.fixture
async def engine(database: Database) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database.url, schema=database.schema)
    await upgrade(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def checkpoint_key() -> SigningKey:
    return SigningKey.generate(kid="audit-checkpoint-1")


@pytest.fixture
def public_key_file(tmp_path: Path, checkpoint_key: SigningKey) -> Path:
    path = tmp_path / "checkpoint.jwks.json"
    path.write_text(json.dumps({"keys": [checkpoint_key.public_jwk()]}))
    return path


@pytest.fixture
def checkpoint_file(tmp_path: Path) -> Path:
    return tmp_path / "outside-the-database" / "audit-checkpoints.jsonl"


async def _checkpointed_chain(
    engine: AsyncEngine, key: SigningKey, path: Path, *, every: int = 2
) -> SqlAuditSink:
    """Five audit rows in three appends, checkpointed every `every` appends and at close."""
    checkpoints = Checkpointer(
        key=key, log=FileCheckpointLog(path), source_id=SOURCE, every=every, interval=60
    )
    sink = SqlAuditSink(engine, SOURCE, checkpoints=checkpoints)
    await sink.append([search_record(0), search_record(1)])
    await sink.append([search_record(2)])
    await sink.append([search_record(3), retrieve_record(4)])
    await sink.close()
    return sink


def _verify(database: Database, checkpoints: Path | None, key: Path | None) -> tuple[int, str]:
    out = io.StringIO()
    code = audit_verify_command(
        database.url, database.schema, checkpoints=checkpoints, checkpoint_key=key, out=out
    )
    return code, out.getvalue()


async def _verify_async(
    database: Database, checkpoints: Path | None, key: Path | None
) -> tuple[int, str]:
    return await anyio.to_thread.run_sync(_verify, database, checkpoints, key)


async def test_untouched_checkpointed_chain_verifies(
    engine: AsyncEngine,
    database: Database,
    checkpoint_key: SigningKey,
    checkpoint_file: Path,
    public_key_file: Path,
) -> None:
    await _checkpointed_chain(engine, checkpoint_key, checkpoint_file)
    lines = checkpoint_file.read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [2, 5]  # every 2 appends
    code, output = await _verify_async(database, checkpoint_file, public_key_file)
    assert (code, output) == (0, f"{SOURCE}: ok (5 events, checkpointed to seq 5)\n")


async def test_deleting_every_row_and_the_head_fails_verify(
    engine: AsyncEngine,
    database: Database,
    checkpoint_key: SigningKey,
    checkpoint_file: Path,
    public_key_file: Path,
) -> None:
    await _checkpointed_chain(engine, checkpoint_key, checkpoint_file)
    async with engine.begin() as conn:
        await conn.execute(delete(audit_event_table))
        await conn.execute(delete(audit_chain_head))
    # Without the checkpoints an emptied database looks new: that is what they are for.
    assert (await _verify_async(database, None, None)) == (0, "no audit chains found\n")
    code, output = await _verify_async(database, checkpoint_file, public_key_file)
    assert code == 1
    assert output == (
        f"{SOURCE}: BROKEN at seq 1: rows deleted: the chain ends before its checkpoint at seq 5 "
        "(0 events verified before it)\n"
    )


async def test_dropping_the_audit_tables_fails_verify(
    engine: AsyncEngine,
    database: Database,
    checkpoint_key: SigningKey,
    checkpoint_file: Path,
    public_key_file: Path,
) -> None:
    await _checkpointed_chain(engine, checkpoint_key, checkpoint_file)
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE audit_event"))
        await conn.execute(text("DROP TABLE audit_chain_head"))
    code, output = await _verify_async(database, checkpoint_file, public_key_file)
    assert code == 1 and f"{SOURCE}: BROKEN at seq 1: rows deleted" in output


async def test_cutting_the_tail_and_rewinding_the_head_fails_verify(
    engine: AsyncEngine,
    database: Database,
    checkpoint_key: SigningKey,
    checkpoint_file: Path,
    public_key_file: Path,
) -> None:
    await _checkpointed_chain(engine, checkpoint_key, checkpoint_file)
    t = audit_event_table.c
    async with engine.begin() as conn:
        await conn.execute(delete(audit_event_table).where(t.seq > 3))
        third = (await conn.execute(select(t.hash).where(t.seq == 3))).scalar_one()
        await conn.execute(update(audit_chain_head).values(last_seq=3, last_hash=third))
    assert (await _verify_async(database, None, None))[0] == 0  # the chain alone looks whole
    code, output = await _verify_async(database, checkpoint_file, public_key_file)
    assert code == 1
    assert output.startswith(f"{SOURCE}: BROKEN at seq 4: rows deleted: the chain ends before")


async def _recompute_plain_chain(engine: AsyncEngine) -> None:
    """What someone with write access does: change a row, then redo every SHA-256 and the head."""
    t = audit_event_table.c
    async with engine.begin() as conn:
        await conn.execute(update(audit_event_table).where(t.seq == 2).values(outcome="denied"))
        rows = (
            await conn.execute(
                select(t.seq, t.recorded, t.patient_id, t.action, t.outcome, t.event).order_by(
                    t.seq
                )
            )
        ).all()
        prev = GENESIS_HASH
        for r in rows:
            digest = link_hash(
                prev,
                canonical(
                    seq=r.seq,
                    recorded=r.recorded.isoformat(timespec="microseconds"),
                    patient_id=r.patient_id,
                    action=r.action,
                    outcome=r.outcome,
                    event=r.event,
                ),
            )
            await conn.execute(
                update(audit_event_table).where(t.seq == r.seq).values(prev_hash=prev, hash=digest)
            )
            prev = digest
        await conn.execute(update(audit_chain_head).values(last_hash=prev))


async def test_recomputed_plain_sha256_chain_fails_verify(
    engine: AsyncEngine,
    database: Database,
    checkpoint_key: SigningKey,
    checkpoint_file: Path,
    public_key_file: Path,
) -> None:
    await _checkpointed_chain(engine, checkpoint_key, checkpoint_file)
    await _recompute_plain_chain(engine)
    assert (await _verify_async(database, None, None))[0] == 0  # the chain alone is fooled
    code, output = await _verify_async(database, checkpoint_file, public_key_file)
    assert (code, output) == (
        1,
        f"{SOURCE}: BROKEN at seq 2: the chain was rewritten: not the checkpointed hash "
        "(1 events verified before it)\n",
    )


async def test_forged_or_edited_checkpoint_fails_verify(
    engine: AsyncEngine,
    database: Database,
    checkpoint_key: SigningKey,
    checkpoint_file: Path,
    public_key_file: Path,
) -> None:
    await _checkpointed_chain(engine, checkpoint_key, checkpoint_file)
    original = checkpoint_file.read_text()
    # A checkpoint signed with another key, say after the rows were rewritten.
    forger = SigningKey.generate(kid="audit-checkpoint-1")
    token = sign_checkpoint(forger, source_id=SOURCE, seq=5, hash="0" * 64, at=1)
    with checkpoint_file.open("a") as fh:
        fh.write(json.dumps({"source_id": SOURCE, "seq": 5, "jws": token}) + "\n")
    code, output = await _verify_async(database, checkpoint_file, public_key_file)
    assert (code, output) == (1, "checkpoints: BROKEN: line 3: signature does not verify\n")
    # The signed payload edited in place.
    first = json.loads(original.splitlines()[0])
    head, payload, signature = first["jws"].split(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    decoded["seq"] = 1
    edited = base64.urlsafe_b64encode(json.dumps(decoded).encode()).rstrip(b"=").decode()
    first["jws"] = f"{head}.{edited}.{signature}"
    checkpoint_file.write_text(json.dumps(first) + "\n")
    code, output = await _verify_async(database, checkpoint_file, public_key_file)
    assert (code, output) == (1, "checkpoints: BROKEN: line 1: signature does not verify\n")


# --- the checkpointer ------------------------------------------------------------------------


async def test_checkpointer_writes_every_n_appends_after_an_interval_and_at_close(
    checkpoint_key: SigningKey,
) -> None:
    log = MemoryCheckpointLog()
    checkpointer = Checkpointer(
        key=checkpoint_key, log=log, source_id=SOURCE, every=3, interval=0.05
    )

    async def seqs() -> list[int]:
        found = await read_checkpoints(log.written, checkpoint_keys_of(checkpoint_key))
        return [c.seq for c in found.get(SOURCE, [])]

    await checkpointer.advanced(1, "a" * 64, appended=1)
    await checkpointer.advanced(3, "c" * 64, appended=2)  # 3 appends: written now
    assert await seqs() == [3]
    await checkpointer.advanced(2, "b" * 64, appended=1)  # committed late: not a newer head
    await checkpointer.advanced(4, "d" * 64, appended=1)
    assert await seqs() == [3]
    await anyio.sleep(0.3)  # the interval passed: the pending head is written
    assert await seqs() == [3, 4]
    await checkpointer.advanced(5, "e" * 64, appended=1)
    await checkpointer.close()
    assert await seqs() == [3, 4, 5]


def checkpoint_keys_of(key: SigningKey) -> StaticJwks:
    return StaticJwks([key])


async def test_a_failing_checkpoint_file_does_not_fail_the_audited_request(
    engine: AsyncEngine, checkpoint_key: SigningKey, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the checkpoint folder should be")
    checkpoints = Checkpointer(
        key=checkpoint_key,
        log=FileCheckpointLog(blocked / "audit-checkpoints.jsonl"),
        source_id=SOURCE,
        every=1,
    )
    sink = SqlAuditSink(engine, SOURCE, checkpoints=checkpoints)
    await sink.append([search_record(0)])
    assert (await sink.verify()).ok


async def test_start_up_checkpoints_the_stored_head(
    engine: AsyncEngine, checkpoint_key: SigningKey
) -> None:
    await SqlAuditSink(engine, SOURCE).append([search_record(0), search_record(1)])
    log = MemoryCheckpointLog()
    sink = SqlAuditSink(
        engine,
        SOURCE,
        checkpoints=Checkpointer(key=checkpoint_key, log=log, source_id=SOURCE),
    )
    await sink.checkpoint_head()
    found = await read_checkpoints(log.written, checkpoint_keys_of(checkpoint_key))
    head = await sink.head()
    assert head is not None
    assert [(c.seq, c.hash) for c in found[SOURCE]] == [(2, head.last_hash)]


# --- keys and the command line ---------------------------------------------------------------


def test_development_checkpoint_key_is_refused_outside_dev_mode(tmp_path: Path) -> None:
    load_or_create_dev_key(tmp_path, name="audit-checkpoint")
    path = tmp_path / "dev-audit-checkpoint.jwk.json"
    with pytest.raises(DevelopmentKeyRefused):
        load_checkpoint_key(path, dev_mode=False)
    assert load_checkpoint_key(path, dev_mode=True).is_development
    with pytest.raises(ValueError, match="development checkpoint key"):
        checkpoint_keys(path, dev_mode=False)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "onerecord.cli", "audit", "verify", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_cli_exit_codes_and_one_line_messages(
    sqlite_database: Database, tmp_path: Path
) -> None:
    engine = make_engine(sqlite_database.url)
    await upgrade(engine)
    load_or_create_dev_key(tmp_path / "keys", name="audit-checkpoint")
    key_file = tmp_path / "keys" / "dev-audit-checkpoint.jwk.json"
    checkpoints = tmp_path / "audit-checkpoints.jsonl"
    try:
        key = load_checkpoint_key(key_file, dev_mode=True)
        await _checkpointed_chain(engine, key, checkpoints)
    finally:
        await engine.dispose()
    db = ["--db", sqlite_database.url, "--checkpoints", str(checkpoints)]

    def run_all() -> list[subprocess.CompletedProcess[str]]:
        return [
            _cli(*db, "--checkpoint-key", str(key_file), "--dev"),
            _cli(*db, "--checkpoint-key", str(key_file)),
            _cli(*db, "--checkpoint-key", str(tmp_path / "missing.jwk.json"), "--dev"),
            _cli(*db),
        ]

    ok, dev_refused, missing, half = await anyio.to_thread.run_sync(run_all)
    assert (ok.returncode, ok.stdout) == (0, f"{SOURCE}: ok (5 events, checkpointed to seq 5)\n")
    assert dev_refused.returncode == 2
    assert dev_refused.stdout.startswith("error: cannot check the audit: refusing development")
    assert missing.returncode == 2 and missing.stdout.count("\n") == 1
    assert (half.returncode, half.stdout) == (
        2,
        "error: --checkpoints and --checkpoint-key go together\n",
    )
    engine = make_engine(sqlite_database.url)
    try:
        async with engine.begin() as conn:
            await conn.execute(delete(audit_event_table))
            await conn.execute(delete(audit_chain_head))
    finally:
        await engine.dispose()
    broken = await anyio.to_thread.run_sync(
        lambda: _cli(*db, "--checkpoint-key", str(key_file), "--dev")
    )
    assert broken.returncode == 1
    assert broken.stdout.count("\n") == 1 and "BROKEN at seq 1: rows deleted" in broken.stdout


def test_demo_signs_every_audit_chain_with_its_development_checkpoint_key(tmp_path: Path) -> None:
    from onerecord.demo import DemoLayout, hub_command, region_command

    layout = DemoLayout(tmp_path, 8100)
    commands = [hub_command(layout, None), *(region_command(layout, i, None) for i in range(4))]
    files = []
    for command in commands:
        key = Path(command[command.index("--audit-checkpoint-key") + 1])
        assert load_checkpoint_key(key, dev_mode=True).is_development
        assert "--dev" in command
        files.append(Path(command[command.index("--audit-checkpoints") + 1]))
    assert len(set(files)) == 5  # one checkpoint file per chain
    assert files[0] == tmp_path / "hub" / "audit-checkpoints.jsonl"
