"""The caller as the audit keeps it: a health worker's attestation fields, an emergency grant.

Shared by every service that audits an access under the trust framework (the document source,
the media archive), so that a practitioner is recorded the same way wherever they read.
`caller_fields` is the shorter form the services outside the regions record (the hub, the
population register's patient lookup: `request_record.py`): no access basis, no emergency grant,
and the identity number as the name when the attestation names nobody.

References: TRUST-FRAMEWORK §3.2, F1; issue 11, defect 7 (the emergency grant).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from onerecord.audit.record import (
    AuditCitizen,
    AuditCode,
    AuditEmergency,
    AuditOrganisation,
    AuditPractitioner,
)
from onerecord.domain import Coding
from onerecord.trust.access_token import Citizen, HealthPersonnel, Principal
from onerecord.trust.principal import HealthPersonnelContext, Organisation

__all__ = ["audit_emergency", "audit_practitioner", "caller_fields"]


def _org(org: Organisation | None) -> AuditOrganisation | None:
    return None if org is None else AuditOrganisation(org.id, org.name, org.system)


def _code(coding: Coding | None) -> AuditCode | None:
    return None if coding is None else AuditCode(coding.system, coding.code, coding.display)


def audit_emergency(
    ctx: HealthPersonnelContext, opened: Sequence[str] = ()
) -> AuditEmergency | None:
    """Return the emergency grant as the audit keeps it (issue 11, defect 7), if any."""
    grant = ctx.emergency
    if grant is None:
        return None
    return AuditEmergency(
        access_basis=grant.access_basis,
        reason_category=grant.reason_category,
        until=datetime.fromtimestamp(grant.until, UTC).isoformat(),
        classes=tuple(AuditCode(system, code) for system, code in sorted(grant.classes)),
        documents=len(grant.documents),
        opened=tuple(opened),
    )


def audit_practitioner(
    ctx: HealthPersonnelContext, emergency_opened: Sequence[str] = ()
) -> AuditPractitioner:
    """Return the attestation fields the audit keeps (TRUST-FRAMEWORK §3.2, F1)."""
    legal, poc = _org(ctx.legal_entity), _org(ctx.point_of_care)
    assert legal is not None and poc is not None
    return AuditPractitioner(
        name=ctx.name,
        nin=ctx.practitioner_nin.value,
        legal_entity=legal,
        point_of_care=poc,
        decision_ref_id=ctx.decision_ref_id,
        hpr=ctx.hpr.value if ctx.hpr else None,
        role=ctx.roles[0] if ctx.roles else None,
        department=_org(ctx.department),
        healthcare_service=_code(ctx.healthcare_service),
        purpose_of_use=ctx.purpose_of_use,
        purpose_details=_code(ctx.purpose_details),
        access_basis=ctx.access_basis.value if ctx.access_basis else None,
        emergency=audit_emergency(ctx, emergency_opened),
    )


def caller_fields(
    principal: Principal | None,
) -> tuple[AuditPractitioner | None, AuditCitizen | None]:
    """Return the practitioner or citizen part of a hub's or register's AuditRecord."""
    if isinstance(principal, HealthPersonnel):
        ctx = principal.context()
        # The regions' fields, less the access basis and emergency grant (not kept here).
        fields = audit_practitioner(ctx)
        name = ctx.name or principal.nin.value
        return replace(fields, name=name, access_basis=None, emergency=None), None
    if isinstance(principal, Citizen):
        return None, AuditCitizen(nin=principal.nin.value)
    return None, None
