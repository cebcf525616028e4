"""The portal's login at the STS (oauth.py): authorization code + PKCE, DPoP, refresh.

The STS's token endpoint is a fake behind httpx.MockTransport that checks what the portal
sends: the PKCE verifier, the client assertion (RFC 7523) and the DPoP proof (RFC 9449).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from onerecord.portals.errors import LoginFailed, SessionEnded, TokenRefused
from onerecord.portals.oauth import (
    CITIZEN_ACR,
    HCP_ACR,
    PendingLogin,
    TokenSet,
    finish_login,
    refresh,
    start_login,
    token_claims,
)
from onerecord.search_client import CLIENT_ASSERTION_TYPE
from onerecord.trust.dpop import jwk_thumbprint, verify_proof
from onerecord.trust.keys import SigningKey, StaticJwks, verify_signed_jwt
from onerecord.trust.replay import MemoryReplayCache

pytestmark = pytest.mark.anyio

STS = "http://sts.test"
CLIENT_ID = "onerecord-portal"
REDIRECT = "https://portal.example/helsepersonell/innlogget"
CLIENT_KEY = SigningKey.generate(kid="portal-test-client")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _start(role: str = "hcp", now: float | None = None) -> tuple[PendingLogin, dict[str, str]]:
    pending, url = start_login(
        sts_url=f"{STS}/",
        client_id=CLIENT_ID,
        redirect_uri=REDIRECT,
        role=role,
        audience="onerecord:hub",
        now=now,
    )
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{STS}/authorize"
    query = {k: v[0] for k, v in parse_qs(parts.query, strict_parsing=True).items()}
    return pending, query


def _b64url_sha256(text: str) -> str:
    digest = hashlib.sha256(text.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def test_start_login_sends_an_s256_challenge_of_the_verifier() -> None:
    pending, query = _start()
    assert query["code_challenge_method"] == "S256"
    assert query["code_challenge"] == _b64url_sha256(pending.code_verifier)
    assert "code_verifier" not in query and pending.code_verifier not in str(query)
    assert 43 <= len(pending.code_verifier) <= 128  # RFC 7636 §4.1
    assert query["state"] == pending.state and len(pending.state) >= 32
    assert query["client_id"] == CLIENT_ID and query["response_type"] == "code"
    assert query["redirect_uri"] == REDIRECT == pending.redirect_uri
    assert query["resource"] == "onerecord:hub"
    assert "openid" in query["scope"].split()
    assert query["acr_values"] == HCP_ACR and query["onerecord_user_kind"] == "practitioner"
    assert pending.role == "hcp"


def test_start_login_for_a_citizen_asks_for_level_high() -> None:
    pending, query = _start("citizen")
    assert query["acr_values"] == CITIZEN_ACR and query["onerecord_user_kind"] == "citizen"
    assert pending.role == "citizen"


def test_every_login_gets_its_own_state_verifier_and_dpop_key() -> None:
    first, _ = _start()
    second, _ = _start()
    assert first.state != second.state
    assert first.code_verifier != second.code_verifier
    assert first.dpop_key.thumbprint() != second.dpop_key.thumbprint()


def test_pending_login_expires_after_ten_minutes() -> None:
    pending, _ = _start(now=1000.0)
    assert not pending.expired(1000.0 + 600)
    assert pending.expired(1000.0 + 601)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _jwt(claims: Any) -> str:
    def part(value: Any) -> str:
        raw = json.dumps(value).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


class FakeSts:
    """A token endpoint that records each request and checks the client's proofs."""

    def __init__(self, answer: Callable[[dict[str, str]], httpx.Response] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.forms: list[dict[str, str]] = []
        self.answer = answer or self._tokens
        self.issued = 0

    def _tokens(self, form: dict[str, str]) -> httpx.Response:
        self.issued += 1
        body = {
            "access_token": _jwt({"jti": f"jti-{self.issued}", "pid": "01818012337"}),
            "token_type": "DPoP",
            "expires_in": 300,
            "refresh_token": f"refresh-{self.issued}",
        }
        return httpx.Response(200, json=body)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        self.forms.append(form)
        return self.answer(form)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handler))


