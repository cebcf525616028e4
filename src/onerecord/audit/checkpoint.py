"""Signed checkpoints of the audit chain head, kept outside the database.

The hash chain (chain.py) shows an edited, inserted or reordered row, but not a database
rewritten as a whole: whoever can write the tables can recompute every SHA-256, delete the tail
and rewind the head, or delete everything. A checkpoint is the head of one chain (source_id,
seq, hash) signed as a compact JWS with a key that is not in the database, appended as one JSON
line to a file outside it. `verify` then fails when a checkpoint's signature does not hold,
when the row at a checkpoint's seq has another hash (the chain was rewritten), or when the
chain ends before the last checkpoint (truncated, down to nothing). Rows written after the last
checkpoint are protected by the chain alone: a checkpoint is written every `every` appends and
at most `interval` seconds after any append, at start-up and at shutdown.

    CheckpointError
    └── InvalidCheckpoint   a checkpoint line is malformed or its signature does not verify

References: RFC 7515 (JWS); RFC 6962 §3.5 (signed tree heads, the same idea for logs);
/work/shared/ANCHORS.md (append-only, hash-chained audit).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import anyio.to_thread
import orjson
import structlog

from onerecord.trust.errors import TrustError
from onerecord.trust.keys import (
    DEV_KEY_MARKER,
    KeyProvider,
    SigningKey,
    StaticJwks,
    require_usable_key,
    verify_signed_jwt,
)

__all__ = [
    "CHECKPOINT_TYP",
    "Checkpoint",
    "CheckpointError",
    "CheckpointLog",
    "Checkpointer",
    "FileCheckpointLog",
    "InvalidCheckpoint",
    "MemoryCheckpointLog",
    "checkpoint_keys",
    "load_checkpoint_key",
    "read_checkpoints",
    "sign_checkpoint",
]

CHECKPOINT_TYP = "onerecord-audit-checkpoint+jwt"

log = structlog.get_logger("onerecord.audit")


class CheckpointError(Exception):
    """Audit checkpoints could not be written or read."""


class InvalidCheckpoint(CheckpointError):
    """A checkpoint line is malformed or its signature does not verify."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The head of one audit chain at a moment, as signed: source, last seq and its hash."""

    source_id: str
    seq: int
    hash: str
    at: int


def sign_checkpoint(key: SigningKey, *, source_id: str, seq: int, hash: str, at: int) -> str:
    """Return the compact JWS of one checkpoint."""
    return key.sign(
        {"source_id": source_id, "seq": seq, "hash": hash, "iat": at}, typ=CHECKPOINT_TYP
    )


class CheckpointLog(Protocol):
    """Where checkpoints are appended, one line each, and read back."""

    async def open(self) -> None:
        """Create the log if it is missing (at start-up, so that `verify` finds it)."""

    async def append(self, line: str) -> None:
        """Append one line durably."""

    async def lines(self) -> list[str]:
        """Return every line, oldest first."""


