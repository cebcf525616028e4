"""The hub's locator at work: the index (hub/locator.py) fed from the event bus.

At start the index replays the durable stream from its first event (an ordered consumer, so a
restarted hub rebuilds the whole index and asks every region until it has caught up), then
follows new events and the regions' heartbeats. Messages that are not well-formed events are
dropped and logged: the region's next sequence number then shows the gap, and it is asked.

A region whose view only a backfill can make trusted again (its history is not all in the
stream, or an event was missed) is asked to backfill, at most every `backfill_request_s`; the
region decides when (docs/hub.md "Locator"). A watch over the stream notices when it was purged
or created anew: the hub then forgets its index, replays the stream again (every region asked
meanwhile) and the regions re-publish their holdings.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence

import orjson
import structlog

from onerecord.domain import HomeCommunityId, NationalIdentityNumber
from onerecord.events import (
    BusUnavailable,
    EventFeed,
    InvalidEvent,
    StreamPosition,
    backfill_request_subject,
    decode_event,
    decode_heartbeat,
    heartbeat_subjects,
    patient_key,
)
from onerecord.hub.directory import Region
from onerecord.hub.locator import LocatorIndex, LocatorPlan

__all__ = ["Locator"]

log = structlog.get_logger("onerecord.hub.locator")

_BACKFILL_STALLED_S = 120.0
"""A backfill under way this long without its end is asked for again."""


class Locator:
    """Which regions a search asks: the index, its feed and the patient key."""

    def __init__(
        self,
        *,
        key: bytes,
        max_silence_s: float,
        clock: Callable[[], float] = time.monotonic,
        backfill_request_s: float = 5.0,
        stream_check_s: float = 2.0,
    ) -> None:
        self.index = LocatorIndex(max_silence_s=max_silence_s)
        self._key = key
        self._clock = clock
        self._backfill_request_s = backfill_request_s
        self._stream_check_s = stream_check_s
        self._requested: dict[str, float] = {}
        self._feed: EventFeed | None = None
        self._prefix = ""
        self._position: StreamPosition | None = None
        self._generation = 0
        self._watch: asyncio.Task[None] | None = None
        self.resets = 0

    async def start(self, feed: EventFeed, *, subject_prefix: str) -> None:
        """Replay the stream into the index, then follow it and the heartbeats."""
        self._feed, self._prefix = feed, subject_prefix
        await feed.listen(heartbeat_subjects(subject_prefix), self._on_heartbeat)
        await self._follow()
        self._watch = asyncio.create_task(self._watch_stream(), name="locator-watch")

    async def close(self) -> None:
        """Stop watching the stream."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch

    async def _follow(self) -> None:
        assert self._feed is not None
        self._generation += 1
        generation = self._generation

        def on_event(data: bytes) -> None:
            if generation == self._generation:
                self._on_event(data)

        def on_caught_up() -> None:
            if generation == self._generation:
                self._on_caught_up()

        self._position = await self._feed.follow(on_event, on_caught_up)

    async def _watch_stream(self) -> None:
        """Notice a purged or re-created stream; start the index over from it."""
        assert self._feed is not None
        while True:
            await asyncio.sleep(self._stream_check_s)
            try:
                now = await self._feed.position()
                if self._position is not None and now.lost_since(self._position):
                    await self.reset("stream-lost")
                else:
                    self._position = now
            except BusUnavailable as exc:
                log.warning("hub.locator.stream_unavailable", reason=str(exc)[:200])

    async def reset(self, why: str) -> None:
        """Forget the index and replay the stream again; every region is asked meanwhile."""
        log.warning("hub.locator.reset", reason=why)
        self.resets += 1
        self.index = LocatorIndex(max_silence_s=self.index.max_silence_s)
        self._requested.clear()
        await self._follow()

    def plan(self, patient: NationalIdentityNumber, regions: Sequence[Region]) -> LocatorPlan:
        """Return which of `regions` to ask about `patient`, and which to skip."""
        return self.index.plan(patient_key(patient.value, self._key), regions, self._clock())

    def _on_event(self, data: bytes) -> None:
        try:
            event = decode_event(data)
        except InvalidEvent as exc:
            log.warning("hub.locator.invalid_event", reason=str(exc)[:120])
            return
        self.index.apply(event, self._clock())

    def _on_heartbeat(self, data: bytes) -> None:
        try:
            beat = decode_heartbeat(data)
        except InvalidEvent as exc:
            log.warning("hub.locator.invalid_heartbeat", reason=str(exc)[:120])
            return
        now = self._clock()
        self.index.heartbeat(beat, now)
        self._ask_backfill(beat.home_community_id, now)

    def _ask_backfill(self, hcid: HomeCommunityId, now: float) -> None:
        """Ask a region whose view only a backfill can restore to backfill (rate-limited)."""
        if not self.index.ready or self._feed is None:
            return
        view = self.index.regions[hcid.urn]
        if not view.needs_backfill(now, _BACKFILL_STALLED_S):
            return
        if now - self._requested.get(hcid.urn, -1e18) < self._backfill_request_s:
            return
        self._requested[hcid.urn] = now
        request = orjson.dumps({"v": 1, "hcid": hcid.urn})
        log.info("hub.locator.backfill_requested", hcid=hcid.urn, gap=view.gap)
        task = asyncio.get_running_loop().create_task(
            self._feed.announce(backfill_request_subject(hcid, self._prefix), request)
        )
        task.add_done_callback(_ignore_failure)

    def _on_caught_up(self) -> None:
        self.index.ready = True
        log.info("hub.locator.ready", regions=len(self.index.regions))


def _ignore_failure(task: asyncio.Task[None]) -> None:
    """A request that could not be sent is sent again at the next heartbeat after the pause."""
    if not task.cancelled() and task.exception() is not None:
        log.warning("hub.locator.backfill_request_failed", reason=str(task.exception())[:200])
