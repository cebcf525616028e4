"""Where the dialogue lives: the `DialogueStore` protocol and its SQL implementation.

One implementation serves SQLite and PostgreSQL (SQLAlchemy Core, async). Booking takes a slot
with a conditional update (`free` → not free) in the same transaction as the appointment, so a
slot is never booked twice; answering a request is likewise conditional on its status.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar

import anyio
from sqlalchemy import Connection, Engine, and_, delete, func, insert, select, tuple_, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from onerecord.dialogue import schema as t
from onerecord.dialogue.absence import Absence
from onerecord.dialogue.model import (
    Appointment,
    AppointmentStatus,
    Attachment,
    Medication,
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
from onerecord.dialogue.outbox import (
    IdempotencyClaim,
    IdempotentResult,
    Notification,
    NotificationKind,
    NotificationStatus,
)
from onerecord.sqldb import sqlite_sync_twin

__all__ = ["DialogueStore", "KeyTaken", "ListEntry", "SqlDialogueStore"]


class KeyTaken(Exception):
    """An idempotency key was claimed by another request meanwhile (nothing was written)."""


@dataclass(frozen=True, slots=True)
class ListEntry:
    """A person on a GP's list: the office, the GP's name, and whether the address is protected."""

    patient: str
    office: str
    gp_name: str | None
    address_protected: bool


class DialogueStore(Protocol):
    """What the dialogue service reads and writes."""

    async def put_office(self, office: Office) -> None: ...
    async def office(self, orgnr: str) -> Office | None: ...
    async def put_list_entry(self, entry: ListEntry) -> None: ...
    async def list_entry(self, patient: str) -> ListEntry | None: ...
    async def office_of(self, patient: str) -> tuple[ListEntry, Office] | None: ...
    async def put_medication(self, medication: Medication) -> None: ...
    async def medications(self, patient: str) -> Sequence[Medication]: ...
    async def add_absence(self, absence: Absence) -> None: ...
    async def absences(self, office: str) -> Sequence[Absence]: ...
    async def add_message(
        self,
        message: Message,
        request: Request | None = None,
        *,
        notices: Sequence[Notification] = (),
        claim: IdempotencyClaim | None = None,
    ) -> None: ...
    async def attachment(self, attachment_id: str) -> Attachment | None: ...
    async def message(self, message_id: str) -> Message | None: ...
    async def messages(
        self, *, patient: str | None = None, office: str | None = None, thread: str | None = None
    ) -> Sequence[Message]: ...
    async def add_request(
        self, request: Request, *, claim: IdempotencyClaim | None = None
    ) -> None: ...
    async def request(self, request_id: str) -> Request | None: ...
    async def requests(
        self, *, patient: str | None = None, office: str | None = None
    ) -> Sequence[Request]: ...
    async def handle_request(
        self,
        request_id: str,
        *,
        status: RequestStatus,
        reason: str | None,
        at: datetime,
        notices: Sequence[Notification] = (),
    ) -> bool: ...
    async def reopen_request(self, request_id: str, *, due: datetime) -> bool: ...
    async def thread_request(self, thread_id: str) -> Request | None: ...
    async def inbox(
        self,
        office: str,
        *,
        kinds: frozenset[RequestKind],
        statuses: frozenset[RequestStatus],
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> tuple[Sequence[Request], int] | None: ...
    async def add_slot(self, slot: Slot) -> None: ...
    async def add_slots(self, slots: Sequence[Slot]) -> None: ...
    async def slot(self, slot_id: str) -> Slot | None: ...
    async def slots(
        self, office: str, *, free_from: datetime | None, service: Service | None = None
    ) -> Sequence[Slot]: ...
    async def book(
        self,
        appointment: Appointment,
        *,
        notices: Sequence[Notification] = (),
        claim: IdempotencyClaim | None = None,
    ) -> bool: ...
    async def appointment(self, appointment_id: str) -> Appointment | None: ...
    async def appointments(self, patient: str) -> Sequence[Appointment]: ...
    async def office_appointments(
        self, office: str, *, from_: datetime, limit: int
    ) -> Sequence[Appointment]: ...
    async def confirm(
        self, appointment_id: str, *, notices: Sequence[Notification] = ()
    ) -> bool: ...
    async def cancel(
        self, appointment_id: str, *, notices: Sequence[Notification] = ()
    ) -> bool: ...
    async def move(
        self, appointment_id: str, slot: Slot, *, notices: Sequence[Notification] = ()
    ) -> bool: ...
    async def idempotent(
        self, key: str, *, since: datetime | None = None
    ) -> IdempotentResult | None: ...
    async def purge_idempotency(self, *, before: datetime) -> int: ...
    async def failed_notices(self, request_ids: Sequence[str]) -> Mapping[str, datetime]: ...
    async def office_failed_notices(
        self, office: str, *, since: datetime, limit: int
    ) -> Sequence[str]: ...
    async def due_notifications(self, now: datetime, limit: int) -> Sequence[Notification]: ...
    async def claim_notification(
        self, ident: str, *, now: datetime, lease_until: datetime
    ) -> bool: ...
    async def notification_done(
        self,
        ident: str,
        *,
        status: NotificationStatus,
        error: str | None = None,
        next_attempt: datetime | None = None,
        sent_at: datetime | None = None,
        failed_at: datetime | None = None,
    ) -> None: ...
    async def notifications(self, recipient: str | None = None) -> Sequence[Notification]: ...


_HELD = (AppointmentStatus.BOOKED.value, AppointmentStatus.PROPOSED.value)
"""The states in which an appointment holds its slot."""


def _office(row: Row[Any]) -> Office:
    return Office(
        orgnr=row.orgnr,
        name=row.name,
        phone=row.phone,
        services=frozenset(Service(s) for s in row.services),
        information=row.information,
        confirm_bookings=bool(row.confirm_bookings),
    )


def _message(row: Row[Any]) -> Message:
    return Message(
        id=row.id,
        thread_id=row.thread_id,
        office=row.office,
        patient=row.patient,
        category=ThreadCategory(row.category),
        sender=Sender(row.sender),
        author=row.author,
        author_name=row.author_name,
        text=row.text,
        sent=row.sent,
        in_response_to=row.in_response_to,
    )


def _request(row: Row[Any]) -> Request:
    return Request(
        id=row.id,
        kind=RequestKind(row.kind),
        office=row.office,
        patient=row.patient,
        requester=row.requester,
        created=row.created,
        due=row.due,
        status=RequestStatus(row.status),
        thread_id=row.thread_id,
        medication_id=row.medication_id,
        note=row.note,
        fee_acknowledged=row.fee_acknowledged,
        status_reason=row.status_reason,
        handled=row.handled,
    )


def _slot(row: Row[Any]) -> Slot:
    return Slot(
        row.id,
        row.office,
        row.start,
        row.end,
        VisitMode(row.mode),
        bool(row.free),
        Service(row.service),
    )


def _appointment(row: Row[Any]) -> Appointment:
    return Appointment(
        id=row.id,
        slot_id=row.slot_id,
        office=row.office,
        patient=row.patient,
        booked_by=row.booked_by,
        start=row.start,
        end=row.end,
        mode=VisitMode(row.mode),
        status=AppointmentStatus(row.status),
        note=row.note,
        service=Service(row.service),
    )


def _request_values(r: Request) -> dict[str, Any]:
    return {
        "id": r.id,
        "kind": r.kind.value,
        "office": r.office,
        "patient": r.patient,
        "requester": r.requester,
        "created": r.created,
        "due": r.due,
        "status": r.status.value,
        "thread_id": r.thread_id,
        "medication_id": r.medication_id,
        "note": r.note,
        "fee_acknowledged": r.fee_acknowledged,
        "status_reason": r.status_reason,
        "handled": r.handled,
    }


def _notification(row: Row[Any]) -> Notification:
    return Notification(
        id=row.id,
        kind=NotificationKind(row.kind),
        recipient=row.recipient,
        created=row.created,
        status=NotificationStatus(row.status),
        attempts=row.attempts,
        next_attempt=row.next_attempt,
        last_error=row.last_error,
        sent_at=row.sent_at,
        request_id=row.request_id,
        failed_at=row.failed_at,
    )


async def _write_notices(conn: Any, notices: Sequence[Notification]) -> None:
    """Queue the notices in the event's transaction (the outbox, dialogue.outbox)."""
    for n in notices:
        await conn.execute(
            insert(t.notification).values(
                id=n.id,
                kind=n.kind.value,
                recipient=n.recipient,
                created=n.created,
                status=n.status.value,
                attempts=n.attempts,
                next_attempt=n.next_attempt or n.created,
                last_error=n.last_error,
                sent_at=n.sent_at,
                request_id=n.request_id,
                failed_at=n.failed_at,
            )
        )