class FileCheckpointLog:
    """Checkpoints as JSON lines in a file opened for appending only, fsynced per line."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    async def open(self) -> None:
        await anyio.to_thread.run_sync(self._write, b"")

    async def append(self, line: str) -> None:
        await anyio.to_thread.run_sync(self._write, line.encode("utf-8") + b"\n")

    def _write(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            # One write of one line: several processes appending to one file do not interleave.
            if data:
                os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    async def lines(self) -> list[str]:
        text = await anyio.to_thread.run_sync(self.path.read_text, "utf-8")
        return text.splitlines()


class MemoryCheckpointLog:
    """Checkpoint lines in a list: the fake for unit tests."""

    def __init__(self) -> None:
        self.written: list[str] = []

    async def open(self) -> None:
        pass

    async def append(self, line: str) -> None:
        self.written.append(line)

    async def lines(self) -> list[str]:
        return list(self.written)


def load_checkpoint_key(path: Path, *, dev_mode: bool) -> SigningKey:
    """Load the private checkpoint key (a JWK file); refuse a development key outside dev mode."""
    key = SigningKey.from_jwk(orjson.loads(Path(path).read_bytes()))
    return require_usable_key(key, dev_mode=dev_mode)


def checkpoint_keys(path: Path, *, dev_mode: bool) -> StaticJwks:
    """Load the public checkpoint key(s) from a JWK or JWKS file (a private JWK gives its public).

    A development key (kid "dev-…") is refused outside dev mode, as for signing.
    """
    document: Any = orjson.loads(Path(path).read_bytes())
    jwks = document.get("keys") if isinstance(document, dict) else None
    items = jwks if isinstance(jwks, list) else [document]
    keys: list[SigningKey | Mapping[str, Any]] = []
    for item in items:
        if not isinstance(item, dict):
            raise ValueError(f"{path} holds no JWK or JWKS")
        kid = str(item.get("kid", ""))
        if kid.startswith(DEV_KEY_MARKER) and not dev_mode:
            raise ValueError(f"refusing development checkpoint key {kid!r} outside dev mode")
        keys.append(SigningKey.from_jwk(item) if "d" in item else item)
    return StaticJwks(keys)


async def read_checkpoints(lines: Iterable[str], keys: KeyProvider) -> dict[str, list[Checkpoint]]:
    """Verify every checkpoint line; return them per source, in file order."""
    found: dict[str, list[Checkpoint]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            token = orjson.loads(line)["jws"]
            if not isinstance(token, str):
                raise TypeError
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise InvalidCheckpoint(f"line {number} is not a checkpoint") from None
        try:
            claims = await verify_signed_jwt(
                token, keys=keys, accepted_typ=frozenset({CHECKPOINT_TYP}), what="checkpoint"
            )
        except TrustError:
            raise InvalidCheckpoint(f"line {number}: signature does not verify") from None
        source_id, seq, digest, at = (claims.get(k) for k in ("source_id", "seq", "hash", "iat"))
        if not (
            isinstance(source_id, str)
            and type(seq) is int
            and seq >= 0
            and isinstance(digest, str)
            and type(at) is int
        ):
            raise InvalidCheckpoint(f"line {number}: claims are not a checkpoint")
        found.setdefault(source_id, []).append(Checkpoint(source_id, seq, digest, at))
    return found


class Checkpointer:
    """Signs the head of one source's chain and appends it: every `every` appends, or
    `interval` seconds after an append that is not yet checkpointed.

    `SqlAuditSink` calls `advanced` after each committed append; `close` writes what is
    pending. Heads are compared by seq, so appends that commit out of order are harmless.
    """

    def __init__(
        self,
        *,
        key: SigningKey,
        log: CheckpointLog,
        source_id: str,
        every: int = 100,
        interval: float = 10.0,
    ) -> None:
        if every < 1 or interval <= 0:
            raise ValueError("checkpoint every >= 1 append and interval > 0 seconds")
        self.key = key
        self.log = log
        self.source_id = source_id
        self.every = every
        self.interval = interval
        self._latest: tuple[int, str] | None = None
        self._written_seq = -1
        self._since = 0
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None

    async def advanced(self, seq: int, digest: str, *, appended: int) -> None:
        """Note a committed head; write a checkpoint if `every` appends are pending."""
        if self._latest is None or seq > self._latest[0]:
            self._latest = (seq, digest)
        self._since += appended
        if self._since >= self.every:
            await self._flush_logged()
        elif self._timer is None or self._timer.done():
            self._timer = asyncio.create_task(self._flush_later())

    async def open(self) -> None:
        """Create the checkpoint log if it is missing."""
        await self.log.open()

    async def checkpoint(self, seq: int, digest: str) -> None:
        """Write a checkpoint of this head now (the stored head, at start-up)."""
        if self._latest is None or seq > self._latest[0]:
            self._latest = (seq, digest)
        await self.flush()

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.interval)
        await self._flush_logged()

    async def _flush_logged(self) -> None:
        # The access is audited (the rows are committed); a checkpoint that cannot be written
        # is an operator's alarm, not the caller's failure. The next flush tries again.
        try:
            await self.flush()
        except (OSError, CheckpointError) as exc:
            log.error("audit.checkpoint_failed", source_id=self.source_id, error=type(exc).__name__)

    async def flush(self) -> None:
        """Write a checkpoint of the latest head unless it is written already."""
        async with self._lock:
            if self._latest is None or self._latest[0] <= self._written_seq:
                return
            seq, digest = self._latest
            self._since = 0
            token = sign_checkpoint(
                self.key, source_id=self.source_id, seq=seq, hash=digest, at=int(time.time())
            )
            line = {"source_id": self.source_id, "seq": seq, "kid": self.key.kid, "jws": token}
            await self.log.append(orjson.dumps(line).decode("ascii"))
            self._written_seq = seq

    async def close(self) -> None:
        """Stop the timer and write what is pending."""
        if self._timer is not None and not self._timer.done():
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        await self.flush()
