"""Create the dialogue tables and the audit chain.

Hand-written; mirrors onerecord.dialogue.schema and onerecord.audit.store.

Revision ID: 0001_dialogue
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_dialogue"
down_revision = None
branch_labels = None
depends_on = None

_WHEN = sa.DateTime(timezone=True)
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("source_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("recorded", _WHEN, nullable=False),
        sa.Column("patient_id", sa.String(11), nullable=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("event", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("source_id", "seq", name="pk_audit_event"),
    )
    op.create_index("ix_audit_event_patient_id_recorded", "audit_event", ["patient_id", "recorded"])
    op.create_table(
        "audit_chain_head",
        sa.Column("source_id", sa.String(64), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("source_id", name="pk_audit_chain_head"),
    )
    op.create_table(
        "dialogue_office",
        sa.Column("orgnr", sa.String(9), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("phone", sa.String(40), nullable=False),
        sa.Column("services", _JSON, nullable=False),
        sa.Column("information", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("orgnr", name="pk_dialogue_office"),
    )
    op.create_table(
        "dialogue_list_patient",
        sa.Column("patient", sa.String(11), nullable=False),
        sa.Column("office", sa.String(9), nullable=False),
        sa.Column("gp_name", sa.String(200), nullable=True),
        sa.Column("address_protected", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("patient", name="pk_dialogue_list_patient"),
    )
    op.create_index("ix_dialogue_list_patient_office", "dialogue_list_patient", ["office"])
    op.create_table(
        "dialogue_medication",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("patient", sa.String(11), nullable=False),
        sa.Column("office", sa.String(9), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("dosage", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dialogue_medication"),
    )
    op.create_index("ix_dialogue_medication_patient", "dialogue_medication", ["patient"])
    op.create_table(
        "dialogue_message",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("thread_id", sa.String(64), nullable=False),
        sa.Column("office", sa.String(9), nullable=False),
        sa.Column("patient", sa.String(11), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("sender", sa.String(16), nullable=False),
        sa.Column("author", sa.String(11), nullable=False),
        sa.Column("author_name", sa.String(200), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sent", _WHEN, nullable=False),
        sa.Column("in_response_to", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_dialogue_message"),
    )
    op.create_index("ix_dialogue_message_thread_id_sent", "dialogue_message", ["thread_id", "sent"])
    op.create_index("ix_dialogue_message_patient_sent", "dialogue_message", ["patient", "sent"])
    op.create_index("ix_dialogue_message_office_sent", "dialogue_message", ["office", "sent"])
    op.create_table(
        "dialogue_request",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("office", sa.String(9), nullable=False),
        sa.Column("patient", sa.String(11), nullable=False),
        sa.Column("requester", sa.String(11), nullable=False),
        sa.Column("created", _WHEN, nullable=False),
        sa.Column("due", _WHEN, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("thread_id", sa.String(64), nullable=True),
        sa.Column("medication_id", sa.String(64), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("fee_acknowledged", _WHEN, nullable=True),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("handled", _WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_dialogue_request"),
    )
    op.create_index(
        "ix_dialogue_request_office_status_due", "dialogue_request", ["office", "status", "due"]
    )
    op.create_index(
        "ix_dialogue_request_patient_created", "dialogue_request", ["patient", "created"]
    )
    op.create_index("ix_dialogue_request_thread_id", "dialogue_request", ["thread_id"])
    op.create_table(
        "dialogue_slot",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("office", sa.String(9), nullable=False),
        sa.Column("start", _WHEN, nullable=False),
        sa.Column("end", _WHEN, nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("free", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dialogue_slot"),
    )
    op.create_index(
        "ix_dialogue_slot_office_free_start", "dialogue_slot", ["office", "free", "start"]
    )
    op.create_table(
        "dialogue_appointment",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("slot_id", sa.String(64), nullable=False),
        sa.Column("office", sa.String(9), nullable=False),
        sa.Column("patient", sa.String(11), nullable=False),
        sa.Column("booked_by", sa.String(11), nullable=False),
        sa.Column("start", _WHEN, nullable=False),
        sa.Column("end", _WHEN, nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_dialogue_appointment"),
    )
    op.create_index(
        "ix_dialogue_appointment_patient_start", "dialogue_appointment", ["patient", "start"]
    )
    op.create_index("ix_dialogue_appointment_slot_id", "dialogue_appointment", ["slot_id"])
    op.create_table(
        "dialogue_absence",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("office", sa.String(9), nullable=False),
        sa.Column("start_local", sa.DateTime(timezone=False), nullable=False),
        sa.Column("end_local", sa.DateTime(timezone=False), nullable=False),
        sa.Column("services", _JSON, nullable=False),
        sa.Column("substitute", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_dialogue_absence"),
    )
    op.create_index("ix_dialogue_absence_office", "dialogue_absence", ["office"])


def downgrade() -> None:
    for table in (
        "dialogue_absence",
        "dialogue_appointment",
        "dialogue_slot",
        "dialogue_request",
        "dialogue_message",
        "dialogue_medication",
        "dialogue_list_patient",
        "dialogue_office",
        "audit_chain_head",
        "audit_event",
    ):
        op.drop_table(table)
