"""BALP AuditEvents validate as FHIR R4B AuditEvent and carry the BALP pattern elements."""

from __future__ import annotations

import base64

import orjson
import pytest
from fhir.resources.R4B.auditevent import AuditEvent

from onerecord.audit import AuditCitizen, AuditOutcome, audit_event
from tests.audit.factories import JTI, citizen_record, retrieve_record, search_record
from tests.trust.policy_factories import PATIENT, PRACTITIONER


def _patient_entities(event: dict) -> list[dict]:  # type: ignore[type-arg]
    return [e for e in event["entity"] if e.get("role", {}).get("code") == "1"]


@pytest.mark.parametrize(
    "record",
    [
        search_record(),
        retrieve_record(emergency_override=True),
        search_record(
            outcome=AuditOutcome.DENIED, reason="purpose-not-allowed", returned_count=None
        ),
        citizen_record(
            citizen=AuditCitizen("15838500123", on_behalf_of=PATIENT.value, relation="parent")
        ),
    ],
    ids=["search", "retrieve", "denied", "citizen"],
)
def test_audit_event_validates_as_fhir(record) -> None:  # type: ignore[no-untyped-def]
    event = audit_event(record)
    parsed = AuditEvent.model_validate(orjson.loads(orjson.dumps(event)))
    assert parsed.type.code == "rest"
    patients = _patient_entities(event)
    assert len(patients) == 1
    assert patients[0]["type"]["code"] == "1"
    assert patients[0]["what"]["identifier"]["value"] == PATIENT.value
    requestors = [a for a in event["agent"] if a["requestor"]]
    assert len(requestors) == 1 and requestors[0]["policy"] == [JTI]


def test_search_is_a_patient_query_with_base64_query() -> None:
    record = search_record()
    event = audit_event(record)
    assert event["meta"]["profile"][0].endswith("IHE.BasicAudit.PatientQuery")
    assert event["subtype"][0]["code"] == "search" and event["action"] == "E"
    (query,) = [e for e in event["entity"] if e.get("role", {}).get("code") == "24"]
    assert base64.b64decode(query["query"]).decode() == record.query
    assert query["detail"][0]["valueString"] == "3"
    assert event["outcome"] == "0"


def test_retrieve_is_a_patient_read_with_document_entities() -> None:
    event = audit_event(retrieve_record(emergency_override=True))
    assert event["meta"]["profile"][0].endswith("IHE.BasicAudit.PatientRead")
    assert event["subtype"][0]["code"] == "read" and event["action"] == "R"
    reports = [e for e in event["entity"] if e.get("role", {}).get("code") == "3"]
    assert [r["what"]["identifier"]["value"] for r in reports] == [
        "urn:oid:2.16.578.1.12.4.5.100.1.1.7"
    ]
    details = {d["type"]: d["valueString"] for e in event["entity"] for d in e.get("detail", [])}
    assert details["emergency-override"] == "true" and details["decision-ref"] == "d-42"


def test_practitioner_agent_and_attestation() -> None:
    event = audit_event(search_record())
    (user,) = [a for a in event["agent"] if a["requestor"]]
    assert user["who"] == {
        "identifier": {"system": "urn:oid:2.16.578.1.12.4.1.4.4", "value": "123456789"},
        "display": "Kari Lege",
    }
    assert user["role"][0]["coding"][0]["code"] == "LE"
    codes = {c["coding"][0]["code"] for c in event["purposeOfEvent"]}
    assert codes == {"TREAT", "BEHANDLER", "01"}
    orgs = {a["who"]["identifier"]["value"] for a in event["agent"] if not a["requestor"]}
    assert {"983974899", "974589095", "4208723"} <= orgs
    # The practitioner's identity number is not needed when the HPR number is known.
    assert PRACTITIONER.value not in orjson.dumps(event).decode()


def test_denied_event_carries_reason() -> None:
    event = audit_event(
        search_record(outcome=AuditOutcome.DENIED, reason="role-not-allowed", returned_count=None)
    )
    assert event["outcome"] == "4" and event["outcomeDesc"] == "role-not-allowed"


def test_hub_search_names_every_region_asked_and_round_trips() -> None:
    from dataclasses import replace

    from onerecord.audit import AuditRecord

    record = replace(
        search_record(),
        regions=(
            ("urn:oid:2.16.578.1.12.4.5.100.1", "ok"),
            ("urn:oid:2.16.578.1.12.4.5.100.4", "timeout"),
        ),
    )
    event = audit_event(record)
    AuditEvent.model_validate(orjson.loads(orjson.dumps(event)))
    asked = {
        e["what"]["identifier"]["value"]: e["detail"][0]["valueString"]
        for e in event["entity"]
        if e.get("description") == "community asked by the hub"
    }
    assert asked == {
        "urn:oid:2.16.578.1.12.4.5.100.1": "ok",
        "urn:oid:2.16.578.1.12.4.5.100.4": "timeout",
    }
    assert AuditRecord.from_dict(record.to_dict()) == record


def test_an_archive_store_is_a_patient_create() -> None:
    from datetime import UTC, datetime

    from onerecord.audit import AuditAction, AuditRecord

    record = AuditRecord(
        action=AuditAction.STORE,
        outcome=AuditOutcome.SUCCESS,
        recorded=datetime(2026, 12, 3, 8, 0, tzinfo=UTC),
        source_id="urn:oid:2.16.578.1.12.4.5.100.4#media",
        home_community_id="urn:oid:2.16.578.1.12.4.5.100.4",
        correlation_id="dimse:CT1:7f:1",
        patient_id=PATIENT.value,
        document_ids=("2.25.1234",),
    )
    event = audit_event(record)
    AuditEvent.model_validate(orjson.loads(orjson.dumps(event)))
    assert event["meta"]["profile"][0].endswith("IHE.BasicAudit.PatientCreate")
    assert event["subtype"][0]["code"] == "create" and event["action"] == "C"
    assert _patient_entities(event)[0]["what"]["identifier"]["value"] == PATIENT.value
