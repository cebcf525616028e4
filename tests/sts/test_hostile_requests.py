"""The token service over real HTTP against hostile JOSE, codes and organisations (issue 10 B, F).

Every answer is an RFC 6749 §5.2 JSON error (`error`, `error_description`) with a 4xx status;
a bad DPoP proof at the token endpoint is 400 `invalid_dpop_proof` (RFC 9449 §5); codes outside
their code lists and an organisation the user does not work at are `invalid_authorization_details`
(RFC 9396 §5), as HelseID answers them.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from onerecord.sts import StsSettings, create_sts_app
from onerecord.sts.settings import ClientConfig
from onerecord.trust.dpop import make_proof
from onerecord.trust.keys import SigningKey
from tests.sts.fakes import (
    DOCTOR,
    OTHER_UNIT,
    PARENT,
    attestation_details,
    make_population,
)
from tests.sts.test_sts import GRANT, REDIRECT, Sts, _error, _request_object
from tests.support.servers import free_port, serve_in_thread
from tests.trust.jose_factories import dpop_header, json_bytes, kid_header, signed

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
IPLOS_SERVICE_TYPES = "urn:oid:2.16.578.1.12.4.1.1.9151"
"""A real code system for purpose_of_use_details whose list this service does not hold."""


@pytest.fixture(scope="module")
def sts() -> Iterator[Sts]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    client_key = SigningKey.generate(kid="ehr-key")
    settings_ = StsSettings(
        issuer=base,
        dev_mode=True,
        clients={"ehr": ClientConfig(jwk=client_key.public_jwk(), redirect_uris=(REDIRECT,))},
    )
    app = create_sts_app(
        settings_, registers=make_population(), key=SigningKey.generate(kid="dev-sts-hostile")
    )
    with serve_in_thread(app, port):
        yield Sts(base, client_key)


def _json_error(response: httpx.Response) -> dict[str, Any]:
    """Assert an RFC 6749 §5.2 error: 4xx, JSON, `error` and `error_description` strings."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert isinstance(body.get("error"), str) and isinstance(body.get("error_description"), str)
    return dict(body)


def _assertion_claims(sts: Sts, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": sts.client_id,
        "sub": sts.client_id,
        "aud": sts.base,
        "iat": now,
        "exp": now + 30,
        "jti": secrets.token_urlsafe(12),
    }
    claims.update(changes)
    return claims


def _token_form(sts: Sts, assertion: str, **extra: str) -> dict[str, str]:
    return {
        "grant_type": GRANT,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
        "subject": PARENT,
        **extra,
    }


def _post_token(sts: Sts, form: dict[str, str], dpop: str | None) -> httpx.Response:
    headers = {"DPoP": dpop} if dpop is not None else {}
    return httpx.post(sts.token_url, data=form, headers=headers, timeout=10)


# -- JOSE ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header_changes", "claim_changes"),
    [
        ({"alg": ["ES256"]}, {}),
        ({"alg": {"ES256": True}}, {}),
        ({"typ": ["client-authentication+jwt"]}, {}),
        ({"typ": {"a": 1}}, {}),
        ({"kid": {"a": 1}}, {}),
        ({"crit": ["exp"]}, {}),
        ({"jwk": [1, 2]}, {}),
        ({}, {"iat": math.nan}),
        ({}, {"exp": math.inf}),
        ({}, {"exp": 10**30}),
        ({}, {"iat": "now"}),
        ({}, {"jti": ["a"]}),
    ],
    ids=repr,
)
def test_hostile_client_assertion_is_rfc6749_json_not_500(
    sts: Sts, header_changes: dict[str, Any], claim_changes: dict[str, Any]
) -> None:
    header = kid_header(sts.client_key, "client-authentication+jwt", **header_changes)
    assertion = signed(sts.client_key, header, json_bytes(_assertion_claims(sts, **claim_changes)))
    dpop = make_proof(sts.client_key, htm="POST", htu=sts.token_url)
    body = _json_error(_post_token(sts, _token_form(sts, assertion), dpop))
    assert body["error"] == "invalid_client"


