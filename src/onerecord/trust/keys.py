"""Signing keys and the places verifiers find public keys (static JWKS, remote JWKS).

Development keys are generated into a folder and carry "dev" in their kid; services refuse them
unless started with dev_mode=True, so a test key can never sign a production token.

References: RFC 7517 (JWK, JWK Set), RFC 7518 §3 (ES256/RS256/PS256), RFC 7638 (thumbprint).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeAlias

import httpx
import orjson
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from onerecord.trust.errors import DevelopmentKeyRefused, InvalidToken, TrustError
from onerecord.trust.jose import ASYMMETRIC_ALGORITHMS, CompactJws, parse_compact

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "DEV_KEY_MARKER",
    "Key",
    "KeyProvider",
    "RemoteJwks",
    "SigningKey",
    "StaticJwks",
    "check_key_for_alg",
    "import_public_jwk",
    "load_or_create_dev_key",
    "require_usable_key",
    "verify_signature",
    "verify_signed_jwt",
]

DEV_KEY_MARKER = "dev"
"""Every development key's kid starts with this marker ("dev-…")."""


Key: TypeAlias = ECKey | RSAKey

_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


_CURVES = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
_MIN_RSA_BITS, _MAX_RSA_BITS = 2048, 8192
_MAX_RSA_EXPONENT_CHARS = 6
"""Public exponents up to 32 bits (65537 is usual): a huge e would make every check costly."""


def _b64_member(jwk: Mapping[str, Any], name: str, max_chars: int) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= max_chars:
        raise InvalidToken(f"jwk member {name} must be a base64url string")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken(f"jwk member {name} is not base64url") from None


def _check_jwk_shape(jwk: Mapping[str, Any]) -> str:
    """Check the members an EC or RSA public key needs, with bounded sizes; return kty."""
    kty = jwk.get("kty")
    if kty == "EC":
        if not isinstance(jwk.get("crv"), str) or jwk["crv"] not in _CURVES:
            raise InvalidToken("jwk curve must be P-256, P-384 or P-521")
        _b64_member(jwk, "x", 100)
        _b64_member(jwk, "y", 100)
    elif kty == "RSA":
        bits = int.from_bytes(_b64_member(jwk, "n", 1400), "big").bit_length()
        if not _MIN_RSA_BITS <= bits <= _MAX_RSA_BITS:
            raise InvalidToken(f"jwk RSA modulus must have {_MIN_RSA_BITS} to {_MAX_RSA_BITS} bits")
        _b64_member(jwk, "e", _MAX_RSA_EXPONENT_CHARS)
    else:
        raise InvalidToken("jwk type is not allowed (EC or RSA only)")
    kid = jwk.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise InvalidToken("jwk kid must be a string")
    return str(kty)


def import_public_jwk(jwk: Mapping[str, Any]) -> Key:
    """Import a public EC or RSA JWK; refuse symmetric keys, private members, odd shapes."""
    if not isinstance(jwk, Mapping):
        raise InvalidToken("jwk is not a JSON object")
    if _PRIVATE_MEMBERS & set(jwk):
        raise InvalidToken("jwk carries private key material")
    kty = _check_jwk_shape(jwk)
    try:
        if kty == "EC":
            return ECKey.import_key(dict(jwk))
        return RSAKey.import_key(dict(jwk))
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise InvalidToken(f"jwk is not a valid {kty} key") from exc


def check_key_for_alg(key: Key, alg: str) -> None:
    """Refuse a key that cannot verify `alg` (ES* needs its EC curve, RS*/PS* an RSA key)."""
    if alg.startswith("ES"):
        if not isinstance(key, ECKey) or _CURVES.get(key.curve_name) != alg:
            raise InvalidToken(f"the key does not fit algorithm {alg}")
    elif not isinstance(key, RSAKey):
        raise InvalidToken(f"the key does not fit algorithm {alg}")


