"""The shape of a compact JWS from outside, checked before any key lookup or signature work.

Every token a service receives (access token, DPoP proof, hub assertion, publish proof, client
assertion, request object) passes `parse_compact` first: a bounded ASCII string of three
base64url segments; a protected header that is a strict JSON object (no NaN, no Infinity) whose
registered members have their registered types, with `alg` one of the asymmetric algorithms,
no `crit` (this project understands no extension), no `b64` or `zip`; a payload that is a JSON
object. Its claims are then read with `numeric_date` and `string_claim`, which refuse booleans,
strings, NaN, infinities and dates beyond year 9999. A refusal costs microseconds and raises the
caller's TrustError (401 `invalid_token`, `invalid_dpop_proof`, `invalid_client`, ...); nothing
from here raises anything else.

References: RFC 7515 §3.1 (compact serialisation), §4.1 (registered header parameters),
§4.1.11 (crit: reject what is not understood), §5.2 (validation); RFC 7797 (b64);
RFC 7519 §2 (NumericDate), §7.2; RFC 8725 §3.1 (algorithm verification), §3.11 (typ);
RFC 8259 §6 (numbers: no NaN or Infinity).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from onerecord.domain.limits import MAX_HEADER_LENGTH
from onerecord.trust.errors import InvalidToken, TrustError

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "MAX_CLAIM_LENGTH",
    "MAX_JWS_LENGTH",
    "MAX_NUMERIC_DATE",
    "CompactJws",
    "JoseHeader",
    "numeric_date",
    "parse_compact",
    "string_claim",
]

ASYMMETRIC_ALGORITHMS = frozenset(
    {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
)
"""The JWS algorithms a verifier accepts: asymmetric only, never "none" or HS* (A18)."""

MAX_JWS_LENGTH = MAX_HEADER_LENGTH
"""Characters in one compact JWS: a token travels in a header (or a form field) of this size."""

MAX_CLAIM_LENGTH = 2048
"""Characters in one string claim or header member (jti, htu, kid, typ...)."""

MAX_NUMERIC_DATE = 253_402_300_799
"""9999-12-31T23:59:59Z: a NumericDate beyond it is refused (RFC 7519 §2 allows any number)."""

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_STRING_MEMBERS = ("typ", "cty", "kid", "jku", "x5u", "x5t", "x5t#S256")
_REFUSED_MEMBERS = ("crit", "b64", "zip")

TrustErrorFactory = Callable[[str], TrustError]


@dataclass(frozen=True, slots=True)
class JoseHeader:
    """A protected header whose registered members have been type-checked."""

    alg: str
    typ: str | None
    kid: str | None
    jwk: Mapping[str, Any] | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class CompactJws:
    """An unverified compact JWS: checked header, claims object, and the token itself."""

    header: JoseHeader
    claims: dict[str, Any]
    token: str


def _decode_segment(segment: str, what: str, fail: TrustErrorFactory) -> Any:
    if not _SEGMENT.fullmatch(segment):
        raise fail(f"{what} is not a compact JWS (base64url segments)")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        return orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise fail(f"{what} is not a compact JWS (a segment is not base64url JSON)") from None


def _header(value: Any, what: str, fail: TrustErrorFactory) -> JoseHeader:
    if not isinstance(value, dict):
        raise fail(f"{what} header is not a JSON object")
    alg = value.get("alg")
    if not isinstance(alg, str) or alg not in ASYMMETRIC_ALGORITHMS:
        raise fail(f"{what} must be signed with an asymmetric algorithm (alg)")
    for name in _REFUSED_MEMBERS:
        if name in value:
            raise fail(f"{what} header member {name} is not supported")
    for name in _STRING_MEMBERS:
        member = value.get(name)
        if member is not None and (not isinstance(member, str) or len(member) > MAX_CLAIM_LENGTH):
            raise fail(f"{what} header member {name} must be a string")
    jwk = value.get("jwk")
    if jwk is not None and not isinstance(jwk, dict):
        raise fail(f"{what} header member jwk must be a JSON object")
    x5c = value.get("x5c")
    if x5c is not None and not (isinstance(x5c, list) and all(isinstance(c, str) for c in x5c)):
        raise fail(f"{what} header member x5c must be an array of strings")
    return JoseHeader(alg=alg, typ=value.get("typ"), kid=value.get("kid"), jwk=jwk, raw=value)


def parse_compact(token: Any, *, what: str, fail: TrustErrorFactory = InvalidToken) -> CompactJws:
    """Check the shape of a compact JWS and return its header and claims, unverified.

    Raises `fail(description)` (InvalidToken unless told otherwise) and nothing else.
    """
    if not isinstance(token, str) or not token:
        raise fail(f"{what} is missing")
    if len(token) > MAX_JWS_LENGTH:
        raise fail(f"{what} is longer than {MAX_JWS_LENGTH} characters (MAX_JWS_LENGTH)")
    parts = token.split(".")
    if len(parts) != 3 or not parts[2]:
        raise fail(f"{what} is not a compact JWS (three segments, signed)")
    header = _header(_decode_segment(parts[0], what, fail), what, fail)
    claims = _decode_segment(parts[1], what, fail)
    if not isinstance(claims, dict):
        raise fail(f"{what} claims are not a JSON object")
    if not _SEGMENT.fullmatch(parts[2]):
        raise fail(f"{what} is not a compact JWS (base64url segments)")
    return CompactJws(header=header, claims=claims, token=token)


def numeric_date(
    claims: Mapping[str, Any],
    name: str,
    *,
    what: str,
    required: bool = True,
    fail: TrustErrorFactory = InvalidToken,
) -> int | None:
    """Return a NumericDate claim as whole seconds; refuse bools, strings, NaN and huge values."""
    value = claims.get(name)
    if value is None:
        if required:
            raise fail(f"{what} has no {name}")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(f"{what} {name} is not a number")
    if not math.isfinite(value) or not 0 <= value <= MAX_NUMERIC_DATE:
        raise fail(f"{what} {name} is out of range")
    return int(value)


def string_claim(
    claims: Mapping[str, Any],
    name: str,
    *,
    what: str,
    required: bool = True,
    max_length: int = MAX_CLAIM_LENGTH,
    fail: TrustErrorFactory = InvalidToken,
) -> str | None:
    """Return a non-empty string claim of at most `max_length` characters."""
    value = claims.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise fail(f"{what} {name} must be a string of 1 to {max_length} characters")
    return value
