"""Synthetic FHIR documents: a discharge summary with a medication list, as a document Bundle.

One Bundle of type "document": the Composition first (Volven 9602 A03-2 "Epikrise", sections
Diagnose, Forløp, Legemidler ved utskrivning and Videre oppfølging, each with generated
narrative), then the Patient, the Practitioner, the organisation and its department, the
Condition and one MedicationStatement per medicine. Every id is derived from the document's
entryUUID, so the same document always gives the same bytes.

References: HL7 FHIR R4 §3.3 (Documents), Composition, Bundle (bdl-9..11: identifier,
timestamp, Composition first); Volven 7110 (ICD-10), 9602 (document type); WHO ATC.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from onerecord.domain import (
    DOCUMENT_TYPE_SYSTEM,
    HPR_SYSTEM,
    ORGNR_SYSTEM,
    RESH_SYSTEM,
    NationalIdentityNumber,
)
from onerecord.synth.clinical import Scenario

__all__ = [
    "ATC_SYSTEM",
    "ICD10_SYSTEM",
    "MEDICATIONS",
    "DocumentParties",
    "Medication",
    "render_fhir_document",
]

ICD10_SYSTEM = "urn:oid:2.16.578.1.12.4.1.1.7110"
ATC_SYSTEM = "http://www.whocc.no/atc"
_XHTML = "http://www.w3.org/1999/xhtml"
_NOTICE = "SYNTETISKE DATA – gjelder ingen virkelig person."


@dataclass(frozen=True, slots=True)
class Medication:
    """A medicine on the discharge list: ATC code, name and dosage as written."""

    atc: str
    name: str
    dosage: str


# Medicines at discharge for each scenario (clinical.SCENARIOS keys); invented, plausible.
MEDICATIONS: dict[str, tuple[Medication, ...]] = {
    "pneumoni": (
        Medication("J01CE02", "Fenoksymetylpenicillin 1 g", "1 tablett 4 ganger daglig i 4 døgn"),
        Medication("N02BE01", "Paracetamol 500 mg", "2 tabletter ved behov, høyst 4 ganger daglig"),
    ),
    "hoftebrudd": (
        Medication("N02BE01", "Paracetamol 500 mg", "2 tabletter 4 ganger daglig"),
        Medication("B01AB05", "Enoksaparin 40 mg", "1 sprøyte subkutant daglig i 4 uker"),
        Medication("M05BA04", "Alendronsyre 70 mg", "1 tablett ukentlig"),
    ),
    "appendisitt": (
        Medication("N02BE01", "Paracetamol 500 mg", "2 tabletter ved behov, høyst 4 ganger daglig"),
    ),
    "hjertesvikt": (
        Medication("C03CA01", "Furosemid 40 mg", "1 tablett om morgenen"),
        Medication("C07AB02", "Metoprolol 50 mg", "1 depottablett daglig"),
        Medication("C09DX04", "Sakubitril/valsartan 49/51 mg", "1 tablett 2 ganger daglig"),
    ),
    "astma": (
        Medication("R03AC02", "Salbutamol 0,1 mg/dose", "2 inhalasjoner ved behov"),
        Medication("R03BA02", "Budesonid 200 mikrogram/dose", "1 inhalasjon 2 ganger daglig"),
    ),
    "depresjon": (Medication("N06AB06", "Sertralin 50 mg", "1 tablett om morgenen"),),
    "diabetes": (
        Medication("A10BA02", "Metformin 1 g", "1 tablett 2 ganger daglig"),
        Medication("A10BK03", "Empagliflozin 10 mg", "1 tablett om morgenen"),
    ),
}


@dataclass(frozen=True, slots=True)
class DocumentParties:
    """Who the document is about and from."""

    document_id: uuid.UUID
    created: datetime
    patient_nin: NationalIdentityNumber
    patient_given: str
    patient_family: str
    organisation_name: str
    organisation_number: str
    department_name: str
    department_resh: str
    author_given: str
    author_family: str
    author_hpr: str | None


def _narrative(*paragraphs: str, items: Sequence[str] = ()) -> dict[str, str]:
    div = ET.Element("div", {"xmlns": _XHTML})
    for text in paragraphs:
        ET.SubElement(div, "p").text = text
    if items:
        listing = ET.SubElement(div, "ul")
        for text in items:
            ET.SubElement(listing, "li").text = text
    return {"status": "generated", "div": ET.tostring(div, encoding="unicode")}


def _identifier(oid: str, value: str) -> dict[str, str]:
    return {"system": f"urn:oid:{oid}", "value": value}


def render_fhir_document(parties: DocumentParties, scenario: Scenario) -> bytes:
    """Return a FHIR R4 document Bundle (JSON) for a discharge with its medication list."""

    def ref(name: str) -> str:
        return f"urn:uuid:{uuid.uuid5(parties.document_id, name)}"

    when = parties.created.isoformat(timespec="seconds")
    medicines = MEDICATIONS.get(scenario.key, ())
    author_name = f"{parties.author_given} {parties.author_family}"
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [_identifier(parties.patient_nin.system, parties.patient_nin.value)],
        "name": [{"family": parties.patient_family, "given": [parties.patient_given]}],
        "birthDate": parties.patient_nin.birth_date.isoformat(),
    }
    practitioner: dict[str, Any] = {
        "resourceType": "Practitioner",
        "name": [{"family": parties.author_family, "given": [parties.author_given]}],
    }
    if parties.author_hpr:
        practitioner["identifier"] = [_identifier(HPR_SYSTEM, parties.author_hpr)]
    organisation = {
        "resourceType": "Organization",
        "identifier": [_identifier(ORGNR_SYSTEM, parties.organisation_number)],
        "name": parties.organisation_name,
    }
    department = {
        "resourceType": "Organization",
        "identifier": [_identifier(RESH_SYSTEM, parties.department_resh)],
        "name": parties.department_name,
        "partOf": {"reference": ref("organisation")},
    }
    condition = {
        "resourceType": "Condition",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "verificationStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": "confirmed",
                }
            ]
        },
        "code": {
            "coding": [
                {"system": ICD10_SYSTEM, "code": scenario.icd10, "display": scenario.diagnosis}
            ],
            "text": scenario.diagnosis,
        },
        "subject": {"reference": ref("patient")},
        "recordedDate": when,
    }
    statements = [
        {
            "resourceType": "MedicationStatement",
            "status": "active",
            "medicationCodeableConcept": {
                "coding": [{"system": ATC_SYSTEM, "code": m.atc}],
                "text": m.name,
            },
            "subject": {"reference": ref("patient")},
            "dateAsserted": when,
            "dosage": [{"text": m.dosage}],
        }
        for m in medicines
    ]
    medicine_section: dict[str, Any] = {"title": "Legemidler ved utskrivning"}
    if medicines:
        medicine_section["text"] = _narrative(items=[f"{m.name} – {m.dosage}" for m in medicines])
        medicine_section["entry"] = [
            {"reference": ref(f"medication-{i}")} for i in range(len(medicines))
        ]
    else:
        medicine_section["text"] = _narrative("Ingen faste legemidler.")
    composition = {
        "resourceType": "Composition",
        "status": "final",
        "type": {
            "coding": [{"system": DOCUMENT_TYPE_SYSTEM, "code": "A03-2", "display": "Epikrise"}],
            "text": "Epikrise",
        },
        "subject": {
            "reference": ref("patient"),
            "display": f"{parties.patient_family}, {parties.patient_given}",
        },
        "date": when,
        "author": [{"reference": ref("practitioner"), "display": author_name}],
        "title": "Epikrise med legemiddelliste",
        "custodian": {"reference": ref("department")},
        "section": [
            {
                "title": "Diagnose",
                "text": _narrative(f"{scenario.diagnosis} ({scenario.icd10})"),
                "entry": [{"reference": ref("condition")}],
            },
            {"title": "Forløp", "text": _narrative(scenario.admission, scenario.course)},
            medicine_section,
            {
                "title": "Videre oppfølging",
                "text": _narrative(scenario.discharge, f"{author_name}. {_NOTICE}"),
            },
        ],
    }
    resources: list[tuple[str, dict[str, Any]]] = [
        ("composition", composition),
        ("patient", patient),
        ("practitioner", practitioner),
        ("organisation", organisation),
        ("department", department),
        ("condition", condition),
        *((f"medication-{i}", s) for i, s in enumerate(statements)),
    ]
    bundle = {
        "resourceType": "Bundle",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{parties.document_id}"},
        "type": "document",
        "timestamp": when,
        "entry": [
            {
                "fullUrl": ref(name),
                "resource": {
                    "resourceType": resource["resourceType"],
                    "id": ref(name)[9:],
                    **resource,
                },
            }
            for name, resource in resources
        ],
    }
    return orjson.dumps(bundle, option=orjson.OPT_INDENT_2) + b"\n"
