"""The region's registry events (source/locator.py): in order, numbered, never lost silently."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from onerecord.domain import DocumentUniqueId, HomeCommunityId
from onerecord.events import (
    BackfillBegin,
    BackfillEnd,
    EntryStatus,
    Holdings,
    MemoryEventBus,
    NatsEventBus,
    RegionStreamStart,
    RegistryEvent,
    backfill_request_subject,
    decode_event,
    decode_heartbeat,
    event_subject,
    event_subjects,
    heartbeat_subjects,
    holdings_subject,
    patient_key,
)
from onerecord.hub.locator_feed import Locator
from onerecord.source.locator import Holdings as RegistryRead
from onerecord.source.locator import RegistryPublisher
from onerecord.source.store import RegisterResult, StoredEntry
from tests.conftest import NatsStream
from tests.factories import make_entry, synthetic_nin

pytestmark = pytest.mark.anyio

HCID = HomeCommunityId.parse("urn:oid:2.16.578.1.12.4.5.100.1")
KEY = b"locator-test-key-0123456789"
PREFIX = "onerecord.locator"


def registered(*entries_and_superseded: tuple[str | None, str | None]) -> RegisterResult:
    """A RegisterResult for entries (one per tuple) that each may replace a superseded entry."""
    stored = []
    superseded = []
    for seq, (unique_id, replaces) in enumerate(entries_and_superseded, start=1):
        stored.append(StoredEntry(seq, make_entry(unique_id=unique_id, replaces=replaces)))
        if replaces:
            superseded.append(DocumentUniqueId(replaces))
    return RegisterResult(tuple(stored), frozenset(), tuple(superseded))


async def no_entries() -> int:
    return 0


def entry_events(bus: MemoryEventBus) -> list[RegistryEvent]:
    """The registry events in the stream, after the region's start event."""
    first, *rest = (decode_event(data) for _, data in bus.events)
    assert first == RegionStreamStart(HCID, 1, 0)
    return [e for e in rest if isinstance(e, RegistryEvent)]


def publisher(bus: MemoryEventBus | NatsEventBus, prefix: str = PREFIX) -> RegistryPublisher:
    return RegistryPublisher(
        bus=bus, home_community_id=HCID, key=KEY, subject_prefix=prefix, heartbeat_s=0.05
    )


async def test_each_registration_and_replacement_is_one_numbered_event() -> None:
    bus = MemoryEventBus()
    events = publisher(bus)
    await events.start(no_entries)
    try:
        events.registered(registered(("2.25.1", None), ("2.25.2", None)))
        events.registered(registered(("2.25.3", "2.25.1")))
        await events.drain()
    finally:
        await events.close()
    got = entry_events(bus)
    assert [(e.sequence, e.entry_unique_id, e.status) for e in got] == [
        (2, "2.25.1", EntryStatus.CURRENT),
        (3, "2.25.2", EntryStatus.CURRENT),
        (4, "2.25.3", EntryStatus.CURRENT),
        (5, "2.25.1", EntryStatus.SUPERSEDED),
    ]
    patient = make_entry().patient_id.value
    assert {e.patient for e in got} == {patient_key(patient, KEY)}
    assert all(patient.encode() not in data for _, data in bus.events)
    assert {s for s, _ in bus.events} == {event_subject(HCID)}


async def test_the_stream_begins_by_counting_the_entries_registered_before_it() -> None:
    bus = MemoryEventBus()

    async def three() -> int:
        return 3

    events = publisher(bus)
    await events.start(three)
    await events.close()
    again = publisher(bus)
    await again.start(three)  # each process counts again when it starts
    await again.close()
    assert [decode_event(d) for _, d in bus.events] == [
        RegionStreamStart(HCID, 1, 3),
        RegionStreamStart(HCID, 2, 3),
    ]


async def test_an_event_that_cannot_be_sent_uses_up_its_number_and_the_heartbeat_says_so() -> None:
    bus = MemoryEventBus()
    beats: list[int] = []
    await bus.listen(
        heartbeat_subjects(PREFIX), lambda data: beats.append(decode_heartbeat(data).sequence)
    )
    events = publisher(bus)
    await events.start(no_entries)
    try:
        events.registered(registered(("2.25.1", None)))
        await events.drain()
        bus.down = True
        events.registered(registered(("2.25.2", None)))
        await events.drain()
        bus.down = False
        events.registered(registered(("2.25.3", None)))
        await events.drain()
        await asyncio.sleep(0.12)
    finally:
        await events.close()
    assert [e.sequence for e in entry_events(bus)] == [2, 4]
    assert events.dropped == 1
    assert beats[-1] == 4


