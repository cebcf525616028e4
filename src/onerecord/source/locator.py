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
A count taken while another process of the region still has events queued makes the hub ask
the region for good (safe, not faster) until a backfill exists.

References: Sweden's engagement index (a care giver's system reports each new record).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from onerecord.domain import HomeCommunityId
from onerecord.events import (
    BusUnavailable,
    EntryStatus,
    EventPublisher,
    InvalidEvent,
    RegionHeartbeat,
    RegionStreamStart,
    RegistryEvent,
    WrongLastEvent,
    decode_event,
    event_subject,
    heartbeat_subject,
    patient_key,
)
from onerecord.source.store import RegisterResult

__all__ = ["RegistryPublisher"]

log = structlog.get_logger("onerecord.source.locator")

_MAX_QUEUED = 100_000
_MAX_RETRIES = 5


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
    ) -> None:
        self.bus = bus
        self.home_community_id = home_community_id
        self.key = key
        self.subject = event_subject(home_community_id, subject_prefix)
        self.heartbeat_subject = heartbeat_subject(home_community_id, subject_prefix)
        self.heartbeat_s = heartbeat_s
        self.sequence = 0
        """The latest sequence number used, sent or not."""
        self._last_stored = 0
        """The stream sequence of the region's last event in the stream (0: none)."""
        self._queue: asyncio.Queue[tuple[str, str, EntryStatus]] = asyncio.Queue(_MAX_QUEUED)
        self._tasks: list[asyncio.Task[None]] = []
        self.dropped = 0

    async def start(self, prior_entries: Callable[[], Awaitable[int]]) -> None:
        """Learn the last sequence number from the stream; start sending and heartbeats.

        Each start appends a start event counting the entries the registry holds
        (`prior_entries`): the hub skips a region only while that count matches the entries its
        stream has named (0 for a new stream), so a registration whose event was lost before a
        restart is noticed. Raise BusUnavailable when the bus cannot be asked.
        """
        for _ in range(_MAX_RETRIES):
            await self._resync()
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

    async def _resync(self) -> None:
        last = await self.bus.last(self.subject)
        if last is None:
            self._last_stored, stored_sequence = 0, 0
        else:
            try:
                stored_sequence = decode_event(last.data).sequence
            except InvalidEvent:
                stored_sequence = 0
                log.error("locator.publisher.invalid_last_event", subject=self.subject)
            self._last_stored = last.stream_sequence
        self.sequence = max(self.sequence, stored_sequence)

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
            patient, entry, status = await self._queue.get()
            try:
                await self._send(patient, entry, status)
            finally:
                self._queue.task_done()

    async def _send(self, patient: str, entry: str, status: EntryStatus) -> None:
        for _ in range(_MAX_RETRIES):
            event = RegistryEvent(self.home_community_id, self.sequence + 1, patient, entry, status)
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
            return
        self._lose()

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
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
