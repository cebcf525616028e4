"""The hub's outward assertion maps back onto the caller it asserts (xca.assertion ↔ xca.xua).

The network's own callers (the captured HelseID assertion, helsenorge's citizen assertions) are
read, asserted again by the hub's issuer, verified and mapped: the same attestation, the same
policy context, the same patient binding.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from onerecord.domain import NationalIdentityNumber
from onerecord.trust import Citizen, HealthPersonnel
from onerecord.trust.principal import AccessBasis
from onerecord.xca import caller_from_assertion, parse_envelope, read_assertion
from onerecord.xca.assertion import assertion_attributes, sign_assertion
from onerecord.xca.saml import TrustedIssuer, XuaSettings, verify_assertion
from onerecord.xca.xua import XuaCaller
from tests.xca.saml_support import make_key_and_cert
from tests.xca.test_equivalence import _captured_caller
from tests.xca.vectors import vector

HUB = "https://hub.onerecord.test"
AUDIENCE = "urn:oid:2.16.578.1.12.4.5.100.1"
NOW = datetime(2025, 9, 2, 16, 40, tzinfo=UTC)


def _round_trip(
    principal: HealthPersonnel | Citizen,
    patient: NationalIdentityNumber,
    basis: AccessBasis | None = None,
) -> XuaCaller:
    key, cert = make_key_and_cert("hub-saml")
    element = sign_assertion(
        key=key,
        certificate=cert,
        issuer=HUB,
        subject=principal.nin.value,
        attributes=assertion_attributes(principal, patient=patient, access_basis=basis),
        audience=AUDIENCE,
        now=NOW,
        lifetime=timedelta(minutes=5),
    )
    settings = XuaSettings(issuers=(TrustedIssuer(HUB, (cert,)),), audiences=frozenset({AUDIENCE}))
    return caller_from_assertion(verify_assertion(element, settings, now=NOW))


@pytest.mark.parametrize("basis", [None, AccessBasis.AKUTT])
def test_a_health_worker_is_asserted_as_they_came(basis: AccessBasis | None) -> None:
    original = _captured_caller()
    patient = NationalIdentityNumber("17855599120")
    again = _round_trip(original, patient, basis)
    assert isinstance(again.principal, HealthPersonnel)
    assert again.principal.attestation == original.attestation
    assert again.principal.context() == original.context()
    assert again.principal.claims.scope == original.claims.scope
    assert again.patient is not None and again.patient.nin == patient
    assert again.access_basis is basis


@pytest.mark.parametrize("name", ["iti38-iti40-request-hn.xml", "iti39-iti40-request-hn.xml"])
def test_a_citizen_is_asserted_as_they_came(name: str) -> None:
    assertion = read_assertion(parse_envelope(vector(f"requests/{name}")).assertion)
    original = caller_from_assertion(assertion).principal
    assert isinstance(original, Citizen)
    patient = original.representation[0].person if original.representation else original.nin
    again = _round_trip(original, patient)
    assert isinstance(again.principal, Citizen)
    assert again.principal.context() == original.context()
    assert again.patient is not None and again.patient.nin == patient
