"""A caller's SAML assertion relayed by the hub (ITI-18/43 at the hub) is verified by the region:
the hub vouches for neither the caller nor the patient (docs/xca.md "Trust at the hub")."""

from __future__ import annotations

import base64
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onerecord.domain import HomeCommunityId
from onerecord.hub.directory import Region
from onerecord.hub.security import RelayedXuaAuth
from onerecord.source.security import Authenticated, SourceAuthenticator
from onerecord.trust.access_token import AuthSettings, Citizen
from onerecord.trust.assertion import HUB_ASSERTION_HEADER
from onerecord.trust.errors import InvalidToken, PatientBindingFailed, TrustError
from onerecord.trust.keys import SigningKey, StaticJwks
from onerecord.trust.patient_binding import PATIENT_NIN_HEADER
from onerecord.trust.replay import MemoryReplayCache
from onerecord.xca.dev_issuer import DEV_SAML_ISSUER
from onerecord.xca.errors import SamlRefused
from onerecord.xca.relay import (
    MAX_ASSERTION_BYTES,
    XUA_ASSERTION_HEADER,
    encode_relayed,
    read_relayed,
    relay_digest,
)
from onerecord.xca.saml import TrustedIssuer, XuaSettings
from tests.source.xca_support import DevIssuer, citizen_attributes, make_assertion, make_dev_issuer

pytestmark = pytest.mark.anyio
NORD = Region(
    "Helse Nord", HomeCommunityId.parse("urn:oid:2.16.578.1.12.4.5.100.4"), "http://r/fhir"
)
HUB = "http://hub.test"
AUDIENCE = "onerecord:dokumentdeling-saml"
CITIZEN = "23828611216"
OTHER = "02819999875"


@pytest.fixture
def issuer(tmp_path: Path) -> DevIssuer:
    return make_dev_issuer(tmp_path)


def _assertion(issuer: DevIssuer, nin: str = CITIZEN) -> Any:
    return make_assertion(issuer, nin, citizen_attributes(nin), audience=AUDIENCE)


async def _relay(
    issuer: DevIssuer,
    assertion: Any,
    *,
    subject: str = CITIZEN,
    patient: str | None = CITIZEN,
    header: str | None = None,
    trusted: bool = True,
) -> Authenticated:
    key = SigningKey.generate(kid="hub")
    relayed = encode_relayed(assertion)
    auth = RelayedXuaAuth(
        key=key,
        issuer=HUB,
        subject=subject,
        security_level="4",
        assertion_id=assertion.get("ID"),
        saml_issuer=DEV_SAML_ISSUER,
        relayed=relayed,
        correlation_id="c-1",
        patient_nin=patient,
    )
    headers = await auth.headers_for(NORD, "GET", "http://r/fhir/DocumentReference")
    assert set(headers) == {HUB_ASSERTION_HEADER, XUA_ASSERTION_HEADER} | (
        {PATIENT_NIN_HEADER} if patient else set()
    )
    if header is not None:
        headers[XUA_ASSERTION_HEADER] = header
    xua = XuaSettings(
        issuers=(TrustedIssuer(DEV_SAML_ISSUER, (issuer.certificate,)),),
        audiences=frozenset({AUDIENCE}),
    )
    source = SourceAuthenticator(
        auth=AuthSettings(issuer="sts", audience=NORD.hcid),
        keys=StaticJwks([]),
        replay=MemoryReplayCache(),
        hub_issuer=HUB,
        hub_keys=StaticJwks([key]),
        xua=xua if trusted else None,
    )
    return await source.authenticate(
        method="GET", url="http://r/fhir/DocumentReference", headers=headers
    )


async def test_the_region_takes_caller_and_patient_from_the_relayed_assertion(
    issuer: DevIssuer,
) -> None:
    assertion = _assertion(issuer)
    who = await _relay(issuer, assertion)
    assert who.via_hub and who.relayed_xua and who.correlation_id == "c-1"
    assert who.token_jti == assertion.get("ID")
    assert isinstance(who.principal, Citizen) and who.principal.nin.value == CITIZEN
    assert who.asserted_patient is not None and who.asserted_patient.value == CITIZEN


async def test_the_hub_cannot_change_the_patient(issuer: DevIssuer) -> None:
    with pytest.raises(PatientBindingFailed):
        await _relay(issuer, _assertion(issuer), patient=OTHER)


async def test_the_hub_cannot_change_the_caller(issuer: DevIssuer) -> None:
    with pytest.raises(InvalidToken):
        await _relay(issuer, _assertion(issuer), subject=OTHER)


async def test_another_assertion_than_the_hub_named_is_refused(issuer: DevIssuer) -> None:
    other = encode_relayed(_assertion(issuer))  # a valid one, but not the one the hub signed
    with pytest.raises(InvalidToken):
        await _relay(issuer, _assertion(issuer), header=other)


async def test_a_region_that_trusts_no_saml_issuer_refuses(issuer: DevIssuer) -> None:
    with pytest.raises(InvalidToken):
        await _relay(issuer, _assertion(issuer), trusted=False)


async def test_an_assertion_of_an_issuer_the_region_does_not_trust_is_refused(
    issuer: DevIssuer, tmp_path: Path
) -> None:
    folder = tmp_path / "stranger"
    folder.mkdir()
    stranger = make_dev_issuer(folder)  # the same issuer name, a key the region does not trust
    with pytest.raises(TrustError):
        await _relay(issuer, _assertion(stranger))


def test_a_relayed_value_that_inflates_beyond_the_limit_is_refused() -> None:
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    raw = bomb.compress(b"<a>" + b" " * (MAX_ASSERTION_BYTES * 4) + b"</a>") + bomb.flush()
    value = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    with pytest.raises(SamlRefused):
        read_relayed(value, digest=relay_digest(value))


@given(st.text(max_size=300))
def test_any_header_value_is_refused_or_read_never_anything_else(value: str) -> None:
    try:
        read_relayed(value, digest=relay_digest(value) if value.isascii() else "x")
    except SamlRefused:
        pass
