"""The e-mail outbox (dialogue_notification) and the idempotency keys (dialogue_idempotency).

Hand-written; mirrors onerecord.dialogue.schema.notification and .idempotency.

Revision ID: 0003_notifications
Revises: 0002_attachments
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_notifications"
down_revision = "0002_attachments"
branch_labels = None
depends_on = None

_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dialogue_notification",
        sa.Column("id", sa.String(160), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("recipient", sa.String(11), nullable=False),
        sa.Column("created", _WHEN, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt", _WHEN, nullable=False),
        sa.Column("last_error", sa.String(80), nullable=True),
        sa.Column("sent_at", _WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_dialogue_notification"),
    )
    op.create_index(
        "ix_dialogue_notification_status_next_attempt",
        "dialogue_notification",
        ["status", "next_attempt"],
    )
    op.create_table(
        "dialogue_idempotency",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("resource", sa.String(32), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("created", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_dialogue_idempotency"),
    )


def downgrade() -> None:
    op.drop_table("dialogue_idempotency")
    op.drop_table("dialogue_notification")
