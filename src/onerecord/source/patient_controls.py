"""The patient's own controls at a document source: reservation against sharing and blocks.

A citizen (through the portal) or the hospital on the patient's request reserves the patient
against sharing, blocks single documents, or blocks named health workers. The access policy gets
them as one frozen `PatientControls` value per request.

References: TRUST-FRAMEWORK §4.5 (sperring, reservation), ATT-5 (blocks of a named health
worker), scenario D4.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, MetaData, String, Table, delete, literal, select, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from onerecord.domain import DocumentUniqueId, HprNumber, NationalIdentityNumber
from onerecord.source.schema import UtcDateTime
from onerecord.trust.policy import PatientControls

__all__ = [
    "PatientControlStore",
    "controls_metadata",
    "document_block",
    "patient_reservation",
    "practitioner_block",
]

controls_metadata = MetaData(naming_convention={"pk": "pk_%(table_name)s"})

patient_reservation = Table(
    "patient_reservation",
    controls_metadata,
    Column("patient_id", String(11), primary_key=True),
    Column("since", UtcDateTime, nullable=False),
)

document_block = Table(
    "document_block",
    controls_metadata,
    Column("patient_id", String(11), primary_key=True),
    Column("unique_id", String(128), primary_key=True),
    Column("since", UtcDateTime, nullable=False),
)

practitioner_block = Table(
    "practitioner_block",
    controls_metadata,
    Column("patient_id", String(11), primary_key=True),
    # An HPR number (4–9 digits) or a national identity number (11 digits).
    Column("practitioner_id", String(11), primary_key=True),
    Column("since", UtcDateTime, nullable=False),
)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class PatientControlStore:
    """Reservations and blocks in the source's database (same engine as the registry)."""

    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._engine = engine
        self._clock = clock

    async def _insert_once(self, table: Table, values: dict[str, Any]) -> None:
        """Insert a row unless its key is there already (the first `since` is kept)."""
        dialect = self._engine.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(table).values(**values).on_conflict_do_nothing()
        async with self._engine.begin() as conn:
            await conn.execute(statement)

    async def _delete(self, table: Table, *where: Any) -> bool:
        async with self._engine.begin() as conn:
            result = await conn.execute(delete(table).where(*where))
        return bool(result.rowcount)

    async def reserve(self, patient: NationalIdentityNumber) -> None:
        """Reserve the patient against document sharing (D4)."""
        await self._insert_once(
            patient_reservation, {"patient_id": patient.value, "since": self._clock()}
        )

    async def unreserve(self, patient: NationalIdentityNumber) -> bool:
        """Lift the reservation; return whether there was one."""
        return await self._delete(
            patient_reservation, patient_reservation.c.patient_id == patient.value
        )

    async def block_document(
        self, patient: NationalIdentityNumber, unique_id: DocumentUniqueId
    ) -> None:
        """Block one document from health personnel (masked like NORS)."""
        await self._insert_once(
            document_block,
            {"patient_id": patient.value, "unique_id": unique_id.value, "since": self._clock()},
        )

    async def unblock_document(
        self, patient: NationalIdentityNumber, unique_id: DocumentUniqueId
    ) -> bool:
        """Lift a document block; return whether there was one."""
        return await self._delete(
            document_block,
            document_block.c.patient_id == patient.value,
            document_block.c.unique_id == unique_id.value,
        )

    async def block_practitioner(
        self, patient: NationalIdentityNumber, practitioner: HprNumber | NationalIdentityNumber
    ) -> None:
        """Block a named health worker, by HPR number or identity number (ATT-5)."""
        await self._insert_once(
            practitioner_block,
            {
                "patient_id": patient.value,
                "practitioner_id": practitioner.value,
                "since": self._clock(),
            },
        )

    async def unblock_practitioner(
        self, patient: NationalIdentityNumber, practitioner: HprNumber | NationalIdentityNumber
    ) -> bool:
        """Lift a block of a health worker; return whether there was one."""
        return await self._delete(
            practitioner_block,
            practitioner_block.c.patient_id == patient.value,
            practitioner_block.c.practitioner_id == practitioner.value,
        )

    async def controls_for(self, patient: NationalIdentityNumber) -> PatientControls:
        """Return the patient's reservation and blocks as one value for the policy."""
        async with self._engine.connect() as conn:
            return await _read_controls(conn, patient)


async def _read_controls(conn: AsyncConnection, patient: NationalIdentityNumber) -> PatientControls:
    # One round trip on the hot path of every search: the three controls as one UNION ALL.
    pid = patient.value
    reservation, doc_block, hcp_block = (
        patient_reservation.c,
        document_block.c,
        practitioner_block.c,
    )
    rows = (
        await conn.execute(
            union_all(
                select(
                    literal("r").label("kind"), literal("").label("value"), reservation.since
                ).where(reservation.patient_id == pid),
                select(literal("d"), doc_block.unique_id, doc_block.since).where(
                    doc_block.patient_id == pid
                ),
                select(literal("p"), hcp_block.practitioner_id, hcp_block.since).where(
                    hcp_block.patient_id == pid
                ),
            )
        )
    ).all()
    since = next((row.since for row in rows if row.kind == "r"), None)
    documents = [row.value for row in rows if row.kind == "d"]
    practitioners = [row.value for row in rows if row.kind == "p"]
    return PatientControls(
        patient=patient,
        reserved_since=since,
        blocked_documents=frozenset(DocumentUniqueId(u) for u in documents),
        blocked_practitioners=frozenset(practitioners),
    )
