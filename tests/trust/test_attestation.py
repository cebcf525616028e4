"""Attestation parsing and enrichment as HelseID validates it (A2–A13, A22)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onerecord.domain import NationalIdentityNumber
from onerecord.trust.attestation import (
    enrich,
    parse_attestation_claim,
    parse_authorization_details,
)
from onerecord.trust.errors import InvalidAuthorizationDetails
from tests.sts.fakes import (
    DEPARTMENT,
    DEPARTMENT_NAME,
    DOCTOR,
    NON_MEMBER,
    NON_MEMBER_UNIT,
    NURSE,
    OTHER_UNIT,
    SECRETARY,
    attestation_details,
    make_population,
)

POP = make_population()


def _parse(**changes: Any) -> Any:
    return parse_authorization_details([attestation_details(**changes)], registers=POP)


def test_valid_attestation_round_trips_through_the_token_claim() -> None:
    parsed = _parse()
    enriched = enrich(parsed, POP, NationalIdentityNumber(DOCTOR))
    claim = enriched.to_claim()
    assert claim["practitioner"]["identifier"]["id"] == DOCTOR
    assert claim["practitioner"]["identifier"]["name"] == "Kari Lege"
    assert claim["practitioner"]["hpr_nr"]["id"] == "1234567"
    assert claim["practitioner"]["legal_entity"]["name"] == "Testsykehuset HF"
    # bare OID normalised to urn:oid:
    assert claim["practitioner"]["point_of_care"]["system"] == "urn:oid:2.16.578.1.12.4.1.4.101"
    assert parse_attestation_claim(claim) == enriched


def test_the_department_is_named_from_the_register_as_the_units_are() -> None:
    """Issue 11 defect 4: the department reached the audit and the access log without a name."""
    parsed = _parse()
    assert parsed.practitioner.department.id == DEPARTMENT
    assert parsed.practitioner.department.name is None  # the client's narrow form
    claim = enrich(parsed, POP, NationalIdentityNumber(DOCTOR)).to_claim()
    assert claim["practitioner"]["department"]["name"] == DEPARTMENT_NAME
    assert parse_attestation_claim(claim).practitioner.department.name == DEPARTMENT_NAME


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"care_relationship.purpose_of_use": ...}, "purpose_of_use is required"),  # A2
        ({"care_relationship.purpose_of_use.code": "HRESCH"}, "TREAT, ETREAT"),  # A3
        (
            {
                "care_relationship.healthcare_service": ...,
                "care_relationship.purpose_of_use_details": ...,
            },
            "ATT-43",
        ),  # A4
        (
            {
                "practitioner.legal_entity.id": NON_MEMBER,
                "practitioner.point_of_care.id": NON_MEMBER_UNIT,
            },
            "Helsenett",
        ),  # A6
        ({"practitioner.legal_entity.id": "981000013"}, "Enhetsregisteret"),  # A6 unknown
        ({"care_relationship.decision_ref.id": "a" * 65}, "decision_ref.id"),  # A7
        ({"care_relationship.decision_ref.id": "abc/def"}, "decision_ref.id"),  # A7
        ({"care_relationship.decision_ref.description": "x"}, "description"),  # A8
        ({"care_relationship.decision_ref.user_selected": "yes"}, "boolean"),  # A9
        (
            {
                "patients": [
                    {"identifier": {"id": DOCTOR, "system": "urn:oid:2.16.578.1.12.4.1.4.1"}}
                ]
            },
            "no patient identifier",
        ),  # A10
        (
            {"practitioner.identifier": {"id": DOCTOR, "system": "urn:oid:2.16.578.1.12.4.1.4.3"}},
            "H-number",
        ),  # A13
        ({"care-relationship": {}}, "snake_case"),
        ({"practitioner.legal_entity.name": "Sent by client"}, "unknown member"),
    ],
)
def test_invalid_attestations_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidAuthorizationDetails, match=message) as info:
        _parse(**changes)
    assert info.value.error == "invalid_authorization_details" and info.value.status == 400


def test_A5_authorization_not_in_hpr_is_refused() -> None:
    parsed = _parse(**{"practitioner.authorization.code": "TL"})
    with pytest.raises(InvalidAuthorizationDetails, match="ATT-32"):
        enrich(parsed, POP, NationalIdentityNumber(DOCTOR))


def test_A12_identifier_of_another_person_is_refused() -> None:
    other = {"id": NURSE, "system": "urn:oid:2.16.578.1.12.4.1.4.1"}
    parsed = _parse(**{"practitioner.identifier": other})
    with pytest.raises(InvalidAuthorizationDetails, match="ATT-11"):
        enrich(parsed, POP, NationalIdentityNumber(DOCTOR))


def test_A22_practitioner_without_hpr_is_accepted_without_hpr_nr() -> None:
    parsed = _parse(**{"practitioner.authorization": ...})
    enriched = enrich(parsed, POP, NationalIdentityNumber(SECRETARY))
    assert enriched.practitioner.hpr_nr is None and enriched.practitioner.authorization is None


def test_exactly_one_attestation_object_is_required() -> None:
    with pytest.raises(InvalidAuthorizationDetails, match="exactly one"):
        parse_authorization_details([attestation_details(), attestation_details()], registers=POP)
    with pytest.raises(InvalidAuthorizationDetails, match="exactly one"):
        parse_authorization_details([{"type": "other"}], registers=POP)


# -- issue 10 F: codes against their code lists, the organisation against the registers ---------


@pytest.mark.parametrize(
    "changes",
    [
        {"care_relationship.healthcare_service.code": "99999"},
        {"care_relationship.purpose_of_use_details.code": "XYZ"},
        {"practitioner.authorization.code": "ZZ"},
    ],
    ids=["service-99999", "details-XYZ", "authorization-ZZ"],
)
def test_codes_outside_their_code_lists_are_refused_at_the_sts_and_in_a_token(
    changes: dict[str, Any],
) -> None:
    with pytest.raises(InvalidAuthorizationDetails, match="code list"):
        _parse(**changes)
    # Defence in depth: the hub and the sources parse the token's claim with the same check.
    claim = enrich(_parse(), POP, NationalIdentityNumber(DOCTOR)).to_claim()
    for path, value in changes.items():
        *parents, last = path.split(".")
        target = claim
        for part in parents:
            target = target[part]
        target[last] = value
    with pytest.raises(InvalidAuthorizationDetails, match="code list"):
        parse_attestation_claim(claim)


def test_point_of_care_where_the_user_does_not_work_is_refused() -> None:
    parsed = _parse(**{"practitioner.point_of_care.id": OTHER_UNIT, "practitioner.department": ...})
    with pytest.raises(InvalidAuthorizationDetails, match="HPR employment"):
        enrich(parsed, POP, NationalIdentityNumber(DOCTOR))


def test_department_that_is_not_of_the_point_of_care_is_refused() -> None:
    with pytest.raises(InvalidAuthorizationDetails, match="department"):
        _parse(**{"practitioner.department.id": "4009999"})


def test_huge_toa_is_refused() -> None:
    with pytest.raises(InvalidAuthorizationDetails, match="toa"):
        _parse(toa=10**30)


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["01", "99999", "XYZ", "LE", "TREAT", DOCTOR, OTHER_UNIT, "4001031"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
_PATHS = [
    "type",
    "toa",
    "patients",
    "practitioner",
    "practitioner.authorization",
    "practitioner.authorization.code",
    "practitioner.legal_entity",
    "practitioner.legal_entity.id",
    "practitioner.point_of_care.id",
    "practitioner.point_of_care.system",
    "practitioner.department",
    "practitioner.department.id",
    "care_relationship",
    "care_relationship.healthcare_service",
    "care_relationship.healthcare_service.code",
    "care_relationship.healthcare_service.system",
    "care_relationship.purpose_of_use.code",
    "care_relationship.purpose_of_use_details",
    "care_relationship.purpose_of_use_details.code",
    "care_relationship.decision_ref",
    "care_relationship.decision_ref.id",
    "care_relationship.decision_ref.user_selected",
]


@settings(max_examples=150, deadline=None)
@given(changes=st.dictionaries(st.sampled_from(_PATHS), _json_values | st.just(...), max_size=3))
def test_any_hostile_attestation_raises_only_invalid_authorization_details(
    changes: dict[str, Any],
) -> None:
    try:
        details = attestation_details(**changes)
    except (KeyError, TypeError, IndexError, ValueError):
        return  # the change does not apply to the shape the earlier changes left
    for parse in (
        lambda: enrich(_parse_raw(details), POP, NationalIdentityNumber(DOCTOR)),
        lambda: parse_attestation_claim(details),
    ):
        try:
            parse()
        except InvalidAuthorizationDetails:
            pass


def _parse_raw(details: Any) -> Any:
    return parse_authorization_details(json.dumps([details], allow_nan=True), registers=POP)
