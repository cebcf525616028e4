"""The development token service over real HTTP (uvicorn on 127.0.0.1): scenarios A1–A18."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import OctKey

from onerecord.domain import NationalIdentityNumber
from onerecord.sts import StsSettings, create_sts_app, pkce_challenge
from onerecord.sts.settings import ClientConfig
from onerecord.trust.access_token import (
    AuthSettings,
    Citizen,
    HealthPersonnel,
    authenticate_request,
)
from onerecord.trust.dpop import make_proof
from onerecord.trust.errors import DevelopmentKeyRefused, InvalidToken
from onerecord.trust.keys import RemoteJwks, SigningKey, load_or_create_dev_key
from onerecord.trust.patient_binding import encode_salt, make_digest, new_salt, verify_binding
from onerecord.trust.policy import DenialReason, citizen_search_policy
from onerecord.trust.population import population_facts
from onerecord.trust.principal import CitizenContext, RelationKind, Representation
from onerecord.trust.replay import MemoryReplayCache
from tests.sts.fakes import (
    CHILD_8,
    CHILD_13,
    CHILD_AWAY,
    DOCTOR,
    GIVER,
    NURSE,
    PARENT,
    PROTECTED,
    SECRETARY,
    attestation_details,
    client_assertion,
    dumps,
    make_population,
)
from tests.support.servers import free_port, serve_in_thread

REDIRECT = "http://127.0.0.1/callback"
GRANT = "urn:onerecord:params:oauth:grant-type:test-user"
ATT = "nhn:tillitsrammeverk:parameters"
DIALOGUE = "urn:onerecord:dialogue"


@dataclass
class Sts:
    base: str
    client_key: SigningKey
    client_id: str = "ehr"

    @property
    def token_url(self) -> str:
        return f"{self.base}/token"

    def assertion(self, **kw: Any) -> str:
        return client_assertion(self.client_key, self.client_id, self.base, **kw)

    def post(self, path: str, form: dict[str, str], *, dpop: bool = True) -> httpx.Response:
        headers = {}
        if dpop:
            headers["DPoP"] = make_proof(self.client_key, htm="POST", htu=f"{self.base}{path}")
        return httpx.post(f"{self.base}{path}", data=form, headers=headers, timeout=10)

    def test_user(self, subject: str, details: Any = None, **form: str) -> httpx.Response:
        body = {
            "grant_type": GRANT,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": form.pop("client_assertion", None) or self.assertion(),
            "subject": subject,
            **form,
        }
        if details is not None:
            body["authorization_details"] = dumps([details])
        return self.post("/token", body)


@pytest.fixture(scope="module")
def sts() -> Iterator[Sts]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    client_key = SigningKey.generate(kid="ehr-key")
    settings = StsSettings(
        issuer=base,
        dev_mode=True,
        clients={"ehr": ClientConfig(jwk=client_key.public_jwk(), redirect_uris=(REDIRECT,))},
        allowed_audiences=("nhn:phr", DIALOGUE),
    )
    app = create_sts_app(
        settings, registers=make_population(), key=SigningKey.generate(kid="dev-sts-test")
    )
    with serve_in_thread(app, port):
        yield Sts(base, client_key)


def _error(response: httpx.Response, status: int, error: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error, body
    return str(body["error_description"])


def _claims(token: str) -> dict[str, Any]:
    import base64
    import json

    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def _authenticate(sts: Sts, token: str) -> Any:
    async def run() -> Any:
        async with httpx.AsyncClient() as client:
            url = "https://hub.test/R4/fhir/DocumentReference/_search"
            return await authenticate_request(
                authorization_header=f"DPoP {token}",
                dpop_header=make_proof(sts.client_key, htm="POST", htu=url, access_token=token),
                method="POST",
                url=url,
                keys=RemoteJwks(f"{sts.base}/jwks", client),
                replay=MemoryReplayCache(),
                settings=AuthSettings(issuer=sts.base, audience="nhn:phr"),
            )

    return anyio.run(run)


def _request_object(sts: Sts, **claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": sts.client_id,
        "aud": sts.base,
        "iat": now,
        "nbf": now,
        "exp": now + 60,
        "jti": secrets.token_hex(8),
        "client_id": sts.client_id,
        **claims,
    }
    return sts.client_key.sign(body, typ="oauth-authz-req+jwt")


def _par_flow(sts: Sts, request_claims: dict[str, Any], verifier: str) -> str:
    request = _request_object(
        sts,
        response_type="code",
        redirect_uri=REDIRECT,
        code_challenge=pkce_challenge(verifier),
        code_challenge_method="S256",
        state="st",
        **request_claims,
    )
    par = sts.post(
        "/par",
        {
            "client_id": sts.client_id,
            "request": request,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": sts.assertion(),
        },
        dpop=False,
    )
    assert par.status_code == 201, par.text
    auth = httpx.get(
        f"{sts.base}/authorize",
        params={"client_id": sts.client_id, "request_uri": par.json()["request_uri"]},
    )
    assert auth.status_code == 302, auth.text
    query = parse_qs(urlsplit(auth.headers["location"]).query)
    assert query["state"] == ["st"]
    return query["code"][0]


def _redeem(sts: Sts, code: str, verifier: str | None, **extra: str) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": extra.pop("client_assertion", None) or sts.assertion(),
    }
    if verifier is not None:
        form["code_verifier"] = verifier
    return sts.post("/token", form)


def test_discovery_and_jwks(sts: Sts) -> None:
    conf = httpx.get(f"{sts.base}/.well-known/openid-configuration").json()
    assert conf["issuer"] == sts.base and conf["token_endpoint"] == sts.token_url
    keys = httpx.get(conf["jwks_uri"]).json()["keys"]
    assert [k["kid"] for k in keys] == ["dev-sts-test"] and all("d" not in k for k in keys)


def test_A1_par_request_object_yields_enriched_dpop_bound_token(sts: Sts) -> None:
    verifier = secrets.token_urlsafe(48)
    salt = new_salt()
    details = attestation_details(patients=[{"identifier_digest": make_digest(PARENT, salt)}])
    code = _par_flow(sts, {"login_hint": DOCTOR, "authorization_details": [details]}, verifier)
    response = _redeem(sts, code, verifier)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "DPoP"
    claims = _claims(body["access_token"])
    assert claims["cnf"]["jkt"] == sts.client_key.thumbprint()
    assert claims["aud"] == "nhn:phr" and claims["helseid://claims/hpr/hpr_number"] == "1234567"
    attest = claims[ATT]
    assert attest["practitioner"]["identifier"]["id"] == DOCTOR
    assert attest["practitioner"]["legal_entity"]["name"] == "Testsykehuset HF"
    assert abs(claims["toa"] - time.time()) < 30
    principal = _authenticate(sts, body["access_token"])
    assert isinstance(principal, HealthPersonnel)
    verify_binding(principal.attestation, PARENT, encode_salt(salt))
    # the code is single-use
    _error(_redeem(sts, code, verifier), 400, "invalid_grant")


@pytest.mark.parametrize(
    ("scenario", "changes"),
    [
        ("A2", {"care_relationship.purpose_of_use": ...}),
        ("A3", {"care_relationship.purpose_of_use.code": "HRESCH"}),
        (
            "A4",
            {
                "care_relationship.healthcare_service": ...,
                "care_relationship.purpose_of_use_details": ...,
            },
        ),
        ("A5", {"practitioner.authorization.code": "TL"}),
        (
            "A6",
            {
                "practitioner.legal_entity.id": "974000032",
                "practitioner.point_of_care.id": "974000040",
            },
        ),
        ("A7", {"care_relationship.decision_ref.id": "x" * 65}),
        ("A7", {"care_relationship.decision_ref.id": "a/b"}),
        ("A8", {"care_relationship.decision_ref.description": "auto text"}),
        ("A9", {"care_relationship.decision_ref.user_selected": "yes"}),
        (
            "A10",
            {
                "patients": [
                    {"identifier": {"id": PARENT, "system": "urn:oid:2.16.578.1.12.4.1.4.1"}}
                ]
            },
        ),
        (
            "A12",
            {"practitioner.identifier": {"id": NURSE, "system": "urn:oid:2.16.578.1.12.4.1.4.1"}},
        ),
        (
            "A13",
            {"practitioner.identifier": {"id": DOCTOR, "system": "urn:oid:2.16.578.1.12.4.1.4.3"}},
        ),
    ],
)
def test_A2_to_A13_invalid_attestations_are_refused(
    sts: Sts, scenario: str, changes: dict[str, Any]
) -> None:
    response = sts.test_user(DOCTOR, attestation_details(**changes))
    _error(response, 400, "invalid_authorization_details")


def test_A11_attestation_in_request_object_and_client_assertion(sts: Sts) -> None:
    verifier = secrets.token_urlsafe(48)
    code = _par_flow(
        sts, {"login_hint": DOCTOR, "authorization_details": [attestation_details()]}, verifier
    )
    assertion = sts.assertion(extra={"authorization_details": [attestation_details()]})
    desc = _error(_redeem(sts, code, verifier, client_assertion=assertion), 403, "access_denied")
    assert desc.startswith("HID-DOUBLE-STRUCTURE")


def test_A11_attestation_only_in_client_assertion_is_accepted(sts: Sts) -> None:
    assertion = sts.assertion(extra={"authorization_details": [attestation_details()]})
    response = sts.test_user(DOCTOR, client_assertion=assertion)
    assert response.status_code == 200, response.text
    assert ATT in _claims(response.json()["access_token"])


def test_A14_level_3_login_is_refused(sts: Sts) -> None:
    _error(sts.test_user(DOCTOR, attestation_details(), acr="3"), 403, "access_denied")
    _error(sts.test_user(PARENT, acr="3"), 403, "access_denied")


def test_A15_reused_client_assertion_is_refused(sts: Sts) -> None:
    assertion = sts.assertion()
    assert sts.test_user(PARENT, client_assertion=assertion).status_code == 200
    _error(sts.test_user(PARENT, client_assertion=assertion), 401, "invalid_client")


def test_A15_long_lived_client_assertion_is_refused(sts: Sts) -> None:
    desc = _error(
        sts.test_user(PARENT, client_assertion=sts.assertion(lifetime=120)), 401, "invalid_client"
    )
    assert "60" in desc


def test_A16_client_assertion_with_plain_jwt_typ_is_refused(sts: Sts) -> None:
    _error(sts.test_user(PARENT, client_assertion=sts.assertion(typ="JWT")), 401, "invalid_client")


def test_A17_missing_pkce_is_refused(sts: Sts) -> None:
    response = httpx.get(
        f"{sts.base}/authorize",
        params={
            "client_id": sts.client_id,
            "response_type": "code",
            "redirect_uri": REDIRECT,
            "login_hint": PARENT,
        },
    )
    assert response.status_code == 400 and "PKCE" in response.json()["error_description"]


def test_A17_wrong_code_verifier_is_refused(sts: Sts) -> None:
    verifier = secrets.token_urlsafe(48)
    response = httpx.get(
        f"{sts.base}/authorize",
        params={
            "client_id": sts.client_id,
            "response_type": "code",
            "redirect_uri": REDIRECT,
            "login_hint": PARENT,
            "code_challenge": pkce_challenge(verifier),
            "code_challenge_method": "S256",
        },
    )
    code = parse_qs(urlsplit(response.headers["location"]).query)["code"][0]
    _error(_redeem(sts, code, secrets.token_urlsafe(48)), 400, "invalid_grant")


def test_A17_missing_code_verifier_is_refused(sts: Sts) -> None:
    verifier = secrets.token_urlsafe(48)
    code = _par_flow(sts, {"login_hint": PARENT}, verifier)
    _error(_redeem(sts, code, None), 400, "invalid_grant")


def test_A18_request_object_signed_with_hs256_is_refused(sts: Sts) -> None:
    now = int(time.time())
    forged = jwt.encode(
        {"alg": "HS256", "typ": "oauth-authz-req+jwt"},
        {
            "iss": sts.client_id,
            "aud": sts.base,
            "iat": now,
            "exp": now + 30,
            "redirect_uri": REDIRECT,
            "login_hint": DOCTOR,
        },
        OctKey.generate_key(256),
    )
    response = httpx.get(
        f"{sts.base}/authorize", params={"client_id": sts.client_id, "request": forged}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request_object"


def test_A18_client_assertion_signed_with_hs256_is_refused(sts: Sts) -> None:
    now = int(time.time())
    forged = jwt.encode(
        {"alg": "HS256", "typ": "client-authentication+jwt"},
        {"iss": "ehr", "sub": "ehr", "aud": sts.base, "iat": now, "exp": now + 30, "jti": "x1"},
        OctKey.generate_key(256),
    )
    _error(sts.test_user(PARENT, client_assertion=forged), 401, "invalid_client")


def test_A22_practitioner_without_hpr_gets_token_without_hpr_nr(sts: Sts) -> None:
    response = sts.test_user(SECRETARY, attestation_details(**{"practitioner.authorization": ...}))
    assert response.status_code == 200, response.text
    claims = _claims(response.json()["access_token"])
    assert "hpr_nr" not in claims[ATT]["practitioner"]
    assert "helseid://claims/hpr/hpr_number" not in claims


def test_token_request_without_dpop_proof_is_refused(sts: Sts) -> None:
    form = {
        "grant_type": GRANT,
        "subject": PARENT,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": sts.assertion(),
    }
    _error(sts.post("/token", form, dpop=False), 400, "invalid_dpop_proof")


def test_unknown_client_is_refused(sts: Sts) -> None:
    stranger = SigningKey.generate(kid="x")
    assertion = client_assertion(stranger, "stranger", sts.base)
    _error(sts.test_user(PARENT, client_assertion=assertion), 401, "invalid_client")


def test_citizen_token_carries_representation_rules(sts: Sts) -> None:
    response = sts.test_user(PARENT)
    assert response.status_code == 200, response.text
    claims = _claims(response.json()["access_token"])
    assert claims["acr"] == "idporten-loa-high" and ATT not in claims
    rep = {(r["nin"], r["relation"]) for r in claims["onerecord:representation"]}
    # child of 8 at the parent's address yes; child of 13 no; child living elsewhere no; proxy yes
    assert rep == {(CHILD_8, "parent"), (GIVER, "proxy")}
    assert CHILD_13 not in str(rep) and CHILD_AWAY not in str(rep)
    principal = _authenticate(sts, response.json()["access_token"])
    assert isinstance(principal, Citizen) and principal.nin == NationalIdentityNumber(PARENT)


def test_a_dialogue_token_also_lists_the_child_of_13_and_the_record_stays_closed(sts: Sts) -> None:
    """The dialogue's token: the child of 13 at the parent's address too; the record's: not."""
    dialogue = sts.test_user(PARENT, resource=DIALOGUE)
    assert dialogue.status_code == 200, dialogue.text
    claims = _claims(dialogue.json()["access_token"])
    assert claims["aud"] == DIALOGUE
    rep = {(r["nin"], r["relation"]) for r in claims["onerecord:representation"]}
    assert rep == {(CHILD_8, "parent"), (CHILD_13, "parent"), (GIVER, "proxy")}
    assert CHILD_AWAY not in str(rep)
    record = _claims(sts.test_user(PARENT).json()["access_token"])
    assert CHILD_13 not in str(record["onerecord:representation"])
    # The dialogue's token is no key to the record: another audience.
    with pytest.raises(InvalidToken):
        _authenticate(sts, dialogue.json()["access_token"])
    # And the record's rule itself still refuses a parent of a child of 13 (E5), whatever a
    # token said.
    child = NationalIdentityNumber(CHILD_13)
    ctx = CitizenContext(
        nin=NationalIdentityNumber(PARENT),
        acr_level=4,
        representations=(Representation(child, RelationKind.PARENT),),
    )
    decision = citizen_search_policy(
        ctx, child, facts=population_facts(ctx, child), now=datetime.now(UTC)
    )
    assert not decision.allowed and decision.reason is DenialReason.CHILD_TOO_OLD


