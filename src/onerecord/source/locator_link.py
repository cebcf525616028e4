"""The region's link to the event bus: connect at start, and keep trying while NATS is down.

A region that starts while NATS cannot be reached registers as usual and says so
(`source.locator.unavailable`); it tries again with a back-off that doubles from
`first_wait_s` to `max_wait_s`. Once connected its publisher starts like at start-up: the start
event counts the registry, so the registrations made meanwhile show as entries the stream never
named, and a backfill (at once if the stream holds nothing of the region, else when a hub asks)
brings them in (docs/hub.md "Locator").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog

from onerecord.domain import HomeCommunityId
from onerecord.events import BusUnavailable, NatsEventBus, event_subjects
from onerecord.events.reconnect import Reconnecting
from onerecord.source.locator import RegistryPublisher, registry_holdings
from onerecord.source.settings import SourceSettings
from onerecord.source.store import SqlDocumentStore

__all__ = ["PublisherLink"]

log = structlog.get_logger("onerecord.source.locator")

Connect = Callable[..., Awaitable[NatsEventBus]]


class PublisherLink:
    """Connects the region's publisher to NATS and hands it to `attach` once it runs."""

    def __init__(
        self,
        settings: SourceSettings,
        store: SqlDocumentStore,
        *,
        connect: Connect = NatsEventBus.connect,
        first_wait_s: float = 0.5,
        max_wait_s: float = 30.0,
    ) -> None:
        assert settings.locator_nats_url and settings.locator_patient_key is not None
        self.settings = settings
        self.store = store
        self._connect = connect
        self._reconnect = Reconnecting(
            lambda quiet: self._try(quiet=quiet), first_wait_s=first_wait_s, max_wait_s=max_wait_s
        )
        self.publisher: RegistryPublisher | None = None
        self.bus: NatsEventBus | None = None
        self._attach: Callable[[RegistryPublisher], None] = lambda _: None

    async def start(self, attach: Callable[[RegistryPublisher], None]) -> None:
        """Try once now; if NATS is not there, keep trying in the background."""
        self._attach = attach
        await self._reconnect.start()

    async def _try(self, *, quiet: bool = False) -> bool:
        s = self.settings
        assert s.locator_nats_url and s.locator_patient_key is not None
        try:
            bus = await self._connect(
                s.locator_nats_url,
                stream=s.locator_stream,
                subjects=event_subjects(s.locator_subject_prefix),
            )
        except BusUnavailable as exc:
            if not quiet:
                log.warning("source.locator.unavailable", reason=str(exc))
            return False
        publisher = RegistryPublisher(
            bus=bus,
            home_community_id=HomeCommunityId.parse(s.home_community_id),
            key=s.locator_patient_key.get_secret_value().encode(),
            subject_prefix=s.locator_subject_prefix,
            heartbeat_s=s.locator_heartbeat_s,
            holdings=registry_holdings(self.store.engine),
            backfill_pause_s=s.locator_backfill_pause_s,
        )
        try:
            await publisher.start(prior_entries=self.store.count)
        except BusUnavailable as exc:
            log.warning("source.locator.unavailable", reason=str(exc))
            await bus.close()
            return False
        self.publisher, self.bus = publisher, bus
        self._attach(publisher)
        log.info("source.locator.publishing", stream=s.locator_stream)
        return True

    async def close(self) -> None:
        """Stop trying; send what is queued (briefly) and disconnect."""
        await self._reconnect.stop()
        if self.publisher is not None:
            await self.publisher.close()
        if self.bus is not None:
            await self.bus.close()
