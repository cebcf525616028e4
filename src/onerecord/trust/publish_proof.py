"""Publish proofs: how a source knows who sends an ITI-65 Provide Document Bundle.

A clinical system that publishes documents signs each request with its own key: a short-lived
JWT (typ `onerecord-publish+jwt`) in the header `onerecord-publish-proof`, bound to the method,
the URL and the SHA-256 of the body, with a single-use jti. The source holds the publishers'
public keys (a JWKS file); a request from anyone else is refused before the body is parsed.
This is the project's analogue of the signed XDS.b Provide and Register request (ITI-41 over
mutual TLS with WS-Security) for a JSON transport.

The same proof, made for `GET` over an empty body, lets a system of the region read what only
systems may (the patient's controls for the media archive, `GET /controls/system`).

Each key in the publishers' JWKS names the one issuer allowed to sign with it (the JWK member
`iss`), so a registered publisher cannot claim to be another: a proof whose `iss` is not its
key's issuer is refused (IssuerMismatch, 401). A key may also be marked as a regional archive
(`"onerecord_archive": true`); only those may read the patient's controls (docs/trust.md
"Systems of the region").

References: RFC 7515 (JWS), RFC 7517 §4 (JWK members), RFC 7519 §4.1 (claims), RFC 9449 §4.2
(htm/htu binding, by analogy).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from onerecord.trust.dpop import normalise_htu
from onerecord.trust.errors import InvalidToken
from onerecord.trust.jose import numeric_date, parse_compact, string_claim
from onerecord.trust.keys import Key, SigningKey, import_public_jwk, verify_signature
from onerecord.trust.replay import ReplayCache

__all__ = [
    "PUBLISHER_ARCHIVE_MEMBER",
    "PUBLISHER_ISSUER_MEMBER",
    "PUBLISH_PROOF_HEADER",
    "PUBLISH_PROOF_MAX_LIFETIME",
    "PUBLISH_PROOF_TYP",
    "IssuerMismatch",
    "Publisher",
    "PublisherKeys",
    "RegisteredPublisher",
    "body_digest",
    "make_publish_proof",
    "publisher_jwk",
    "verify_publish_proof",
]

PUBLISH_PROOF_HEADER = "onerecord-publish-proof"
PUBLISH_PROOF_TYP = "onerecord-publish+jwt"
PUBLISH_PROOF_MAX_LIFETIME = 60
PUBLISHER_ISSUER_MEMBER = "iss"
"""The JWK member that names the one issuer allowed to sign with the key."""
PUBLISHER_ARCHIVE_MEMBER = "onerecord_archive"
"""The JWK member (true) that marks a regional archive: it may read the patient's controls."""
_MAX_ISSUER = 256
_MAX_PUBLISHERS = 1000


@dataclass(frozen=True, slots=True)
class Publisher:
    """The system that signed a publish request; `archive` if it may read controls."""

    issuer: str
    jti: str
    archive: bool = False


class IssuerMismatch(InvalidToken):
    """A proof names an issuer its signing key does not belong to (one system posing as another).

    `registered` is the key's own issuer (who actually signed), `claimed` the proof's `iss`.
    """

    def __init__(self, *, claimed: str, registered: str) -> None:
        super().__init__("publish proof names an issuer its signing key does not belong to")
        self.claimed = claimed
        self.registered = registered


@dataclass(frozen=True, slots=True)
class RegisteredPublisher:
    """One key of the publishers' JWKS with the issuer it belongs to."""

    kid: str
    issuer: str
    key: Key
    archive: bool = False


def publisher_jwk(key: SigningKey, *, issuer: str, archive: bool = False) -> dict[str, Any]:
    """Return the key's public JWK as the publishers' JWKS lists it (tied to `issuer`)."""
    jwk = key.public_jwk()
    jwk[PUBLISHER_ISSUER_MEMBER] = issuer
    if archive:
        jwk[PUBLISHER_ARCHIVE_MEMBER] = True
    return jwk


