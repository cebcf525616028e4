"""The basis for access a health worker states before seeing anything, and its attestation.

The portal offers the codes it knows (healthcare service from Volven 8666, purpose of use,
HL7 Norway care relation, access basis) and turns the chosen ones into the
`nhn:tillitsrammeverk:parameters` attestation, bound to one patient by a salted digest.
References: TRUST-FRAMEWORK §1.1 (care_relationship, ATT-33…48), §4.3 (access basis).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from onerecord.domain.codes import code_tables
from onerecord.domain.errors import InvalidIdentifier
from onerecord.domain.identifiers import NationalIdentityNumber
from onerecord.search_client import StaffMember, practitioner_attestation
from onerecord.trust.principal import AccessBasis

__all__ = [
    "ACCESS_BASES",
    "CARE_RELATIONS",
    "HEALTHCARE_SERVICE_SYSTEM",
    "PURPOSES_OF_USE",
    "AccessRequest",
    "InvalidAccessRequest",
    "build_attestation",
    "healthcare_services",
    "parse_access_request",
]

HEALTHCARE_SERVICE_SYSTEM = "urn:oid:2.16.578.1.12.4.1.1.8666"
_PURPOSE_SYSTEM = "urn:oid:2.16.840.1.113883.1.11.20448"
_CARE_RELATION_SYSTEM = "urn:AuditEventHL7Norway/CodeSystem/carerelation"

# The emergency purposes (ETREAT, BTG) open blocked documents; they wait for the override
# page that asks for a reason (issue 5), so the ordinary form offers only these two.
PURPOSES_OF_USE: Mapping[str, str] = {
    "TREAT": "Behandling",
    "COC": "Koordinering av helsehjelp",
}
CARE_RELATIONS: Mapping[str, str] = {
    "BEHANDLER": "Behandler pasienten",
    "POLBESOK": "Poliklinisk besøk",
}
ACCESS_BASES: Mapping[str, str] = {
    AccessBasis.UNNTAK.value: "Unntak fra samtykke (f.eks. fastlege)",
    AccessBasis.SAMTYKKE.value: "Pasienten har samtykket",
    AccessBasis.AKUTT.value: "Akutt behov for helsehjelp",
}


class InvalidAccessRequest(ValueError):
    """The form's patient or basis for access is not acceptable.

    `message_key` names the message (messages/hcp.toml); `field_key` the field's label, if any.
    """

    def __init__(self, message_key: str, field_key: str | None = None) -> None:
        super().__init__(message_key)
        self.message_key = message_key
        self.field_key = field_key


def healthcare_services() -> dict[str, str]:
    """Return the healthcare service codes the portal offers, with their bokmål names."""
    tables = code_tables()
    return {
        c.code: c.display or tables.display(c.system, c.code) or c.code
        for c in tables.codes("healthcareService")
        if c.system == HEALTHCARE_SERVICE_SYSTEM
    }


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """One patient and the stated basis for looking at their documents."""

    patient: str
    healthcare_service: str
    purpose_of_use: str
    purpose_of_use_details: str
    access_basis: str
    decision_ref: str

    @property
    def summary(self) -> str:
        """Return the basis in words, for the page header."""
        return ", ".join(
            [
                PURPOSES_OF_USE[self.purpose_of_use],
                healthcare_services()[self.healthcare_service],
                CARE_RELATIONS[self.purpose_of_use_details],
                ACCESS_BASES[self.access_basis],
            ]
        )


def parse_access_request(form: Mapping[str, str]) -> AccessRequest:
    """Validate the basis-for-access form; raise InvalidAccessRequest naming the message."""
    raw = form.get("patient", "").strip().replace(" ", "")
    try:
        nin = NationalIdentityNumber(raw)
    except InvalidIdentifier:
        raise InvalidAccessRequest("hcp.patient.invalid-nin") from None
    choices = {
        "healthcare_service": (healthcare_services(), "hcp.patient.service"),
        "purpose_of_use": (PURPOSES_OF_USE, "hcp.patient.purpose"),
        "purpose_of_use_details": (CARE_RELATIONS, "hcp.patient.relation"),
        "access_basis": (ACCESS_BASES, "hcp.patient.basis"),
    }
    chosen: dict[str, str] = {}
    for name, (allowed, label) in choices.items():
        value = form.get(name, "")
        if value not in allowed:
            raise InvalidAccessRequest("hcp.patient.choose", label)
        chosen[name] = value
    return AccessRequest(patient=nin.value, decision_ref=str(uuid.uuid4()), **chosen)


def build_attestation(
    staff: StaffMember, request: AccessRequest, *, patient_digest: str
) -> dict[str, Any]:
    """Return the attestation for `request`: the worker's place, the stated care relationship.

    References: TRUST-FRAMEWORK §1.1 (care_relationship; ATT-38 purpose, ATT-43 service or
    details, ATT-48 decision_ref.user_selected); ATT-4 (patient digest).
    """
    attestation = practitioner_attestation(
        staff, patient_digest=patient_digest, decision_ref=request.decision_ref
    )
    attestation["care_relationship"] = {
        "healthcare_service": {
            "code": request.healthcare_service,
            "system": HEALTHCARE_SERVICE_SYSTEM,
        },
        "purpose_of_use": {"code": request.purpose_of_use, "system": _PURPOSE_SYSTEM},
        "purpose_of_use_details": {
            "code": request.purpose_of_use_details,
            "system": _CARE_RELATION_SYSTEM,
        },
        "decision_ref": {"id": request.decision_ref, "user_selected": True},
    }
    return attestation
