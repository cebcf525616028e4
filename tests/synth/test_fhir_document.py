from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from onerecord.domain import DOCUMENT_TYPE_SYSTEM, NationalIdentityNumber, code_tables
from onerecord.domain.codes import Coding
from onerecord.synth import clinical
from onerecord.synth.fhir_document import (
    ATC_SYSTEM,
    ICD10_SYSTEM,
    MEDICATIONS,
    DocumentParties,
    render_fhir_document,
)
from tests.factories import synthetic_nin

from .formats import check_fhir_document

PARTIES = DocumentParties(
    document_id=uuid.UUID("0b9e8f52-50c4-4f0c-8a53-3d1f5a2e9c11"),
    created=datetime(2023, 9, 14, 13, 5, 0, tzinfo=UTC),
    patient_nin=NationalIdentityNumber(synthetic_nin(5)),
    patient_given="Kari",
    patient_family="Nordmann",
    organisation_name="Testsykehuset HF",
    organisation_number="974000016",
    department_name="Medisinsk klinikk",
    department_resh="4001031",
    author_given="Lege",
    author_family="Legesen",
    author_hpr="9144889",
)


def _resources(bundle: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        found.setdefault(resource["resourceType"], []).append(resource)
    return found


@pytest.mark.parametrize("scenario", clinical.SCENARIOS, ids=lambda s: s.key)
def test_every_scenario_gives_a_valid_document(scenario: clinical.Scenario) -> None:
    bundle = check_fhir_document(render_fhir_document(PARTIES, scenario))
    resources = _resources(bundle)
    (composition,) = resources["Composition"]
    assert composition["title"] == "Epikrise med legemiddelliste"
    assert composition["type"]["coding"][0] == {
        "system": DOCUMENT_TYPE_SYSTEM,
        "code": "A03-2",
        "display": "Epikrise",
    }
    assert [s["title"] for s in composition["section"]] == [
        "Diagnose",
        "Forløp",
        "Legemidler ved utskrivning",
        "Videre oppfølging",
    ]
    (patient,) = resources["Patient"]
    assert patient["identifier"] == [
        {"system": "urn:oid:2.16.578.1.12.4.1.4.1", "value": PARTIES.patient_nin.value}
    ]
    (condition,) = resources["Condition"]
    assert condition["code"]["coding"][0]["system"] == ICD10_SYSTEM
    assert condition["code"]["coding"][0]["code"] == scenario.icd10
    statements = resources["MedicationStatement"]
    assert [s["medicationCodeableConcept"]["text"] for s in statements] == [
        m.name for m in MEDICATIONS[scenario.key]
    ]
    assert all(
        s["medicationCodeableConcept"]["coding"][0]["system"] == ATC_SYSTEM for s in statements
    )


def test_every_scenario_has_medicines_and_the_type_code_exists() -> None:
    assert set(MEDICATIONS) == {s.key for s in clinical.SCENARIOS}
    assert code_tables().require("typeCode", Coding(DOCUMENT_TYPE_SYSTEM, "A03-2"))


def test_same_parties_same_bytes_and_ids_follow_the_document() -> None:
    scenario = clinical.SCENARIOS[0]
    first = render_fhir_document(PARTIES, scenario)
    assert render_fhir_document(PARTIES, scenario) == first
    other = render_fhir_document(replace(PARTIES, document_id=uuid.uuid4()), scenario)
    ids = {e["fullUrl"] for e in check_fhir_document(first)["entry"]}
    assert ids.isdisjoint(e["fullUrl"] for e in check_fhir_document(other)["entry"])


def test_without_hpr_or_medicines_the_document_stays_valid() -> None:
    scenario = replace(clinical.SCENARIOS[0], key="ukjent")
    bundle = check_fhir_document(render_fhir_document(replace(PARTIES, author_hpr=None), scenario))
    resources = _resources(bundle)
    assert "MedicationStatement" not in resources
    assert "identifier" not in resources["Practitioner"][0]
    (composition,) = resources["Composition"]
    medicines = composition["section"][2]
    assert "entry" not in medicines and "Ingen faste legemidler." in medicines["text"]["div"]
