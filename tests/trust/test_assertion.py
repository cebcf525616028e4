"""The hub-signed assertion: mint at the hub, verify at the source (forged, expired, replay)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from onerecord.trust.access_token import (
    HealthPersonnel,
    issue_access_token,
    principal_from_claims,
    validate_access_token,
)
from onerecord.trust.assertion import (
    HUB_ASSERTION_TYP,
    assertion_patient,
    check_assertion_patient,
    mint_hub_assertion,
    verify_hub_assertion,
)
from onerecord.trust.errors import (
    AttestationExpired,
    InvalidToken,
    PatientBindingFailed,
)
from onerecord.trust.keys import SigningKey, StaticJwks
from onerecord.trust.patient_binding import encode_salt, make_digest, new_salt, verify_binding
from onerecord.trust.replay import MemoryReplayCache
from tests.sts.fakes import CHILD_8, DOCTOR, PARENT, attestation_details

pytestmark = pytest.mark.anyio
STS = "https://sts.test"
HUB = "https://hub.test"
REGION = "urn:oid:2.16.578.1.12.4.5.100.1"


@pytest.fixture(scope="module")
def sts_key() -> SigningKey:
    return SigningKey.generate(kid="sts-1")


@pytest.fixture(scope="module")
def hub_key() -> SigningKey:
    return SigningKey.generate(kid="hub-1")


async def _caller(sts_key: SigningKey, *, salt: bytes, patient: str, toa_age: int = 60) -> Any:
    now = int(time.time())
    details = attestation_details()
    details["practitioner"]["identifier"] = {
        "id": DOCTOR,
        "system": "urn:oid:2.16.578.1.12.4.1.4.1",
        "name": "Kari Lege",
    }
    details["patients"] = [{"identifier_digest": make_digest(patient, salt)}]
    token = issue_access_token(
        key=sts_key,
        issuer=STS,
        audience="nhn:phr",
        subject="s",
        jkt="jkt-1",
        scope=["nhn:phr/mhd/read-documentreferences"],
        now=now,
        claims={
            "helseid://claims/identity/pid": DOCTOR,
            "helseid://claims/identity/security_level": "4",
            "nhn:tillitsrammeverk:parameters": details,
            "toa": now - toa_age,
        },
    )
    return await validate_access_token(
        token, keys=StaticJwks([sts_key]), issuer=STS, audience="nhn:phr", now=now
    )


async def _verify(token: str, key: SigningKey, **kw: Any) -> Any:
    return await verify_hub_assertion(
        token,
        keys=StaticJwks([key]),
        issuer=kw.pop("issuer", HUB),
        audience=kw.pop("audience", REGION),
        now=kw.pop("now", time.time()),
        replay=kw.pop("replay", MemoryReplayCache()),
    )


async def test_round_trip_keeps_identity_attestation_and_patient(
    sts_key: SigningKey, hub_key: SigningKey
) -> None:
    salt = new_salt()
    caller = await _caller(sts_key, salt=salt, patient=PARENT)
    token = mint_hub_assertion(
        key=hub_key,
        issuer=HUB,
        audience=REGION,
        claims=caller,
        patient_nin=PARENT,
        patient_salt=encode_salt(salt),
        correlation_id="corr-1",
        now=time.time(),
    )
    claims = await _verify(token, hub_key)
    assert claims.issuer == HUB and claims.audience == REGION
    assert claims.raw["original_jti"] == caller.jti and claims.jti != caller.jti
    assert claims.raw["correlation_id"] == "corr-1"
    assert claims.expires_at - claims.issued_at <= 60
    assert assertion_patient(claims) == (PARENT, encode_salt(salt))
    principal = principal_from_claims(claims)
    assert isinstance(principal, HealthPersonnel) and principal.nin.value == DOCTOR
    # The source recomputes the digest itself from the asserted patient.
    verify_binding(principal.attestation, PARENT, salt)
    with pytest.raises(PatientBindingFailed):
        verify_binding(principal.attestation, CHILD_8, salt)
    check_assertion_patient(claims, nin_header=PARENT, salt_header=encode_salt(salt))


async def test_forged_signature_is_refused(sts_key: SigningKey, hub_key: SigningKey) -> None:
    caller = await _caller(sts_key, salt=new_salt(), patient=PARENT)
    forger = SigningKey.generate(kid=hub_key.kid)
    token = mint_hub_assertion(
        key=forger,
        issuer=HUB,
        audience=REGION,
        claims=caller,
        patient_nin=None,
        patient_salt=None,
        correlation_id="c",
        now=time.time(),
    )
    with pytest.raises(InvalidToken, match="signature"):
        await _verify(token, hub_key)


async def test_access_token_is_not_an_assertion(sts_key: SigningKey) -> None:
    now = int(time.time())
    token = issue_access_token(
        key=sts_key,
        issuer=HUB,
        audience=REGION,
        subject="s",
        jkt="j",
        scope=[],
        now=now,
        lifetime=30,
    )
    with pytest.raises(InvalidToken, match="typ"):
        await _verify(token, sts_key)


async def test_expired_assertion_is_refused(sts_key: SigningKey, hub_key: SigningKey) -> None:
    caller = await _caller(sts_key, salt=new_salt(), patient=PARENT)
    minted = time.time() - 400
    token = mint_hub_assertion(
        key=hub_key,
        issuer=HUB,
        audience=REGION,
        claims=caller,
        patient_nin=None,
        patient_salt=None,
        correlation_id="c",
        now=minted,
    )
    with pytest.raises(InvalidToken, match="expired"):
        await _verify(token, hub_key)
    # Within the 5-minute skew it is still accepted.
    assert (await _verify(token, hub_key, now=minted + 60 + 290)).issuer == HUB


async def test_lifetime_over_60_seconds_is_refused(
    sts_key: SigningKey, hub_key: SigningKey
) -> None:
    with pytest.raises(ValueError):
        mint_hub_assertion(
            key=hub_key,
            issuer=HUB,
            audience=REGION,
            claims=await _caller(sts_key, salt=new_salt(), patient=PARENT),
            patient_nin=None,
            patient_salt=None,
            correlation_id="c",
            now=time.time(),
            lifetime=61,
        )
    now = int(time.time())
    token = hub_key.sign(
        {
            "iss": HUB,
            "aud": REGION,
            "iat": now,
            "exp": now + 120,
            "jti": "j",
            "sub": "s",
            "original_jti": "o",
            "acr": "idporten-loa-high",
        },
        typ=HUB_ASSERTION_TYP,
    )
    with pytest.raises(InvalidToken, match="lifetime"):
        await _verify(token, hub_key)


@pytest.mark.parametrize(
    ("issuer", "audience", "message"),
    [(HUB, "urn:oid:2.16.578.1.12.4.5.100.2", "audience"), ("https://evil", REGION, "issuer")],
)
async def test_wrong_audience_or_issuer_is_refused(
    sts_key: SigningKey, hub_key: SigningKey, issuer: str, audience: str, message: str
) -> None:
    caller = await _caller(sts_key, salt=new_salt(), patient=PARENT)
    token = mint_hub_assertion(
        key=hub_key,
        issuer=issuer,
        audience=audience,
        claims=caller,
        patient_nin=None,
        patient_salt=None,
        correlation_id="c",
        now=time.time(),
    )
    with pytest.raises(InvalidToken, match=message):
        await _verify(token, hub_key)


async def test_two_audiences_are_refused(hub_key: SigningKey) -> None:
    now = int(time.time())
    token = hub_key.sign(
        {
            "iss": HUB,
            "aud": [REGION, "other"],
            "iat": now,
            "exp": now + 30,
            "jti": "j",
            "sub": "s",
            "original_jti": "o",
            "acr": "idporten-loa-high",
        },
        typ=HUB_ASSERTION_TYP,
    )
    with pytest.raises(InvalidToken, match="audience"):
        await _verify(token, hub_key)


async def test_replayed_assertion_is_refused(sts_key: SigningKey, hub_key: SigningKey) -> None:
    caller = await _caller(sts_key, salt=new_salt(), patient=PARENT)
    token = mint_hub_assertion(
        key=hub_key,
        issuer=HUB,
        audience=REGION,
        claims=caller,
        patient_nin=None,
        patient_salt=None,
        correlation_id="c",
        now=time.time(),
    )
    replay = MemoryReplayCache()
    await _verify(token, hub_key, replay=replay)
    with pytest.raises(InvalidToken, match="replay"):
        await _verify(token, hub_key, replay=replay)


async def test_old_attestation_is_refused(sts_key: SigningKey, hub_key: SigningKey) -> None:
    caller = await _caller(sts_key, salt=new_salt(), patient=PARENT, toa_age=59 * 60)
    mint = {
        "key": hub_key,
        "issuer": HUB,
        "audience": REGION,
        "claims": caller,
        "patient_nin": None,
        "patient_salt": None,
        "correlation_id": "c",
    }
    token = mint_hub_assertion(**mint, now=time.time())
    assert (await _verify(token, hub_key)).toa == caller.toa
    later = time.time() + 120
    token = mint_hub_assertion(**mint, now=later)
    with pytest.raises(AttestationExpired):
        await _verify(token, hub_key, now=later)


async def test_patient_mismatch_is_refused(sts_key: SigningKey, hub_key: SigningKey) -> None:
    salt = new_salt()
    caller = await _caller(sts_key, salt=salt, patient=PARENT)
    token = mint_hub_assertion(
        key=hub_key,
        issuer=HUB,
        audience=REGION,
        claims=caller,
        patient_nin=CHILD_8,
        patient_salt=encode_salt(salt),
        correlation_id="c",
        now=time.time(),
    )
    claims = await _verify(token, hub_key)
    with pytest.raises(PatientBindingFailed):
        check_assertion_patient(claims, nin_header=PARENT, salt_header=encode_salt(salt))
    # Even when the headers agree with the hub, the digest in the attestation does not.
    check_assertion_patient(claims, nin_header=CHILD_8, salt_header=encode_salt(salt))
    principal = principal_from_claims(claims)
    assert isinstance(principal, HealthPersonnel)
    with pytest.raises(PatientBindingFailed):
        verify_binding(principal.attestation, CHILD_8, salt)
