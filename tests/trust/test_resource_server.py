"""The trust path a regional resource server shares (source, media archive): token or assertion."""

from __future__ import annotations

import time
from typing import Any

import pytest

from onerecord.trust.access_token import (
    AuthSettings,
    HealthPersonnel,
    issue_access_token,
    validate_access_token,
)
from onerecord.trust.assertion import HUB_ASSERTION_HEADER, mint_hub_assertion
from onerecord.trust.dpop import make_proof
from onerecord.trust.errors import InvalidToken
from onerecord.trust.keys import SigningKey, StaticJwks
from onerecord.trust.replay import MemoryReplayCache
from onerecord.trust.resource_server import DirectCall, HubCall, ResourceServerAuthenticator
from tests.sts.fakes import DOCTOR, attestation_details

pytestmark = pytest.mark.anyio
STS = "https://sts.test"
HUB = "https://hub.test"
REGION = "urn:oid:2.16.578.1.12.4.5.100.1"
URL = "https://region.test/fhir/DocumentReference"


@pytest.fixture(scope="module")
def sts_key() -> SigningKey:
    return SigningKey.generate(kid="sts-1")


@pytest.fixture(scope="module")
def hub_key() -> SigningKey:
    return SigningKey.generate(kid="hub-1")


@pytest.fixture(scope="module")
def client_key() -> SigningKey:
    return SigningKey.generate(kid="ehr-1")


def _token(sts_key: SigningKey, jkt: str) -> str:
    now = int(time.time())
    details = attestation_details()
    details["practitioner"]["identifier"] = {
        "id": DOCTOR,
        "system": "urn:oid:2.16.578.1.12.4.1.4.1",
        "name": "Kari Lege",
    }
    return issue_access_token(
        key=sts_key,
        issuer=STS,
        audience=REGION,
        subject="s",
        jkt=jkt,
        scope=["nhn:phr/mhd/read-documentreferences"],
        now=now,
        claims={
            "helseid://claims/identity/pid": DOCTOR,
            "helseid://claims/identity/security_level": "4",
            "nhn:tillitsrammeverk:parameters": details,
            "toa": now - 60,
        },
    )


async def _assertion(sts_key: SigningKey, hub_key: SigningKey, **kw: Any) -> tuple[str, str]:
    """A hub assertion of a health worker's token, and that token's jti."""
    caller = await validate_access_token(
        _token(sts_key, "jkt-1"),
        keys=StaticJwks([sts_key]),
        issuer=STS,
        audience=REGION,
        now=time.time(),
    )
    assertion = mint_hub_assertion(
        key=hub_key,
        issuer=HUB,
        audience=REGION,
        claims=caller,
        patient_nin=None,
        patient_salt=None,
        correlation_id="corr-1",
        now=time.time(),
        **kw,
    )
    return assertion, caller.jti


class _Archive(ResourceServerAuthenticator):
    receiver = "archive"


def _server(sts_key: SigningKey, hub_key: SigningKey | None) -> ResourceServerAuthenticator:
    return _Archive(
        auth=AuthSettings(issuer=STS, audience=REGION),
        keys=StaticJwks([sts_key]),
        replay=MemoryReplayCache(),
        hub_issuer=HUB if hub_key is not None else None,
        hub_keys=StaticJwks([hub_key]) if hub_key is not None else None,
    )


async def test_a_dpop_bound_token_is_a_direct_call(
    sts_key: SigningKey, hub_key: SigningKey, client_key: SigningKey
) -> None:
    token = _token(sts_key, client_key.thumbprint())
    headers = {
        "authorization": f"DPoP {token}",
        "dpop": make_proof(client_key, htm="GET", htu=URL, access_token=token),
    }
    call = await _server(sts_key, hub_key).verify(method="GET", url=URL, headers=headers)
    assert isinstance(call, DirectCall)
    assert isinstance(call.principal, HealthPersonnel) and call.principal.nin.value == DOCTOR
    assert call.token_jti == call.principal.claims.jti


async def test_a_hub_assertion_is_a_hub_call_naming_the_callers_token(
    sts_key: SigningKey, hub_key: SigningKey
) -> None:
    assertion, caller_jti = await _assertion(sts_key, hub_key)
    server = _server(sts_key, hub_key)
    call = await server.verify(method="GET", url=URL, headers={HUB_ASSERTION_HEADER: assertion})
    assert isinstance(call, HubCall)
    assert call.token_jti == caller_jti != call.claims.jti
    assert call.correlation_id == "corr-1" and not call.deferred
    principal = call.principal()
    assert isinstance(principal, HealthPersonnel) and principal.nin.value == DOCTOR
    with pytest.raises(InvalidToken, match="replay"):
        await server.verify(method="GET", url=URL, headers={HUB_ASSERTION_HEADER: assertion})


async def test_a_deferred_assertion_says_so(sts_key: SigningKey, hub_key: SigningKey) -> None:
    assertion, _ = await _assertion(sts_key, hub_key, deferred_since=int(time.time()) - 60)
    call = await _server(sts_key, hub_key).verify(
        method="PUT", url=URL, headers={HUB_ASSERTION_HEADER: assertion}
    )
    assert isinstance(call, HubCall) and call.deferred


async def test_a_receiver_without_a_trusted_hub_names_itself(
    sts_key: SigningKey, hub_key: SigningKey
) -> None:
    assertion, _ = await _assertion(sts_key, hub_key)
    with pytest.raises(InvalidToken, match="not trusted by this archive"):
        await _server(sts_key, None).verify(
            method="GET", url=URL, headers={HUB_ASSERTION_HEADER: assertion}
        )


async def test_an_assertion_with_an_access_token_beside_it_is_refused(
    sts_key: SigningKey, hub_key: SigningKey
) -> None:
    assertion, _ = await _assertion(sts_key, hub_key)
    headers = {HUB_ASSERTION_HEADER: assertion, "authorization": "DPoP x"}
    with pytest.raises(InvalidToken, match="not both"):
        await _server(sts_key, hub_key).verify(method="GET", url=URL, headers=headers)


async def test_no_credential_is_refused(sts_key: SigningKey, hub_key: SigningKey) -> None:
    with pytest.raises(InvalidToken, match="no access token"):
        await _server(sts_key, hub_key).verify(method="GET", url=URL, headers={})
