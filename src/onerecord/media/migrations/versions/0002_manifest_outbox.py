"""The national overview's outbox: one row per study and the manifest versions prepared.

Hand-written; mirrors onerecord.media.schema (media_manifest, media_manifest_version). Every
study already in the archive gets an outbox row, so it is published too.

Revision ID: 0002_manifest_outbox
Revises: 0001_media_archive
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_manifest_outbox"
down_revision = "0001_media_archive"
branch_labels = None
depends_on = None

_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "media_manifest",
        sa.Column(
            "study_instance_uid",
            sa.String(64),
            sa.ForeignKey("media_study.study_instance_uid"),
            primary_key=True,
        ),
        sa.Column("changes", sa.Integer(), nullable=False),
        sa.Column("changed", _WHEN, nullable=False),
        sa.Column("published_changes", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt", _WHEN, nullable=True),
        sa.Column("outcome", sa.String(64), nullable=True),
    )
    op.create_index("ix_media_manifest_changed", "media_manifest", ["changed"])
    op.create_table(
        "media_manifest_version",
        sa.Column("unique_id", sa.String(64), primary_key=True),
        sa.Column("study_instance_uid", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("entry_uuid", sa.String(36), nullable=False),
        sa.Column("replaces", sa.String(64), nullable=True),
        sa.Column("changes", sa.Integer(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("prepared", _WHEN, nullable=False),
        sa.Column("published", _WHEN, nullable=True),
        sa.Column("refused", sa.String(200), nullable=True),
        sa.UniqueConstraint("study_instance_uid", "version", name="uq_media_manifest_version"),
    )
    op.create_index(
        "ix_media_manifest_version_study", "media_manifest_version", ["study_instance_uid"]
    )
    # Studies stored before this revision: due at once, as if their last instance had just come.
    op.execute(
        "INSERT INTO media_manifest (study_instance_uid, changes, changed, published_changes,"
        " attempts) SELECT s.study_instance_uid, (SELECT count(*) FROM media_instance i"
        " WHERE i.study_instance_uid = s.study_instance_uid), s.created, 0, 0 FROM media_study s"
        " WHERE EXISTS (SELECT 1 FROM media_instance i"
        " WHERE i.study_instance_uid = s.study_instance_uid)"
    )


def downgrade() -> None:
    op.drop_index("ix_media_manifest_version_study", table_name="media_manifest_version")
    op.drop_table("media_manifest_version")
    op.drop_index("ix_media_manifest_changed", table_name="media_manifest")
    op.drop_table("media_manifest")
