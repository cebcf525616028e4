"""Render an AuditRecord as a FHIR R4 AuditEvent in IHE Basic Audit Log Patterns (BALP) shape.

Search → BALP PatientQuery (type rest, subtype search, action E, a query entity with the base64
query); retrieve → BALP PatientRead (subtype read, action R, one entity per document); a
document sent over ITI-65 → MHD's ProvideBundle.Audit.Source (type DCM 110106 Export, subtype
ITI-65, action R); one received and refused → MHD's ProvideBundle.Audit.Recipient (type DCM 110107
Import, action C). The patient is an entity of type 1 (Person) and role 1 (Patient); one
AuditEvent per patient. The caller is the requesting agent (HPR number or identity number in
`who.identifier`, name in `who.display`, the token `jti` in `policy`, never the token). The
attestation's organisations are further agents, its care relationship goes in `purposeOfUse`.

References: IHE ITI BALP (Basic Audit Log Patterns) §3.57.4 patterns PatientQuery, PatientRead,
"OAuth access token use"; IHE MHD 4.x ITI-65 §2:3.65.5 (audit); FHIR R4 AuditEvent;
TRUST-FRAMEWORK §3.2, F1, F5, F6.
"""

from __future__ import annotations

import base64
from typing import Any

from onerecord.audit.record import (
    AuditAction,
    AuditCode,
    AuditOrganisation,
    AuditOutcome,
    AuditRecord,
)

__all__ = ["BALP_PROFILES", "audit_event"]

_BALP = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/"
BALP_PROFILES = {
    AuditAction.SEARCH: _BALP + "IHE.BasicAudit.PatientQuery",
    AuditAction.RETRIEVE: _BALP + "IHE.BasicAudit.PatientRead",
    AuditAction.ACCESS_LOG_READ: _BALP + "IHE.BasicAudit.PatientQuery",
    AuditAction.CONTROL_CHANGE: _BALP + "IHE.BasicAudit.PatientUpdate",
    AuditAction.STORE: _BALP + "IHE.BasicAudit.PatientCreate",
    # MHD's own pattern for the sender of ITI-65: type DCM 110106 Export, action R.
    AuditAction.EXPORT: "https://profiles.ihe.net/ITI/MHD/StructureDefinition/"
    "IHE.MHD.ProvideBundle.Audit.Source",
    AuditAction.CONTROLS_READ: _BALP + "IHE.BasicAudit.PatientQuery",
    # ... and for its recipient: type DCM 110107 Import, action C.
    AuditAction.IMPORT: "https://profiles.ihe.net/ITI/MHD/StructureDefinition/"
    "IHE.MHD.ProvideBundle.Audit.Recipient",
}
_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
_RESTFUL = "http://hl7.org/fhir/restful-interaction"
_DCM = "http://dicom.nema.org/resources/ontology/DCM"
_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
_OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
_SECURITY_ROLE = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
_BALP_ENTITY = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
_SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
_ROLE_CLASS = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"
_ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
_PURPOSE = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
_HPR = "urn:oid:2.16.578.1.12.4.1.4.4"
_FNR = "urn:oid:2.16.578.1.12.4.1.4.1"
_HPR_CATEGORY = "urn:oid:2.16.578.1.12.4.1.1.9060"
_ORGNR = "urn:oid:2.16.578.1.12.4.1.4.101"
_DNR_MARK = 4  # D-numbers add 40 to the day: first digit 4–7

_SUBTYPE = {
    AuditAction.SEARCH: (_RESTFUL, "search"),
    AuditAction.RETRIEVE: (_RESTFUL, "read"),
    AuditAction.ACCESS_LOG_READ: (_RESTFUL, "search"),
    AuditAction.CONTROL_CHANGE: (_RESTFUL, "update"),
    AuditAction.STORE: (_RESTFUL, "create"),
    AuditAction.EXPORT: ("urn:ihe:event-type-code", "ITI-65"),
    AuditAction.CONTROLS_READ: (_RESTFUL, "search"),
    AuditAction.IMPORT: ("urn:ihe:event-type-code", "ITI-65"),
}
_ACTION = {
    AuditAction.SEARCH: "E",
    AuditAction.RETRIEVE: "R",
    AuditAction.ACCESS_LOG_READ: "E",
    AuditAction.CONTROL_CHANGE: "U",
    AuditAction.STORE: "C",
    AuditAction.EXPORT: "R",
    AuditAction.CONTROLS_READ: "E",
    AuditAction.IMPORT: "C",
}
_EXPORT_TYPE = {"system": _DCM, "code": "110106", "display": "Export"}
_IMPORT_TYPE = {"system": _DCM, "code": "110107", "display": "Import"}
_OUTCOME = {AuditOutcome.SUCCESS: "0", AuditOutcome.DENIED: "4", AuditOutcome.ERROR: "8"}
_RELATION_ROLE = {"parent": "PRN", "proxy": "POWATT", "proxy-unable-to-consent": "HPOWATT"}


