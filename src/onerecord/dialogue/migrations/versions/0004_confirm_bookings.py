"""An office's choice to confirm each booking by a patient (dialogue_office.confirm_bookings).

Hand-written; mirrors onerecord.dialogue.schema.office. Existing offices keep booking at once.

Revision ID: 0004_confirm_bookings
Revises: 0003_notifications
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_confirm_bookings"
down_revision = "0003_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dialogue_office") as batch:
        batch.add_column(
            sa.Column("confirm_bookings", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("dialogue_office") as batch:
        batch.drop_column("confirm_bookings")
