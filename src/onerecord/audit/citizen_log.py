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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from onerecord.audit.record import AuditAction, AuditOutcome, AuditRecord
from onerecord.domain import HPR_SYSTEM

__all__ = ["CitizenLogEntry", "audit_event_entry", "citizen_log_entries"]

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


_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
_RESTFUL = "http://hl7.org/fhir/restful-interaction"
_SUBTYPE = {"search": ("search", "E"), "retrieve": ("read", "R")}
_EMERGENCY_EXT = "https://onerecord.example/fhir/StructureDefinition/emergency-access"
_EMERGENCY_BASIS_EXT = "https://onerecord.example/fhir/StructureDefinition/emergency-basis"
_EMERGENCY_REASON_EXT = "https://onerecord.example/fhir/StructureDefinition/emergency-reason"
_HPR_CATEGORY = "urn:oid:2.16.578.1.12.4.1.1.9060"
_TITLE_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"


def audit_event_entry(
    entry: CitizenLogEntry,
    titles: Sequence[str] = (),
    *,
    observer: str = "onerecord document source",
) -> dict[str, Any]:
    """Render one access-log line as a FHIR AuditEvent for the citizen's portal.

    The reader's HPR number (when they have one) is `agent.who.identifier`, for the portal's
    server only; their national identity number is never included. `titles`: the titles of
    the opened documents (or records) the caller may see (each one `entity.name`); `observer`
    the service that wrote the record (a document source, the dialogue service).
    """
    subtype, action = _SUBTYPE.get(entry.action, ("search", "E"))
    who: dict[str, Any] = {"display": entry.who_name}
    if entry.hpr:
        who["identifier"] = {"system": f"urn:oid:{HPR_SYSTEM}", "value": entry.hpr}
    agent: dict[str, Any] = {"requestor": True, "who": who}
    if entry.profession:
        agent["role"] = [{"coding": [{"system": _HPR_CATEGORY, "code": entry.profession}]}]
    agents = [agent]
    if entry.organisation:
        agents.append({"requestor": False, "who": {"display": entry.organisation}})
    if entry.department:
        agents.append({"requestor": False, "who": {"display": entry.department}})
    why = [text for text in (entry.purpose, entry.healthcare_service) if text]
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": {"system": _EVENT_TYPE, "code": "rest"},
        "subtype": [{"system": _RESTFUL, "code": subtype}],
        "action": action,
        "recorded": entry.time.isoformat(),
        "outcome": "0",
        "agent": agents,
        "source": {"observer": {"display": observer}},
        "entity": [
            {
                "description": "Dokumenter åpnet" if entry.documents_opened else "Dokumentliste",
            },
            *(
                {"role": {"system": _TITLE_ROLE, "code": "3", "display": "Report"}, "name": t}
                for t in titles
            ),
        ],
    }
    if why:
        resource["purposeOfEvent"] = [{"text": text} for text in why]
    extensions: list[dict[str, Any]] = []
    if entry.emergency:
        extensions.append({"url": _EMERGENCY_EXT, "valueBoolean": True})
    if entry.emergency_basis:
        extensions.append({"url": _EMERGENCY_BASIS_EXT, "valueCode": entry.emergency_basis})
    if entry.emergency_reason:
        extensions.append({"url": _EMERGENCY_REASON_EXT, "valueCode": entry.emergency_reason})
    if extensions:
        resource["extension"] = extensions
    return resource
