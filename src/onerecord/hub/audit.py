"""Audit records of the hub: one per search and per retrieve, with the regions' outcomes.

The hub writes the same AuditRecord (BALP shape, hash-chained by SqlAuditSink) as a source.
Which regions answered goes into `AuditRecord.regions` as (homeCommunityId, status) pairs
(`ok`, `timeout`, `unavailable`, `denied`, `invalid-response`, `error`) — rendered as one
AuditEvent entity per community — so an auditor sees whose part of an overview was missing.

References: IHE ITI BALP §3.57.4 (PatientQuery, PatientRead); IHE ITI TF-2 3.38.4.1.3 (XCA
PartialSuccess); TRUST-FRAMEWORK §3.2 (attributes to log), F1, F5, F6.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from onerecord.audit import (
    AuditAction,
    AuditCitizen,
    AuditCode,
    AuditOrganisation,
    AuditOutcome,
    AuditPractitioner,
    AuditRecord,
)
from onerecord.trust.access_token import Citizen, HealthPersonnel, Principal
from onerecord.trust.principal import Organisation

__all__ = ["audit_record", "caller_fields"]


def _org(org: Organisation | None) -> AuditOrganisation | None:
    return None if org is None else AuditOrganisation(org.id, org.name, org.system)


def caller_fields(
    principal: Principal | None,
) -> tuple[AuditPractitioner | None, AuditCitizen | None]:
    """Return the practitioner or citizen part of an AuditRecord for this caller."""
    if isinstance(principal, HealthPersonnel):
        ctx = principal.context()
        legal_entity = _org(ctx.legal_entity)
        point_of_care = _org(ctx.point_of_care)
        assert legal_entity is not None and point_of_care is not None
        service = ctx.healthcare_service
        details = ctx.purpose_details
        return (
            AuditPractitioner(
                name=ctx.name or principal.nin.value,
                nin=ctx.practitioner_nin.value,
                legal_entity=legal_entity,
                point_of_care=point_of_care,
                decision_ref_id=ctx.decision_ref_id,
                hpr=ctx.hpr.value if ctx.hpr else None,
                role=ctx.roles[0] if ctx.roles else None,
                department=_org(ctx.department),
                healthcare_service=(
                    AuditCode(service.system, service.code, service.display) if service else None
                ),
                purpose_of_use=ctx.purpose_of_use,
                purpose_details=(
                    AuditCode(details.system, details.code, details.display) if details else None
                ),
            ),
            None,
        )
    if isinstance(principal, Citizen):
        return None, AuditCitizen(nin=principal.nin.value)
    return None, None


def audit_record(
    *,
    action: AuditAction,
    status: int,
    hub_id: str,
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
    """Build the hub's AuditRecord of one search or retrieve from its HTTP status and regions."""
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
        source_id=hub_id,
        home_community_id=hub_id,
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