@pytest.mark.parametrize(
    ("header_changes", "claim_changes"),
    [
        ({"alg": ["ES256"]}, {}),
        ({"typ": {"dpop": "jwt"}}, {}),
        ({"jwk": {"kty": "EC", "crv": "P-256", "x": 5, "y": []}}, {}),
        ({"crit": 5}, {}),
        ({}, {"iat": math.nan}),
        ({}, {"iat": math.inf}),
        ({}, {"iat": True}),
        ({}, {"htu": ["x"]}),
    ],
    ids=repr,
)
def test_hostile_dpop_proof_at_token_endpoint_is_400_invalid_dpop_proof(
    sts: Sts, header_changes: dict[str, Any], claim_changes: dict[str, Any]
) -> None:
    claims = {
        "jti": secrets.token_urlsafe(12),
        "htm": "POST",
        "htu": sts.token_url,
        "iat": int(time.time()),
        **claim_changes,
    }
    proof = signed(
        sts.client_key, dpop_header(sts.client_key, **header_changes), json_bytes(claims)
    )
    response = _post_token(sts, _token_form(sts, sts.assertion()), proof)
    assert response.status_code == 400
    assert _json_error(response)["error"] == "invalid_dpop_proof"


def test_replayed_dpop_proof_at_token_endpoint_is_400_invalid_dpop_proof(sts: Sts) -> None:
    proof = make_proof(sts.client_key, htm="POST", htu=sts.token_url)
    first = _post_token(sts, _token_form(sts, sts.assertion()), proof)
    assert first.status_code == 200, first.text
    again = _post_token(sts, _token_form(sts, sts.assertion()), proof)
    assert "replay" in _error(again, 400, "invalid_dpop_proof")


def test_stale_dpop_proof_at_token_endpoint_is_400_invalid_dpop_proof(sts: Sts) -> None:
    proof = make_proof(sts.client_key, htm="POST", htu=sts.token_url, iat=int(time.time()) - 3600)
    response = _post_token(sts, _token_form(sts, sts.assertion()), proof)
    assert "too old" in _error(response, 400, "invalid_dpop_proof")


def test_request_object_with_a_list_for_a_string_parameter_is_invalid_request_object(
    sts: Sts,
) -> None:
    request = _request_object(sts, acr_values=["4"], redirect_uri=REDIRECT, code_challenge="c" * 43)
    response = httpx.get(
        f"{sts.base}/authorize", params={"client_id": sts.client_id, "request": request}
    )
    assert _json_error(response)["error"] == "invalid_request_object"


def test_authorization_details_nested_beyond_any_reason_is_invalid_authorization_details(
    sts: Sts,
) -> None:
    form = _token_form(sts, sts.assertion(), subject=DOCTOR)
    form["authorization_details"] = "[" * 5_000 + "]" * 5_000
    dpop = make_proof(sts.client_key, htm="POST", htu=sts.token_url)
    assert _json_error(_post_token(sts, form, dpop))["error"] == "invalid_authorization_details"


def test_unknown_path_and_wrong_method_answer_rfc6749_json(sts: Sts) -> None:
    missing = httpx.get(f"{sts.base}/no-such-endpoint", timeout=10)
    assert missing.status_code == 404 and _json_error(missing)["error"] == "invalid_request"
    wrong = httpx.get(sts.token_url, timeout=10)
    assert wrong.status_code == 405 and _json_error(wrong)["error"] == "invalid_request"


