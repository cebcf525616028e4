"""A deferred hub assertion (the hub re-sending a citizen's privacy change from its outbox) may
change a patient control and nothing else (docs/policy.md "Deferred control changes")."""

from __future__ import annotations

import time

import pytest

from onerecord.domain import HomeCommunityId
from onerecord.hub.directory import Region
from onerecord.hub.security import DeferredAssertionAuth
from onerecord.source.security import SourceAuthenticator, check_deferred
from onerecord.trust.access_token import (
    PID_CLAIM,
    REPRESENTATION_CLAIM,
    SECURITY_LEVEL_CLAIM,
    AccessTokenClaims,
    AuthSettings,
    Citizen,
)
from onerecord.trust.attestation import ATTESTATION_TYPE
from onerecord.trust.errors import InvalidToken
from onerecord.trust.keys import SigningKey, StaticJwks
from onerecord.trust.replay import MemoryReplayCache

pytestmark = pytest.mark.anyio
NORD = Region(
    "Helse Nord", HomeCommunityId.parse("urn:oid:2.16.578.1.12.4.5.100.4"), "http://r/fhir"
)
HUB = "http://hub.test"
CITIZEN = "23828611216"


def _identity(**extra: object) -> dict[str, object]:
    claims: dict[str, object] = {
        "sub": "citizen-sub",
        PID_CLAIM: CITIZEN,
        SECURITY_LEVEL_CLAIM: "4",
        REPRESENTATION_CLAIM: [],
        "client_id": "onerecord-portal",
    }
    claims.update(extra)
    return {"iss": "sts", "sub": "citizen-sub", "jti": "original", "jkt": "k", "claims": claims}


async def _authenticate(identity: dict[str, object], method: str, path: str) -> Citizen:
    key = SigningKey.generate(kid="hub")
    auth = DeferredAssertionAuth(
        key=key,
        issuer=HUB,
        identity=identity,
        correlation_id="c-1",
        deferred_since=int(time.time()) - 3600,
    )
    url = f"http://r{path}"
    headers = await auth.headers_for(NORD, method, url)
    source = SourceAuthenticator(
        auth=AuthSettings(issuer="sts", audience=NORD.hcid),
        keys=StaticJwks([]),
        replay=MemoryReplayCache(),
        hub_issuer=HUB,
        hub_keys=StaticJwks([key]),
    )
    who = await source.authenticate(method=method, url=url, headers=headers)
    assert who.via_hub and who.correlation_id == "c-1" and who.token_jti == "original"
    assert isinstance(who.principal, Citizen)
    return who.principal


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/controls/practitioner-blocks/1234567"),
        ("DELETE", "/controls/reservation"),
        ("PUT", "/controls/document-blocks/2.25.1"),
    ],
)
async def test_a_deferred_assertion_changes_a_control_as_the_citizen(
    method: str, path: str
) -> None:
    citizen = await _authenticate(_identity(), method, path)
    assert citizen.nin.value == CITIZEN


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/controls"),
        ("GET", "/fhir/DocumentReference"),
        ("GET", "/fhir/AuditEvent"),
        ("POST", "/controls/reservation"),
        ("PUT", "/controls/practitioner-blocks/1234567/x"),
    ],
)
async def test_a_deferred_assertion_reads_nothing(method: str, path: str) -> None:
    with pytest.raises(InvalidToken):
        await _authenticate(_identity(), method, path)


def _claims(**raw: object) -> AccessTokenClaims:
    return AccessTokenClaims(
        issuer=HUB,
        audience=NORD.hcid,
        subject="s",
        jti="j",
        issued_at=0,
        expires_at=0,
        jkt="",
        client_id=None,
        scope=frozenset(),
        pid=None,
        security_level="4",
        acr=None,
        toa=None,
        raw=raw,
    )


def test_the_rule_itself() -> None:
    url = "http://r/controls/reservation"
    check_deferred(_claims(), method="GET", url="http://r/fhir/DocumentReference")  # live: any
    check_deferred(_claims(deferred_since=1), method="PUT", url=url)
    with pytest.raises(InvalidToken, match="only change a patient control"):
        check_deferred(_claims(deferred_since=1), method="GET", url=url)
    with pytest.raises(InvalidToken, match="citizen's own change"):
        check_deferred(_claims(deferred_since=1, **{ATTESTATION_TYPE: {}}), method="PUT", url=url)
