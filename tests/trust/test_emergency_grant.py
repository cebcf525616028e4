"""The emergency override at the region (issue 11, defect 7): scope, acute basis only, end.

The grant is parsed from the signed attestation (`trust.emergency`); the policy opens a blocked
entry only when the grant names its placeholder id or its class, refuses BTG without an acute
basis, and refuses it after the grant's end.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onerecord.domain import DOCUMENT_TYPE_SYSTEM
from onerecord.trust.emergency import (
    EmergencyGrant,
    masked_handle,
    parse_emergency_grant,
)
from onerecord.trust.errors import InvalidAuthorizationDetails
from onerecord.trust.policy import (
    DenialReason,
    EntryFacts,
    EntryView,
    PatientControls,
    RegionPolicy,
    hcp_retrieve_policy,
    hcp_search_policy,
)
from onerecord.trust.principal import AccessBasis
from tests.trust.policy_factories import NOW, PATIENT, TODAY, btg, entry, grant, hcp

KEY = b"k" * 32
CONTROLS = PatientControls(PATIENT)


def handle_of(ctx: Any) -> Any:
    def handle(e: EntryFacts) -> str:
        return masked_handle(
            KEY,
            decision_ref=ctx.decision_ref_id,
            patient=PATIENT.value,
            unique_id=e.unique_id.value,
        )

    return handle


def search(ctx: Any, *, now: Any = NOW) -> Any:
    return hcp_search_policy(
        ctx,
        PATIENT,
        region_policy=RegionPolicy(),
        controls=CONTROLS,
        today=TODAY,
        now=now,
        handle_of=handle_of(ctx),
    )


def test_a_class_grant_opens_that_class_only() -> None:
    epikrise = entry(labels=("NORS",), class_code="A00-1")
    lab = entry(labels=("NORS",), class_code="C00-1")
    decision = search(btg(classes=("A00-1",)))
    assert decision.view(epikrise) is EntryView.FULL and decision.unlocks(epikrise)
    assert decision.view(lab) is EntryView.MASKED


def test_a_document_grant_opens_the_named_placeholder_only() -> None:
    one, other = entry(labels=("NORS",)), entry(labels=("NORS",))
    ctx = btg(classes=())
    named = handle_of(ctx)(one)
    ctx = replace(ctx, emergency=grant(classes=(), documents=(named,)))
    decision = search(ctx)
    assert decision.view(one) is EntryView.FULL
    assert decision.view(other) is EntryView.MASKED
    retrieve = hcp_retrieve_policy(
        ctx,
        PATIENT,
        other,
        region_policy=RegionPolicy(),
        controls=CONTROLS,
        today=TODAY,
        now=NOW,
        handle_of=handle_of(ctx),
    )
    assert retrieve.reason is DenialReason.DOCUMENT_BLOCKED


def test_a_placeholder_id_of_another_visit_opens_nothing() -> None:
    doc = entry(labels=("NORS",))
    earlier = replace(btg(), decision_ref_id="another-visit")
    stale = handle_of(earlier)(doc)
    ctx = replace(btg(classes=()), emergency=grant(classes=(), documents=(stale,)))
    assert search(ctx).view(doc) is EntryView.MASKED


@pytest.mark.parametrize(
    "basis", [AccessBasis.UNNTAK, AccessBasis.SAMTYKKE, AccessBasis.FORHOYET_SAMTYKKE]
)
def test_btg_on_a_basis_that_is_not_acute_is_refused(basis: AccessBasis) -> None:
    decision = search(replace(btg(), access_basis=basis))
    assert not decision.allowed
    assert decision.reason is DenialReason.EMERGENCY_BASIS_REQUIRED


def test_btg_without_a_grant_is_refused() -> None:
    decision = search(hcp(purpose="BTG", access_basis=AccessBasis.FORHOYET_AKUTT))
    assert decision.reason is DenialReason.EMERGENCY_BASIS_REQUIRED


def test_the_elevated_header_alone_opens_nothing() -> None:
    """An unsigned `nhn-access-basis: FORHOYET_AKUTT` cannot widen a TREAT token."""
    decision = search(hcp(access_basis=AccessBasis.FORHOYET_AKUTT))
    assert decision.allowed
    assert decision.view(entry(labels=("NORS",))) is EntryView.MASKED


def test_btg_after_the_end_is_refused() -> None:
    ctx = btg(until=NOW + timedelta(minutes=30))
    assert search(ctx, now=NOW + timedelta(minutes=29)).allowed
    late = search(ctx, now=NOW + timedelta(minutes=30))
    assert not late.allowed and late.reason is DenialReason.EMERGENCY_EXPIRED


def test_a_blocked_health_worker_stays_blocked_in_an_emergency() -> None:
    controls = PatientControls(PATIENT, blocked_practitioners=frozenset({"123456789"}))
    decision = hcp_search_policy(
        btg(), PATIENT, region_policy=RegionPolicy(), controls=controls, today=TODAY, now=NOW
    )
    assert decision.reason is DenialReason.PRACTITIONER_BLOCKED


def test_grant_round_trips_through_its_json() -> None:
    g = grant(classes=("A00-1", "C00-1"), documents=("masked-" + "a" * 32,))
    assert parse_emergency_grant(g.to_json()) == g


@pytest.mark.parametrize(
    "change",
    [
        {"access_basis": "UNNTAK"},
        {"access_basis": "SAMTYKKE"},
        {"reason_category": "curious"},
        {"until": "soon"},
        {"until": True},
        {"documents": ["2.16.578.1.12.4.5.100.1.1.1"]},
        {"documents": [], "classes": []},
        {"classes": [{"code": "A00-1"}]},
        {"extra": 1},
    ],
)
def test_bad_grants_are_refused(change: dict[str, Any]) -> None:
    good = grant().to_json()
    with pytest.raises(InvalidAuthorizationDetails):
        parse_emergency_grant(good | change)


@given(st.dictionaries(st.text(max_size=20), st.one_of(st.none(), st.integers(), st.text())))
def test_grant_parser_never_fails_otherwise(value: dict[str, Any]) -> None:
    try:
        result = parse_emergency_grant(value)
    except InvalidAuthorizationDetails:
        return
    assert isinstance(result, EmergencyGrant)


def test_class_systems_are_compared_in_urn_form() -> None:
    bare = {
        **grant().to_json(),
        "classes": [{"code": "A00-1", "system": DOCUMENT_TYPE_SYSTEM.removeprefix("urn:oid:")}],
    }
    assert parse_emergency_grant(bare).classes == {(DOCUMENT_TYPE_SYSTEM, "A00-1")}


def test_the_grant_travels_in_the_attestation_and_only_with_btg() -> None:
    from onerecord.domain import NationalIdentityNumber
    from onerecord.trust.attestation import (
        enrich,
        parse_attestation_claim,
        parse_authorization_details,
    )
    from tests.sts.fakes import DOCTOR, attestation_details, make_population

    registers = make_population()
    g = grant().to_json()
    btg_details = attestation_details(**{"care_relationship.purpose_of_use.code": "BTG"})
    btg_details["emergency_access"] = g
    parsed = parse_authorization_details([btg_details], registers=registers)
    claim = enrich(parsed, registers, NationalIdentityNumber(DOCTOR)).to_claim()
    assert claim["emergency_access"] == g  # the STS signs it into the token as sent
    assert parse_attestation_claim(claim).emergency == grant()
    treat = attestation_details()
    treat["emergency_access"] = g
    with pytest.raises(InvalidAuthorizationDetails, match="only with purpose_of_use BTG"):
        parse_authorization_details([treat], registers=registers)
