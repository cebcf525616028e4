"""The dialogue service's tables (SQLAlchemy Core), one metadata with the audit chain's tables.

Times are stored as UTC instants, except an absence's start and end, which are Oslo wall-clock
times as the office entered them (naive); the rules turn them into instants.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    false,
)

from onerecord.audit import audit_metadata
from onerecord.sqldb import JsonDocument, UtcDateTime

__all__ = [
    "absence",
    "appointment",
    "attachment",
    "idempotency",
    "list_patient",
    "medication",
    "message",
    "metadata",
    "notification",
    "office",
    "request",
    "slot",
]


metadata = MetaData(naming_convention=audit_metadata.naming_convention)
for _table in audit_metadata.tables.values():
    _table.to_metadata(metadata)

office = Table(
    "dialogue_office",
    metadata,
    Column("orgnr", String(9), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("phone", String(40), nullable=False),
    Column("services", JsonDocument, nullable=False),
    Column("information", Text, nullable=True),
    Column("confirm_bookings", Boolean, nullable=False, server_default=false()),
)

list_patient = Table(
    "dialogue_list_patient",
    metadata,
    Column("patient", String(11), primary_key=True),
    Column("office", String(9), nullable=False),
    Column("gp_name", String(200), nullable=True),
    Column("address_protected", Boolean, nullable=False),
    Index(None, "office"),
)

medication = Table(
    "dialogue_medication",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("patient", String(11), nullable=False),
    Column("office", String(9), nullable=False),
    Column("name", String(200), nullable=False),
    Column("dosage", String(200), nullable=False),
    Index(None, "patient"),
)

message = Table(
    "dialogue_message",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("thread_id", String(64), nullable=False),
    Column("office", String(9), nullable=False),
    Column("patient", String(11), nullable=False),
    Column("category", String(32), nullable=False),
    Column("sender", String(16), nullable=False),
    Column("author", String(11), nullable=False),
    Column("author_name", String(200), nullable=True),
    Column("text", Text, nullable=False),
    Column("sent", UtcDateTime, nullable=False),
    Column("in_response_to", String(64), nullable=True),
    Index(None, "thread_id", "sent"),
    Index(None, "patient", "sent"),
    Index(None, "office", "sent"),
)

request = Table(
    "dialogue_request",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("office", String(9), nullable=False),
    Column("patient", String(11), nullable=False),
    Column("requester", String(11), nullable=False),
    Column("created", UtcDateTime, nullable=False),
    Column("due", UtcDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("thread_id", String(64), nullable=True),
    Column("medication_id", String(64), nullable=True),
    Column("note", Text, nullable=True),
    Column("fee_acknowledged", UtcDateTime, nullable=True),
    Column("status_reason", Text, nullable=True),
    Column("handled", UtcDateTime, nullable=True),
    # The work list (store.inbox): one status in (due, id) order, kind read from the index,
    # and its count covered; several statuses in (due, id) order without a sort.
    Index(None, "office", "status", "due", "id", "kind"),
    Index(None, "office", "due", "id", "status", "kind"),
    Index(None, "patient", "created"),
    Index(None, "thread_id"),
)

slot = Table(
    "dialogue_slot",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("office", String(9), nullable=False),
    Column("start", UtcDateTime, nullable=False),
    Column("end", UtcDateTime, nullable=False),
    Column("mode", String(16), nullable=False),
    Column("free", Boolean, nullable=False),
    # What the slot is for: a consultation or a flu vaccine (migration 0005).
    Column("service", String(32), nullable=False, server_default="appointment-booking"),
    Index(None, "office", "free", "start", "id"),
)

appointment = Table(
    "dialogue_appointment",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("slot_id", String(64), nullable=False),
    Column("office", String(9), nullable=False),
    Column("patient", String(11), nullable=False),
    Column("booked_by", String(11), nullable=False),
    Column("start", UtcDateTime, nullable=False),
    Column("end", UtcDateTime, nullable=False),
    Column("mode", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("note", Text, nullable=True),
    Column("service", String(32), nullable=False, server_default="appointment-booking"),
    Index(None, "patient", "start"),
    Index(None, "slot_id"),
)

absence = Table(
    "dialogue_absence",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("office", String(9), nullable=False),
    Column("start_local", DateTime(timezone=False), nullable=False),
    Column("end_local", DateTime(timezone=False), nullable=False),
    Column("services", JsonDocument, nullable=False),
    Column("substitute", String(200), nullable=True),
    Index(None, "office"),
)

attachment = Table(
    "dialogue_attachment",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("message_id", String(64), nullable=False),
    Column("content_type", String(32), nullable=False),
    Column("size", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Index(None, "message_id"),
)

notification = Table(
    "dialogue_notification",
    metadata,
    # Derived from the event ("answer-<message id>", …): one row, and one mail, per event.
    Column("id", String(160), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("recipient", String(11), nullable=False),
    Column("created", UtcDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt", UtcDateTime, nullable=False),
    Column("last_error", String(80), nullable=True),
    Column("sent_at", UtcDateTime, nullable=True),
    # The work-list row the notice tells of (shown there when the notice failed), if any.
    Column("request_id", String(64), nullable=True),
    Column("failed_at", UtcDateTime, nullable=True),
    Index(None, "status", "next_attempt"),
    Index(None, "request_id"),
)

idempotency = Table(
    "dialogue_idempotency",
    metadata,
    # sha256 of (the caller's national id, the operation, the client's Idempotency-Key).
    Column("key", String(64), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("resource", String(32), nullable=False),
    Column("resource_id", String(64), nullable=False),
    Column("created", UtcDateTime, nullable=False),
    Index(None, "created"),  # the purge of expired keys
)