async def _check_proofs(request: httpx.Request, form: dict[str, str], dpop: SigningKey) -> None:
    """The client assertion is signed by the portal's key for the STS; the proof by `dpop`."""
    assert request.method == "POST" and str(request.url) == f"{STS}/token"
    assert form["client_assertion_type"] == CLIENT_ASSERTION_TYPE
    claims = await verify_signed_jwt(
        form["client_assertion"],
        keys=StaticJwks([CLIENT_KEY]),
        accepted_typ=frozenset({"client-authentication+jwt"}),
        what="client assertion",
    )
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["aud"] == f"{STS}/"
    assert claims["exp"] > time.time()
    proof = await verify_proof(
        request.headers["dpop"],
        htm="POST",
        htu=f"{STS}/token",
        access_token=None,
        jkt=jwk_thumbprint(dpop),
        now=time.time(),
        replay=MemoryReplayCache(),
    )
    assert proof.jkt == jwk_thumbprint(dpop)


async def _finish(
    sts: FakeSts, pending: PendingLogin | None, params: dict[str, str], now: float | None = None
) -> TokenSet:
    async with sts.client() as http:
        return await finish_login(
            http,
            sts_url=f"{STS}/",
            client_id=CLIENT_ID,
            client_key=CLIENT_KEY,
            pending=pending,
            params=params,
            now=now,
        )


async def test_finish_login_redeems_the_code_with_verifier_assertion_and_proof() -> None:
    pending, query = _start()
    sts = FakeSts()
    tokens = await _finish(sts, pending, {"code": "the-code", "state": query["state"]})
    (form,) = sts.forms
    assert form["grant_type"] == "authorization_code"
    assert form["code"] == "the-code"
    assert form["redirect_uri"] == REDIRECT
    assert _b64url_sha256(form["code_verifier"]) == query["code_challenge"]
    await _check_proofs(sts.requests[0], form, pending.dpop_key)
    assert tokens.refresh_token == "refresh-1"
    assert tokens.dpop_key is pending.dpop_key
    assert token_claims(tokens.access_token)["jti"] == "jti-1"
    assert 290 < tokens.expires_at - time.time() <= 300


async def test_state_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = secrets.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(secrets, "compare_digest", spy)
    pending, query = _start()
    await _finish(FakeSts(), pending, {"code": "c", "state": query["state"]})
    assert (query["state"].encode(), pending.state.encode()) in compared


@pytest.mark.parametrize(
    "params",
    [
        {"code": "c", "state": "forged"},
        {"code": "c", "state": ""},
        {"code": "c"},
        {"code": "c", "state": "stätë"},
    ],
)
async def test_wrong_state_is_refused_before_the_token_endpoint(params: dict[str, str]) -> None:
    pending, _ = _start()
    sts = FakeSts()
    with pytest.raises(LoginFailed):
        await _finish(sts, pending, params)
    assert sts.requests == []


async def test_error_missing_code_expired_or_no_pending_login_is_refused() -> None:
    pending, query = _start(now=time.time())
    state = query["state"]
    sts = FakeSts()
    with pytest.raises(LoginFailed):
        await _finish(sts, pending, {"error": "access_denied", "state": state})
    with pytest.raises(LoginFailed):
        await _finish(sts, pending, {"error": "access_denied", "code": "c", "state": state})
    with pytest.raises(LoginFailed):
        await _finish(sts, pending, {"state": state})
    with pytest.raises(LoginFailed):
        await _finish(sts, pending, {"code": "c", "state": state}, now=time.time() + 601)
    with pytest.raises(LoginFailed):
        await _finish(sts, None, {"code": "c", "state": state})
    assert sts.requests == []
    assert LoginFailed().status_code == 400


async def test_each_refused_login_names_why_for_the_log_only() -> None:
    pending, query = _start(now=time.time())
    state = query["state"]
    cases = [
        (None, {"code": "c", "state": state}, None, "no login pending in this session"),
        (pending, {"code": "c", "state": state}, time.time() + 601, "the pending login expired"),
        (pending, {"code": "c", "state": "other"}, None, "state differs from the pending login's"),
        (pending, {"state": state}, None, "the token service answered without a code"),
        (
            pending,
            {"error": "access_denied", "state": state},
            None,
            "the token service answered access_denied",
        ),
        (
            pending,
            {"error": "Ola Nordmann 01018012345", "state": state},
            None,
            "the token service answered an error that is not an OAuth code",
        ),
    ]
    for given, params, now, reason in cases:
        with pytest.raises(LoginFailed) as refused:
            await _finish(FakeSts(), given, params, now=now)
        assert refused.value.reason == reason
        assert refused.value.message_key == "error.login-failed"  # the page says no more


