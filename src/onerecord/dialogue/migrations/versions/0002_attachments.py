"""The photos sent with a message (dialogue_attachment).

Hand-written; mirrors onerecord.dialogue.schema.attachment.

Revision ID: 0002_attachments
Revises: 0001_dialogue
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_attachments"
down_revision = "0001_dialogue"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dialogue_attachment",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("content_type", sa.String(32), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dialogue_attachment"),
    )
    op.create_index("ix_dialogue_attachment_message_id", "dialogue_attachment", ["message_id"])


def downgrade() -> None:
    op.drop_table("dialogue_attachment")