def _person_system(nin: str) -> str:
    """F-number or D-number system for an identity number (day + 40 marks a D-number)."""
    return "urn:oid:2.16.578.1.12.4.1.4.2" if int(nin[0]) >= _DNR_MARK else _FNR


def _coding(code: AuditCode) -> dict[str, Any]:
    coding = {"system": code.system, "code": code.code}
    if code.display:
        coding["display"] = code.display
    return coding


def _organisation_agent(org: AuditOrganisation, kind: str) -> dict[str, Any]:
    who: dict[str, Any] = {"identifier": {"system": org.system or _ORGNR, "value": org.id}}
    if org.name:
        who["display"] = org.name
    return {
        "type": {"coding": [{"system": _ROLE_CLASS, "code": "PROV", "display": kind}]},
        "who": who,
        "requestor": False,
    }


def _agents(record: AuditRecord) -> list[dict[str, Any]]:
    agents: list[dict[str, Any]] = [
        {
            "type": {"coding": [{"system": _DCM, "code": "110152", "display": "Destination"}]},
            "who": {
                "identifier": {"system": "urn:ietf:rfc:3986", "value": record.home_community_id},
                "display": record.source_id,
            },
            "requestor": False,
        }
    ]
    policy = [record.token_jti] if record.token_jti else None
    p = record.practitioner
    if p is not None:
        identifier = (
            {"system": _HPR, "value": p.hpr}
            if p.hpr
            else {"system": _person_system(p.nin), "value": p.nin}
        )
        user: dict[str, Any] = {
            "type": {"coding": [{"system": _SECURITY_ROLE, "code": "humanuser"}]},
            "who": {"identifier": identifier, "display": p.name},
            "requestor": True,
        }
        if p.role:
            user["role"] = [{"coding": [{"system": _HPR_CATEGORY, "code": p.role}]}]
        if policy:
            user["policy"] = policy
        purposes = _purposes(record)
        if purposes:
            user["purposeOfUse"] = purposes
        agents.append(user)
        agents.append(_organisation_agent(p.legal_entity, "legal_entity"))
        if p.point_of_care != p.legal_entity:
            agents.append(_organisation_agent(p.point_of_care, "point_of_care"))
        if p.department is not None:
            agents.append(_organisation_agent(p.department, "department"))
    if record.system is not None:
        # A system on its own behalf (DICOM 110150 Application), by its issuer.
        application: dict[str, Any] = {
            "type": {"coding": [{"system": _DCM, "code": "110150", "display": "Application"}]},
            "who": {"identifier": {"system": "urn:ietf:rfc:3986", "value": record.system}},
            "requestor": True,
        }
        if policy:
            application["policy"] = policy
        agents.append(application)
    c = record.citizen
    if c is not None:
        citizen: dict[str, Any] = {
            "type": {"coding": [{"system": _SECURITY_ROLE, "code": "humanuser"}]},
            "who": {"identifier": {"system": _person_system(c.nin), "value": c.nin}},
            "requestor": True,
        }
        if c.name:
            citizen["who"]["display"] = c.name
        if c.relation in _RELATION_ROLE:
            citizen["role"] = [
                {"coding": [{"system": _ROLE_CODE, "code": _RELATION_ROLE[c.relation]}]}
            ]
        if policy:
            citizen["policy"] = policy
        agents.append(citizen)
    return agents


def _purposes(record: AuditRecord) -> list[dict[str, Any]]:
    p = record.practitioner
    if p is None:
        return []
    purposes: list[dict[str, Any]] = []
    if p.purpose_of_use:
        purposes.append({"coding": [{"system": _PURPOSE, "code": p.purpose_of_use}]})
    for code in (p.purpose_details, p.healthcare_service):
        if code is not None:
            purposes.append({"coding": [_coding(code)]})
    return purposes


