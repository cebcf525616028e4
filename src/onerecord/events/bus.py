"""The event bus behind two small protocols, with NATS JetStream as the real one.

`EventPublisher` is what a region needs: append its next event to the durable stream, but only
if nobody else appended to its subject since the event it last saw (so two processes of one
region never give two events one sequence number), and announce heartbeats. `EventFeed` is what
the hub needs: replay the stream from its start and follow it, and listen to heartbeats.
The fake (`MemoryEventBus`) keeps the same promises in one process.

References: NATS JetStream headers (Nats-Expected-Last-Subject-Sequence), ordered consumers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.api import DeliverPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import APIError, NotFoundError

__all__ = [
    "BusUnavailable",
    "EventFeed",
    "EventPublisher",
    "MemoryEventBus",
    "NatsEventBus",
    "StoredEvent",
    "StreamPosition",
    "WrongLastEvent",
]

_EXPECTED_LAST_SUBJECT_SEQUENCE = "Nats-Expected-Last-Subject-Sequence"
_WRONG_LAST_SEQUENCE = 10071
"""JetStream's error code when the subject's last message is not the one expected."""


class BusUnavailable(Exception):
    """The event bus could not be reached or did not confirm in time."""


class WrongLastEvent(Exception):
    """Someone else appended to the subject since the event the appender last saw."""


class StoredEvent(NamedTuple):
    """An event as stored in the stream: its stream sequence and its bytes."""

    stream_sequence: int
    data: bytes


class StreamPosition(NamedTuple):
    """Where the stream stands: when it was created, its first and last stream sequence.

    A stream created anew, or whose first sequence moved on (purged: this stream keeps every
    event otherwise), no longer holds what a reader built its view from.
    """

    created: str
    first_sequence: int
    last_sequence: int

    def lost_since(self, earlier: StreamPosition) -> bool:
        """True when events that were in the stream at `earlier` are gone now."""
        return (
            self.created != earlier.created
            or self.last_sequence < earlier.last_sequence
            or (earlier.last_sequence > 0 and self.first_sequence > earlier.first_sequence)
        )


class EventPublisher(Protocol):
    """What a region's publisher needs from the bus."""

    async def last(self, subject: str) -> StoredEvent | None:
        """Return the last event stored on `subject`, or None."""

    async def append(self, subject: str, data: bytes, *, after: int) -> int:
        """Store `data` if the subject's last event has stream sequence `after` (0: none yet).

        Return the new event's stream sequence; raise WrongLastEvent or BusUnavailable.
        """

    async def announce(self, subject: str, data: bytes) -> None:
        """Send a message that is not stored (a heartbeat)."""

    async def store_many(self, subject: str, data: Sequence[bytes]) -> None:
        """Store every message of `data` on `subject`, unconditionally, acknowledgements
        awaited together; raise BusUnavailable unless every one was stored."""

    async def listen(self, subjects: str, on_message: Callable[[bytes], None]) -> None:
        """Deliver messages announced on `subjects` from now on."""


class EventFeed(Protocol):
    """What the hub's locator needs from the bus."""

    async def follow(
        self, on_event: Callable[[bytes], None], on_caught_up: Callable[[], None]
    ) -> StreamPosition:
        """Deliver every stored event from the first, then new ones; call `on_caught_up` once
        every event stored when following began has been delivered. Following again stops
        the earlier delivery. Return where the stream stood when following began."""

    async def listen(self, subjects: str, on_message: Callable[[bytes], None]) -> None:
        """Deliver messages announced on `subjects` from now on."""

    async def announce(self, subject: str, data: bytes) -> None:
        """Send a message that is not stored (a backfill request)."""

    async def position(self) -> StreamPosition:
        """Return where the stream stands, creating it anew if it is gone."""


@dataclass
class MemoryEventBus:
    """An in-process bus for tests: one stream, announcements to live listeners."""

    events: list[tuple[str, bytes]] = field(default_factory=list)
    down: bool = False
    purged: int = 0
    """How many events were purged: the stream sequence of `events[i]` is `purged + i + 1`."""
    created: int = 0
    _followers: list[Callable[[bytes], None]] = field(default_factory=list)
    _listeners: list[tuple[str, Callable[[bytes], None]]] = field(default_factory=list)

    def _check(self) -> None:
        if self.down:
            raise BusUnavailable("the bus is down")

    async def last(self, subject: str) -> StoredEvent | None:
        self._check()
        for index in range(len(self.events) - 1, -1, -1):
            if self.events[index][0] == subject:
                return StoredEvent(self.purged + index + 1, self.events[index][1])
        return None

    def _store(self, subject: str, data: bytes) -> int:
        self.events.append((subject, data))
        for follower in list(self._followers):
            follower(data)
        return self.purged + len(self.events)

    async def append(self, subject: str, data: bytes, *, after: int) -> int:
        last = await self.last(subject)
        if (last.stream_sequence if last else 0) != after:
            raise WrongLastEvent(subject)
        return self._store(subject, data)

    async def store_many(self, subject: str, data: Sequence[bytes]) -> None:
        self._check()
        for one in data:
            self._store(subject, one)

    async def announce(self, subject: str, data: bytes) -> None:
        self._check()
        for prefix, listener in list(self._listeners):
            if subject.startswith(prefix.rstrip(">")):
                listener(data)

    async def follow(
        self, on_event: Callable[[bytes], None], on_caught_up: Callable[[], None]
    ) -> StreamPosition:
        position = await self.position()
        for _, data in self.events:
            on_event(data)
        on_caught_up()
        self._followers = [on_event]
        return position

    async def position(self) -> StreamPosition:
        self._check()
        last = self.purged + len(self.events)
        return StreamPosition(str(self.created), self.purged + 1 if self.events else last + 1, last)

    def purge(self) -> None:
        """Remove every stored event (the stream's sequence goes on)."""
        self.purged += len(self.events)
        self.events.clear()

    async def listen(self, subjects: str, on_message: Callable[[bytes], None]) -> None:
        self._check()
        self._listeners.append((subjects, on_message))


