"""DPoP proofs (RFC 9449): make one on the client, verify one at the token service or an API.

References: RFC 9449 §4.2 (proof syntax), §4.3 (checking proofs), §6.1 (cnf.jkt),
§4.3 item 9 / §7 (ath = base64url(SHA-256(access token))); RFC 7638 (JWK thumbprint).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from joserfc import jwt

from onerecord.trust.errors import InvalidToken
from onerecord.trust.jose import MAX_CLAIM_LENGTH, numeric_date, parse_compact, string_claim
from onerecord.trust.keys import (
    Key,
    SigningKey,
    import_public_jwk,
    verify_signature,
)
from onerecord.trust.replay import ReplayCache

__all__ = [
    "DPOP_TYP",
    "DPoPProof",
    "access_token_hash",
    "jwk_thumbprint",
    "make_proof",
    "normalise_htu",
    "verify_proof",
]

DPOP_TYP = "dpop+jwt"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _proof_error(description: str) -> InvalidToken:
    return InvalidToken(description, error="invalid_dpop_proof")


@dataclass(frozen=True, slots=True)
class DPoPProof:
    """A verified DPoP proof: who (jkt) proved possession, for which request."""

    jti: str
    htm: str
    htu: str
    iat: int
    jkt: str
    ath: str | None = None
    nonce: str | None = None


def jwk_thumbprint(key: Key | SigningKey | Mapping[str, Any]) -> str:
    """Return the RFC 7638 SHA-256 thumbprint (base64url) of a public key."""
    if isinstance(key, SigningKey):
        return key.thumbprint()
    if isinstance(key, Mapping):
        return import_public_jwk(key).thumbprint()
    return key.thumbprint()


def access_token_hash(access_token: str) -> str:
    """Return ath: base64url(SHA-256(ASCII access token)) without padding (RFC 9449 §4.2)."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def normalise_htu(url: str) -> str:
    """Return scheme://host[:port]/path of `url`: no query or fragment, default port dropped.

    References: RFC 9449 §4.3 item 9 (compare without query and fragment), RFC 3986 §6.2.2–6.2.3.
    """
    if len(url) > MAX_CLAIM_LENGTH:
        raise _proof_error("htu is too long")
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        port = parts.port
    except ValueError:
        raise _proof_error("htu is not a valid URI (host or port)") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not hostname:
        raise _proof_error("htu is not an absolute http(s) URI")
    host = hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path or '/'}"


def make_proof(
    key: SigningKey,
    *,
    htm: str,
    htu: str,
    access_token: str | None = None,
    nonce: str | None = None,
    iat: int | None = None,
    jti: str | None = None,
) -> str:
    """Make a DPoP proof for one request (client side): typ dpop+jwt, public jwk in the header."""
    parts = urlsplit(htu)
    claims: dict[str, Any] = {
        "jti": jti or secrets.token_urlsafe(16),
        "htm": htm,
        "htu": f"{parts.scheme}://{parts.netloc}{parts.path}",
        "iat": int(time.time()) if iat is None else iat,
    }
    if access_token is not None:
        claims["ath"] = access_token_hash(access_token)
    if nonce is not None:
        claims["nonce"] = nonce
    public = {k: v for k, v in key.public_jwk().items() if k not in ("kid", "use", "alg")}
    header = {"alg": key.alg, "typ": DPOP_TYP, "jwk": public}
    return jwt.encode(header, claims, key.key, algorithms=[key.alg])


async def verify_proof(
    proof: str,
    *,
    htm: str,
    htu: str,
    access_token: str | None,
    jkt: str | None,
    now: float,
    replay: ReplayCache,
    max_age: float = 60.0,
    skew: float = 5.0,
    nonce: str | None = None,
) -> DPoPProof:
    """Check a DPoP proof for this request; raise InvalidToken (invalid_dpop_proof) if bad.

    `access_token` given → ath must match; `jkt` given → the proof key must be the bound key.
    References: RFC 9449 §4.3 (checks 1–12), §7.1 (resource server), §11.1 (replay).
    """
    what = "DPoP proof"
    if not isinstance(proof, str) or not proof or "," in proof:
        raise _proof_error("exactly one DPoP proof is required")
    unverified = parse_compact(proof, what=what, fail=_proof_error)
    header = unverified.header
    if header.typ != DPOP_TYP:
        raise _proof_error("DPoP proof typ must be dpop+jwt")
    if header.jwk is None:
        raise _proof_error("DPoP proof has no jwk header")
    try:
        key = import_public_jwk(header.jwk)
    except InvalidToken as exc:
        raise _proof_error(f"DPoP proof jwk refused: {exc.description}") from None
    verify_signature(unverified, key, what=what, fail=_proof_error)
    claims = unverified.claims

    jti = string_claim(claims, "jti", what=what, max_length=256, fail=_proof_error)
    if jti is None or len(jti) < 8:
        raise _proof_error("DPoP proof jti is missing or not 8 to 256 characters")
    p_htm = string_claim(claims, "htm", what=what, max_length=16, fail=_proof_error)
    if p_htm != htm:
        raise _proof_error("DPoP proof htm does not match the request method")
    p_htu = string_claim(claims, "htu", what=what, fail=_proof_error)
    if p_htu is None or normalise_htu(p_htu) != normalise_htu(htu):
        raise _proof_error("DPoP proof htu does not match the request URI")
    iat = numeric_date(claims, "iat", what=what, fail=_proof_error)
    assert iat is not None
    if iat > now + skew:
        raise _proof_error("DPoP proof iat is in the future")
    if iat < now - max_age:
        raise _proof_error("DPoP proof is too old (iat)")
    ath = claims.get("ath")
    if access_token is not None and ath != access_token_hash(access_token):
        raise _proof_error("DPoP proof ath does not match the access token")
    if nonce is not None and claims.get("nonce") != nonce:
        raise InvalidToken("DPoP proof nonce is missing or stale", error="use_dpop_nonce")
    thumbprint = key.thumbprint()
    if jkt is not None and thumbprint != jkt:
        raise InvalidToken("DPoP proof key does not match the token's cnf.jkt")
    # Replay check last, so that refused proofs never fill the cache.
    if await replay.seen(f"dpop:{thumbprint}:{jti}", iat + max_age + skew):
        raise _proof_error("DPoP proof jti has been used before (replay)")
    return DPoPProof(
        jti=jti,
        htm=p_htm,
        htu=p_htu,
        iat=iat,
        jkt=thumbprint,
        ath=ath if isinstance(ath, str) else None,
        nonce=claims.get("nonce") if isinstance(claims.get("nonce"), str) else None,
    )
