"""The AuditRecord of one request at a service outside the regions, from its HTTP status.

The national hub (one record per search and per retrieve) and the population register's patient
lookup at the token service (PDQm ITI-78) write the same AuditRecord (BALP shape, hash-chained by
SqlAuditSink) as a source, each in its own chain (`source_id`). The outcome follows the status
(below 400 success, 401/403 denied, else error), the caller is `caller.caller_fields`. Which
regions answered the hub goes into `AuditRecord.regions` as (homeCommunityId, status) pairs
(`ok`, `timeout`, `unavailable`, `denied`, `invalid-response`, `error`) — rendered as one
AuditEvent entity per community — so an auditor sees whose part of an overview was missing.

References: IHE ITI BALP §3.57.4 (PatientQuery, PatientRead); IHE ITI TF-2 3.38.4.1.3 (XCA
PartialSuccess); TRUST-FRAMEWORK §3.2 (attributes to log), F1, F5, F6.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from onerecord.audit.caller import caller_fields
from onerecord.audit.record import AuditAction, AuditOutcome, AuditRecord
from onerecord.trust.access_token import Principal

__all__ = ["audit_record"]


def audit_record(
    *,
    action: AuditAction,
    status: int,
    source_id: str,
    principal: Principal | None,
    correlation_id: str,
    patient_id: str | None,
    regions: Sequence[tuple[str, str]] = (),
    query: str | None = None,
    returned_count: int | None = None,
    document_ids: tuple[str, ...] = (),
    reason: str | None = None,
    recorded: datetime | None = None,
) -> AuditRecord:
    """Build the AuditRecord of one request from its HTTP status (and the hub's regions).

    `source_id` names the chain and the service: the hub's id, or the register's.
    """
    if status < 400:
        outcome = AuditOutcome.SUCCESS
    elif status in (401, 403):
        outcome = AuditOutcome.DENIED
    else:
        outcome = AuditOutcome.ERROR
    text = reason or (None if outcome is AuditOutcome.SUCCESS else f"http-{status}")
    practitioner, citizen = caller_fields(principal)
    return AuditRecord(
        action=action,
        outcome=outcome,
        recorded=recorded or datetime.now(UTC),
        source_id=source_id,
        home_community_id=source_id,
        correlation_id=correlation_id,
        patient_id=patient_id if patient_id and len(patient_id) == 11 else None,
        practitioner=practitioner,
        citizen=citizen,
        reason=text,
        document_ids=document_ids,
        returned_count=returned_count,
        query=query,
        token_jti=principal.claims.jti if principal is not None else None,
        regions=tuple(sorted(regions)),
    )
