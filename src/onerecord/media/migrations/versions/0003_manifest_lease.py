"""A lease on each study's outbox row, so one manifest worker at a time publishes it.

Hand-written; mirrors onerecord.media.schema (media_manifest.claimed_by, .lease_until). Rows
already there start unclaimed.

Revision ID: 0003_manifest_lease
Revises: 0002_manifest_outbox
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_manifest_lease"
down_revision = "0002_manifest_outbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("media_manifest") as table:
        table.add_column(sa.Column("claimed_by", sa.String(64), nullable=True))
        table.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("media_manifest") as table:
        table.drop_column("lease_until")
        table.drop_column("claimed_by")