class PublisherKeys:
    """The systems allowed to publish: each key (by kid) with the one issuer that may use it."""

    def __init__(self, publishers: Iterable[RegisteredPublisher]) -> None:
        self._by_kid: dict[str, RegisteredPublisher] = {}
        for publisher in publishers:
            if publisher.kid in self._by_kid:
                raise ValueError(f"publisher key {publisher.kid!r} is listed twice")
            self._by_kid[publisher.kid] = publisher
        if not self._by_kid:
            raise ValueError("no publisher keys")

    @classmethod
    def from_jwks(cls, document: Any) -> PublisherKeys:
        """Read a publishers' JWKS: every key needs a kid and an `iss`; refuse anything else.

        Raises ValueError naming the key at fault (a start-up error, never a request's).
        """
        if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
            raise ValueError("the publishers' JWKS is not a JSON object with a keys array")
        entries = document["keys"]
        if not 0 < len(entries) <= _MAX_PUBLISHERS:
            raise ValueError(f"the publishers' JWKS must hold 1 to {_MAX_PUBLISHERS} keys")
        publishers = []
        for index, jwk in enumerate(entries):
            if not isinstance(jwk, Mapping):
                raise ValueError(f"publisher key {index} is not a JSON object")
            kid, issuer = jwk.get("kid"), jwk.get(PUBLISHER_ISSUER_MEMBER)
            archive = jwk.get(PUBLISHER_ARCHIVE_MEMBER, False)
            name = kid if isinstance(kid, str) else index
            if not isinstance(kid, str) or not kid:
                raise ValueError(f"publisher key {index} has no kid")
            if not isinstance(issuer, str) or not 0 < len(issuer) <= _MAX_ISSUER:
                raise ValueError(
                    f"publisher key {name!r} needs {PUBLISHER_ISSUER_MEMBER!r}: the issuer allowed "
                    "to sign with it"
                )
            if not isinstance(archive, bool):
                raise ValueError(
                    f"publisher key {name!r}: {PUBLISHER_ARCHIVE_MEMBER} must be true or false"
                )
            public = {
                k: v
                for k, v in jwk.items()
                if k not in (PUBLISHER_ISSUER_MEMBER, PUBLISHER_ARCHIVE_MEMBER)
            }
            try:
                key = import_public_jwk(public)
            except InvalidToken as exc:
                raise ValueError(f"publisher key {name!r}: {exc.description}") from None
            publishers.append(RegisteredPublisher(kid, issuer, key, archive))
        return cls(publishers)

    def registered(self, kid: str | None) -> RegisteredPublisher:
        """Return the publisher whose key has this kid, or raise InvalidToken."""
        publisher = self._by_kid.get(kid) if kid is not None else None
        if publisher is None:
            raise InvalidToken("publish proof is signed by an unknown key (kid)")
        return publisher

    def __len__(self) -> int:
        return len(self._by_kid)


def body_digest(body: bytes) -> str:
    """Return base64url(SHA-256(body)) without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=").decode("ascii")


def make_publish_proof(
    key: SigningKey,
    *,
    issuer: str,
    audience: str,
    htu: str,
    body: bytes,
    now: float,
    method: str = "POST",
) -> str:
    """Sign one ITI-65 request, or another system request (`method`, `body` b"" for GET)."""
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "iat": int(now),
        "exp": int(now) + PUBLISH_PROOF_MAX_LIFETIME,
        "jti": secrets.token_urlsafe(16),
        "htm": method,
        "htu": normalise_htu(htu),
        "body_sha256": body_digest(body),
    }
    return key.sign(claims, typ=PUBLISH_PROOF_TYP)


async def verify_publish_proof(
    proof: str,
    *,
    keys: PublisherKeys,
    audience: str,
    htu: str,
    body: bytes,
    now: float,
    replay: ReplayCache,
    skew: float = 5,
    method: str = "POST",
) -> Publisher:
    """Check shape, typ, signature, issuer-to-key, audience, lifetime, binding and jti replay.

    The shape and typ are checked before any key is looked up (as `keys.verify_signed_jwt`
    does); the kid picks the registered publisher, whose key must verify the signature and whose
    issuer must be the proof's `iss` (IssuerMismatch otherwise).
    """
    what = "publish proof"
    unverified = parse_compact(proof, what=what)
    if unverified.header.typ != PUBLISH_PROOF_TYP:
        raise InvalidToken(f"{what} typ must be {PUBLISH_PROOF_TYP}")
    registered = keys.registered(unverified.header.kid)
    verify_signature(unverified, registered.key, what=what)
    claims = unverified.claims
    iss = string_claim(claims, "iss", what=what, max_length=_MAX_ISSUER)
    jti = string_claim(claims, "jti", what=what, max_length=256)
    assert iss is not None and jti is not None
    if iss != registered.issuer:
        raise IssuerMismatch(claimed=iss, registered=registered.issuer)
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
    if claims.get("htm") != method or p_htu != normalise_htu(htu):
        raise InvalidToken("publish proof was made for another method or URL")
    if claims.get("body_sha256") != body_digest(body):
        raise InvalidToken("publish proof does not match the request body")
    if await replay.seen(f"publish:{jti}", exp + skew):
        raise InvalidToken("publish proof jti has been used before (replay)")
    return Publisher(issuer=iss, jti=jti, archive=registered.archive)
