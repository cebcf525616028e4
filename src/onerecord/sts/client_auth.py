"""Check what a client signs: the client assertion (private_key_jwt) and the request object.

References: RFC 7523 §3 (assertion claims, single-use jti), RFC 7521 §4.2; HelseID: typ
`client-authentication+jwt`, exp at most 60 s ahead (A15, A16); RFC 9101 §6 (request object),
asymmetric algorithms only (A18).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from onerecord.sts.settings import ClientConfig, StsSettings
from onerecord.trust.errors import InvalidClient, InvalidRequest, InvalidToken, TrustError
from onerecord.trust.jose import numeric_date, parse_compact, string_claim
from onerecord.trust.keys import import_public_jwk, verify_signature
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


def _request_object_error(description: str) -> TrustError:
    return InvalidRequest(description, error="invalid_request_object")


def _verify(
    token: str,
    *,
    client: ClientConfig,
    typ: frozenset[str],
    fail: Callable[[str], TrustError],
    what: str,
) -> dict[str, Any]:
    unverified = parse_compact(token, what=what, fail=fail)
    if unverified.header.typ not in typ:
        raise fail(f"{what} typ must be {' or '.join(sorted(typ))}")
    try:
        key = import_public_jwk(client.jwk)
    except InvalidToken:
        raise fail(f"{what}: the client's registered key is not usable") from None
    verify_signature(unverified, key, what=what, fail=fail)
    return unverified.claims


def _lifetime(
    claims: Mapping[str, Any],
    settings: StsSettings,
    now: float,
    what: str,
    fail: Callable[[str], TrustError],
) -> int:
    exp = numeric_date(claims, "exp", what=what, fail=fail)
    iat = numeric_date(claims, "iat", what=what, fail=fail)
    assert exp is not None and iat is not None
    if exp - iat > settings.assertion_max_lifetime:
        raise fail(f"{what} lives longer than {settings.assertion_max_lifetime} s")
    if exp < now - settings.skew:
        raise fail(f"{what} has expired")
    if iat > now + settings.skew:
        raise fail(f"{what} was issued in the future")
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
    # Only to learn which client's key to use; the signature is checked next.
    preview = parse_compact(assertion, what="client assertion", fail=InvalidClient)
    client_id = preview.claims.get("iss")
    if not isinstance(client_id, str) or client_id not in settings.clients:
        raise InvalidClient("unknown client")
    if form.get("client_id") not in (None, client_id):
        raise InvalidClient("client_id does not match the client assertion")
    claims = _verify(
        assertion,
        client=settings.clients[client_id],
        typ=frozenset({CLIENT_ASSERTION_TYP}),
        fail=InvalidClient,
        what="client assertion",
    )
    if claims.get("sub") != client_id:
        raise InvalidClient("client assertion sub must equal iss (the client_id)")
    if not _aud_ok(claims.get("aud"), {settings.issuer, settings.token_endpoint}):
        raise InvalidClient("client assertion aud must be the issuer or the token endpoint")
    exp = _lifetime(claims, settings, now, "client assertion", InvalidClient)
    jti = string_claim(claims, "jti", what="client assertion", max_length=256, fail=InvalidClient)
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
    claims = _verify(
        request,
        client=client,
        typ=_REQUEST_OBJECT_TYP,
        fail=_request_object_error,
        what="request object",
    )
    if claims.get("iss") != client_id:
        raise InvalidRequest(
            "request object iss must be the client_id", error="invalid_request_object"
        )
    if not _aud_ok(claims.get("aud"), {settings.issuer}):
        raise InvalidRequest(
            "request object aud must be the issuer", error="invalid_request_object"
        )
    _lifetime(claims, settings, now, "request object", _request_object_error)
    return claims
