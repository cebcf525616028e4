"""The hub's locator at work: the index (hub/locator.py) fed from the event bus.

At start the index replays the durable stream from its first event (an ordered consumer, so a
restarted hub rebuilds the whole index and asks every region until it has caught up), then
follows new events and the regions' heartbeats. Messages that are not well-formed events are
dropped and logged: the region's next sequence number then shows the gap, and it is asked.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import structlog

from onerecord.domain import NationalIdentityNumber
from onerecord.events import (
    EventFeed,
    InvalidEvent,
    decode_event,
    decode_heartbeat,
    heartbeat_subjects,
    patient_key,
)
from onerecord.hub.directory import Region
from onerecord.hub.locator import LocatorIndex, LocatorPlan

__all__ = ["Locator"]

log = structlog.get_logger("onerecord.hub.locator")


class Locator:
    """Which regions a search asks: the index, its feed and the patient key."""

    def __init__(
        self, *, key: bytes, max_silence_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.index = LocatorIndex(max_silence_s=max_silence_s)
        self._key = key
        self._clock = clock

    async def start(self, feed: EventFeed, *, subject_prefix: str) -> None:
        """Replay the stream into the index, then follow it and the heartbeats."""
        await feed.listen(heartbeat_subjects(subject_prefix), self._on_heartbeat)
        await feed.follow(self._on_event, self._on_caught_up)

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
        self.index.heartbeat(beat, self._clock())

    def _on_caught_up(self) -> None:
        self.index.ready = True
        log.info("hub.locator.ready", regions=len(self.index.regions))