async def test_a_new_process_continues_after_the_last_event_in_the_stream() -> None:
    bus = MemoryEventBus()
    first = publisher(bus)
    await first.start(no_entries)
    first.registered(registered(("2.25.1", None), ("2.25.2", None)))
    await first.drain()
    await first.close()
    second = publisher(bus)
    await second.start(no_entries)
    try:
        second.registered(registered(("2.25.3", None)))
        await second.drain()
    finally:
        await second.close()
    got = [decode_event(d) for _, d in bus.events]
    assert [e.sequence for e in got] == [1, 2, 3, 4, 5]
    assert got[3] == RegionStreamStart(HCID, 4, 0)


async def test_two_processes_of_one_region_never_reuse_a_number() -> None:
    bus = MemoryEventBus()
    one, two = publisher(bus), publisher(bus)
    await one.start(no_entries)
    await two.start(no_entries)
    try:
        for n in range(10):
            (one if n % 2 else two).registered(registered((f"2.25.{n}", None)))
        await one.drain()
        await two.drain()
    finally:
        await one.close()
        await two.close()
    assert [decode_event(d).sequence for _, d in bus.events] == list(range(1, 13))
    assert len(entry_events(bus)) == 10


async def test_events_reach_the_real_jetstream_in_order(nats_stream: NatsStream) -> None:
    bus = await NatsEventBus.connect(
        nats_stream.url,
        stream=nats_stream.stream,
        subjects=event_subjects(nats_stream.subject_prefix),
    )
    one, two = (
        publisher(bus, nats_stream.subject_prefix),
        publisher(bus, nats_stream.subject_prefix),
    )
    try:
        await one.start(no_entries)
        await two.start(no_entries)
        for n in range(6):
            (one if n % 2 else two).registered(registered((f"2.25.{n}", None)))
        await one.drain()
        await two.drain()
        seen: list[int] = []
        done = asyncio.Event()
        await bus.follow(lambda data: seen.append(decode_event(data).sequence), done.set)
        await asyncio.wait_for(done.wait(), 2)
        assert seen == [1, 2, 3, 4, 5, 6, 7, 8]
    finally:
        await one.close()
        await two.close()
        await bus.close()


async def test_closing_sends_what_is_queued_first() -> None:
    bus = MemoryEventBus()
    events = publisher(bus)
    await events.start(no_entries)
    events.registered(registered(("2.25.1", None), ("2.25.2", None)))
    await events.close()
    assert [e.entry_unique_id for e in entry_events(bus)] == ["2.25.1", "2.25.2"]


# --- backfill ---------------------------------------------------------------------------------


def holdings_of(
    rows: list[tuple[str, str]], during: Callable[[], Awaitable[None]] | None = None
) -> RegistryRead:
    """A registry read: `rows` by patient; `during` runs halfway through (a registration)."""

    async def read() -> AsyncIterator[tuple[str, str]]:
        for n, row in enumerate(sorted(rows)):
            if during is not None and n == len(rows) // 2:
                await during()
            yield row

    return read


def backfilling_publisher(
    bus: MemoryEventBus | NatsEventBus,
    holdings: RegistryRead,
    prefix: str = PREFIX,
    pause_s: float = 10.0,
) -> RegistryPublisher:
    return RegistryPublisher(
        bus=bus,
        home_community_id=HCID,
        key=KEY,
        subject_prefix=prefix,
        heartbeat_s=0.05,
        holdings=holdings,
        backfill_pause_s=pause_s,
    )


_PATIENTS = [synthetic_nin(n) for n in range(50)]
ROWS = [(_PATIENTS[n % 50], f"2.25.{n}") for n in range(300)]


