"""The FHIR R4 CapabilityStatement of a document source or the hub (GET /metadata).

Both declare the MHD Document Responder (ITI-67 search, ITI-68 Binary read); a source also is a
Document Recipient (ITI-65 transaction). JSON only.

References: FHIR R4 §2.39 CapabilityStatement; IHE MHD 4.x §1:33.1 (actors), CapabilityStatements
IHE.MHD.DocumentResponder and IHE.MHD.DocumentRecipient.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

__all__ = ["SEARCH_PARAMETERS", "capability_statement"]

_IHE = "https://profiles.ihe.net/ITI/MHD/CapabilityStatement/"
_SP = "http://hl7.org/fhir/SearchParameter/"

SEARCH_PARAMETERS: tuple[tuple[str, str, str], ...] = (
    ("patient.identifier", "token", "The patient's national identity number: system|value"),
    ("status", "token", "current, superseded, entered-in-error (default current)"),
    ("date", "date", "DocumentReference.date (creationTime)"),
    ("creation", "date", "content.attachment.creation"),
    ("period", "date", "context.period (serviceStart/StopTime)"),
    ("category", "token", "classCode"),
    ("type", "token", "typeCode"),
    ("setting", "token", "practiceSettingCode"),
    ("facility", "token", "healthcareFacilityTypeCode"),
    ("event", "token", "eventCodeList"),
    ("security-label", "token", "confidentialityCode"),
    ("format", "token", "formatCode"),
    ("identifier", "token", "uniqueId or entryUUID"),
    ("related", "token", "referenceIdList"),
    ("author.given", "string", "Author given name (starts-with, case-insensitive)"),
    ("author.family", "string", "Author family name (starts-with, case-insensitive)"),
)


def capability_statement(
    *, base_url: str, software_name: str, version: str, kind: Literal["source", "hub"]
) -> dict[str, Any]:
    """Build the CapabilityStatement of a source (responder + recipient) or the hub."""
    instantiates = [f"{_IHE}IHE.MHD.DocumentResponder"]
    if kind == "source":
        instantiates.append(f"{_IHE}IHE.MHD.DocumentRecipient")
    document_reference: dict[str, Any] = {
        "type": "DocumentReference",
        "supportedProfile": [
            "https://profiles.ihe.net/ITI/MHD/StructureDefinition/"
            "IHE.MHD.Comprehensive.DocumentReference"
        ],
        "interaction": [
            {"code": "search-type", "documentation": "ITI-67; _summary=count for the total"},
            {"code": "read", "documentation": "the id of a searchset entry's fullUrl"},
        ],
        "searchParam": [
            {"name": name, "type": kind_, "documentation": doc}
            | ({"definition": f"{_SP}DocumentReference-{name}"} if "." not in name else {})
            for name, kind_, doc in SEARCH_PARAMETERS
        ],
    }
    rest: dict[str, Any] = {
        "mode": "server",
        "documentation": (
            "IHE MHD Document Responder"
            + (" and Document Recipient" if kind == "source" else " (national hub, XCA style)")
        ),
        "security": {
            "cors": False,
            "description": "OAuth2 bearer access tokens (RFC 9068), DPoP-bound (RFC 9449).",
        },
        "resource": [
            document_reference,
            {"type": "Binary", "interaction": [{"code": "read"}]},
        ],
    }
    if kind == "source":
        rest["interaction"] = [
            {"code": "transaction", "documentation": "ITI-65 Provide Document Bundle"}
        ]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": datetime.now(UTC).isoformat(),
        "kind": "instance",
        "instantiates": instantiates,
        "software": {"name": software_name, "version": version},
        "implementation": {"description": software_name, "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [rest],
    }
