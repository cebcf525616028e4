"""Audit records for tests: a health worker's search and retrieve, a citizen's read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from onerecord.audit import (
    AuditAction,
    AuditCitizen,
    AuditCode,
    AuditOrganisation,
    AuditOutcome,
    AuditPractitioner,
    AuditRecord,
)
from tests.trust.policy_factories import PATIENT, PRACTITIONER

T0 = datetime(2025, 6, 15, 10, 0, tzinfo=UTC)
HCID = "urn:oid:2.16.578.1.12.4.5.100.1"
JTI = "9b2f7c1e-5d7a-4c1b-8f55-0c3e2d1a9b77"

DOCTOR = AuditPractitioner(
    name="Kari Lege",
    nin=PRACTITIONER.value,
    hpr="123456789",
    role="LE",
    legal_entity=AuditOrganisation("983974899", "Testsykehuset HF"),
    point_of_care=AuditOrganisation("974589095", "Testsykehuset Ullevål"),
    department=AuditOrganisation("4208723", "Akuttmottak", "urn:oid:2.16.578.1.12.4.1.4.102"),
    healthcare_service=AuditCode("urn:oid:2.16.578.1.12.4.1.1.8666", "01", "Allmennlege"),
    purpose_of_use="TREAT",
    purpose_details=AuditCode(
        "urn:AuditEventHL7Norway/CodeSystem/carerelation", "BEHANDLER", "Behandler"
    ),
    decision_ref_id="d-42",
    access_basis=None,
)


def search_record(n: int = 0, **changes: object) -> AuditRecord:
    values: dict[str, object] = {
        "action": AuditAction.SEARCH,
        "outcome": AuditOutcome.SUCCESS,
        "recorded": T0 + timedelta(seconds=n),
        "source_id": "helse-sor-ost",
        "home_community_id": HCID,
        "correlation_id": f"corr-{n}",
        "patient_id": PATIENT.value,
        "practitioner": DOCTOR,
        "query": f"patient.identifier=urn:oid:2.16.578.1.12.4.1.4.1|{PATIENT.value}&status=current",
        "returned_count": 3,
        "token_jti": JTI,
    }
    values.update(changes)
    return AuditRecord(**values)  # type: ignore[arg-type]


def retrieve_record(n: int = 0, **changes: object) -> AuditRecord:
    base: dict[str, object] = {
        "action": AuditAction.RETRIEVE,
        "query": None,
        "returned_count": None,
        "document_ids": ("2.16.578.1.12.4.5.100.1.1.7",),
    }
    base.update(changes)
    return search_record(n, **base)


def citizen_record(n: int = 0, **changes: object) -> AuditRecord:
    base: dict[str, object] = {
        "practitioner": None,
        "citizen": AuditCitizen(PATIENT.value, name="Ola Nordmann"),
    }
    base.update(changes)
    return search_record(n, **base)