async def _write_claim(
    conn: Any, claim: IdempotencyClaim | None, resource_id: str, at: datetime
) -> None:
    """Claim the idempotency key for `resource_id`, first in the transaction (KeyTaken)."""
    if claim is None:
        return
    if claim.expired_before is not None:
        # A key past its retention is free again: its old row gives way to the new one.
        c = t.idempotency.c
        await conn.execute(
            delete(t.idempotency).where(c.key == claim.key, c.created < claim.expired_before)
        )
    try:
        await conn.execute(
            insert(t.idempotency).values(
                key=claim.key,
                fingerprint=claim.fingerprint,
                resource=claim.resource,
                resource_id=resource_id,
                created=at,
            )
        )
    except IntegrityError:
        raise KeyTaken from None  # leaving the block rolls the transaction back


class _NotMoved(Exception):
    """Raised inside `move`'s transaction to roll it back."""


_T = TypeVar("_T")


class SqlDialogueStore:
    """DialogueStore over SQLAlchemy Core (aiosqlite or asyncpg).

    Reads run whole in one call: on a SQLite file in one worker thread on the engine's
    synchronous twin (`sqldb.sqlite_sync_twin`), one thread hand-over per read instead of one
    per cursor call — what a read costs on a loaded machine is mostly those hand-overs.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = engine.execution_options(sqlite_begin="IMMEDIATE")
        self._twin: Engine | Literal[False] | None = None  # SQLite's sync twin, on first read

    async def close(self) -> None:
        """Close the twin's connections (the engine is the caller's to dispose)."""
        if self._twin:
            self._twin.dispose()
        self._twin = None

    async def _read(self, work: Callable[[Connection], _T]) -> _T:
        """Run `work` in one read transaction (one snapshot: its statements agree)."""
        if self._twin is None:
            self._twin = sqlite_sync_twin(self._engine) or False
        if self._twin:
            return await anyio.to_thread.run_sync(self._read_on_twin, work)
        async with self._engine.connect() as conn:
            return await conn.run_sync(work)

    def _read_on_twin(self, work: Callable[[Connection], _T]) -> _T:
        assert self._twin
        with self._twin.connect() as conn:
            return work(conn)

    async def _upsert(self, table: Any, key: str, values: dict[str, Any]) -> None:
        async with self._writer.begin() as conn:
            found = (
                await conn.execute(select(table.c[key]).where(table.c[key] == values[key]))
            ).first()
            if found is None:
                await conn.execute(insert(table).values(**values))
            else:
                await conn.execute(
                    update(table).where(table.c[key] == values[key]).values(**values)
                )

    async def _rows(self, statement: Any) -> Sequence[Row[Any]]:
        return await self._read(lambda conn: conn.execute(statement).all())

    async def _row(self, statement: Any) -> Row[Any] | None:
        return await self._read(lambda conn: conn.execute(statement).first())

    async def put_office(self, office: Office) -> None:
        """Create or replace an office (its services sorted, for a stable stored form)."""
        await self._upsert(
            t.office,
            "orgnr",
            {
                "orgnr": office.orgnr,
                "name": office.name,
                "phone": office.phone,
                "services": sorted(s.value for s in office.services),
                "information": office.information,
                "confirm_bookings": office.confirm_bookings,
            },
        )

    async def office(self, orgnr: str) -> Office | None:
        row = await self._row(select(t.office).where(t.office.c.orgnr == orgnr))
        return _office(row) if row is not None else None

    async def put_list_entry(self, entry: ListEntry) -> None:
        await self._upsert(
            t.list_patient,
            "patient",
            {
                "patient": entry.patient,
                "office": entry.office,
                "gp_name": entry.gp_name,
                "address_protected": entry.address_protected,
            },
        )

    async def list_entry(self, patient: str) -> ListEntry | None:
        row = await self._row(select(t.list_patient).where(t.list_patient.c.patient == patient))
        if row is None:
            return None
        return ListEntry(row.patient, row.office, row.gp_name, bool(row.address_protected))

    async def office_of(self, patient: str) -> tuple[ListEntry, Office] | None:
        """The person's list entry and GP office in one read (None when either is unknown)."""
        entry_of = select(t.list_patient).where(t.list_patient.c.patient == patient)

        def read(conn: Connection) -> tuple[ListEntry, Office] | None:
            row = conn.execute(entry_of).first()
            if row is None:
                return None
            found = conn.execute(select(t.office).where(t.office.c.orgnr == row.office)).first()
            if found is None:
                return None
            entry = ListEntry(row.patient, row.office, row.gp_name, bool(row.address_protected))
            return entry, _office(found)

        return await self._read(read)

    async def put_medication(self, medication: Medication) -> None:
        await self._upsert(
            t.medication,
            "id",
            {
                "id": medication.id,
                "patient": medication.patient,
                "office": medication.office,
                "name": medication.name,
                "dosage": medication.dosage,
            },
        )

    async def medications(self, patient: str) -> Sequence[Medication]:
        c = t.medication.c
        rows = await self._rows(select(t.medication).where(c.patient == patient).order_by(c.name))
        return [Medication(r.id, r.patient, r.office, r.name, r.dosage) for r in rows]

    async def add_absence(self, absence: Absence) -> None:
        async with self._writer.begin() as conn:
            await conn.execute(
                insert(t.absence).values(
                    id=absence.id,
                    office=absence.office,
                    start_local=absence.start,
                    end_local=absence.end,
                    services=sorted(s.value for s in absence.services),
                    substitute=absence.substitute,
                )
            )

    async def absences(self, office: str) -> Sequence[Absence]:
        c = t.absence.c
        rows = await self._rows(select(t.absence).where(c.office == office).order_by(c.start_local))
        return [
            Absence(
                r.id,
                r.office,
                r.start_local,
                r.end_local,
                frozenset(Service(s) for s in r.services),
                r.substitute,
            )
            for r in rows
        ]

    async def add_message(
        self,
        message: Message,
        request: Request | None = None,
        *,
        notices: Sequence[Notification] = (),
        claim: IdempotencyClaim | None = None,
    ) -> None:
        """Store a message, and the request it opens (an e-consultation), its notices and its
        idempotency key, in one transaction (KeyTaken: the key was taken; nothing written)."""
        async with self._writer.begin() as conn:
            await _write_claim(conn, claim, message.id, message.sent)
            await _write_notices(conn, notices)
            for item in message.attachments:  # its photos, with their bytes, in it too
                await conn.execute(
                    insert(t.attachment).values(
                        id=item.id,
                        message_id=message.id,
                        content_type=item.content_type,
                        size=item.size,
                        data=item.data,
                    )
                )
            await conn.execute(
                insert(t.message).values(
                    id=message.id,
                    thread_id=message.thread_id,
                    office=message.office,
                    patient=message.patient,
                    category=message.category.value,
                    sender=message.sender.value,
                    author=message.author,
                    author_name=message.author_name,
                    text=message.text,
                    sent=message.sent,
                    in_response_to=message.in_response_to,
                )
            )
            if request is not None:
                await conn.execute(insert(t.request).values(**_request_values(request)))

    async def message(self, message_id: str) -> Message | None:
        row = await self._row(select(t.message).where(t.message.c.id == message_id))
        return (await self._attached([_message(row)]))[0] if row is not None else None

    async def _attached(self, messages: list[Message]) -> list[Message]:
        """The messages with their photos listed (not their bytes: `attachment` reads one)."""
        if not messages:
            return messages
        c = t.attachment.c
        rows = await self._rows(
            select(c.id, c.message_id, c.content_type, c.size)
            .where(c.message_id.in_([m.id for m in messages]))
            .order_by(c.id)
        )
        by_message: dict[str, list[Attachment]] = {}
        for r in rows:
            by_message.setdefault(r.message_id, []).append(
                Attachment(r.id, r.message_id, r.content_type, r.size)
            )
        return [
            replace(m, attachments=tuple(by_message[m.id])) if m.id in by_message else m
            for m in messages
        ]

    async def attachment(self, attachment_id: str) -> Attachment | None:
        """One photo with its bytes."""
        row = await self._row(select(t.attachment).where(t.attachment.c.id == attachment_id))
        if row is None:
            return None
        return Attachment(row.id, row.message_id, row.content_type, row.size, bytes(row.data))

    async def messages(
        self, *, patient: str | None = None, office: str | None = None, thread: str | None = None
    ) -> Sequence[Message]:
        c = t.message.c
        where = []
        if patient is not None:
            where.append(c.patient == patient)
        if office is not None:
            where.append(c.office == office)
        if thread is not None:
            where.append(c.thread_id == thread)
        if not where:
            raise ValueError("messages needs a patient, an office or a thread")
        rows = await self._rows(select(t.message).where(and_(*where)).order_by(c.sent, c.id))
        return await self._attached([_message(r) for r in rows])

    async def add_request(self, request: Request, *, claim: IdempotencyClaim | None = None) -> None:
        async with self._writer.begin() as conn:
            await _write_claim(conn, claim, request.id, request.created)
            await conn.execute(insert(t.request).values(**_request_values(request)))

    async def request(self, request_id: str) -> Request | None:
        row = await self._row(select(t.request).where(t.request.c.id == request_id))
        return _request(row) if row is not None else None

    async def requests(
        self, *, patient: str | None = None, office: str | None = None
    ) -> Sequence[Request]:
        c = t.request.c
        where = []
        if patient is not None:
            where.append(c.patient == patient)
        if office is not None:
            where.append(c.office == office)
        if not where:
            raise ValueError("requests needs a patient or an office")
        rows = await self._rows(select(t.request).where(and_(*where)).order_by(c.created, c.id))
        return [_request(r) for r in rows]

    async def handle_request(
        self,
        request_id: str,
        *,
        status: RequestStatus,
        reason: str | None,
        at: datetime,
        notices: Sequence[Notification] = (),
    ) -> bool:
        """Answer a request still `requested` (and queue its notices); False when it was
        already answered or is gone."""
        c = t.request.c
        async with self._writer.begin() as conn:
            result = await conn.execute(
                update(t.request)
                .where(c.id == request_id, c.status == RequestStatus.REQUESTED.value)
                .values(status=status.value, status_reason=reason, handled=at)
            )
            if result.rowcount == 1:
                await _write_notices(conn, notices)
        return bool(result.rowcount == 1)

    async def reopen_request(self, request_id: str, *, due: datetime) -> bool:
        """Put an answered request back on the work list (the patient wrote again)."""
        c = t.request.c
        async with self._writer.begin() as conn:
            result = await conn.execute(
                update(t.request)
                .where(c.id == request_id, c.status == RequestStatus.COMPLETED.value)
                .values(status=RequestStatus.REQUESTED.value, due=due, handled=None)
            )
        return bool(result.rowcount == 1)

    async def thread_request(self, thread_id: str) -> Request | None:
        """The request a thread opened (its e-consultation or contact), if any."""
        c = t.request.c
        row = await self._row(select(t.request).where(c.thread_id == thread_id).limit(1))
        return _request(row) if row is not None else None

    def _inbox_where(
        self, office: str, kinds: frozenset[RequestKind], statuses: frozenset[RequestStatus]
    ) -> list[Any]:
        c = t.request.c
        where = [c.office == office]
        # Every kind or every status is no condition: the rows hold no other values, and
        # without it the count reads the index alone.
        if kinds != frozenset(RequestKind):
            where.append(c.kind.in_(sorted(k.value for k in kinds)))
        if statuses != frozenset(RequestStatus):
            where.append(c.status.in_(sorted(s.value for s in statuses)))
        return where

    async def inbox(
        self,
        office: str,
        *,
        kinds: frozenset[RequestKind],
        statuses: frozenset[RequestStatus],
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> tuple[Sequence[Request], int] | None:
        """One page of the office's work list, the earliest answer limit first (keyset paging
        on (due, id): a page costs the same however deep it is), and how many rows match over
        all pages; None when there is no such office. Read in one transaction, so the count is
        the page's."""
        c = t.request.c
        where = self._inbox_where(office, kinds, statuses)
        count = select(func.count()).select_from(t.request).where(and_(*where))
        if after is not None:
            # A row value: both databases take it as the index's range, not as a filter.
            where.append(tuple_(c.due, c.id) > after)
        page = select(t.request).where(and_(*where)).order_by(c.due, c.id).limit(limit)

        known = select(t.office.c.orgnr).where(t.office.c.orgnr == office)

        def read(conn: Connection) -> tuple[list[Request], int] | None:
            if conn.execute(known).first() is None:
                return None
            rows = [_request(r) for r in conn.execute(page)]
            return rows, int(conn.execute(count).scalar_one())

        return await self._read(read)

    async def add_slot(self, slot: Slot) -> None:
        async with self._writer.begin() as conn:
            await conn.execute(
                insert(t.slot).values(
                    id=slot.id,
                    office=slot.office,
                    start=slot.start,
                    end=slot.end,
                    mode=slot.mode.value,
                    free=slot.free,
                    service=slot.service.value,
                )
            )

    async def add_slots(self, slots: Sequence[Slot]) -> None:
        """Store a series of slots (a vaccination day) in one transaction: all or none."""
        if not slots:
            return
        async with self._writer.begin() as conn:
            await conn.execute(
                insert(t.slot),
                [
                    {
                        "id": s.id,
                        "office": s.office,
                        "start": s.start,
                        "end": s.end,
                        "mode": s.mode.value,
                        "free": s.free,
                        "service": s.service.value,
                    }
                    for s in slots
                ],
            )

    async def slot(self, slot_id: str) -> Slot | None:
        row = await self._row(select(t.slot).where(t.slot.c.id == slot_id))
        return _slot(row) if row is not None else None

    async def slots(
        self, office: str, *, free_from: datetime | None, service: Service | None = None
    ) -> Sequence[Slot]:
        """All slots of the office, or (free_from given) the free ones starting from then;
        only those for `service` when given."""
        c = t.slot.c
        statement = select(t.slot).where(c.office == office)
        if free_from is not None:
            statement = statement.where(c.free.is_(True), c.start >= free_from)
        if service is not None:
            statement = statement.where(c.service == service.value)
        rows = await self._rows(statement.order_by(c.start, c.id))
        return [_slot(r) for r in rows]

    async def book(
        self,
        appointment: Appointment,
        *,
        notices: Sequence[Notification] = (),
        claim: IdempotencyClaim | None = None,
    ) -> bool:
        """Take the slot and store the appointment (with its notices and idempotency key);
        False when the slot was no longer free."""
        c = t.slot.c
        async with self._writer.begin() as conn:
            await _write_claim(conn, claim, appointment.id, appointment.start)
            taken = await conn.execute(
                update(t.slot)
                .where(c.id == appointment.slot_id, c.free.is_(True))
                .values(free=False)
            )
            if taken.rowcount != 1:
                return False
            await conn.execute(
                insert(t.appointment).values(
                    id=appointment.id,
                    slot_id=appointment.slot_id,
                    office=appointment.office,
                    patient=appointment.patient,
                    booked_by=appointment.booked_by,
                    start=appointment.start,
                    end=appointment.end,
                    mode=appointment.mode.value,
                    status=appointment.status.value,
                    note=appointment.note,
                    service=appointment.service.value,
                )
            )
            await _write_notices(conn, notices)
        return True

    async def appointment(self, appointment_id: str) -> Appointment | None:
        row = await self._row(select(t.appointment).where(t.appointment.c.id == appointment_id))
        return _appointment(row) if row is not None else None

    async def appointments(self, patient: str) -> Sequence[Appointment]:
        c = t.appointment.c
        rows = await self._rows(
            select(t.appointment).where(c.patient == patient).order_by(c.start, c.id)
        )
        return [_appointment(r) for r in rows]

    async def office_appointments(
        self, office: str, *, from_: datetime, limit: int
    ) -> Sequence[Appointment]:
        """The office's booked and proposed appointments from `from_`, the earliest first."""
        c = t.appointment.c
        rows = await self._rows(
            select(t.appointment)
            .where(
                c.office == office,
                c.status.in_(_HELD),
                c.start >= from_,
            )
            .order_by(c.start, c.id)
            .limit(limit)
        )
        return [_appointment(r) for r in rows]

    async def move(
        self, appointment_id: str, slot: Slot, *, notices: Sequence[Notification] = ()
    ) -> bool:
        """Move a booked appointment to the free `slot`: take it, free the old one, in one
        transaction; False when the appointment is not booked or the slot is not free."""
        try:
            async with self._writer.begin() as conn:
                await self._move(conn, appointment_id, slot)
                await _write_notices(conn, notices)
        except _NotMoved:
            return False
        return True

    @staticmethod
    async def _move(conn: Any, appointment_id: str, slot: Slot) -> None:
        a, s = t.appointment.c, t.slot.c
        row = (
            await conn.execute(select(a.slot_id).where(a.id == appointment_id, a.status.in_(_HELD)))
        ).first()
        if row is None:
            raise _NotMoved
        taken = await conn.execute(
            update(t.slot).where(s.id == slot.id, s.free.is_(True)).values(free=False)
        )
        if taken.rowcount != 1:
            raise _NotMoved  # rolls the transaction back
        await conn.execute(update(t.slot).where(s.id == row.slot_id).values(free=True))
        await conn.execute(
            update(t.appointment)
            .where(a.id == appointment_id)
            .values(slot_id=slot.id, start=slot.start, end=slot.end, mode=slot.mode.value)
        )

    async def cancel(self, appointment_id: str, *, notices: Sequence[Notification] = ()) -> bool:
        """Cancel a booked (or proposed) appointment and free its slot; False when not."""
        c = t.appointment.c
        async with self._writer.begin() as conn:
            row = (
                await conn.execute(
                    select(c.slot_id).where(c.id == appointment_id, c.status.in_(_HELD))
                )
            ).first()
            if row is None:
                return False
            await conn.execute(
                update(t.appointment)
                .where(c.id == appointment_id)
                .values(status=AppointmentStatus.CANCELLED.value)
            )
            await conn.execute(update(t.slot).where(t.slot.c.id == row.slot_id).values(free=True))
            await _write_notices(conn, notices)
        return True

    async def confirm(self, appointment_id: str, *, notices: Sequence[Notification] = ()) -> bool:
        """Confirm a proposed appointment (now booked), its notices in the same transaction;
        False when it is not proposed."""
        c = t.appointment.c
        async with self._writer.begin() as conn:
            done = await conn.execute(
                update(t.appointment)
                .where(c.id == appointment_id, c.status == AppointmentStatus.PROPOSED.value)
                .values(status=AppointmentStatus.BOOKED.value)
            )
            if done.rowcount != 1:
                return False
            await _write_notices(conn, notices)
        return True

    # -- idempotency and the outbox ---------------------------------------------------------

    async def idempotent(
        self, key: str, *, since: datetime | None = None
    ) -> IdempotentResult | None:
        """What the request that claimed `key` made, if one did (at or after `since`: an
        older claim has outlived its retention and counts as none)."""
        c = t.idempotency.c
        statement = select(t.idempotency).where(c.key == key)
        if since is not None:
            statement = statement.where(c.created >= since)
        row = await self._row(statement)
        if row is None:
            return None
        return IdempotentResult(row.resource, row.resource_id, row.fingerprint)

    async def purge_idempotency(self, *, before: datetime) -> int:
        """Delete the idempotency keys stored before `before`; return how many."""
        async with self._writer.begin() as conn:
            result = await conn.execute(
                delete(t.idempotency).where(t.idempotency.c.created < before)
            )
        return int(result.rowcount or 0)

    async def failed_notices(self, request_ids: Sequence[str]) -> Mapping[str, datetime]:
        """For each of these work-list rows whose latest notice failed: when it failed (a
        failure followed by a notice that went through is not shown)."""
        if not request_ids:
            return {}
        c = t.notification.c
        rows = await self._rows(
            select(c.request_id, c.status, c.failed_at)
            .where(c.request_id.in_(list(request_ids)))
            .order_by(c.request_id, c.created, c.id)
        )
        latest = {r.request_id: r for r in rows}  # ordered: the last row of each wins
        return {
            ident: r.failed_at
            for ident, r in latest.items()
            if r.status == NotificationStatus.FAILED.value and r.failed_at is not None
        }

    async def office_failed_notices(
        self, office: str, *, since: datetime, limit: int
    ) -> Sequence[str]:
        """The ids of the office's work-list rows with a notice that failed since `since`, the
        latest failure first (`failed_notices` tells whether it is still their latest notice)."""
        n, r = t.notification.c, t.request.c
        rows = await self._rows(
            select(n.request_id, func.max(n.failed_at).label("failed_at"))
            .select_from(t.notification.join(t.request, r.id == n.request_id))
            .where(
                r.office == office,
                n.status == NotificationStatus.FAILED.value,
                n.failed_at >= since,
            )
            .group_by(n.request_id)
            .order_by(func.max(n.failed_at).desc(), n.request_id)
            .limit(limit)
        )
        return [row.request_id for row in rows]

    async def due_notifications(self, now: datetime, limit: int) -> Sequence[Notification]:
        """Notices to try now: pending and due, or `sending` whose lease ran out (a sender
        that died mid-send; dialogue.notify resends them with the same Message-ID)."""
        c = t.notification.c
        rows = await self._rows(
            select(t.notification)
            .where(
                c.status.in_([NotificationStatus.PENDING.value, NotificationStatus.SENDING.value]),
                c.next_attempt <= now,
            )
            .order_by(c.next_attempt, c.id)
            .limit(limit)
        )
        return [_notification(r) for r in rows]

    async def claim_notification(self, ident: str, *, now: datetime, lease_until: datetime) -> bool:
        """Mark a due notice `sending` (one attempt more) until `lease_until`; False when
        another sender has it or it is no longer due."""
        c = t.notification.c
        async with self._writer.begin() as conn:
            result = await conn.execute(
                update(t.notification)
                .where(
                    c.id == ident,
                    c.status.in_(
                        [NotificationStatus.PENDING.value, NotificationStatus.SENDING.value]
                    ),
                    c.next_attempt <= now,
                )
                .values(
                    status=NotificationStatus.SENDING.value,
                    attempts=c.attempts + 1,
                    next_attempt=lease_until,
                )
            )
        return bool(result.rowcount == 1)

    async def notification_done(
        self,
        ident: str,
        *,
        status: NotificationStatus,
        error: str | None = None,
        next_attempt: datetime | None = None,
        sent_at: datetime | None = None,
        failed_at: datetime | None = None,
    ) -> None:
        """Record how an attempt ended (sent, to be retried at `next_attempt`, failed, …)."""
        values: dict[str, Any] = {"status": status.value}
        if failed_at is not None:
            values["failed_at"] = failed_at
        if error is not None:  # a later success keeps the last failure's class on record
            values["last_error"] = error
        if next_attempt is not None:
            values["next_attempt"] = next_attempt
        if sent_at is not None:
            values["sent_at"] = sent_at
        async with self._writer.begin() as conn:
            await conn.execute(
                update(t.notification).where(t.notification.c.id == ident).values(**values)
            )

    async def notifications(self, recipient: str | None = None) -> Sequence[Notification]:
        """The outbox (a person's rows, or all), oldest first."""
        c = t.notification.c
        statement = select(t.notification)
        if recipient is not None:
            statement = statement.where(c.recipient == recipient)
        rows = await self._rows(statement.order_by(c.created, c.id))
        return [_notification(r) for r in rows]
