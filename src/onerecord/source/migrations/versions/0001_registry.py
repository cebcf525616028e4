"""Create the registry: document_entry, document_label, document_code, submission_set.

Hand-written; tests/source/test_migrations.py checks it matches onerecord.source.schema.

Revision ID: 0001_registry
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_registry"
down_revision = None
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_WHEN = sa.DateTime(timezone=True)
_TITLE = sa.String(512).with_variant(postgresql.VARCHAR(512, collation="C"), "postgresql")
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "document_entry",
        sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
        sa.Column("unique_id", sa.String(128), nullable=False),
        sa.Column("entry_uuid", sa.String(36), nullable=False),
        sa.Column("patient_id", sa.String(11), nullable=False),
        sa.Column("patient_system", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("class_system", sa.String(128), nullable=False),
        sa.Column("class_code", sa.String(64), nullable=False),
        sa.Column("type_system", sa.String(128), nullable=False),
        sa.Column("type_code", sa.String(64), nullable=False),
        sa.Column("format_system", sa.String(128), nullable=False),
        sa.Column("format_code", sa.String(256), nullable=False),
        sa.Column("mime_type", sa.String(128), nullable=False),
        sa.Column("hash_sha256", sa.String(64), nullable=False),
        sa.Column("hash_sha1", sa.String(40), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("creation_time", _WHEN, nullable=False),
        sa.Column("service_start_time", _WHEN, nullable=True),
        sa.Column("service_stop_time", _WHEN, nullable=True),
        sa.Column("period_sort", _WHEN, nullable=False),
        sa.Column("title", _TITLE, nullable=False),
        sa.Column("language_code", sa.String(35), nullable=False),
        sa.Column("facility_system", sa.String(128), nullable=False),
        sa.Column("facility_type", sa.String(64), nullable=False),
        sa.Column("setting_system", sa.String(128), nullable=False),
        sa.Column("practice_setting", sa.String(64), nullable=False),
        sa.Column("citizen_release_time", _WHEN, nullable=True),
        sa.Column("replaces", sa.String(128), nullable=True),
        sa.Column("submission_time", _WHEN, nullable=True),
        sa.Column("home_community_id", sa.String(72), nullable=True),
        sa.Column("repository_unique_id", sa.String(64), nullable=True),
        sa.Column("author_search", sa.Text(), nullable=False),
        sa.Column("metadata", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_document_entry"),
        sa.UniqueConstraint("unique_id", name="uq_document_entry_unique_id"),
        sa.UniqueConstraint("entry_uuid", name="uq_document_entry_entry_uuid"),
        sa.CheckConstraint(
            "status IN ('current', 'superseded', 'entered-in-error')",
            name="ck_document_entry_status_known",
        ),
        sa.CheckConstraint("size >= 0", name="ck_document_entry_size_not_negative"),
    )
    op.create_index(
        "ix_document_entry_patient_creation",
        "document_entry",
        ["patient_id", "status", sa.text("creation_time DESC"), sa.text("seq DESC")],
    )
    op.create_index(
        "ix_document_entry_patient_period",
        "document_entry",
        ["patient_id", "status", sa.text("period_sort DESC"), sa.text("seq DESC")],
    )
    op.create_index(
        "ix_document_entry_patient_title",
        "document_entry",
        ["patient_id", "status", "title", "seq"],
    )
    op.create_index("ix_document_entry_hash_sha256", "document_entry", ["hash_sha256"])

    op.create_table(
        "document_label",
        sa.Column("entry_seq", _SEQ, nullable=False),
        sa.Column("system", sa.String(128), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("entry_seq", "system", "code", name="pk_document_label"),
        sa.ForeignKeyConstraint(
            ["entry_seq"],
            ["document_entry.seq"],
            name="fk_document_label_entry_seq_document_entry",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_document_label_code", "document_label", ["system", "code", "entry_seq"])

    op.create_table(
        "document_code",
        sa.Column("entry_seq", _SEQ, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("system", sa.String(256), nullable=False),
        sa.Column("code", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("entry_seq", "kind", "system", "code", name="pk_document_code"),
        sa.ForeignKeyConstraint(
            ["entry_seq"],
            ["document_entry.seq"],
            name="fk_document_code_entry_seq_document_entry",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "kind IN ('event', 'related', 'identifier')", name="ck_document_code_kind_known"
        ),
    )
    op.create_index(
        "ix_document_code_code", "document_code", ["kind", "system", "code", "entry_seq"]
    )

    op.create_table(
        "submission_set",
        sa.Column("unique_id", sa.String(128), nullable=False),
        sa.Column("source_id", sa.String(128), nullable=False),
        sa.Column("submission_time", _WHEN, nullable=False),
        sa.Column("entry_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("unique_id", name="pk_submission_set"),
    )


def downgrade() -> None:
    op.drop_table("submission_set")
    op.drop_table("document_code")
    op.drop_table("document_label")
    op.drop_table("document_entry")
