"""The citizen's access log: who has looked at my documents, built from audit records.

Shown per access by health personnel: time, the health worker's name, organisation, department,
profession (the attestation's HPR authorisation code), healthcare service, the coded reason,
search or retrieve, whether an emergency or elevated access opened blocked documents (D2) and the
emergency grant's basis and coded reason. `hpr` and `document_ids` are kept for the region's
answer to the citizen's portal, which keys readers by a keyed hash of the HPR number and shows
only titles the log's reader may see themselves (docs/policy.md, "Titles in the access log");
neither is ever shown as it is.

Decisions (F2): never the reader's national identity number nor HPR number, never free text —
only names and the displays of coded values are shown: the reason is the purpose of use in words
(«Behandling»; the display of purpose_of_use_details only for a purpose without words) and the
healthcare service's display; `decision_ref` ids and reason codes stay in the audit. Only
successful accesses by health personnel are listed; denied attempts and the citizen's own reads
are kept in the audit only.

References: TRUST-FRAMEWORK §5.4, ATT-7/8, ATT-16/20/23/34; F2, F3.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from onerecord.audit.record import AuditAction, AuditOutcome, AuditRecord

__all__ = ["CitizenLogEntry", "citizen_log_entries"]

_PURPOSE_TEXT = {
    "TREAT": "Behandling",
    "ETREAT": "Akutt behandling",
    "COC": "Koordinering av tjenester",
    "BTG": "Nødtilgang",
}


@dataclass(frozen=True, slots=True)
class CitizenLogEntry:
    """One line of the citizen's access log."""

    time: datetime
    who_name: str
    organisation: str | None
    department: str | None
    healthcare_service: str | None
    purpose: str | None
    action: str
    documents_opened: bool
    emergency: bool
    hpr: str | None = None
    profession: str | None = None
    """The HPR authorisation (category) code the attestation names (Volven 9060: LE, SP, …)."""
    document_ids: tuple[str, ...] = ()
    """The uniqueIds a retrieve returned (empty for a search)."""
    emergency_basis: str | None = None
    emergency_reason: str | None = None
    """The emergency grant's access basis and reason category (never its free text)."""


def _entry(record: AuditRecord) -> CitizenLogEntry | None:
    p = record.practitioner
    if p is None or record.outcome is not AuditOutcome.SUCCESS:
        return None
    if record.action not in (AuditAction.SEARCH, AuditAction.RETRIEVE):
        return None
    organisation = p.point_of_care.name or p.legal_entity.name
    purpose = _PURPOSE_TEXT.get(p.purpose_of_use or "") or (
        p.purpose_details.display if p.purpose_details else None
    )
    return CitizenLogEntry(
        time=record.recorded,
        who_name=p.name,
        organisation=organisation,
        department=p.department.name if p.department else None,
        healthcare_service=p.healthcare_service.display if p.healthcare_service else None,
        purpose=purpose,
        action=record.action.value,
        documents_opened=record.action is AuditAction.RETRIEVE,
        emergency=record.emergency_override,
        hpr=p.hpr,
        profession=p.role,
        document_ids=record.document_ids if record.action is AuditAction.RETRIEVE else (),
        emergency_basis=p.emergency.access_basis if p.emergency else None,
        emergency_reason=p.emergency.reason_category if p.emergency else None,
    )


def citizen_log_entries(records: Iterable[AuditRecord]) -> list[CitizenLogEntry]:
    """Return the citizen log lines for `records`, newest first."""
    entries = [e for e in (_entry(r) for r in records) if e is not None]
    return sorted(entries, key=lambda e: e.time, reverse=True)
