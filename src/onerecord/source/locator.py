"""The region's side of the locator: an event per registry change, published after the commit.

Best effort and never in the way of ITI-65: `registered` only queues the events; one task sends
them in order. Each event gets the region's next sequence number, taken from the region's last
event in the stream and appended only if that is still the last one (two processes of one region
take turns instead of reusing a number). An event that cannot be sent still uses up its number,
and the heartbeat announces the latest number, so the hub sees that it missed one and keeps
asking this region: a lost event costs speed, never a missed document.

Each process begins with a start event counting the entries its registry holds: the hub trusts
a region only while the count matches the entries its stream has named, so neither documents
registered before the locator was switched on nor an event lost just before a restart can hide.

A backfill brings the hub's view of the region back (`backfill`): a begin event, then the
registry's holdings in large parts sent without waiting for each other, then an end event with
the number of parts and entries. The registry is read only once the begin is in the stream, so
a registration is in the holdings or its own event follows the begin. The region backfills when
it starts with entries its stream has never named (the locator switched on late; the stream
purged or lost), when it finds its stream gone from under it, and when a hub asks (at most
every `backfill_pause_s`).

References: Sweden's engagement index (a care giver's system reports each new record).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from onerecord.domain import HomeCommunityId
from onerecord.events import (
    MAX_HOLDINGS_BYTES,
    BackfillBegin,
    BackfillEnd,
    BusUnavailable,
    EntryStatus,
    EventPublisher,
    InvalidEvent,
    RegionHeartbeat,
    RegionStreamStart,
    RegistryEvent,
    SequencedEvent,
    WrongLastEvent,
    backfill_request_subject,
    decode_event,
    event_subject,
    heartbeat_subject,
    holdings_subject,
    patient_key,
)
from onerecord.events import (
    Holdings as HoldingsPart,
)
from onerecord.source.schema import document_entry
from onerecord.source.store import RegisterResult

__all__ = ["Holdings", "RegistryPublisher", "registry_holdings"]

log = structlog.get_logger("onerecord.source.locator")

_MAX_QUEUED = 100_000
_MAX_RETRIES = 5
_PART_BYTES = MAX_HOLDINGS_BYTES * 3 // 4
"""A holdings part is sent once it is about this large (the rest is room for the envelope)."""
_WINDOW = 16
"""Holdings parts sent before their acknowledgements are awaited together."""

Holdings = Callable[[], AsyncIterator[tuple[str, str]]]
"""What a backfill reads: every entry of the registry as (patient id, uniqueId), by patient."""


def registry_holdings(engine: AsyncEngine, rows_per_fetch: int = 5000) -> Holdings:
    """Read every registry entry as (patient id, uniqueId), ordered by patient, streamed."""

    async def read() -> AsyncIterator[tuple[str, str]]:
        e = document_entry.c
        query = select(e.patient_id, e.unique_id).order_by(e.patient_id, e.seq)
        async with engine.connect() as conn:
            result = await conn.stream(query.execution_options(yield_per=rows_per_fetch))
            async for rows in result.partitions(rows_per_fetch):
                for patient_id, unique_id in rows:
                    yield patient_id, unique_id

    return read


@dataclass
class _Numbered:
    """A begin or end event waiting for its number in the send queue."""

    build: Callable[[int], SequencedEvent]
    done: asyncio.Future[int] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass
class _Part:
    """A holdings part being filled: per patient digest, its entries, and a size estimate."""

    patients: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    size: int = 0


class RegistryPublisher:
    """Publishes this region's registry events and heartbeats to the event bus."""

    def __init__(
        self,
        *,
        bus: EventPublisher,
        home_community_id: HomeCommunityId,
        key: bytes,
        subject_prefix: str,
        heartbeat_s: float,
        holdings: Holdings | None = None,
        backfill_pause_s: float = 10.0,
    ) -> None:
        self.bus = bus
        self.home_community_id = home_community_id
        self.key = key
        self.subject = event_subject(home_community_id, subject_prefix)
        self.holdings_subject = holdings_subject(home_community_id, subject_prefix)
        self.heartbeat_subject = heartbeat_subject(home_community_id, subject_prefix)
        self.request_subject = backfill_request_subject(home_community_id, subject_prefix)
        self.heartbeat_s = heartbeat_s
        self.holdings = holdings
        self.backfill_pause_s = backfill_pause_s
        self._backfill: asyncio.Task[None] | None = None
        self._backfill_began = -float("inf")
        self.backfills = 0
        """Backfills completed by this process."""
        self.sequence = 0
        """The latest sequence number used, sent or not."""
        self._last_stored = 0
        """The stream sequence of the region's last event in the stream (0: none)."""
        self._queue: asyncio.Queue[tuple[str, str, EntryStatus] | _Numbered] = asyncio.Queue(
            _MAX_QUEUED
        )
        self._tasks: list[asyncio.Task[None]] = []
        self.dropped = 0

    async def start(self, prior_entries: Callable[[], Awaitable[int]]) -> None:
        """Learn the last sequence number from the stream; start sending and heartbeats.

        Each start appends a start event counting the entries the registry holds
        (`prior_entries`): the hub skips a region only while that count matches the entries its
        stream has named (0 for a new stream), so a registration whose event was lost before a
        restart is noticed. A registry holding entries the stream has never named (nothing of
        the region in the stream) is backfilled at once. Raise BusUnavailable when the bus
        cannot be asked.
        """
        named = True
        for _ in range(_MAX_RETRIES):
            named = await self._resync()
            start = RegionStreamStart(
                self.home_community_id, self.sequence + 1, await prior_entries()
            )
            try:
                self._last_stored = await self.bus.append(
                    self.subject, start.encode(), after=self._last_stored
                )
            except WrongLastEvent:  # another process of this region appended meanwhile
                continue
            self.sequence = start.sequence
            break
        else:
            raise BusUnavailable("the region's stream kept changing while starting")
        self._tasks = [
            asyncio.create_task(self._send_loop(), name="locator-send"),
            asyncio.create_task(self._heartbeat_loop(), name="locator-heartbeat"),
        ]
        if self.holdings is not None:
            await self.bus.listen(self.request_subject, self._on_request)
            if not named and start.prior_entries > 0:
                self.request_backfill("registry-not-in-stream")

    async def _resync(self) -> bool:
        """Learn the region's last event in the stream; return False when there is none."""
        last = await self.bus.last(self.subject)
        if last is None:
            if self._last_stored:
                # Our events are gone from the stream (purged, or a new stream): tell it again.
                self.request_backfill("stream-lost")
            self._last_stored, stored_sequence = 0, 0
        else:
            try:
                event = decode_event(last.data)
                stored_sequence = 0 if isinstance(event, HoldingsPart) else event.sequence
            except InvalidEvent:
                stored_sequence = 0
                log.error("locator.publisher.invalid_last_event", subject=self.subject)
            self._last_stored = last.stream_sequence
        self.sequence = max(self.sequence, stored_sequence)
        return last is not None

    # backfill ------------------------------------------------------------------------------

    def _on_request(self, _data: bytes) -> None:
        self.request_backfill("hub-asked")

    def request_backfill(self, reason: str) -> None:
        """Start a backfill unless one is under way or one began less than the pause ago."""
        if self.holdings is None or (self._backfill is not None and not self._backfill.done()):
            return
        if time.monotonic() - self._backfill_began < self.backfill_pause_s:
            return
        self._backfill_began = time.monotonic()
        log.info("locator.backfill.requested", reason=reason)
        self._backfill = asyncio.create_task(self._run_backfill(), name="locator-backfill")

    async def backfilled(self) -> None:
        """Wait for the backfill under way, if any (tests)."""
        if self._backfill is not None:
            await asyncio.shield(self._backfill)

    async def _run_backfill(self) -> None:
        try:
            await self.backfill()
        except BusUnavailable as exc:
            # The hub sees a begin without its end (or a gap) and keeps asking this region.
            log.warning("locator.backfill.failed", reason=str(exc)[:200])

    async def backfill(self) -> tuple[int, int]:
        """Publish the registry's holdings as a new view of the region; return (parts, entries).

        Begin (numbered, in the send queue's order), then read the registry and send its
        holdings in parts, acknowledgements awaited per window, then end (numbered).
        """
        assert self.holdings is not None
        started = time.perf_counter()
        epoch = await self._numbered(lambda seq: BackfillBegin(self.home_community_id, seq))
        parts: list[bytes] = []
        sent = entries = 0
        part = _Part()

        async def close_part() -> None:
            nonlocal part, sent
            if part.patients:
                holdings = HoldingsPart(self.home_community_id, epoch, sent, tuple(part.patients))
                parts.append(holdings.encode())
                sent += 1
                part = _Part()
            if len(parts) >= _WINDOW:
                await self.bus.store_many(self.holdings_subject, parts)
                parts.clear()

        patient_id: str | None = None
        unique_ids: list[str] = []

        async def close_patient() -> None:
            if patient_id is None:
                return
            digest = patient_key(patient_id, self.key)
            part.patients.append((digest, tuple(unique_ids)))
            part.size += 72 + sum(len(u) + 3 for u in unique_ids)
            if part.size >= _PART_BYTES:
                await close_part()

        async for patient, unique_id in self.holdings():
            if patient != patient_id:
                await close_patient()
                patient_id, unique_ids = patient, []
            unique_ids.append(unique_id)
            entries += 1
        await close_patient()
        await close_part()
        if parts:
            await self.bus.store_many(self.holdings_subject, parts)
        await self._numbered(
            lambda seq: BackfillEnd(self.home_community_id, seq, epoch, sent, entries)
        )
        self.backfills += 1
        log.info(
            "locator.backfill.done",
            epoch=epoch,
            parts=sent,
            entries=entries,
            seconds=round(time.perf_counter() - started, 3),
        )
        return sent, entries

    async def _numbered(self, build: Callable[[int], SequencedEvent]) -> int:
        """Send a begin or end event in the queue's order; return its sequence number."""
        marker = _Numbered(build)
        await self._queue.put(marker)
        return await marker.done

    def registered(self, result: RegisterResult) -> None:
        """Queue the events of one committed registration: new entries and replaced ones."""
        superseded = {u.value for u in result.superseded}
        for entry in result.entries:
            patient = patient_key(entry.patient_id.value, self.key)
            self._put(patient, entry.unique_id.value, EntryStatus.CURRENT)
            if entry.replaces is not None and entry.replaces.value in superseded:
                self._put(patient, entry.replaces.value, EntryStatus.SUPERSEDED)

    def _put(self, patient: str, entry: str, status: EntryStatus) -> None:
        try:
            self._queue.put_nowait((patient, entry, status))
        except asyncio.QueueFull:
            self._lose()

    def _lose(self) -> None:
        """Count an event that will never be sent; its number is used up so the hub sees a gap."""
        self.sequence += 1
        self.dropped += 1
        log.warning("locator.publisher.event_lost", sequence=self.sequence)

    async def _send_loop(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                if isinstance(item, _Numbered):
                    sequence = await self._send(item.build)
                    if sequence:
                        item.done.set_result(sequence)
                    else:
                        item.done.set_exception(BusUnavailable("a backfill marker was lost"))
                else:
                    await self._send(self._change(*item))
            finally:
                self._queue.task_done()

    def _change(
        self, patient: str, entry: str, status: EntryStatus
    ) -> Callable[[int], SequencedEvent]:
        def build(sequence: int) -> SequencedEvent:
            return RegistryEvent(self.home_community_id, sequence, patient, entry, status)

        return build

    async def _send(self, build: Callable[[int], SequencedEvent]) -> int:
        """Append the event `build` makes with the next number; return it (0: lost)."""
        for _ in range(_MAX_RETRIES):
            event = build(self.sequence + 1)
            try:
                self._last_stored = await self.bus.append(
                    self.subject, event.encode(), after=self._last_stored
                )
            except WrongLastEvent:
                # Another process of this region appended: continue after its event.
                with contextlib.suppress(BusUnavailable):
                    await self._resync()
                continue
            except BusUnavailable:
                break
            self.sequence = event.sequence
            return event.sequence
        self._lose()
        return 0

    async def _heartbeat_loop(self) -> None:
        while True:
            beat = RegionHeartbeat(self.home_community_id, self.sequence)
            with contextlib.suppress(BusUnavailable):
                await self.bus.announce(self.heartbeat_subject, beat.encode())
            await asyncio.sleep(self.heartbeat_s)

    async def drain(self) -> None:
        """Wait until every queued event has been sent or given up (tests, shutdown)."""
        await self._queue.join()

    async def close(self, *, drain_s: float = 2.0) -> None:
        """Send what is queued (for at most `drain_s`), then stop.

        An event still queued after that is lost; the next start's count makes the hub notice.
        """
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), drain_s)
        tasks = [*self._tasks, *([self._backfill] if self._backfill is not None else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