async def test_a_registry_filled_before_the_stream_is_backfilled_at_start() -> None:
    bus = MemoryEventBus()
    events = backfilling_publisher(bus, holdings_of(ROWS))

    async def count() -> int:
        return len(ROWS)

    await events.start(count)
    await events.backfilled()
    await events.close()
    got = [decode_event(d) for _, d in bus.events]
    assert got[0] == RegionStreamStart(HCID, 1, len(ROWS))
    assert got[1] == BackfillBegin(HCID, 2)
    parts = [e for e in got if isinstance(e, Holdings)]
    assert got[-1] == BackfillEnd(HCID, 3, 2, len(parts), len(ROWS))
    named = {(p, u) for part in parts for p, us in part.patients for u in us}
    assert named == {(patient_key(p, KEY), u) for p, u in ROWS}
    assert all(nin.encode() not in d for _, d in bus.events for nin, _ in ROWS)
    assert {s for s, d in bus.events if isinstance(decode_event(d), Holdings)} == {
        holdings_subject(HCID)
    }


async def test_a_registration_during_a_backfill_follows_its_begin() -> None:
    bus = MemoryEventBus()

    async def register() -> None:
        events.registered(registered(("2.25.999", None)))
        await events.drain()

    events = backfilling_publisher(bus, holdings_of(ROWS, during=register))
    await events.start(no_entries)
    await events.backfill()
    await events.close()
    kinds = [type(decode_event(d)).__name__ for _, d in bus.events]
    assert kinds.index("BackfillBegin") < kinds.index("RegistryEvent") < kinds.index("BackfillEnd")


async def test_a_hub_asks_and_the_region_backfills_at_most_once_per_pause() -> None:
    bus = MemoryEventBus()
    events = backfilling_publisher(bus, holdings_of(ROWS), pause_s=60.0)
    await events.start(no_entries)  # an empty registry: nothing to backfill at start
    assert events.backfills == 0
    ask = backfill_request_subject(HCID, PREFIX)
    await bus.announce(ask, b"{}")
    await events.backfilled()
    await bus.announce(ask, b"{}")  # within the pause: ignored
    await events.backfilled()
    await events.close()
    assert events.backfills == 1


async def test_a_region_whose_events_vanished_from_the_stream_backfills() -> None:
    bus = MemoryEventBus()
    events = backfilling_publisher(bus, holdings_of(ROWS))
    await events.start(no_entries)
    events.registered(registered(("2.25.1", None)))
    await events.drain()
    bus.purge()
    events.registered(registered(("2.25.2", None)))  # finds the stream without its events
    await events.drain()
    await events.backfilled()
    await events.close()
    assert events.backfills == 1
    got = [decode_event(d) for _, d in bus.events]
    assert isinstance(got[-1], BackfillEnd) and got[-1].entries == len(ROWS)
    # The region's numbers go on after the purge: a hub that kept its index sees no repeat.
    assert [e.sequence for e in got if not isinstance(e, Holdings)] == [3, 4, 5]


async def test_a_registration_during_a_backfill_reaches_the_hubs_index_over_jetstream(
    nats_stream: NatsStream,
) -> None:
    def connect() -> Awaitable[NatsEventBus]:
        return NatsEventBus.connect(
            nats_stream.url,
            stream=nats_stream.stream,
            subjects=event_subjects(nats_stream.subject_prefix),
        )

    region_bus, hub_bus = await connect(), await connect()
    patients = [synthetic_nin(n) for n in range(100)]
    rows = [(patients[n % 100], f"2.25.{n}") for n in range(5000)]
    newcomer = make_entry()  # a patient the registry read does not hold

    async def register() -> None:
        events.registered(RegisterResult((StoredEntry(1, newcomer),), frozenset(), ()))
        await events.drain()

    events = backfilling_publisher(
        region_bus, holdings_of(rows, during=register), nats_stream.subject_prefix
    )
    locator = Locator(key=KEY, max_silence_s=5.0)
    try:

        async def count() -> int:
            return len(rows)

        await events.start(count)
        await events.backfilled()
        await locator.start(hub_bus, subject_prefix=nats_stream.subject_prefix)
        view = locator.index.regions[HCID.urn]
        for _ in range(100):
            if locator.index.ready and view.complete and view.head == view.applied:
                break
            await asyncio.sleep(0.05)
        assert view.complete and view.epoch is None
        assert view.entries == len(rows) + 1
        assert locator.index.holds(patient_key(newcomer.patient_id.value, KEY), HCID.urn)
        assert all(locator.index.holds(patient_key(p, KEY), HCID.urn) for p, _ in rows)
    finally:
        await locator.close()
        await events.close()
        await region_bus.close()
        await hub_bus.close()
