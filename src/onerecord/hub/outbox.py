"""The hub's outbox of patient-control changes that a region has not yet confirmed.

A citizen's privacy change (reservation, a blocked document, a blocked health worker) must hold
in every region or be shown as pending and retried until it does (issue 11 defect 5). The hub
fans the change out, so the hub knows which regions failed; it keeps one row per (control,
region) not yet confirmed, and a background task re-sends each row with back-off until the
region answers 2xx. Rows live in the hub's store (`outbox_db.py`), so a restart loses nothing.

Invariants:

- One row per key (patient, kind, target, region); a row carries the change's `seq`, the order
  in which the hub accepted changes. A newer change for the same key replaces the row (never
  the reverse), and a newer change confirmed by the region directly removes it: a retried old
  «block» can never undo a newer «unblock».
- A row is sent, and a live change of the same control is fanned out, only under that
  control's lock (`ControlLocks`), and the row is re-read under the lock before it is sent:
  the region sees the changes of one control in the order the hub accepted them. The locks are
  in-process: one hub process retries (docs/hub.md "Pending control changes").
- A region that refuses a row (403, another 4xx but 401 and 429) is not asked again: the row is kept
  as `refused` so that the citizen is told, until a newer change of the control replaces it.

References: issue 11 defect 5; TRUST-FRAMEWORK §4.5 (blocks, reservation); the transactional
outbox pattern; RFC 9110 §9.2.2 (PUT and DELETE are idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

import structlog

from onerecord.hub.results import RegionResult, RegionStatus

__all__ = [
    "ControlKey",
    "ControlLocks",
    "MemoryOutbox",
    "Outbox",
    "OutboxWorker",
    "PendingChange",
    "PendingState",
    "RowKey",
    "Sequencer",
    "Verdict",
    "backoff_delay",
    "pending_json",
    "verdict",
]

log = structlog.get_logger("onerecord.hub.outbox")

ControlKey = tuple[str, str, str]
"""(patient, kind, target) of one control: what the order of changes is kept for."""
RowKey = tuple[str, str, str, str]
"""(patient, kind, target, region): one row of the outbox."""


class PendingState(StrEnum):
    PENDING = "pending"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class PendingChange:
    """One control change a region has not confirmed yet: what to send, to whom, as whom."""

    patient: str
    """The person whose control it is ('' when the hub runs open and none was named)."""
    kind: str
    target: str
    """The document uniqueId or HPR number; '' for the reservation."""
    region: str
    """The region's homeCommunityId."""
    on: bool
    seq: int
    accepted_at: float
    path_and_query: str
    correlation_id: str
    asserted: dict[str, Any] | None = None
    """What the hub asserts to the region on the citizen's behalf (security.deferred_identity);
    None when the hub runs in development open access."""
    attempts: int = 0
    next_at: float = 0.0
    state: PendingState = PendingState.PENDING
    detail: str | None = None

    @property
    def key(self) -> RowKey:
        return (self.patient, self.kind, self.target, self.region)

    @property
    def control(self) -> ControlKey:
        return (self.patient, self.kind, self.target)

    @property
    def method(self) -> str:
        return "PUT" if self.on else "DELETE"


class Verdict(StrEnum):
    """What a region's answer to a change means for its row."""

    CONFIRMED = "confirmed"
    RETRY = "retry"
    REFUSED = "refused"


def verdict(result: RegionResult) -> Verdict:
    """Confirmed (2xx), refused for good (403, or another 4xx but 401 and 429), or worth
    trying again: a 401 is the region not (yet) trusting the assertion — its copy of the hub's
    keys out of date, or fetched while the hub was restarting — which passes."""
    if result.status is RegionStatus.OK:
        return Verdict.CONFIRMED
    if result.status.caused_by_caller and result.http_status not in (401, 429):
        return Verdict.REFUSED
    return Verdict.RETRY


def backoff_delay(attempts: int, *, base_s: float, cap_s: float) -> float:
    """Seconds to wait after the `attempts`-th failed try: base, 2·base, 4·base, … up to cap.

    No jitter: one hub retries, with at most one row per control and region in flight.
    """
    if attempts < 1:
        return 0.0
    return min(cap_s, base_s * 2.0 ** min(attempts - 1, 32))


class Outbox(Protocol):
    """Where pending changes are kept (memory for tests and open dev; SQL otherwise)."""

    async def offer(self, change: PendingChange) -> bool:
        """Store `change` unless a change of the same key with a later seq is stored."""

    async def settle(self, key: RowKey, seq: int) -> None:
        """Remove the key's row if its seq is at most `seq` (confirmed, or superseded)."""

    async def get(self, key: RowKey) -> PendingChange | None: ...

    async def due(self, now: float, limit: int) -> list[PendingChange]:
        """Pending rows whose next try is due, soonest first."""

    async def reschedule(
        self,
        key: RowKey,
        seq: int,
        *,
        attempts: int,
        next_at: float,
        detail: str,
    ) -> None:
        """Record a failed try of the row with this seq (a newer row is left alone)."""

    async def refuse(self, key: RowKey, seq: int, detail: str) -> None:
        """Mark the row with this seq refused: it is not sent again."""

    async def for_patient(self, patient: str) -> list[PendingChange]:
        """Every row of one person (pending and refused), oldest first."""


