"""Failed notices shown on the work list, and idempotency keys that expire.

`dialogue_notification.request_id` names the work-list row (dialogue_request) a notice tells
of and `failed_at` when its last attempt failed, so the office sees «Varsel ikke levert» on
the thread or request; `dialogue_idempotency.created` is indexed for the purge of keys older
than their retention.

Hand-written; mirrors onerecord.dialogue.schema.notification and .idempotency.

Revision ID: 0006_notice_failures
Revises: 0005_flu_vaccine_slots
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_notice_failures"
down_revision = "0005_flu_vaccine_slots"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dialogue_notification") as batch:
        batch.add_column(sa.Column("request_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_dialogue_notification_request_id", "dialogue_notification", ["request_id"])
    op.create_index("ix_dialogue_idempotency_created", "dialogue_idempotency", ["created"])


def downgrade() -> None:
    op.drop_index("ix_dialogue_idempotency_created", "dialogue_idempotency")
    op.drop_index("ix_dialogue_notification_request_id", "dialogue_notification")
    with op.batch_alter_table("dialogue_notification") as batch:
        batch.drop_column("failed_at")
        batch.drop_column("request_id")
