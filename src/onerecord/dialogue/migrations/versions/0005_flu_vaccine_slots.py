"""What a slot and an appointment are for: a consultation or a flu vaccine (`service`).

Hand-written; mirrors onerecord.dialogue.schema.slot and .appointment. Existing slots and
appointments are consultations (the server default).

Revision ID: 0005_flu_vaccine_slots
Revises: 0004_confirm_bookings
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_flu_vaccine_slots"
down_revision = "0004_confirm_bookings"
branch_labels = None
depends_on = None

_TABLES = ("dialogue_slot", "dialogue_appointment")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column(
                    "service",
                    sa.String(32),
                    nullable=False,
                    server_default="appointment-booking",
                )
            )


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("service")
