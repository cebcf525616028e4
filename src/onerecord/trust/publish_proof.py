"""Publish proofs: how a source knows who sends an ITI-65 Provide Document Bundle.

A clinical system that publishes documents signs each request with its own key: a short-lived
JWT (typ `onerecord-publish+jwt`) in the header `onerecord-publish-proof`, bound to the method,
the URL and the SHA-256 of the body, with a single-use jti. The source holds the publishers'
public keys (a JWKS file); a request from anyone else is refused before the body is parsed.
This is the project's analogue of the signed XDS.b Provide and Register request (ITI-41 over
mutual TLS with WS-Security) for a JSON transport.

References: RFC 7515 (JWS), RFC 7519 §4.1 (claims), RFC 9449 §4.2 (htm/htu binding, by analogy).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from onerecord.trust.dpop import normalise_htu
from onerecord.trust.errors import InvalidToken
from onerecord.trust.jose import numeric_date, string_claim
from onerecord.trust.keys import KeyProvider, SigningKey, verify_signed_jwt
from onerecord.trust.replay import ReplayCache

__all__ = [
    "PUBLISH_PROOF_HEADER",
    "PUBLISH_PROOF_MAX_LIFETIME",
    "PUBLISH_PROOF_TYP",
    "Publisher",
    "body_digest",
    "make_publish_proof",
    "verify_publish_proof",
]

PUBLISH_PROOF_HEADER = "onerecord-publish-proof"
PUBLISH_PROOF_TYP = "onerecord-publish+jwt"
PUBLISH_PROOF_MAX_LIFETIME = 60


@dataclass(frozen=True, slots=True)
class Publisher:
    """The system that signed a publish request."""

    issuer: str
    jti: str


def body_digest(body: bytes) -> str:
    """Return base64url(SHA-256(body)) without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=").decode("ascii")


def make_publish_proof(
    key: SigningKey, *, issuer: str, audience: str, htu: str, body: bytes, now: float
) -> str:
    """Sign one ITI-65 request (client side)."""
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "iat": int(now),
        "exp": int(now) + PUBLISH_PROOF_MAX_LIFETIME,
        "jti": secrets.token_urlsafe(16),
        "htm": "POST",
        "htu": normalise_htu(htu),
        "body_sha256": body_digest(body),
    }
    return key.sign(claims, typ=PUBLISH_PROOF_TYP)


async def verify_publish_proof(
    proof: str,
    *,
    keys: KeyProvider,
    audience: str,
    htu: str,
    body: bytes,
    now: float,
    replay: ReplayCache,
    skew: float = 5,
) -> Publisher:
    """Check signature, typ, audience, lifetime, method/URL/body binding and jti replay."""
    claims = await verify_signed_jwt(
        proof, keys=keys, accepted_typ=frozenset({PUBLISH_PROOF_TYP}), what="publish proof"
    )
    iss = string_claim(claims, "iss", what="publish proof", max_length=256)
    jti = string_claim(claims, "jti", what="publish proof", max_length=256)
    assert iss is not None and jti is not None
    aud = claims.get("aud")
    if aud != audience:
        raise InvalidToken("publish proof is for another audience")
    iat = numeric_date(claims, "iat", what="publish proof")
    exp = numeric_date(claims, "exp", what="publish proof")
    assert iat is not None and exp is not None
    if not 0 < exp - iat <= PUBLISH_PROOF_MAX_LIFETIME:
        raise InvalidToken("publish proof lifetime must be at most 60 seconds")
    if now > exp + skew or iat > now + skew:
        raise InvalidToken("publish proof has expired or is not yet valid")
    p_htu = string_claim(claims, "htu", what="publish proof")
    if claims.get("htm") != "POST" or p_htu != normalise_htu(htu):
        raise InvalidToken("publish proof was made for another method or URL")
    if claims.get("body_sha256") != body_digest(body):
        raise InvalidToken("publish proof does not match the request body")
    if await replay.seen(f"publish:{jti}", exp + skew):
        raise InvalidToken("publish proof jti has been used before (replay)")
    return Publisher(issuer=iss, jti=jti)
