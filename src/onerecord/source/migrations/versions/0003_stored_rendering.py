"""Store each entry's DocumentReference rendering and its label codes for the search path.

Adds `document_entry.confidentiality_codes` and `document_entry.rendered` and fills them for
every existing row in batches (onerecord.source.store.fill_stored_renderings), so a registry
upgrades in place; a search then splices the stored rendering instead of decoding the metadata.

Revision ID: 0003_stored_rendering
Revises: 0002_audit_and_controls
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from onerecord.source.store import fill_stored_renderings

revision = "0003_stored_rendering"
down_revision = "0002_audit_and_controls"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("document_entry", sa.Column("confidentiality_codes", sa.Text(), nullable=True))
    op.add_column("document_entry", sa.Column("rendered", sa.LargeBinary(), nullable=True))
    fill_stored_renderings(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table("document_entry") as batch:
        batch.drop_column("rendered")
        batch.drop_column("confidentiality_codes")