def verify_signature(
    unverified: CompactJws, key: Key, *, what: str, fail: Callable[[str], TrustError] = InvalidToken
) -> None:
    """Verify the signature of a shape-checked compact JWS with `key`."""
    alg = unverified.header.alg
    try:
        check_key_for_alg(key, alg)
    except InvalidToken:
        raise fail(f"{what} key does not fit its algorithm") from None
    try:
        jws.deserialize_compact(unverified.token, key, algorithms=[alg])
    except (JoseError, ValueError):
        raise fail(f"{what} signature is invalid") from None


@dataclass(frozen=True, repr=False)
class SigningKey:
    """A private signing key with its kid and algorithm (ES256 by default); never printed."""

    key: Key
    alg: str = "ES256"

    def __post_init__(self) -> None:
        if self.alg not in ASYMMETRIC_ALGORITHMS:
            raise ValueError(f"{self.alg} is not an asymmetric JWS algorithm")
        if not self.key.is_private:
            raise ValueError("a SigningKey needs a private key")
        if not self.key.kid:
            raise ValueError("a SigningKey needs a kid")

    @classmethod
    def generate(cls, *, kid: str | None = None, alg: str = "ES256") -> SigningKey:
        """Generate a fresh key (P-256 for ES256, RSA 2048 otherwise)."""
        kid = kid or secrets.token_urlsafe(12)
        key: Key
        if alg.startswith("ES"):
            crv = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}[alg]
            key = ECKey.generate_key(crv, parameters={"kid": kid})
        else:
            key = RSAKey.generate_key(2048, parameters={"kid": kid})
        return cls(key, alg)

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> SigningKey:
        """Load a private JWK (with "alg" if not ES256)."""
        data = dict(jwk)
        alg = str(data.pop("alg", "ES256"))
        key: Key = ECKey.import_key(data) if data.get("kty") == "EC" else RSAKey.import_key(data)
        return cls(key, alg)

    @property
    def kid(self) -> str:
        return str(self.key.kid)

    @property
    def is_development(self) -> bool:
        return self.kid.startswith(DEV_KEY_MARKER)

    def public_jwk(self) -> dict[str, Any]:
        """Return the public JWK with kid, alg and use=sig, as published in a JWKS."""
        data: dict[str, Any] = dict(self.key.as_dict(private=False))
        data.update(alg=self.alg, use="sig")
        return data

    def private_jwk(self) -> dict[str, Any]:
        """Return the private JWK (to store on disk; never log it)."""
        data: dict[str, Any] = dict(self.key.as_dict(private=True))
        data["alg"] = self.alg
        return data

    def thumbprint(self) -> str:
        """Return the RFC 7638 SHA-256 thumbprint of the public key."""
        return self.key.thumbprint()

    def sign(self, claims: Mapping[str, Any], *, typ: str, header: Mapping[str, Any] = {}) -> str:
        """Sign `claims` as a compact JWS with this key's alg and kid."""
        head = {"alg": self.alg, "typ": typ, "kid": self.kid, **header}
        return jwt.encode(head, dict(claims), self.key, algorithms=[self.alg])

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r}, alg={self.alg!r}, private=<hidden>)"

    __str__ = __repr__


def load_or_create_dev_key(folder: Path, *, name: str = "signing") -> SigningKey:
    """Load `folder/dev-<name>.jwk.json`, creating a fresh development key there if missing."""
    path = folder / f"{DEV_KEY_MARKER}-{name}.jwk.json"
    if path.exists():
        key = SigningKey.from_jwk(orjson.loads(path.read_bytes()))
        if not key.is_development:
            raise ValueError(f"{path} does not hold a development key")
        return key
    folder.mkdir(parents=True, exist_ok=True)
    key = SigningKey.generate(kid=f"{DEV_KEY_MARKER}-{name}-{secrets.token_hex(4)}")
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(orjson.dumps(key.private_jwk()))
    os.replace(tmp, path)
    return key


def require_usable_key(key: SigningKey, *, dev_mode: bool) -> SigningKey:
    """Return `key`, or raise if it is a development key and dev mode is off."""
    if key.is_development and not dev_mode:
        raise DevelopmentKeyRefused(
            f"refusing development signing key {key.kid!r}: start with dev_mode=True (--dev) "
            "or configure a production key"
        )
    return key


