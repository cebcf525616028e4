"""The dialogue store on SQLite and PostgreSQL: migrations match the schema, bookings are single."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from onerecord.dialogue import (
    Absence,
    Appointment,
    AppointmentStatus,
    Message,
    Office,
    Request,
    RequestKind,
    RequestStatus,
    Sender,
    Service,
    Slot,
    ThreadCategory,
    VisitMode,
)
from onerecord.dialogue.database import current_revision, head_revision, make_engine, upgrade
from onerecord.dialogue.schema import metadata
from onerecord.dialogue.store import ListEntry, SqlDialogueStore
from tests.conftest import Database

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
ORG = "974600019"


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return [d for d in compare_metadata(context, metadata) if d[0] != "remove_table"]


async def test_migration_creates_the_schema(database: Database) -> None:
    engine = make_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        await upgrade(engine)  # a second run changes nothing
        assert await current_revision(engine) == head_revision()
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()


async def test_store_round_trip(database: Database) -> None:
    engine = make_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        store = SqlDialogueStore(engine)
        office = Office(ORG, "Legesenter", "22 00 00 00", frozenset(Service), "Stengt fredag")
        await store.put_office(office)
        assert await store.office(ORG) == office
        entry = ListEntry("01528012345", ORG, "Dr. Fastlege", False)
        await store.put_list_entry(entry)
        assert await store.list_entry("01528012345") == entry

        absence = Absence(
            "a1",
            ORG,
            datetime(2027, 4, 14),
            datetime(2027, 4, 25),
            frozenset({Service.E_CONSULTATION}),
            "Dr. Vikar",
        )
        await store.add_absence(absence)
        assert await store.absences(ORG) == [absence]

        message = Message(
            "m1",
            "m1",
            ORG,
            "01528012345",
            ThreadCategory.E_CONSULTATION,
            Sender.CITIZEN,
            "01528012345",
            None,
            "Utslett",
            NOW,
        )
        request = Request(
            "r1",
            RequestKind.E_CONSULTATION,
            ORG,
            "01528012345",
            "01528012345",
            NOW,
            NOW + timedelta(days=7),
            RequestStatus.REQUESTED,
            thread_id="m1",
            fee_acknowledged=NOW,
        )
        await store.add_message(message, request)
        assert await store.messages(thread="m1") == [message]
        assert await store.request("r1") == request
        assert await store.handle_request("r1", status=RequestStatus.COMPLETED, reason=None, at=NOW)
        assert not await store.handle_request(
            "r1", status=RequestStatus.REJECTED, reason="x", at=NOW
        )

        slot = Slot(
            "s1", ORG, NOW + timedelta(days=1), NOW + timedelta(days=1, minutes=20), VisitMode.VIDEO
        )
        await store.add_slot(slot)
        assert await store.slots(ORG, free_from=NOW) == [slot]
        booking = Appointment(
            "ap1",
            "s1",
            ORG,
            "01528012345",
            "01528012345",
            slot.start,
            slot.end,
            VisitMode.VIDEO,
            AppointmentStatus.BOOKED,
        )
        assert await store.book(booking)
        again = Appointment(
            "ap2",
            "s1",
            ORG,
            "01528012345",
            "01528012345",
            slot.start,
            slot.end,
            VisitMode.VIDEO,
            AppointmentStatus.BOOKED,
        )
        assert not await store.book(again)  # the slot is taken
        assert await store.slots(ORG, free_from=NOW) == []
        assert await store.cancel("ap1")
        assert not await store.cancel("ap1")
        assert await store.slots(ORG, free_from=NOW) == [slot]
        assert [a.status for a in await store.appointments("01528012345")] == [
            AppointmentStatus.CANCELLED
        ]
    finally:
        await engine.dispose()


async def test_the_work_list_pages_in_limit_order_and_counts_in_the_same_read(
    database: Database,
) -> None:
    """Keyset pages over rows sharing a limit, one status or several, the count beside them."""
    engine = make_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        store = SqlDialogueStore(engine)
        await store.put_office(Office(ORG, "Legesenter", "22 00 00 00", frozenset(Service), None))
        patient = "01528012345"
        await store.put_list_entry(ListEntry(patient, ORG, "Dr. Fastlege", False))
        statuses = (RequestStatus.REQUESTED, RequestStatus.COMPLETED, RequestStatus.REJECTED)
        kinds = (RequestKind.E_CONSULTATION, RequestKind.PRESCRIPTION_RENEWAL)
        made = []
        for i in range(12):  # three rows to each limit: the id decides among them
            request = Request(
                f"r{(i * 7) % 12:02d}",
                kinds[i % 2],
                ORG,
                patient,
                patient,
                NOW,
                NOW + timedelta(days=i // 3),
                statuses[i % 3],
                medication_id="med-1" if kinds[i % 2] is RequestKind.PRESCRIPTION_RENEWAL else None,
            )
            await store.add_request(request)
            made.append(request)

        async def walk(
            kind: frozenset[RequestKind], status: frozenset[RequestStatus]
        ) -> tuple[list[str], set[int]]:
            seen, totals, after = [], set(), None
            while True:
                found = await store.inbox(ORG, kinds=kind, statuses=status, after=after, limit=2)
                assert found is not None
                rows, total = found
                totals.add(total)
                seen += [r.id for r in rows]
                if len(rows) < 2:
                    return seen, totals
                after = (rows[-1].due, rows[-1].id)

        def expected(kind: frozenset[RequestKind], status: frozenset[RequestStatus]) -> list[str]:
            rows = [r for r in made if r.kind in kind and r.status in status]
            return [r.id for r in sorted(rows, key=lambda r: (r.due, r.id))]

        for kind in (frozenset(RequestKind), frozenset({RequestKind.E_CONSULTATION})):
            for status in (
                frozenset({RequestStatus.REQUESTED}),
                frozenset(RequestStatus),
                frozenset({RequestStatus.COMPLETED, RequestStatus.REJECTED}),
            ):
                ids, totals = await walk(kind, status)
                assert ids == expected(kind, status)
                assert totals == {len(ids)}

        nowhere = await store.inbox(
            "974600027",
            kinds=frozenset(RequestKind),
            statuses=frozenset(RequestStatus),
            after=None,
            limit=5,
        )
        assert nowhere is None  # no such office
        office = await store.office(ORG)
        assert await store.office_of(patient) == (
            ListEntry(patient, ORG, "Dr. Fastlege", False),
            office,
        )
        assert await store.office_of("01528099999") is None
        await store.close()
    finally:
        await engine.dispose()
