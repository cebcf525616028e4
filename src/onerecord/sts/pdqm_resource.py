"""The answer of a patient lookup (IHE PDQm, ITI-78): FHIR R4 Patient resources in a searchset.

One Patient per match, none for an unknown number (`total` 0, never an error). A protected
address (kode 6 strengt fortrolig, kode 7 fortrolig) is said, never shown: the Patient carries
no `address`, the confidentiality label R (restricted) in `meta.security` and the protection
kind in the address-protection extension. The GP (fastlege) is a `generalPractitioner` naming
the physician by HPR number and the office by organisation number.

References: IHE PDQm ITI-78 §2:3.78.4.2.2 (searchset Bundle of Patient; IHE.PDQm.Patient);
FHIR R4 Patient (deceased[x], generalPractitioner), Bundle (searchset, total),
v3-Confidentiality (R); Folkeregisteret "adressebeskyttelse" (fortrolig, strengt fortrolig).
"""

from __future__ import annotations

import uuid
from typing import Any

from onerecord.domain import HPR_SYSTEM, ORGNR_SYSTEM
from onerecord.sts.registers import RegisterPatient

__all__ = [
    "ADDRESS_PROTECTION_EXTENSION",
    "ADDRESS_PROTECTION_SYSTEM",
    "PDQM_PATIENT_PROFILE",
    "patient_resource",
    "patient_searchset",
]

PDQM_PATIENT_PROFILE = "https://profiles.ihe.net/ITI/PDQm/StructureDefinition/IHE.PDQm.Patient"
ADDRESS_PROTECTION_EXTENSION = "https://onerecord.no/fhir/StructureDefinition/address-protection"
ADDRESS_PROTECTION_SYSTEM = "https://onerecord.no/fhir/CodeSystem/address-protection"
_CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
_PROTECTION = {
    "6": ("strengt-fortrolig", "Strengt fortrolig adresse (kode 6)"),
    "7": ("fortrolig", "Fortrolig adresse (kode 7)"),
}


def _gp(patient: RegisterPatient) -> list[dict[str, Any]]:
    if patient.gp is None:
        return []
    gp = patient.gp
    return [
        {
            "type": "Practitioner",
            "identifier": {"system": f"urn:oid:{HPR_SYSTEM}", "value": gp.hpr},
            "display": gp.name,
        },
        {
            "type": "Organization",
            "identifier": {"system": f"urn:oid:{ORGNR_SYSTEM}", "value": gp.office_orgnr},
            "display": gp.office,
        },
    ]


def patient_resource(patient: RegisterPatient, *, system: str) -> dict[str, Any]:
    """Return the IHE.PDQm.Patient for one register entry (identifier in `system`)."""
    meta: dict[str, Any] = {"profile": [PDQM_PATIENT_PROFILE]}
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "meta": meta,
        "identifier": [{"use": "official", "system": system, "value": patient.nin}],
        "active": True,
        "name": [
            {
                "use": "official",
                "text": f"{patient.given} {patient.family}",
                "family": patient.family,
                "given": patient.given.split(),
            }
        ],
        "gender": patient.sex,
        "birthDate": patient.birth_date.isoformat(),
    }
    if patient.deceased_on is not None:
        resource["deceasedDateTime"] = patient.deceased_on.isoformat()
    else:
        resource["deceasedBoolean"] = patient.deceased
    if patient.address_protection is not None:
        code, display = _PROTECTION[patient.address_protection]
        meta["security"] = [{"system": _CONFIDENTIALITY, "code": "R", "display": "restricted"}]
        resource["extension"] = [
            {
                "url": ADDRESS_PROTECTION_EXTENSION,
                "valueCoding": {
                    "system": ADDRESS_PROTECTION_SYSTEM,
                    "code": code,
                    "display": display,
                },
            }
        ]
    elif patient.address is not None:
        home = patient.address
        resource["address"] = [
            {
                "use": "home",
                "type": "physical",
                "line": [home.street],
                "postalCode": home.postal_code,
                "city": home.city,
                "country": "NO",
            }
        ]
    if patient.email is not None:
        # The contact address for notices (issue 11, defect 7); never for kode 6/7.
        resource["telecom"] = [{"system": "email", "value": patient.email, "use": "home"}]
    gp = _gp(patient)
    if gp:
        resource["generalPractitioner"] = gp
    return resource


def patient_searchset(
    patients: list[RegisterPatient], *, system: str, self_url: str
) -> dict[str, Any]:
    """Return the searchset Bundle of an ITI-78 answer (`total` 0 when nobody matched)."""
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "searchset",
        "total": len(patients),
        "link": [{"relation": "self", "url": self_url}],
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": patient_resource(p, system=system),
                "search": {"mode": "match"},
            }
            for p in patients
        ],
    }