@dataclass
class MemoryOutbox:
    """An Outbox in a dict: for tests and development open access (not durable)."""

    rows: dict[RowKey, PendingChange] = field(default_factory=dict)

    async def offer(self, change: PendingChange) -> bool:
        old = self.rows.get(change.key)
        if old is not None and old.seq >= change.seq:
            return False
        self.rows[change.key] = change
        return True

    async def settle(self, key: RowKey, seq: int) -> None:
        old = self.rows.get(key)
        if old is not None and old.seq <= seq:
            del self.rows[key]

    async def get(self, key: RowKey) -> PendingChange | None:
        return self.rows.get(key)

    async def due(self, now: float, limit: int) -> list[PendingChange]:
        rows = [
            r for r in self.rows.values() if r.state is PendingState.PENDING and r.next_at <= now
        ]
        return sorted(rows, key=lambda r: (r.next_at, r.seq))[:limit]

    async def reschedule(
        self,
        key: RowKey,
        seq: int,
        *,
        attempts: int,
        next_at: float,
        detail: str,
    ) -> None:
        old = self.rows.get(key)
        if old is not None and old.seq == seq:
            self.rows[key] = replace(old, attempts=attempts, next_at=next_at, detail=detail)

    async def refuse(self, key: RowKey, seq: int, detail: str) -> None:
        old = self.rows.get(key)
        if old is not None and old.seq == seq:
            self.rows[key] = replace(old, state=PendingState.REFUSED, detail=detail)

    async def for_patient(self, patient: str) -> list[PendingChange]:
        return sorted((r for r in self.rows.values() if r.patient == patient), key=lambda r: r.seq)


class ControlLocks:
    """One asyncio lock per control: live changes and retries of a control never overlap."""

    def __init__(self) -> None:
        self._locks: dict[ControlKey, asyncio.Lock] = {}
        self._users: dict[ControlKey, int] = {}

    @contextlib.asynccontextmanager
    async def hold(self, control: ControlKey) -> AsyncIterator[None]:
        lock = self._locks.setdefault(control, asyncio.Lock())
        self._users[control] = self._users.get(control, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[control] -= 1
            if not self._users[control]:
                del self._users[control], self._locks[control]


class Sequencer:
    """The order in which the hub accepts changes: nanoseconds of the wall clock, strictly
    increasing within the process (a restart continues from a later wall-clock time)."""

    def __init__(self, clock: Callable[[], int] = time.time_ns) -> None:
        self._clock = clock
        self._last = 0

    def next(self) -> int:
        self._last = max(self._last + 1, self._clock())
        return self._last


Send = Callable[[PendingChange], Awaitable[RegionResult | None]]
"""Send one row to its region; None when the region is no longer in the directory."""


class OutboxWorker:
    """Re-send due rows until their regions confirm them; runs for the life of the hub."""

    def __init__(
        self,
        outbox: Outbox,
        locks: ControlLocks,
        send: Send,
        *,
        base_s: float,
        cap_s: float,
        poll_s: float,
        batch: int = 50,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.outbox = outbox
        self.locks = locks
        self.send = send
        self.base_s = base_s
        self.cap_s = cap_s
        self.poll_s = poll_s
        self.batch = batch
        self.clock = clock

    async def run_once(self) -> int:
        """Try every due row once; return how many its region confirmed."""
        confirmed = 0
        for row in await self.outbox.due(self.clock(), self.batch):
            async with self.locks.hold(row.control):
                # Re-read under the lock: a live change may have replaced or settled it.
                current = await self.outbox.get(row.key)
                if current is None or current.seq != row.seq:
                    continue
                if current.state is not PendingState.PENDING:
                    continue
                confirmed += await self._try(current)
        return confirmed

    async def _try(self, row: PendingChange) -> int:
        result = await self.send(row)
        if result is None:
            await self.outbox.refuse(row.key, row.seq, "the region left the directory")
            log.warning("hub.outbox.refused", region=row.region, kind=row.kind, why="directory")
            return 0
        outcome = verdict(result)
        if outcome is Verdict.CONFIRMED:
            await self.outbox.settle(row.key, row.seq)
            log.info(
                "hub.outbox.confirmed", region=row.region, kind=row.kind, attempts=row.attempts + 1
            )
            return 1
        detail = result.detail or result.status.value
        if outcome is Verdict.REFUSED:
            await self.outbox.refuse(row.key, row.seq, detail)
            log.warning("hub.outbox.refused", region=row.region, kind=row.kind, status=detail)
            return 0
        attempts = row.attempts + 1
        delay = backoff_delay(attempts, base_s=self.base_s, cap_s=self.cap_s)
        await self.outbox.reschedule(
            row.key, row.seq, attempts=attempts, next_at=self.clock() + delay, detail=detail
        )
        log.info(
            "hub.outbox.retry_later",
            region=row.region,
            kind=row.kind,
            attempts=attempts,
            delay_s=round(delay, 3),
            status=result.status.value,
        )
        return 0

    async def run(self) -> None:
        """Loop until cancelled; an error in one round is logged and the next round comes."""
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one bad round (database away) must not end the retries
                log.error("hub.outbox.round_failed", error=type(exc).__name__)
            await asyncio.sleep(self.poll_s)


def pending_json(rows: Sequence[PendingChange], names: dict[str, str]) -> list[dict[str, Any]]:
    """The pending part of a controls answer: each change not yet confirmed, and by whom."""
    return [
        {
            "kind": r.kind,
            "target": r.target or None,
            "on": r.on,
            "homeCommunityId": r.region,
            "name": names.get(r.region, r.region),
            "state": r.state.value,
            "since": r.accepted_at,
            "attempts": r.attempts,
        }
        for r in rows
    ]
