"""Indexes that serve the work list and the free-slot lookup in their own order.

The work list reads in (due, id) order: with `id` and `kind` in the index a page of one status
is read in order and filtered in the index, its count covered by it; a page over several
statuses walks (office, due, id) instead of sorting every row of the office. The free slots
are read in (start, id) order. Measured with bench/dialogue.py (docs/benchmarks.md).

Hand-written; mirrors onerecord.dialogue.schema.request and .slot.

Revision ID: 0007_worklist_indexes
Revises: 0006_notice_failures
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0007_worklist_indexes"
down_revision = "0006_notice_failures"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_dialogue_request_office_status_due", table_name="dialogue_request")
    op.create_index(
        "ix_dialogue_request_office_status_due_id_kind",
        "dialogue_request",
        ["office", "status", "due", "id", "kind"],
    )
    op.create_index(
        "ix_dialogue_request_office_due_id_status_kind",
        "dialogue_request",
        ["office", "due", "id", "status", "kind"],
    )
    op.drop_index("ix_dialogue_slot_office_free_start", table_name="dialogue_slot")
    op.create_index(
        "ix_dialogue_slot_office_free_start_id", "dialogue_slot", ["office", "free", "start", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_dialogue_slot_office_free_start_id", table_name="dialogue_slot")
    op.create_index(
        "ix_dialogue_slot_office_free_start", "dialogue_slot", ["office", "free", "start"]
    )
    op.drop_index("ix_dialogue_request_office_due_id_status_kind", table_name="dialogue_request")
    op.drop_index("ix_dialogue_request_office_status_due_id_kind", table_name="dialogue_request")
    op.create_index(
        "ix_dialogue_request_office_status_due", "dialogue_request", ["office", "status", "due"]
    )