def test_unexpected_error_is_json_server_error_not_plain_text() -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    client_key = SigningKey.generate(kid="ehr-key")
    app = create_sts_app(
        StsSettings(
            issuer=base, dev_mode=True, clients={"ehr": ClientConfig(jwk=client_key.public_jwk())}
        ),
        registers=make_population(),
        key=SigningKey.generate(kid="dev-sts-boom"),
    )

    async def boom(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("a bug near 01010112345")

    app.state.token_service.token = boom
    with serve_in_thread(app, port), capture_logs() as logs:
        form = {"grant_type": GRANT}
        response = httpx.post(f"{base}/token", data=form, timeout=10)
    (event,) = [e for e in logs if e["log_level"] == "error"]  # one event per error
    assert event["event"] == "sts.unexpected_error"
    assert isinstance(event["exc_info"], RuntimeError)  # summarised by onerecord.logs
    assert "01010112345" not in str({k: v for k, v in event.items() if k != "exc_info"})
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {
        "error": "server_error",
        "error_description": "the request was not completed",
    }


@settings(max_examples=60, deadline=None)
@given(
    header=st.dictionaries(
        st.sampled_from(["alg", "typ", "kid", "jwk", "crit"]),
        st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.lists(st.integers()),
        max_size=3,
    ),
    claims=st.dictionaries(
        st.sampled_from(["iat", "exp", "jti", "htm", "htu", "iss", "sub", "aud"]),
        st.none() | st.floats() | st.integers(-(2**70), 2**70) | st.text(max_size=8),
        max_size=3,
    ),
    target=st.sampled_from(["client_assertion", "dpop"]),
)
def test_token_endpoint_answers_any_hostile_jose_with_4xx_json(
    sts: Sts, header: dict[str, Any], claims: dict[str, Any], target: str
) -> None:
    if target == "client_assertion":
        head = kid_header(sts.client_key, "client-authentication+jwt", **header)
        assertion = signed(sts.client_key, head, json_bytes(_assertion_claims(sts, **claims)))
        dpop = make_proof(sts.client_key, htm="POST", htu=sts.token_url)
    else:
        assertion = sts.assertion()
        base = {"jti": secrets.token_urlsafe(12), "htm": "POST", "htu": sts.token_url}
        base["iat"] = int(time.time())  # type: ignore[assignment]
        dpop = signed(
            sts.client_key, dpop_header(sts.client_key, **header), json_bytes({**base, **claims})
        )
    response = _post_token(sts, _token_form(sts, assertion), dpop)
    if response.status_code != 200:  # an untouched proof may still be valid
        _json_error(response)


# -- codes and organisation (issue 10 F) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"care_relationship.healthcare_service.code": "99999"}, "code list"),
        ({"care_relationship.purpose_of_use_details.code": "XYZ"}, "code list"),
        (
            {
                "care_relationship.purpose_of_use_details.system": IPLOS_SERVICE_TYPES,
                "care_relationship.purpose_of_use_details.code": "15",
            },
            "code list",
        ),
        ({"practitioner.authorization.code": "ZZ"}, "code list"),
        (
            {"practitioner.point_of_care.id": OTHER_UNIT, "practitioner.department": ...},
            "HPR employment",
        ),
        ({"practitioner.department.id": "4009999"}, "department"),
    ],
    ids=[
        "service-99999",
        "details-XYZ",
        "details-unknown-system",
        "authorization-ZZ",
        "other-unit",
        "other-department",
    ],
)
def test_attestation_codes_and_organisation_are_checked_against_lists_and_registers(
    sts: Sts, changes: dict[str, Any], message: str
) -> None:
    response = sts.test_user(DOCTOR, attestation_details(**changes))
    assert message in _error(response, 400, "invalid_authorization_details")


def test_the_doctors_own_workplace_and_listed_codes_are_accepted(sts: Sts) -> None:
    response = sts.test_user(DOCTOR, attestation_details())
    assert response.status_code == 200, response.text


@settings(max_examples=60, deadline=None)
@given(
    claims=st.dictionaries(
        st.sampled_from(
            [
                "acr_values",
                "scope",
                "redirect_uri",
                "response_type",
                "code_challenge",
                "code_challenge_method",
                "login_hint",
                "state",
                "resource",
                "onerecord_user_kind",
                "authorization_details",
                "iat",
                "exp",
                "aud",
                "iss",
            ]
        ),
        st.none()
        | st.booleans()
        | st.integers(-(2**70), 2**70)
        | st.floats()
        | st.text(max_size=10)
        | st.lists(st.text(max_size=3), max_size=2)
        | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
        max_size=4,
    )
)
def test_authorize_answers_any_hostile_request_object_with_json_4xx_or_a_login(
    sts: Sts, claims: dict[str, Any]
) -> None:
    base = {
        "redirect_uri": REDIRECT,
        "code_challenge": "c" * 43,
        "code_challenge_method": "S256",
        "login_hint": DOCTOR,
    }
    header = kid_header(sts.client_key, "oauth-authz-req+jwt")
    now = int(time.time())
    body = {"iss": sts.client_id, "aud": sts.base, "iat": now, "exp": now + 60, **base, **claims}
    request = signed(sts.client_key, header, json_bytes(body))
    response = httpx.get(
        f"{sts.base}/authorize",
        params={"client_id": sts.client_id, "request": request},
        timeout=10,
    )
    if response.status_code not in (200, 302):
        _json_error(response)
