"""Audit: records of every access, FHIR AuditEvent (BALP), the hash chain, the citizen's log."""

from __future__ import annotations

from onerecord.audit.balp import BALP_PROFILES, audit_event
from onerecord.audit.chain import (
    GENESIS_HASH,
    ChainHead,
    ChainRow,
    VerifyResult,
    canonical,
    link_hash,
    verify_chain,
)
from onerecord.audit.checkpoint import (
    CHECKPOINT_TYP,
    Checkpoint,
    Checkpointer,
    CheckpointError,
    CheckpointLog,
    FileCheckpointLog,
    InvalidCheckpoint,
    MemoryCheckpointLog,
    checkpoint_keys,
    load_checkpoint_key,
    read_checkpoints,
    sign_checkpoint,
)
from onerecord.audit.citizen_log import CitizenLogEntry, audit_event_entry, citizen_log_entries
from onerecord.audit.command import audit_verify_command, verify_all
from onerecord.audit.database import create_audit_tables, make_audit_engine
from onerecord.audit.record import (
    AuditAction,
    AuditCitizen,
    AuditCode,
    AuditEmergency,
    AuditOrganisation,
    AuditOutcome,
    AuditPractitioner,
    AuditRecord,
)
from onerecord.audit.request_record import audit_record
from onerecord.audit.store import (
    AuditSink,
    MemoryAuditSink,
    SqlAuditSink,
    audit_chain_head,
    audit_event_table,
    audit_metadata,
)

__all__ = [
    "BALP_PROFILES",
    "CHECKPOINT_TYP",
    "GENESIS_HASH",
    "AuditAction",
    "AuditCitizen",
    "AuditCode",
    "AuditEmergency",
    "AuditOrganisation",
    "AuditOutcome",
    "AuditPractitioner",
    "AuditRecord",
    "AuditSink",
    "ChainHead",
    "ChainRow",
    "Checkpoint",
    "CheckpointError",
    "CheckpointLog",
    "Checkpointer",
    "CitizenLogEntry",
    "FileCheckpointLog",
    "InvalidCheckpoint",
    "MemoryAuditSink",
    "MemoryCheckpointLog",
    "SqlAuditSink",
    "VerifyResult",
    "audit_chain_head",
    "audit_event",
    "audit_event_entry",
    "audit_event_table",
    "audit_metadata",
    "audit_record",
    "audit_verify_command",
    "canonical",
    "checkpoint_keys",
    "citizen_log_entries",
    "create_audit_tables",
    "link_hash",
    "load_checkpoint_key",
    "make_audit_engine",
    "read_checkpoints",
    "sign_checkpoint",
    "verify_all",
    "verify_chain",
]
