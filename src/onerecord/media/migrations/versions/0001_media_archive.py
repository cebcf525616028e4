"""Create the archive's tables (patient, study, series, instance) and its audit chain.

Hand-written; mirrors onerecord.media.schema and onerecord.audit.store.

Revision ID: 0001_media_archive
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_media_archive"
down_revision = None
branch_labels = None
depends_on = None

_WHEN = sa.DateTime(timezone=True)
_AUDIT_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "media_patient",
        sa.Column("patient_key", sa.String(200), primary_key=True),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("issuer_of_patient_id", sa.String(64), nullable=False),
        sa.Column("patient_name", sa.String(324), nullable=False),
        sa.Column("patient_birth_date", sa.String(8), nullable=False),
        sa.Column("patient_sex", sa.String(16), nullable=False),
    )
    op.create_index("ix_media_patient_id", "media_patient", ["patient_id"])
    op.create_table(
        "media_study",
        sa.Column("study_instance_uid", sa.String(64), primary_key=True),
        sa.Column(
            "patient_key",
            sa.String(200),
            sa.ForeignKey("media_patient.patient_key"),
            nullable=False,
        ),
        sa.Column("study_date", sa.String(8), nullable=False),
        sa.Column("study_time", sa.String(16), nullable=False),
        sa.Column("accession_number", sa.String(16), nullable=False),
        sa.Column("study_id", sa.String(16), nullable=False),
        sa.Column("study_description", sa.String(64), nullable=False),
        sa.Column("referring_physician_name", sa.String(324), nullable=False),
        sa.Column("created", _WHEN, nullable=False),
    )
    op.create_index("ix_media_study_patient", "media_study", ["patient_key"])
    op.create_index("ix_media_study_date", "media_study", ["study_date"])
    op.create_index("ix_media_study_accession", "media_study", ["accession_number"])
    op.create_table(
        "media_series",
        sa.Column("series_instance_uid", sa.String(64), primary_key=True),
        sa.Column(
            "study_instance_uid",
            sa.String(64),
            sa.ForeignKey("media_study.study_instance_uid"),
            nullable=False,
        ),
        sa.Column("modality", sa.String(16), nullable=False),
        sa.Column("series_number", sa.Integer(), nullable=True),
        sa.Column("series_description", sa.String(64), nullable=False),
        sa.Column("body_part_examined", sa.String(16), nullable=False),
    )
    op.create_index("ix_media_series_study", "media_series", ["study_instance_uid"])
    op.create_index("ix_media_series_modality", "media_series", ["modality"])
    op.create_table(
        "media_instance",
        sa.Column("sop_instance_uid", sa.String(64), primary_key=True),
        sa.Column(
            "series_instance_uid",
            sa.String(64),
            sa.ForeignKey("media_series.series_instance_uid"),
            nullable=False,
        ),
        sa.Column("study_instance_uid", sa.String(64), nullable=False),
        sa.Column("sop_class_uid", sa.String(64), nullable=False),
        sa.Column("instance_number", sa.Integer(), nullable=True),
        sa.Column("transfer_syntax_uid", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content_key", sa.String(64), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("calling_ae_title", sa.String(16), nullable=False),
        sa.Column("stored", _WHEN, nullable=False),
    )
    op.create_index("ix_media_instance_series", "media_instance", ["series_instance_uid"])
    op.create_index("ix_media_instance_study", "media_instance", ["study_instance_uid"])
    op.create_index("ix_media_instance_content", "media_instance", ["content_key"])
    # The audit chain, as onerecord.audit.store defines it (and source 0002 creates it).
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
        sa.Column("event", _AUDIT_JSON, nullable=False),
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


def downgrade() -> None:
    op.drop_table("audit_chain_head")
    op.drop_index("ix_audit_event_patient_id_recorded", table_name="audit_event")
    op.drop_table("audit_event")
    for table in ("media_instance", "media_series", "media_study", "media_patient"):
        op.drop_table(table)