async def test_a_token_refusal_names_the_status_and_oauth_code_for_the_log() -> None:
    answers = {
        "400 invalid_grant": httpx.Response(400, json={"error": "invalid_grant"}),
        "400 without an OAuth error": httpx.Response(400, json={"error": "Kari 01018012345"}),
        "500 without an OAuth error": httpx.Response(500, text="oops"),
        "a token answer without its fields": httpx.Response(200, json={"token_type": "DPoP"}),
    }
    for reason, answer in answers.items():
        pending, query = _start()
        with pytest.raises(TokenRefused) as refused:
            await _finish(
                FakeSts(lambda _form, a=answer: a), pending, {"code": "c", "state": query["state"]}
            )
        assert refused.value.reason == reason


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(400, json={"error": "invalid_grant"}),
        httpx.Response(500, text="oops"),
        httpx.Response(200, text="not json"),
        httpx.Response(200, json=["a", "list"]),
        httpx.Response(200, json={"token_type": "DPoP"}),
        httpx.Response(200, json={"access_token": "a.b.c", "expires_in": "soon"}),
        httpx.Response(200, json={"access_token": "a.b.c", "expires_in": None}),
    ],
)
async def test_a_refusal_or_garbled_answer_is_token_refused(answer: httpx.Response) -> None:
    pending, query = _start()
    with pytest.raises(TokenRefused) as refused:
        await _finish(
            FakeSts(lambda _form: answer), pending, {"code": "c", "state": query["state"]}
        )
    assert refused.value.status_code == 502


async def test_an_unreachable_sts_says_so() -> None:
    def down(_form: dict[str, str]) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    pending, query = _start()
    with pytest.raises(TokenRefused) as refused:
        await _finish(FakeSts(down), pending, {"code": "c", "state": query["state"]})
    assert refused.value.message_key == "error.token-unreachable"
    assert refused.value.reason == "ConnectError"


async def test_refresh_carries_the_attestation_and_keeps_the_dpop_key() -> None:
    pending, query = _start()
    sts = FakeSts()
    first = await _finish(sts, pending, {"code": "c", "state": query["state"]})
    attestation = {"type": "nhn:tillitsrammeverk:parameters", "practitioner": {"x": 1}}
    async with sts.client() as http:
        second = await refresh(
            http,
            sts_url=f"{STS}/",
            client_id=CLIENT_ID,
            client_key=CLIENT_KEY,
            tokens=first,
            attestation=attestation,
            audience="onerecord:hub",
        )
    form = sts.forms[1]
    assert form["grant_type"] == "refresh_token"
    assert form["refresh_token"] == "refresh-1"
    assert form["resource"] == "onerecord:hub"
    assert "code_verifier" not in form
    await _check_proofs(sts.requests[1], form, pending.dpop_key)
    assertion = token_claims(form["client_assertion"])
    assert assertion["authorization_details"] == [attestation]
    # The refresh token rotates; the DPoP key stays the one the login made.
    assert second.refresh_token == "refresh-2" and second.dpop_key is first.dpop_key
    assert second.access_token != first.access_token


async def test_refresh_without_a_refresh_token_ends_the_login_without_asking() -> None:
    tokens = TokenSet("a.b.c", None, SigningKey.generate(kid="d"), time.time() + 60)
    sts = FakeSts()
    async with sts.client() as http:
        with pytest.raises(SessionEnded):
            await refresh(
                http, sts_url=STS, client_id=CLIENT_ID, client_key=CLIENT_KEY, tokens=tokens
            )
    assert sts.requests == []


def test_token_claims_reads_the_payload() -> None:
    assert token_claims(_jwt({"pid": "01818012337", "name": "Kari"})) == {
        "pid": "01818012337",
        "name": "Kari",
    }


@pytest.mark.parametrize(
    "token",
    [
        "",
        "no-dots",
        "a.b",
        "a.!!!.c",
        "a.€.c",
        "a." + _b64(bytes([0xFF, 0xFE])) + ".c",
        "a." + _b64(b"[1, 2]") + ".c",
        "a." + _b64(b'"text"') + ".c",
        "a." + _b64(b"{not json") + ".c",
    ],
)
def test_token_claims_is_tolerant_of_garbage(token: str) -> None:
    assert token_claims(token) == {}
