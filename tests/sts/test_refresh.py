"""The refresh_token grant: rotation, DPoP key binding, a new attestation per patient."""

from __future__ import annotations

import base64
import json
from typing import Any

import anyio
import httpx
import pytest

from onerecord.sts.refresh import RefreshGrant, RefreshTokenStore
from onerecord.sts.users import UserKind
from onerecord.trust.access_token import AuthSettings, HealthPersonnel, authenticate_request
from onerecord.trust.dpop import make_proof
from onerecord.trust.errors import InvalidGrant, InvalidToken
from onerecord.trust.keys import RemoteJwks
from onerecord.trust.patient_binding import encode_salt, make_digest, new_salt, verify_binding
from onerecord.trust.replay import MemoryReplayCache
from tests.sts.conftest import OTHER_CLIENT
from tests.sts.portal_flow import PortalSts, new_dpop_key

ATT = "nhn:tillitsrammeverk:parameters"


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def _error(response: httpx.Response, error: str) -> str:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error, response.json()
    return str(response.json()["error_description"])


def _hub_principal(sts: PortalSts, token: str, dpop_key: Any) -> Any:
    async def run() -> Any:
        async with httpx.AsyncClient() as client:
            url = "https://hub.test/fhir/DocumentReference"
            return await authenticate_request(
                authorization_header=f"DPoP {token}",
                dpop_header=make_proof(dpop_key, htm="GET", htu=url, access_token=token),
                method="GET",
                url=url,
                keys=RemoteJwks(f"{sts.base}/jwks", client),
                replay=MemoryReplayCache(),
                settings=AuthSettings(issuer=sts.base, audience="onerecord:hub"),
            )

    return anyio.run(run)


