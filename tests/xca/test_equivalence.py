"""The SAML caller is the MHD caller: same principal type, same context, same policy decision.

The responding gateway will hand `XuaCaller.principal` to the policy the MHD path uses; here the
claims it carries are read back by the MHD path's own `principal_from_claims`, and both callers
get the same context and the same search decision. (The end-to-end equivalence over both wires
waits for the endpoints; docs/xca.md.)
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from onerecord.domain import NationalIdentityNumber
from onerecord.trust import (
    Citizen,
    HealthPersonnel,
    PatientControls,
    PopulationFacts,
    RegionPolicy,
    citizen_search_policy,
    hcp_search_policy,
)
from onerecord.trust.access_token import principal_from_claims
from onerecord.xca import caller_from_assertion, parse_envelope, read_assertion
from onerecord.xca.saml import (
    TrustedIssuer,
    XuaSettings,
    certificate_from_key_info,
    verify_assertion,
)
from tests.xca.saml_support import captured_assertion
from tests.xca.vectors import vector

ISSUED = datetime(2025, 9, 2, 16, 39, 8, 365000, tzinfo=UTC)


def _captured_caller() -> HealthPersonnel:
    element = captured_assertion()
    settings = XuaSettings(
        issuers=(
            TrustedIssuer(
                "https://helseid-xdssaml.test.nhn.no", (certificate_from_key_info(element),)
            ),
        ),
        audiences=frozenset({"nhn:dokumentdeling-saml"}),
    )
    principal = caller_from_assertion(verify_assertion(element, settings, now=ISSUED)).principal
    assert isinstance(principal, HealthPersonnel)
    return principal


def test_the_health_worker_reads_the_same_through_the_mhd_mapper() -> None:
    saml = _captured_caller()
    mhd = principal_from_claims(saml.claims)
    assert isinstance(mhd, HealthPersonnel)
    assert mhd.attestation == saml.attestation
    assert mhd.context() == saml.context()


@pytest.mark.parametrize("role_not_allowed", [False, True])
def test_the_health_worker_gets_the_same_search_decision(role_not_allowed: bool) -> None:
    saml = _captured_caller()
    mhd = principal_from_claims(saml.claims)
    assert isinstance(mhd, HealthPersonnel)
    patient = NationalIdentityNumber("17855599120")
    region = RegionPolicy(allowed_roles=frozenset({"SP"})) if role_not_allowed else RegionPolicy()
    decisions = [
        hcp_search_policy(
            p.context(),
            patient,
            region_policy=region,
            controls=PatientControls(patient),
            today=date(2025, 9, 2),
        )
        for p in (saml, mhd)
    ]
    assert decisions[0] == decisions[1]
    assert decisions[0].allowed is (not role_not_allowed)  # LE is not in an SP-only allow-list


@pytest.mark.parametrize("name", ["iti38-iti40-request-hn.xml", "iti39-iti40-request-hn.xml"])
def test_the_citizen_reads_the_same_through_the_mhd_mapper(name: str) -> None:
    assertion = read_assertion(parse_envelope(vector(f"requests/{name}")).assertion)
    saml = caller_from_assertion(assertion).principal
    assert isinstance(saml, Citizen)
    mhd = principal_from_claims(saml.claims)
    assert isinstance(mhd, Citizen)
    assert mhd.context() == saml.context()
    patient = NationalIdentityNumber("27888498775")
    facts = PopulationFacts(patient_birth_date=patient.birth_date)
    now = datetime(2025, 8, 29, 10, tzinfo=UTC)
    assert citizen_search_policy(saml.context(), patient, facts=facts, now=now) == (
        citizen_search_policy(mhd.context(), patient, facts=facts, now=now)
    )
