"""The command-line client's pure parts: attestation, overview rows, region status lines."""

from __future__ import annotations

from typing import Any

import orjson

from onerecord.domain import NationalIdentityNumber
from onerecord.hub.merge import failure_issue, region_issues
from onerecord.hub.render import outcome_entry
from onerecord.hub.results import RegionResult, RegionStatus
from onerecord.mhd import Issue, document_reference
from onerecord.search_client import (
    StaffMember,
    overview_rows,
    patient_identifier,
    practitioner_attestation,
    region_lines,
    region_reasons,
)
from onerecord.trust.attestation import enrich, parse_authorization_details
from onerecord.trust.patient_binding import make_digest, new_salt, verify_binding
from tests.factories import SYNTHETIC_FNR, make_entry
from tests.hub.conftest import HCID_HSO, HCID_MIDT, HCID_VEST, make_region
from tests.sts.fakes import DOCTOR, LEGAL_ENTITY, POINT_OF_CARE, make_population

REGIONS = [
    {"home_community_id": HCID_HSO, "name": "Helse Sør-Øst"},
    {"home_community_id": HCID_VEST, "name": "Helse Vest"},
    {"home_community_id": HCID_MIDT, "name": "Helse Midt-Norge"},
]


def test_attestation_is_accepted_by_the_sts_rules_and_binds_the_patient() -> None:
    staff = StaffMember(
        nin=DOCTOR,
        category="LE",
        legal_entity=LEGAL_ENTITY,
        point_of_care=POINT_OF_CARE,
        department="4001031",
    )
    salt = new_salt()
    raw = practitioner_attestation(staff, patient_digest=make_digest(SYNTHETIC_FNR, salt))
    population = make_population()
    attestation = enrich(
        parse_authorization_details([raw], registers=population),
        population,
        NationalIdentityNumber(DOCTOR),
    )
    care = attestation.care_relationship
    assert care.purpose_of_use.code == "TREAT"
    assert care.decision_ref.id and care.decision_ref.user_selected
    assert verify_binding(attestation, SYNTHETIC_FNR, salt) is not None
    other = practitioner_attestation(staff, patient_digest=make_digest(SYNTHETIC_FNR, salt))
    assert other["care_relationship"]["decision_ref"]["id"] != care.decision_ref.id


def _bundle(resources: list[dict[str, Any]], outcome: bytes | None) -> dict[str, Any]:
    entries = [{"resource": r} for r in resources]
    if outcome is not None:
        entries.append(orjson.loads(outcome))
    return {"resourceType": "Bundle", "type": "searchset", "entry": entries}


def test_overview_rows_read_author_organisation_and_region() -> None:
    entry = make_entry(home_community_id=HCID_VEST)
    doc = document_reference(entry, id="d1", attachment_url="http://hub/fhir/Binary/x")
    (row,) = overview_rows(_bundle([doc], None), {HCID_VEST: "Helse Vest"})
    assert row.date == entry.creation_time.date().isoformat()
    assert row.region == "Helse Vest"
    author = entry.authors[0]
    assert author.person is not None and author.institution is not None
    assert row.author == f"{author.person.given} {author.person.family}"
    assert row.organisation == author.institution.name
    assert row.title == (entry.title or "")
    assert row.type


def test_region_lines_name_failed_regions_with_latency() -> None:
    failed = RegionResult(
        make_region(HCID_VEST, name="Helse Vest"), RegionStatus.TIMEOUT, 4012.7, detail="slow"
    )
    outcome = outcome_entry([failure_issue(failed)])
    lines = region_lines(_bundle([], outcome), REGIONS)
    assert [(line.name, line.status) for line in lines] == [
        ("Helse Sør-Øst", "ok"),
        ("Helse Vest", "timeout"),
        ("Helse Midt-Norge", "ok"),
    ]
    assert lines[1].latency_ms in (4012, 4013)
    # A failed request (bare OperationOutcome) is read the same way.
    down = RegionResult(make_region(HCID_HSO), RegionStatus.UNAVAILABLE, 1.0)
    bare = {"resourceType": "OperationOutcome", "issue": [failure_issue(down)]}
    assert region_lines(bare, REGIONS)[0].status == "unavailable"


def test_region_lines_carry_each_regions_reason_for_a_refusal_or_an_empty_answer() -> None:
    """The hub's issues say why: a refusal's reason (ATT-5), a region's own D4 warning."""
    blocked = RegionResult(
        make_region(HCID_VEST, name="Helse Vest"),
        RegionStatus.DENIED,
        3.0,
        reason="practitioner-blocked",
    )
    empty_by_rule = Issue(
        code="suppressed", severity="information", diagnostics="d", reason="patient-reserved"
    )
    reserved = RegionResult(
        make_region(HCID_HSO), RegionStatus.OK, 2.0, warnings=(empty_by_rule.render(),)
    )
    outcome = outcome_entry(region_issues([reserved, blocked]))
    lines = region_lines(_bundle([], outcome), REGIONS)
    assert [(line.status, line.reason) for line in lines] == [
        ("ok", "patient-reserved"),
        ("denied", "practitioner-blocked"),
        ("ok", None),
    ]
    assert region_reasons(_bundle([], outcome)) == {
        HCID_HSO: "patient-reserved",
        HCID_VEST: "practitioner-blocked",
    }


def _synthetic_d_number() -> str:
    """A synthetic D-number: day + 40 and month + 80, with valid check digits."""
    for individual in range(100, 500):
        number = NationalIdentityNumber.with_check_digits(f"418190{individual}")
        if number is not None:
            return number
    raise AssertionError("no D-number with valid check digits")


def test_patient_identifier_names_the_system_of_the_numbers_kind() -> None:
    d_number = _synthetic_d_number()
    assert NationalIdentityNumber(d_number).kind.value == "dnr"
    assert patient_identifier(SYNTHETIC_FNR) == f"urn:oid:2.16.578.1.12.4.1.4.1|{SYNTHETIC_FNR}"
    assert patient_identifier(d_number) == f"urn:oid:2.16.578.1.12.4.1.4.2|{d_number}"
    # Not a number at all: sent as it is, for the hub to refuse with its own message.
    assert patient_identifier("123") == "urn:oid:2.16.578.1.12.4.1.4.1|123"
