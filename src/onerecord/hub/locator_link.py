"""The hub's link to the event bus: connect at start, and keep trying while NATS is down.

A hub that starts while NATS cannot be reached asks every region, says so
(`hub.locator.unavailable`), and tries again with a back-off that doubles from
`first_wait_s` to `max_wait_s`; once connected its locator replays the stream like at start
(`hub.locator.on`, then `hub.locator.ready`). Once connected, the NATS client reconnects by
itself; the locator's heartbeat silence covers the time it is away (docs/hub.md "Locator").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog

from onerecord.events import BusUnavailable, NatsEventBus, event_subjects
from onerecord.events.reconnect import Reconnecting
from onerecord.hub.locator_feed import Locator
from onerecord.hub.settings import HubSettings

__all__ = ["LocatorLink"]

log = structlog.get_logger("onerecord.hub.locator")

Connect = Callable[..., Awaitable[NatsEventBus]]


class LocatorLink:
    """Connects the hub's locator to NATS and hands it to `attach` once it runs."""

    def __init__(
        self,
        settings: HubSettings,
        attach: Callable[[Locator | None], None],
        *,
        connect: Connect = NatsEventBus.connect,
        first_wait_s: float = 0.5,
        max_wait_s: float = 30.0,
    ) -> None:
        assert settings.locator_nats_url and settings.locator_patient_key is not None
        self.settings = settings
        self._attach = attach
        self._connect = connect
        self._reconnect = Reconnecting(
            lambda quiet: self._try(quiet=quiet), first_wait_s=first_wait_s, max_wait_s=max_wait_s
        )
        self.locator: Locator | None = None
        self.bus: NatsEventBus | None = None

    async def start(self) -> None:
        """Try once now; if NATS is not there, keep trying in the background."""
        await self._reconnect.start()

    async def _try(self, *, quiet: bool = False) -> bool:
        s = self.settings
        assert s.locator_nats_url and s.locator_patient_key is not None
        locator = Locator(
            key=s.locator_patient_key.get_secret_value().encode(),
            max_silence_s=s.locator_max_silence_s,
            backfill_request_s=s.locator_backfill_request_s,
            stream_check_s=s.locator_stream_check_s,
        )
        try:
            bus = await self._connect(
                s.locator_nats_url,
                stream=s.locator_stream,
                subjects=event_subjects(s.locator_subject_prefix),
            )
        except BusUnavailable as exc:
            if not quiet:
                log.warning("hub.locator.unavailable", asking="every region", reason=str(exc))
            return False
        try:
            await locator.start(bus, subject_prefix=s.locator_subject_prefix)
        except Exception as exc:  # whatever the bus says: fall back to asking every region
            log.warning("hub.locator.unavailable", asking="every region", reason=str(exc)[:200])
            await locator.close()
            await bus.close()
            return False
        self.locator, self.bus = locator, bus
        self._attach(locator)
        log.info(
            "hub.locator.on",
            stream=s.locator_stream,
            asking="until the index is rebuilt: every region",
        )
        return True

    async def close(self) -> None:
        """Stop trying, detach the locator and disconnect."""
        await self._reconnect.stop()
        self._attach(None)
        if self.locator is not None:
            await self.locator.close()
        if self.bus is not None:
            await self.bus.close()