class KeyProvider(Protocol):
    """Where a verifier finds the public key for a kid."""

    async def key_for(self, kid: str | None) -> Key:
        """Return the public key for `kid`, or raise InvalidToken."""
        ...


def _pick(keys: Mapping[str, Key], kid: str | None) -> Key | None:
    if kid is None:
        return next(iter(keys.values())) if len(keys) == 1 else None
    return keys.get(kid)


def _parse_jwks(document: Any) -> dict[str, Key]:
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise InvalidToken("JWKS is not a JSON object with a keys array")
    keys: dict[str, Key] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, Mapping) or jwk.get("kty") not in ("EC", "RSA"):
            continue
        key = import_public_jwk({k: v for k, v in jwk.items() if k not in _PRIVATE_MEMBERS})
        keys[str(key.kid or key.thumbprint())] = key
    return keys


class StaticJwks:
    """A fixed set of public keys (tests, or a key configured by hand)."""

    def __init__(self, keys: Iterable[Key | SigningKey | Mapping[str, Any]]) -> None:
        self._keys: dict[str, Key] = {}
        for item in keys:
            if isinstance(item, SigningKey):
                key = import_public_jwk(item.public_jwk())
            elif isinstance(item, ECKey | RSAKey):
                key = import_public_jwk(item.as_dict(private=False))
            else:
                key = import_public_jwk(item)
            self._keys[str(key.kid or key.thumbprint())] = key

    async def key_for(self, kid: str | None) -> Key:
        key = _pick(self._keys, kid)
        if key is None:
            raise InvalidToken("unknown signing key (kid)")
        return key


@dataclass
class RemoteJwks:
    """An issuer's JWKS fetched over HTTP, cached for `ttl` seconds.

    An unknown kid triggers one refresh (the issuer may have rotated), but at most once per
    `min_refresh_interval` seconds so forged kids cannot make us hammer the issuer.
    """

    url: str
    client: httpx.AsyncClient
    ttl: float = 300.0
    min_refresh_interval: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _keys: dict[str, Key] = field(default_factory=dict, init=False)
    _fetched_at: float | None = field(default=None, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    fetch_count: int = field(default=0, init=False)

    async def _refresh(self) -> None:
        try:
            response = await self.client.get(self.url, timeout=10)
            response.raise_for_status()
            keys = _parse_jwks(response.json())
        except (httpx.HTTPError, ValueError) as exc:
            raise InvalidToken(f"cannot fetch the issuer's keys from {self.url}") from exc
        finally:
            self._fetched_at = self.clock()
            self.fetch_count += 1
        self._keys = keys

    async def key_for(self, kid: str | None) -> Key:
        async with self._lock:
            now = self.clock()
            if self._fetched_at is None or now - self._fetched_at > self.ttl:
                await self._refresh()
            key = _pick(self._keys, kid)
            if key is None and self._fetched_at is not None:
                if now - self._fetched_at >= self.min_refresh_interval:
                    await self._refresh()
                    key = _pick(self._keys, kid)
        if key is None:
            raise InvalidToken("unknown signing key (kid)")
        return key


async def verify_signed_jwt(
    token: str, *, keys: KeyProvider, accepted_typ: frozenset[str], what: str
) -> dict[str, Any]:
    """Check a compact JWS's shape, typ and asymmetric alg, verify it with `keys`, return claims.

    Every token kind (access token, hub assertion, publish proof) starts with these checks, in
    this order, so that a malformed token costs no key lookup; the claims are each kind's own
    business. References: RFC 7515 §5.2, RFC 8725 §3.1, §3.11; `trust.jose`.
    """
    unverified = parse_compact(token, what=what)
    if unverified.header.typ not in accepted_typ:
        raise InvalidToken(f"{what} typ must be {' or '.join(sorted(accepted_typ))}")
    key = await keys.key_for(unverified.header.kid)
    verify_signature(unverified, key, what=what)
    return unverified.claims
