"""The hub's own audit chain, in a database of its own (`onerecord.audit.make_audit_engine`).

With a checkpoint file and key in the settings, the hub's chain head is signed into that file
(audit/checkpoint.py), so that `onerecord audit verify --checkpoints …` notices a rewrite.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from onerecord.audit import (
    Checkpointer,
    FileCheckpointLog,
    SqlAuditSink,
    load_checkpoint_key,
)

if TYPE_CHECKING:
    from onerecord.hub.settings import HubSettings

__all__ = ["hub_audit_sink"]


def hub_audit_sink(engine: AsyncEngine, settings: HubSettings) -> SqlAuditSink:
    """The hub's audit chain, checkpointed when the settings name a checkpoint file and key.

    A development checkpoint key is refused outside dev mode (DevelopmentKeyRefused).
    """
    checkpoints = None
    if settings.audit_checkpoint_file and settings.audit_checkpoint_key_file:
        checkpoints = Checkpointer(
            key=load_checkpoint_key(settings.audit_checkpoint_key_file, dev_mode=settings.dev_mode),
            log=FileCheckpointLog(settings.audit_checkpoint_file),
            source_id=settings.hub_id,
            every=settings.audit_checkpoint_every,
            interval=settings.audit_checkpoint_interval_s,
        )
    return SqlAuditSink(
        engine,
        settings.hub_id,
        checkpoints=checkpoints,
        group_commit=settings.audit_group_commit,
    )