class NatsEventBus:
    """NATS JetStream: one durable stream of the regions' events, heartbeats on core NATS."""

    def __init__(self, client: Client, *, stream: str, subjects: str, timeout_s: float) -> None:
        self._nc = client
        self._js = client.jetstream(timeout=timeout_s)
        self.stream = stream
        self.subjects = subjects
        self.timeout_s = timeout_s
        self._following: JetStreamContext.PushSubscription | None = None

    @classmethod
    async def connect(
        cls, url: str, *, stream: str, subjects: str, timeout_s: float = 2.0
    ) -> NatsEventBus:
        """Connect and make sure the durable stream exists; raise BusUnavailable if not."""

        async def no_op(*_: object) -> None:
            return None

        try:
            # Reconnect forever once connected; but the first connection gets `timeout_s`, or
            # start-up would wait for a NATS that is not there (nats-py retries it forever).
            client = await asyncio.wait_for(
                nats.connect(
                    url,
                    connect_timeout=timeout_s,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    error_cb=no_op,
                    name="onerecord",
                ),
                timeout=timeout_s,
            )
        except (OSError, TimeoutError, NatsError) as exc:
            raise BusUnavailable(f"NATS at {url} is not reachable: {exc!r}") from exc
        bus = cls(client, stream=stream, subjects=subjects, timeout_s=timeout_s)
        try:
            await bus._ensure_stream()
        except (OSError, TimeoutError, NatsError) as exc:
            await client.close()
            raise BusUnavailable(f"JetStream stream {stream} is not available: {exc}") from exc
        return bus

    async def last(self, subject: str) -> StoredEvent | None:
        try:
            msg = await self._js.get_last_msg(self.stream, subject)
        except NotFoundError:
            return None
        except (OSError, TimeoutError, NatsError) as exc:
            raise BusUnavailable(str(exc)) from exc
        return StoredEvent(int(msg.seq or 0), bytes(msg.data or b""))

    async def append(self, subject: str, data: bytes, *, after: int) -> int:
        headers = {_EXPECTED_LAST_SUBJECT_SEQUENCE: str(after)}
        try:
            ack = await self._js.publish(subject, data, stream=self.stream, headers=headers)
        except APIError as exc:
            if exc.err_code == _WRONG_LAST_SEQUENCE:
                raise WrongLastEvent(subject) from exc
            raise BusUnavailable(str(exc)) from exc
        except (OSError, TimeoutError, NatsError) as exc:
            raise BusUnavailable(str(exc)) from exc
        return int(ack.seq)

    async def announce(self, subject: str, data: bytes) -> None:
        try:
            await self._nc.publish(subject, data)
        except (OSError, TimeoutError, NatsError) as exc:
            raise BusUnavailable(str(exc)) from exc

    async def store_many(self, subject: str, data: Sequence[bytes]) -> None:
        try:
            acks = [
                await self._js.publish_async(
                    subject, one, stream=self.stream, wait_stall=self.timeout_s
                )
                for one in data
            ]
            await asyncio.wait_for(asyncio.gather(*acks), self.timeout_s * 5)
        except (OSError, TimeoutError, NatsError) as exc:
            raise BusUnavailable(str(exc)) from exc

    async def _ensure_stream(self) -> None:
        await self._js.add_stream(
            StreamConfig(name=self.stream, subjects=[self.subjects], storage=StorageType.FILE)
        )

    async def position(self) -> StreamPosition:
        try:
            try:
                info = await self._js.stream_info(self.stream)
            except NotFoundError:
                await self._ensure_stream()
                info = await self._js.stream_info(self.stream)
        except (OSError, TimeoutError, NatsError) as exc:
            raise BusUnavailable(str(exc)) from exc
        created = info.created.isoformat() if info.created else ""
        return StreamPosition(created, int(info.state.first_seq), int(info.state.last_seq))

    async def follow(
        self, on_event: Callable[[bytes], None], on_caught_up: Callable[[], None]
    ) -> StreamPosition:
        if self._following is not None:
            with contextlib.suppress(OSError, TimeoutError, NatsError):
                await self._following.unsubscribe()
            self._following = None
        position = await self.position()
        caught_up = asyncio.Event()
        last_at_start = (
            position.last_sequence if position.first_sequence <= position.last_sequence else 0
        )

        async def deliver(msg: Msg) -> None:
            on_event(msg.data)
            if not caught_up.is_set() and (
                msg.metadata.num_pending == 0 or msg.metadata.sequence.stream >= last_at_start
            ):
                caught_up.set()
                on_caught_up()

        self._following = await self._js.subscribe(
            self.subjects,
            stream=self.stream,
            cb=deliver,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
        )
        if last_at_start == 0 and not caught_up.is_set():
            caught_up.set()
            on_caught_up()
        return position

    async def listen(self, subjects: str, on_message: Callable[[bytes], None]) -> None:

        async def deliver(msg: Msg) -> None:
            on_message(msg.data)

        await self._nc.subscribe(subjects, cb=deliver)

    async def delete_stream(self) -> None:
        """Remove the stream (tests)."""
        await self._js.delete_stream(self.stream)

    async def purge_stream(self) -> None:
        """Remove every event from the stream (tests, operations)."""
        await self._js.purge_stream(self.stream)

    async def close(self) -> None:
        """Disconnect (every append has been acknowledged already: nothing to drain)."""
        await self._nc.close()