def _entities(record: AuditRecord) -> list[dict[str, Any]]:
    entities: list[dict[str, Any]] = []
    if record.patient_id:
        entities.append(
            {
                "what": {
                    "identifier": {
                        "system": _person_system(record.patient_id),
                        "value": record.patient_id,
                    }
                },
                "type": {"system": _ENTITY_TYPE, "code": "1", "display": "Person"},
                "role": {"system": _OBJECT_ROLE, "code": "1", "display": "Patient"},
            }
        )
    if record.query is not None:
        query: dict[str, Any] = {
            "type": {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"},
            "role": {"system": _OBJECT_ROLE, "code": "24", "display": "Query"},
            "query": base64.b64encode(record.query.encode("utf-8")).decode("ascii"),
        }
        if record.returned_count is not None:
            query["detail"] = [
                {"type": "returned-count", "valueString": str(record.returned_count)}
            ]
        entities.append(query)
    for hcid, status in record.regions:
        # A community the hub asked, with how it answered (XCA: RegistryError@location).
        entities.append(
            {
                "what": {"identifier": {"system": "urn:ietf:rfc:3986", "value": hcid}},
                "type": {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"},
                "description": "community asked by the hub",
                "detail": [{"type": "status", "valueString": status}],
            }
        )
    for unique_id in record.document_ids:
        entities.append(
            {
                "what": {"identifier": {"system": "urn:ietf:rfc:3986", "value": _urn(unique_id)}},
                "type": {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"},
                "role": {"system": _OBJECT_ROLE, "code": "3", "display": "Report"},
            }
        )
    transaction: dict[str, Any] = {
        "what": {"identifier": {"value": record.correlation_id}},
        "type": {"system": _BALP_ENTITY, "code": "XrequestId"},
    }
    details = []
    if record.emergency_override:
        details.append({"type": "emergency-override", "valueString": "true"})
    if record.practitioner is not None:
        details.append({"type": "decision-ref", "valueString": record.practitioner.decision_ref_id})
        if record.practitioner.access_basis:
            details.append(
                {"type": "access-basis", "valueString": record.practitioner.access_basis}
            )
        grant = record.practitioner.emergency
        if grant is not None:
            # The override's grant (issue 11, defect 7): basis, coded reason, end, scope.
            details.append({"type": "emergency-basis", "valueString": grant.access_basis})
            details.append({"type": "emergency-reason", "valueString": grant.reason_category})
            details.append({"type": "emergency-until", "valueString": grant.until})
            details.extend(
                {"type": "emergency-class", "valueString": f"{c.system}|{c.code}"}
                for c in grant.classes
            )
            if grant.documents:
                details.append({"type": "emergency-documents", "valueString": str(grant.documents)})
            details.extend(
                {"type": "emergency-opened", "valueString": _urn(uid)} for uid in grant.opened
            )
    if details:
        transaction["detail"] = details
    entities.append(transaction)
    return entities


def _urn(unique_id: str) -> str:
    return unique_id if "^" in unique_id or unique_id.startswith("urn:") else f"urn:oid:{unique_id}"


def audit_event(record: AuditRecord) -> dict[str, Any]:
    """Return the FHIR R4 AuditEvent (BALP shape) for one record, as JSON-ready data."""
    system, code = _SUBTYPE[record.action]
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "meta": {"profile": [BALP_PROFILES[record.action]]},
        "type": _EXPORT_TYPE
        if record.action is AuditAction.EXPORT
        else _IMPORT_TYPE
        if record.action is AuditAction.IMPORT
        else {"system": _EVENT_TYPE, "code": "rest", "display": "Restful Operation"},
        "subtype": [{"system": system, "code": code}],
        "action": _ACTION[record.action],
        "recorded": record.recorded.isoformat(timespec="microseconds"),
        "outcome": _OUTCOME[record.outcome],
        "agent": _agents(record),
        "source": {
            "site": record.home_community_id,
            "observer": {"display": record.source_id},
            "type": [{"system": _SOURCE_TYPE, "code": "4", "display": "Application Server"}],
        },
        "entity": _entities(record),
    }
    if record.reason:
        event["outcomeDesc"] = record.reason
    purposes = _purposes(record)
    if purposes:
        event["purposeOfEvent"] = purposes
    return event
