"""The portal's login at the STS: OAuth 2.0 authorization code with PKCE, DPoP-bound tokens.

1. `start_login` makes the state, PKCE verifier and DPoP key, and the /authorize URL the browser
   is sent to (RFC 6749 §4.1.1, RFC 7636 §4.1–4.3 S256, OIDC `acr_values`).
2. The STS lets the user choose a synthetic test user and redirects back with `code` and `state`.
3. `finish_login` checks `state` in constant time and redeems the code with the verifier, a
   private_key_jwt client assertion (RFC 7523 §2.2) and a DPoP proof (RFC 9449 §5).
4. `refresh` gets a new access token with the same DPoP key, optionally carrying a new
   attestation in the client assertion (a new patient context, as HelseID does); the refresh
   token rotates (RFC 6749 §6, RFC 9449 §5 / §8).
The tokens, the verifier and the DPoP key stay in the server-side session; never in the page.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from onerecord.portals.errors import LoginFailed, SessionEnded, TokenRefused
from onerecord.search_client import CLIENT_ASSERTION_TYPE, HubSession, client_assertion
from onerecord.trust.dpop import make_proof
from onerecord.trust.keys import SigningKey

__all__ = [
    "CITIZEN_ACR",
    "HCP_ACR",
    "PendingLogin",
    "TokenSet",
    "finish_login",
    "refresh",
    "start_login",
    "token_claims",
    "userinfo",
]

HCP_ACR = "4"
CITIZEN_ACR = "idporten-loa-high"
SCOPE = "openid helseid://scopes/identity/pid nhn:phr/mhd/read-documentreferences"
_LOGIN_LIFETIME_S = 600


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """A login sent to the STS, waiting for the browser to come back with a code."""

    role: str
    state: str
    code_verifier: str
    redirect_uri: str
    dpop_key: SigningKey
    started: float

    def expired(self, now: float) -> bool:
        return now - self.started > _LOGIN_LIFETIME_S


@dataclass(frozen=True, slots=True)
class TokenSet:
    """An access token, its refresh token and the DPoP key both are bound to."""

    access_token: str
    refresh_token: str | None
    dpop_key: SigningKey
    expires_at: float

    def hub_session(self, patient: str | None = None, salt: str | None = None) -> HubSession:
        """Return a hub client session for this token (patient headers when bound)."""
        return HubSession(self.access_token, self.dpop_key, patient, salt)


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def start_login(
    *,
    sts_url: str,
    client_id: str,
    redirect_uri: str,
    role: str,
    audience: str,
    now: float | None = None,
) -> tuple[PendingLogin, str]:
    """Return the pending login and the STS /authorize URL to send the browser to."""
    pending = PendingLogin(
        role=role,
        state=secrets.token_urlsafe(24),
        code_verifier=secrets.token_urlsafe(48),
        redirect_uri=redirect_uri,
        dpop_key=SigningKey.generate(kid=f"dpop-{secrets.token_hex(4)}"),
        started=time.time() if now is None else now,
    )
    query = {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "scope": SCOPE,
        "state": pending.state,
        "code_challenge": _challenge(pending.code_verifier),
        "code_challenge_method": "S256",
        "acr_values": CITIZEN_ACR if role == "citizen" else HCP_ACR,
        "resource": audience,
        "onerecord_user_kind": "citizen" if role == "citizen" else "practitioner",
    }
    return pending, f"{sts_url.rstrip('/')}/authorize?{urlencode(query)}"


_ERROR_CODE = re.compile(r"[a-z_]{1,64}")


async def _token_request(
    http: httpx.AsyncClient,
    *,
    sts_url: str,
    client_id: str,
    client_key: SigningKey,
    dpop_key: SigningKey,
    form: dict[str, str],
    assertion_extra: Mapping[str, Any] | None = None,
) -> TokenSet:
    """POST to the STS token endpoint; on the refresh grant `invalid_grant` ends the login.

    RFC 6749 §5.2: the refresh token is invalid, expired or revoked (its login ended, or was
    revoked after a reuse) — the user must log in again (`SessionEnded`), not read "no access".
    """
    token_url = f"{sts_url.rstrip('/')}/token"
    form = form | {
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": client_assertion(
            client_key, client_id, sts_url, now=time.time(), extra=assertion_extra
        ),
    }
    proof = make_proof(dpop_key, htm="POST", htu=token_url)
    try:
        response = await http.post(token_url, data=form, headers={"DPoP": proof})
    except httpx.HTTPError as exc:
        raise TokenRefused("error.token-unreachable", reason=type(exc).__name__) from None
    if response.status_code != 200:
        error = _oauth_error(response)
        if form.get("grant_type") == "refresh_token" and error == "invalid_grant":
            raise SessionEnded()
        raise TokenRefused(reason=f"{response.status_code} {error or 'without an OAuth error'}")
    try:
        body = response.json()
        access = str(body["access_token"])
        lifetime = float(body.get("expires_in", 300))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise TokenRefused(reason="a token answer without its fields") from None
    refresh_token = body.get("refresh_token")
    return TokenSet(
        access_token=access,
        refresh_token=str(refresh_token) if refresh_token else None,
        dpop_key=dpop_key,
        expires_at=time.time() + lifetime,
    )


def _error_code(value: object) -> str | None:
    """An OAuth `error` code (RFC 6749 §5.2: %x20-21 / %x23-5B / %x5D-7E), if `value` is one.

    Only the codes' own shape (letters and underscores, short) is kept, so that a token
    service's answer never puts free text into the log.
    """
    if isinstance(value, str) and _ERROR_CODE.fullmatch(value):
        return value
    return None


def _oauth_error(response: httpx.Response) -> str | None:
    """The `error` code of an OAuth error answer (RFC 6749 §5.2), if it has one."""
    try:
        body = response.json()
    except ValueError:
        return None
    return _error_code(body.get("error") if isinstance(body, dict) else None)


def _sts_error(params: Mapping[str, str]) -> str:
    """What the authorization response (RFC 6749 §4.1.2.1) said, for the log."""
    if "error" not in params:
        return "without a code"
    return _error_code(params["error"]) or "an error that is not an OAuth code"


async def finish_login(
    http: httpx.AsyncClient,
    *,
    sts_url: str,
    client_id: str,
    client_key: SigningKey,
    pending: PendingLogin | None,
    params: Mapping[str, str],
    now: float | None = None,
) -> TokenSet:
    """Redeem the code the STS sent back; refuse a wrong state, an error or a late return."""
    now = time.time() if now is None else now
    state = params.get("state", "")
    if pending is None:
        raise LoginFailed(reason="no login pending in this session")
    if pending.expired(now):
        raise LoginFailed(reason="the pending login expired")
    if not secrets.compare_digest(state.encode(), pending.state.encode()):
        raise LoginFailed(reason="state differs from the pending login's")
    code = params.get("code")
    if "error" in params or not code:
        raise LoginFailed(reason=f"the token service answered {_sts_error(params)}")
    return await _token_request(
        http,
        sts_url=sts_url,
        client_id=client_id,
        client_key=client_key,
        dpop_key=pending.dpop_key,
        form={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": pending.redirect_uri,
            "code_verifier": pending.code_verifier,
        },
    )


async def refresh(
    http: httpx.AsyncClient,
    *,
    sts_url: str,
    client_id: str,
    client_key: SigningKey,
    tokens: TokenSet,
    attestation: Mapping[str, Any] | None = None,
    audience: str | None = None,
) -> TokenSet:
    """Return a new token set from the refresh token, with a new attestation when given."""
    if tokens.refresh_token is None:
        raise SessionEnded()  # nothing to continue the login with
    form = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
    if audience is not None:
        form["resource"] = audience
    extra = {"authorization_details": [attestation]} if attestation is not None else None
    return await _token_request(
        http,
        sts_url=sts_url,
        client_id=client_id,
        client_key=client_key,
        dpop_key=tokens.dpop_key,
        form=form,
        assertion_extra=extra,
    )


async def userinfo(http: httpx.AsyncClient, *, sts_url: str, tokens: TokenSet) -> dict[str, Any]:
    """Return the STS's userinfo for the token (OIDC Core §5.3), DPoP-bound."""
    url = f"{sts_url.rstrip('/')}/userinfo"
    session = tokens.hub_session()
    try:
        response = await http.get(url, headers=session.headers("GET", url))
    except httpx.HTTPError:
        raise TokenRefused("error.token-unreachable") from None
    if response.status_code != 200:
        raise TokenRefused()
    try:
        body = response.json()
    except ValueError:
        raise TokenRefused() from None
    if not isinstance(body, dict):
        raise TokenRefused()
    return body


def token_claims(token: str) -> dict[str, Any]:
    """Return the payload of a token the portal just received from its STS over TLS.

    Only for display and the audit link (`jti`); the hub and the regions verify the signature.
    """
    try:
        payload = token.split(".")[1]
        padded = payload + "=" * (-len(payload) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}