def test_refresh_with_a_new_attestation_changes_the_tokens_attestation(
    portal_sts: PortalSts,
) -> None:
    dpop_key = new_dpop_key()
    login = portal_sts.log_in("doctor", dpop_key)
    assert ATT not in _claims(login["access_token"])
    with pytest.raises(InvalidToken, match="neither an attestation nor citizen"):
        _hub_principal(portal_sts, login["access_token"], dpop_key)
    refresh_token = login["refresh_token"]
    seen = []
    for patient in ("adult", "elderly"):
        salt = new_salt()
        digest = make_digest(portal_sts.nin(patient), salt)
        response = portal_sts.refresh(
            refresh_token, dpop_key, attestation=portal_sts.attestation("doctor", digest)
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["refresh_token"] != refresh_token
        refresh_token = body["refresh_token"]
        claims = _claims(body["access_token"])
        assert claims[ATT]["patients"] == [{"identifier_digest": digest}]
        assert claims["sub"] == f"hp:{portal_sts.nin('doctor')}"
        assert claims["cnf"]["jkt"] == dpop_key.thumbprint()
        principal = _hub_principal(portal_sts, body["access_token"], dpop_key)
        assert isinstance(principal, HealthPersonnel)
        verify_binding(principal.attestation, portal_sts.nin(patient), encode_salt(salt))
        seen.append(claims[ATT]["care_relationship"]["decision_ref"]["id"])
    assert seen[0] != seen[1]
    # without a new attestation the last one stays
    again = portal_sts.refresh(refresh_token, dpop_key)
    assert again.status_code == 200, again.text
    assert _claims(again.json()["access_token"])[ATT]["patients"] == [{"identifier_digest": digest}]


def test_refresh_may_pick_another_served_audience(portal_sts: PortalSts) -> None:
    dpop_key = new_dpop_key()
    login = portal_sts.log_in("parent", dpop_key)
    other = portal_sts.refresh(login["refresh_token"], dpop_key, resource="nhn:phr")
    assert other.status_code == 200, other.text
    assert _claims(other.json()["access_token"])["aud"] == "nhn:phr"
    default = portal_sts.refresh(other.json()["refresh_token"], dpop_key)
    assert _claims(default.json()["access_token"])["aud"] == "onerecord:hub"
    refused = portal_sts.refresh(
        default.json()["refresh_token"], dpop_key, resource="https://evil.example"
    )
    _error(refused, "invalid_target")


def test_refresh_with_another_dpop_key_is_refused(portal_sts: PortalSts) -> None:
    dpop_key = new_dpop_key()
    login = portal_sts.log_in("nurse", dpop_key)
    desc = _error(portal_sts.refresh(login["refresh_token"], new_dpop_key()), "invalid_grant")
    assert "DPoP" in desc
    # the binding protects the token, so the rightful holder can still use it
    assert portal_sts.refresh(login["refresh_token"], dpop_key).status_code == 200


def test_reused_refresh_token_is_refused_and_revokes_the_login(portal_sts: PortalSts) -> None:
    dpop_key = new_dpop_key()
    login = portal_sts.log_in("parent", dpop_key)
    first = portal_sts.refresh(login["refresh_token"], dpop_key)
    assert first.status_code == 200, first.text
    _error(portal_sts.refresh(login["refresh_token"], dpop_key), "invalid_grant")
    _error(portal_sts.refresh(first.json()["refresh_token"], dpop_key), "invalid_grant")


def test_refresh_token_of_another_client_or_unknown_is_refused(
    portal_sts: PortalSts, other_client_key: Any
) -> None:
    dpop_key = new_dpop_key()
    login = portal_sts.log_in("gp", dpop_key)
    stolen = portal_sts.refresh(
        login["refresh_token"], dpop_key, client=(OTHER_CLIENT, other_client_key)
    )
    _error(stolen, "invalid_grant")
    _error(portal_sts.refresh("not-a-refresh-token", dpop_key), "invalid_grant")
    missing = portal_sts.token({"grant_type": "refresh_token"}, dpop_key)
    _error(missing, "invalid_request")


def test_refresh_cannot_widen_scope_or_give_a_citizen_an_attestation(
    portal_sts: PortalSts,
) -> None:
    dpop_key = new_dpop_key()
    login = portal_sts.log_in("parent", dpop_key)
    token = login["refresh_token"]
    _error(portal_sts.refresh(token, dpop_key, scope="openid nhn:admin"), "invalid_scope")
    narrow = portal_sts.refresh(token, dpop_key, scope="openid")
    assert narrow.status_code == 200 and narrow.json()["scope"] == "openid"
    token = narrow.json()["refresh_token"]
    attestation = portal_sts.attestation("doctor", make_digest(portal_sts.nin("adult"), new_salt()))
    refused = portal_sts.refresh(token, dpop_key, attestation=attestation)
    assert "citizen" in _error(refused, "invalid_request")
    in_form = portal_sts.refresh(token, dpop_key, authorization_details=json.dumps([attestation]))
    assert "client assertion" in _error(in_form, "invalid_request")


def test_invalid_attestation_on_refresh_is_refused_and_the_token_survives(
    portal_sts: PortalSts,
) -> None:
    dpop_key = new_dpop_key()
    login = portal_sts.log_in("doctor", dpop_key)
    bad = portal_sts.attestation("doctor", "digest")
    bad["care_relationship"]["purpose_of_use"]["code"] = "HRESCH"
    _error(
        portal_sts.refresh(login["refresh_token"], dpop_key, attestation=bad),
        "invalid_authorization_details",
    )
    assert portal_sts.refresh(login["refresh_token"], dpop_key).status_code == 200


def _grant(expires_at: float) -> RefreshGrant:
    return RefreshGrant(
        client_id="c",
        subject="01818012337",
        user_kind=UserKind.CITIZEN,
        acr="4",
        scope=("openid",),
        resource="nhn:phr",
        jkt="jkt",
        attestation=None,
        auth_time=0,
        expires_at=expires_at,
    )


def test_store_rotates_keeps_the_family_expiry_and_expires() -> None:
    store = RefreshTokenStore()
    token = store.issue(_grant(100), now=0)
    assert store.find(token, now=50).expires_at == 100
    newer = store.rotate(token, _grant(9999), now=50)
    assert store.find(newer, now=60).expires_at == 100  # a login does not grow by refreshing
    with pytest.raises(InvalidGrant, match="unknown or expired"):
        store.find(newer, now=101)
    with pytest.raises(InvalidGrant, match="used before"):
        store.find(token, now=60)


def test_store_reuse_revokes_only_that_family() -> None:
    store = RefreshTokenStore()
    mine, theirs = store.issue(_grant(100), now=0), store.issue(_grant(100), now=0)
    newer = store.rotate(mine, _grant(100), now=1)
    with pytest.raises(InvalidGrant):
        store.find(mine, now=2)
    with pytest.raises(InvalidGrant):
        store.find(newer, now=2)
    assert store.find(theirs, now=2).client_id == "c"
