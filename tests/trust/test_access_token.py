"""Access-token validation (RFC 9068) and the whole DPoP-bound request check (B1–B6, A19, A20)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from onerecord.trust.access_token import (
    AuthSettings,
    Citizen,
    HealthPersonnel,
    authenticate_request,
    issue_access_token,
    token_log_id,
    validate_access_token,
)
from onerecord.trust.dpop import make_proof
from onerecord.trust.errors import AttestationExpired, InsufficientAssurance, InvalidToken
from onerecord.trust.keys import RemoteJwks, SigningKey, StaticJwks
from onerecord.trust.replay import MemoryReplayCache
from tests.sts.fakes import CHILD_8, DOCTOR, PARENT, attestation_details

pytestmark = pytest.mark.anyio
ISSUER = "https://sts.test"
AUD = "nhn:phr"
URL = "https://hub.test/R4/fhir/DocumentReference/_search"


@pytest.fixture(scope="module")
def sts_key() -> SigningKey:
    return SigningKey.generate(kid="sts-1")


@pytest.fixture(scope="module")
def client_key() -> SigningKey:
    return SigningKey.generate(kid="ehr-1")


def _enriched() -> dict[str, Any]:
    details = attestation_details()
    details["practitioner"]["identifier"] = {
        "id": DOCTOR,
        "system": "urn:oid:2.16.578.1.12.4.1.4.1",
        "name": "Kari Lege",
    }
    details["practitioner"]["hpr_nr"] = {"id": "1234567", "system": "urn:oid:2.16.578.1.12.4.1.4.4"}
    return details


def _token(
    key: SigningKey, jkt: str, *, now: float | None = None, toa_age: int = 60, **claims: Any
) -> str:
    now = int(now or time.time())
    body: dict[str, Any] = {
        "helseid://claims/identity/pid": DOCTOR,
        "helseid://claims/identity/security_level": "4",
        "nhn:tillitsrammeverk:parameters": _enriched(),
        "toa": now - toa_age,
    }
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return issue_access_token(
        key=key,
        issuer=ISSUER,
        audience=AUD,
        subject="s",
        jkt=jkt,
        scope=["nhn:phr/mhd/read-documentreferences"],
        now=now,
        claims=body,
    )


async def _validate(token: str, sts_key: SigningKey, **kw: Any) -> Any:
    return await validate_access_token(
        token,
        keys=StaticJwks([sts_key]),
        issuer=ISSUER,
        audience=AUD,
        now=kw.pop("now", time.time()),
        **kw,
    )


async def test_valid_token_yields_claims_and_log_id(sts_key: SigningKey) -> None:
    token = _token(sts_key, "jkt-1")
    claims = await _validate(token, sts_key)
    assert claims.jkt == "jkt-1" and claims.pid == DOCTOR
    assert token_log_id(claims) == claims.jti and claims.jti not in ("", token)
    assert "nhn:phr/mhd/read-documentreferences" in claims.scope


@pytest.mark.parametrize("aud", [["nhn:phr", "other"], "other", ["other"]])
async def test_B5_two_or_wrong_audiences_are_refused(sts_key: SigningKey, aud: Any) -> None:
    now = int(time.time())
    token = sts_key.sign(
        {
            "iss": ISSUER,
            "aud": aud,
            "sub": "s",
            "iat": now,
            "exp": now + 60,
            "jti": "j",
            "cnf": {"jkt": "x"},
            "helseid://claims/identity/security_level": "4",
        },
        typ="at+jwt",
    )
    with pytest.raises(InvalidToken, match="audience"):
        await _validate(token, sts_key)


async def test_B6_typ_jwt_is_accepted_but_other_typ_refused(sts_key: SigningKey) -> None:
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "aud": AUD,
        "sub": "s",
        "iat": now,
        "exp": now + 60,
        "jti": "j",
        "cnf": {"jkt": "x"},
        "acr": "idporten-loa-high",
    }
    assert (await _validate(sts_key.sign(base, typ="JWT"), sts_key)).subject == "s"
    with pytest.raises(InvalidToken, match="typ"):
        await _validate(sts_key.sign(base, typ="dpop+jwt"), sts_key)


async def test_A19_attestation_older_than_60_minutes_is_refused(sts_key: SigningKey) -> None:
    token = _token(sts_key, "j", toa_age=61 * 60)
    with pytest.raises(AttestationExpired) as info:
        await _validate(token, sts_key)
    assert info.value.description == "attestation_has_expired"


async def test_A20_attestation_59_minutes_old_is_accepted(sts_key: SigningKey) -> None:
    claims = await _validate(_token(sts_key, "j", toa_age=59 * 60), sts_key)
    assert claims.toa is not None


async def test_expired_token_is_refused_after_skew(sts_key: SigningKey) -> None:
    issued = time.time() - 3600
    token = _token(sts_key, "j", now=issued, toa_age=0)
    # 600 s lifetime + 300 s skew have passed; toa check never reached.
    with pytest.raises(InvalidToken, match="expired"):
        await _validate(token, sts_key)
    within_skew = issued + 600 + 200
    assert (await _validate(token, sts_key, now=within_skew, attestation_max_age=10**6)).jti


async def test_forged_signature_is_refused(sts_key: SigningKey) -> None:
    forger = SigningKey.generate(kid="sts-1")  # same kid, other key
    with pytest.raises(InvalidToken, match="signature"):
        await _validate(_token(forger, "j"), sts_key)


async def test_level_3_health_personnel_is_refused(sts_key: SigningKey) -> None:
    token = _token(sts_key, "j", **{"helseid://claims/identity/security_level": "3"})
    with pytest.raises(InsufficientAssurance):
        await _validate(token, sts_key)


async def test_missing_cnf_jkt_is_refused(sts_key: SigningKey) -> None:
    now = int(time.time())
    token = sts_key.sign(
        {
            "iss": ISSUER,
            "aud": AUD,
            "sub": "s",
            "iat": now,
            "exp": now + 60,
            "jti": "j",
            "acr": "idporten-loa-high",
        },
        typ="at+jwt",
    )
    with pytest.raises(InvalidToken, match="cnf.jkt"):
        await _validate(token, sts_key)


async def test_unknown_kid_refreshes_remote_jwks_once(sts_key: SigningKey) -> None:
    rotated = SigningKey.generate(kid="sts-2")
    published = [sts_key]
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(200, json={"keys": [k.public_jwk() for k in published]})

    clock = [0.0]
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        jwks = RemoteJwks(
            "https://sts.test/jwks",
            client,
            ttl=300,
            min_refresh_interval=30,
            clock=lambda: clock[0],
        )
        await jwks.key_for("sts-1")
        assert len(calls) == 1
        published.append(rotated)
        clock[0] = 31.0
        token = _token(rotated, "j")
        claims = await validate_access_token(
            token, keys=jwks, issuer=ISSUER, audience=AUD, now=time.time()
        )
        assert claims.jkt == "j" and len(calls) == 2
        clock[0] = 40.0  # an unknown kid again within 30 s: no new fetch
        with pytest.raises(InvalidToken, match="unknown"):
            await jwks.key_for("forged-kid")
        assert len(calls) == 2


def _settings() -> AuthSettings:
    return AuthSettings(issuer=ISSUER, audience=AUD)


async def test_B1_dpop_bound_request_yields_health_personnel(
    sts_key: SigningKey, client_key: SigningKey
) -> None:
    token = _token(sts_key, client_key.thumbprint())
    principal = await authenticate_request(
        authorization_header=f"DPoP {token}",
        dpop_header=make_proof(client_key, htm="POST", htu=URL, access_token=token),
        method="POST",
        url=URL + "?x=1",
        keys=StaticJwks([sts_key]),
        replay=MemoryReplayCache(),
        settings=_settings(),
    )
    assert isinstance(principal, HealthPersonnel)
    ctx = principal.context()
    assert ctx.practitioner_nin.value == DOCTOR and ctx.purpose_of_use == "TREAT"
    assert ctx.hpr is not None and ctx.hpr.value == "1234567" and ctx.roles == ("LE",)


async def test_citizen_token_yields_representation(
    sts_key: SigningKey, client_key: SigningKey
) -> None:
    token = _token(
        sts_key,
        client_key.thumbprint(),
        **{
            "nhn:tillitsrammeverk:parameters": None,
            "toa": None,
            "helseid://claims/identity/pid": PARENT,
            "acr": "idporten-loa-high",
            "onerecord:representation": [{"nin": CHILD_8, "relation": "parent"}],
        },
    )
    principal = await authenticate_request(
        authorization_header=f"DPoP {token}",
        dpop_header=make_proof(client_key, htm="GET", htu=URL, access_token=token),
        method="GET",
        url=URL,
        keys=StaticJwks([sts_key]),
        replay=MemoryReplayCache(),
        settings=_settings(),
    )
    assert isinstance(principal, Citizen)
    assert [r.person.value for r in principal.context().representations] == [CHILD_8]


async def test_B2_bearer_scheme_without_proof_is_refused(sts_key: SigningKey) -> None:
    token = _token(sts_key, "j")
    with pytest.raises(InvalidToken) as info:
        await authenticate_request(
            authorization_header=f"Bearer {token}",
            dpop_header=None,
            method="POST",
            url=URL,
            keys=StaticJwks([sts_key]),
            replay=MemoryReplayCache(),
            settings=_settings(),
        )
    assert info.value.status == 401 and "DPoP" in info.value.www_authenticate()


async def test_missing_proof_is_refused(sts_key: SigningKey) -> None:
    token = _token(sts_key, "j")
    with pytest.raises(InvalidToken, match="proof") as info:
        await authenticate_request(
            authorization_header=f"DPoP {token}",
            dpop_header=None,
            method="POST",
            url=URL,
            keys=StaticJwks([sts_key]),
            replay=MemoryReplayCache(),
            settings=_settings(),
        )
    assert info.value.error == "invalid_dpop_proof"
