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
from onerecord.audit.citizen_log import CitizenLogEntry, citizen_log_entries
from onerecord.audit.command import audit_verify_command, verify_all
from onerecord.audit.record import (
    AuditAction,
    AuditCitizen,
    AuditCode,
    AuditOrganisation,
    AuditOutcome,
    AuditPractitioner,
    AuditRecord,
)
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
    "GENESIS_HASH",
    "AuditAction",
    "AuditCitizen",
    "AuditCode",
    "AuditOrganisation",
    "AuditOutcome",
    "AuditPractitioner",
    "AuditRecord",
    "AuditSink",
    "ChainHead",
    "ChainRow",
    "CitizenLogEntry",
    "MemoryAuditSink",
    "SqlAuditSink",
    "VerifyResult",
    "audit_chain_head",
    "audit_event",
    "audit_event_table",
    "audit_metadata",
    "audit_verify_command",
    "canonical",
    "citizen_log_entries",
    "link_hash",
    "verify_all",
    "verify_chain",
]