def test_a_dialogue_token_lists_nobody_for_a_protected_address(sts: Sts) -> None:
    response = sts.test_user(PROTECTED, resource=DIALOGUE)
    assert response.status_code == 200, response.text
    assert _claims(response.json()["access_token"])["onerecord:representation"] == []


def test_citizen_with_protected_address_represents_nobody(sts: Sts) -> None:
    response = sts.test_user(PROTECTED)
    assert response.status_code == 200, response.text
    assert _claims(response.json()["access_token"])["onerecord:representation"] == []


def test_development_key_is_refused_outside_dev_mode(tmp_path: Any) -> None:
    key = load_or_create_dev_key(tmp_path)
    assert key.kid.startswith("dev-") and load_or_create_dev_key(tmp_path).kid == key.kid
    assert key.private_jwk()["d"] not in repr(key) and "hidden" in repr(key)
    with pytest.raises(DevelopmentKeyRefused, match="dev_mode"):
        create_sts_app(StsSettings(dev_mode=False), registers=make_population(), key=key)


def _btg(until: int) -> dict[str, Any]:
    details = attestation_details(**{"care_relationship.purpose_of_use.code": "BTG"})
    details["emergency_access"] = {
        "access_basis": "AKUTT",
        "reason_category": "unconscious",
        "until": until,
        "classes": [{"code": "A00-1", "system": "urn:oid:2.16.578.1.12.4.1.1.9602"}],
    }
    return details


def test_an_emergency_token_ends_with_its_grant(sts: Sts) -> None:
    """Issue 11, defect 7: the STS caps `exp` at the grant's end and keeps the grant signed."""
    until = int(time.time()) + 120
    response = sts.test_user(DOCTOR, _btg(until))
    assert response.status_code == 200, response.text
    claims = _claims(response.json()["access_token"])
    assert claims["exp"] <= until and response.json()["expires_in"] <= 120
    assert claims[ATT]["emergency_access"]["until"] == until


@pytest.mark.parametrize("minutes", [-1, 61])
def test_an_emergency_grant_outside_the_next_hour_is_refused(sts: Sts, minutes: int) -> None:
    response = sts.test_user(DOCTOR, _btg(int(time.time()) + minutes * 60))
    _error(response, 400, "invalid_authorization_details")
