"""Check what a client signs: the client assertion (private_key_jwt) and the request object.

References: RFC 7523 §3 (assertion claims, single-use jti), RFC 7521 §4.2; HelseID: typ
`client-authentication+jwt`, exp at most 60 s ahead (A15, A16); RFC 9101 §6 (request object),
asymmetric algorithms only (A18).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError

from onerecord.sts.settings import ClientConfig, StsSettings
from onerecord.trust.errors import InvalidClient, InvalidRequest, InvalidToken, TrustError
from onerecord.trust.keys import ASYMMETRIC_ALGORITHMS, import_public_jwk
from onerecord.trust.replay import ReplayCache

__all__ = [
    "CLIENT_ASSERTION_TYP",
    "CLIENT_ASSERTION_TYPE",
    "verify_client_assertion",
    "verify_request_object",
]

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLIENT_ASSERTION_TYP = "client-authentication+jwt"
_REQUEST_OBJECT_TYP = frozenset({"oauth-authz-req+jwt", "JWT", "jwt"})


def _verify(
    token: str,
    *,
    client: ClientConfig,
    typ: frozenset[str],
    error: type[TrustError],
    what: str,
    error_code: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    def fail(msg: str) -> TrustError:
        return error(msg, error=error_code) if error_code else error(msg)

    try:
        header = jws.extract_compact(token.encode("ascii")).headers()
    except (JoseError, ValueError, UnicodeEncodeError):
        raise fail(f"{what} is not a compact JWS") from None
    if header.get("typ") not in typ:
        raise fail(f"{what} typ must be {' or '.join(sorted(typ))}")
    alg = header.get("alg")
    if alg not in ASYMMETRIC_ALGORITHMS:
        raise fail(f"{what} must be signed with an asymmetric algorithm, not {alg}")
    try:
        key = import_public_jwk(client.jwk)
        claims = jwt.decode(token, key, algorithms=[str(alg)]).claims
    except (JoseError, ValueError, InvalidToken):
        raise fail(f"{what} signature is invalid") from None
    return header, claims


def _lifetime(claims: Mapping[str, Any], settings: StsSettings, now: float, what: str) -> int:
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int) or not isinstance(iat, int):
        raise ValueError(f"{what} needs integer exp and iat")
    if exp - iat > settings.assertion_max_lifetime:
        raise ValueError(f"{what} lives longer than {settings.assertion_max_lifetime} s")
    if exp < now - settings.skew:
        raise ValueError(f"{what} has expired")
    if iat > now + settings.skew:
        raise ValueError(f"{what} was issued in the future")
    return exp


def _aud_ok(aud: Any, accepted: set[str]) -> bool:
    values = aud if isinstance(aud, list) else [aud]
    return any(isinstance(v, str) and v in accepted for v in values)


async def verify_client_assertion(
    form: Mapping[str, str],
    *,
    settings: StsSettings,
    replay: ReplayCache,
    now: float,
) -> tuple[str, dict[str, Any]]:
    """Authenticate the client by private_key_jwt; return (client_id, assertion claims)."""
    if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
        raise InvalidClient("client_assertion_type must be jwt-bearer (private_key_jwt)")
    assertion = form.get("client_assertion")
    if not assertion:
        raise InvalidClient("client_assertion is missing")
    try:
        unverified = jws.extract_compact(assertion.encode("ascii"))
        claims_preview = json.loads(unverified.payload)
    except (JoseError, ValueError, UnicodeEncodeError):
        raise InvalidClient("client_assertion is not a compact JWS") from None
    client_id = claims_preview.get("iss") if isinstance(claims_preview, dict) else None
    if not isinstance(client_id, str) or client_id not in settings.clients:
        raise InvalidClient("unknown client")
    if form.get("client_id") not in (None, client_id):
        raise InvalidClient("client_id does not match the client assertion")
    _, claims = _verify(
        assertion,
        client=settings.clients[client_id],
        typ=frozenset({CLIENT_ASSERTION_TYP}),
        error=InvalidClient,
        what="client assertion",
    )
    if claims.get("sub") != client_id:
        raise InvalidClient("client assertion sub must equal iss (the client_id)")
    if not _aud_ok(claims.get("aud"), {settings.issuer, settings.token_endpoint}):
        raise InvalidClient("client assertion aud must be the issuer or the token endpoint")
    try:
        exp = _lifetime(claims, settings, now, "client assertion")
    except ValueError as exc:
        raise InvalidClient(str(exc)) from None
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise InvalidClient("client assertion has no jti")
    if await replay.seen(f"client-assertion:{client_id}:{jti}", exp + settings.skew):
        raise InvalidClient("client assertion jti has been used before")
    return client_id, claims


def verify_request_object(
    request: str, *, client_id: str, settings: StsSettings, now: float
) -> dict[str, Any]:
    """Check a signed request object (RFC 9101) from `client_id`; return its claims."""
    client = settings.clients.get(client_id)
    if client is None:
        raise InvalidClient("unknown client")
    _, claims = _verify(
        request,
        client=client,
        typ=_REQUEST_OBJECT_TYP,
        error=InvalidRequest,
        what="request object",
        error_code="invalid_request_object",
    )
    if claims.get("iss") != client_id:
        raise InvalidRequest(
            "request object iss must be the client_id", error="invalid_request_object"
        )
    if not _aud_ok(claims.get("aud"), {settings.issuer}):
        raise InvalidRequest(
            "request object aud must be the issuer", error="invalid_request_object"
        )
    try:
        _lifetime(claims, settings, now, "request object")
    except ValueError as exc:
        raise InvalidRequest(str(exc), error="invalid_request_object") from None
    return claims
