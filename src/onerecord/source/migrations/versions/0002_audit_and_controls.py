"""Create the audit chain (audit_event, audit_chain_head) and the patient controls.

Hand-written; mirrors onerecord.audit.store and onerecord.source.patient_controls.

Revision ID: 0002_audit_and_controls
Revises: 0001_registry
Create Date: 2025-01-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_audit_and_controls"
down_revision = "0001_registry"
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
        "patient_reservation",
        sa.Column("patient_id", sa.String(11), nullable=False),
        sa.Column("since", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("patient_id", name="pk_patient_reservation"),
    )
    op.create_table(
        "document_block",
        sa.Column("patient_id", sa.String(11), nullable=False),
        sa.Column("unique_id", sa.String(128), nullable=False),
        sa.Column("since", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("patient_id", "unique_id", name="pk_document_block"),
    )
    op.create_table(
        "practitioner_block",
        sa.Column("patient_id", sa.String(11), nullable=False),
        sa.Column("practitioner_id", sa.String(11), nullable=False),
        sa.Column("since", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("patient_id", "practitioner_id", name="pk_practitioner_block"),
    )


def downgrade() -> None:
    op.drop_table("practitioner_block")
    op.drop_table("document_block")
    op.drop_table("patient_reservation")
    op.drop_table("audit_chain_head")
    op.drop_index("ix_audit_event_patient_id_recorded", table_name="audit_event")
    op.drop_table("audit_event")
