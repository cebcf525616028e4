"""The audit hash chain: each row's hash covers the previous hash and the row's canonical JSON.

hash(n) = SHA-256(prev_hash(n) || canonical(row n)), prev_hash(1) = 64 zeros, where canonical is
orjson with sorted keys over seq, recorded, patient_id, action, outcome and the event. Because the
sequence number is inside the hash and the chain head (last seq and hash) is kept apart, an
edited, deleted (also the last), inserted or reordered row breaks verification.

Whoever can write the database can also recompute the chain, or cut it and rewind its head;
signed checkpoints kept outside the database (checkpoint.py) catch that: given the checkpointed
(seq, hash) pairs, the row at each such seq must carry that hash and the chain must reach the
highest of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "GENESIS_HASH",
    "ChainHead",
    "ChainRow",
    "ChainVerifier",
    "VerifyResult",
    "canonical",
    "link_hash",
    "verify_chain",
]

GENESIS_HASH = "0" * 64


@dataclass(frozen=True, slots=True)
class ChainRow:
    """One stored audit row as the chain sees it."""

    seq: int
    recorded: str
    patient_id: str | None
    action: str
    outcome: str
    event: Mapping[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last link, kept in its own row so that deleting the newest rows is noticed."""

    last_seq: int
    last_hash: str


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The verdict: ok, or the first sequence number that does not fit and why."""

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str | None = None


def canonical(
    *,
    seq: int,
    recorded: str,
    patient_id: str | None,
    action: str,
    outcome: str,
    event: Mapping[str, Any],
) -> bytes:
    """Return the canonical bytes of one row (orjson, keys sorted)."""
    return orjson.dumps(
        {
            "seq": seq,
            "recorded": recorded,
            "patient_id": patient_id,
            "action": action,
            "outcome": outcome,
            "event": event,
        },
        option=orjson.OPT_SORT_KEYS,
    )


def link_hash(prev_hash: str, row_bytes: bytes) -> str:
    """Return SHA-256(prev_hash || canonical row) as hex."""
    return hashlib.sha256(prev_hash.encode("ascii") + row_bytes).hexdigest()


class ChainVerifier:
    """Check a chain row by row, so a long chain can be streamed rather than loaded whole."""

    def __init__(self, checkpoints: Mapping[int, str] | None = None) -> None:
        self.checkpoints = dict(checkpoints or {})
        self.expected_seq = 1
        self.prev = GENESIS_HASH
        self.checked = 0
        self.failure: VerifyResult | None = None

    def feed(self, row: ChainRow) -> bool:
        """Check the next row in seq order; False once the chain is found broken."""
        if self.failure is not None:
            return False
        if row.seq != self.expected_seq:
            self.failure = VerifyResult(
                False, self.checked, self.expected_seq, "missing or reordered row"
            )
        elif row.prev_hash != self.prev:
            self.failure = VerifyResult(
                False, self.checked, row.seq, "previous hash does not match"
            )
        else:
            body = canonical(
                seq=row.seq,
                recorded=row.recorded,
                patient_id=row.patient_id,
                action=row.action,
                outcome=row.outcome,
                event=row.event,
            )
            if link_hash(self.prev, body) != row.hash:
                self.failure = VerifyResult(
                    False, self.checked, row.seq, "row content does not match its hash"
                )
            elif self.checkpoints.get(row.seq, row.hash) != row.hash:
                self.failure = VerifyResult(
                    False,
                    self.checked,
                    row.seq,
                    "the chain was rewritten: not the checkpointed hash",
                )
        if self.failure is not None:
            return False
        self.prev = row.hash
        self.expected_seq += 1
        self.checked += 1
        return True

    def finish(self, head: ChainHead | None) -> VerifyResult:
        """The verdict, comparing the last row with the chain head (catches a cut-off tail)."""
        if self.failure is not None:
            return self.failure
        checked, prev = self.checked, self.prev
        last_checkpoint = max(self.checkpoints, default=0)
        if last_checkpoint > checked:
            return VerifyResult(
                False,
                checked,
                checked + 1,
                f"rows deleted: the chain ends before its checkpoint at seq {last_checkpoint}",
            )
        if head is not None and (head.last_seq != checked or head.last_hash != prev):
            return VerifyResult(False, checked, checked + 1, "rows after the last one are missing")
        if head is None and checked:
            return VerifyResult(False, checked, checked + 1, "the chain head is missing")
        return VerifyResult(True, checked)


def verify_chain(
    rows: Iterable[ChainRow],
    *,
    head: ChainHead | None = None,
    checkpoints: Mapping[int, str] | None = None,
) -> VerifyResult:
    """Check rows in seq order: consecutive numbers from 1, links, hashes, head, checkpoints."""
    verifier = ChainVerifier(checkpoints)
    for row in rows:
        if not verifier.feed(row):
            break
    return verifier.finish(head)
