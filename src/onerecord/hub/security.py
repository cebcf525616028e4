"""The hub's side of the trust framework: check the caller's ticket, sign assertions to regions.

The hub validates the caller's DPoP-bound access token exactly as a source does
(`authenticate_request`), checks that a health worker's attestation is bound to the patient
asked about, and then asks each region with a short-lived hub assertion (one per call, its own
jti, audience = that region) carrying the caller's identity, attestation and patient headers.
Regions trust the hub's key from `/jwks` and still recompute the patient binding themselves.

References: IHE ITI TF-2 3.40 (XUA, initiating gateway asserts the user); RFC 9449 §7.1 (DPoP
scheme); RFC 6750 §3 (WWW-Authenticate); TRUST-FRAMEWORK §2.3, §3.2, §8; ATT-4, ATT-6.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from onerecord.domain import (
    DNR_SYSTEM,
    FNR_SYSTEM,
    HNR_SYSTEM,
    InvalidIdentifier,
    NationalIdentityNumber,
)
from onerecord.hub.directory import Region
from onerecord.hub.settings import HubSettings
from onerecord.trust.access_token import (
    SECURITY_LEVEL_CLAIM,
    AccessTokenClaims,
    AuthSettings,
    Citizen,
    HealthPersonnel,
    Principal,
    authenticate_request,
)
from onerecord.trust.assertion import (
    ASSERTED_CLAIMS,
    HUB_ASSERTION_HEADER,
    mint_hub_assertion,
)
from onerecord.trust.errors import DevelopmentKeyRefused, PatientBindingFailed
from onerecord.trust.keys import (
    KeyProvider,
    RemoteJwks,
    SigningKey,
    load_or_create_dev_key,
    require_usable_key,
)
from onerecord.trust.patient_binding import (
    PATIENT_NIN_HEADER,
    PATIENT_SALT_HEADER,
    verify_binding,
)
from onerecord.trust.replay import MemoryReplayCache, RedisReplayCache, ReplayCache
from onerecord.xca.relay import XUA_ASSERTION_HEADER, relay_digest

__all__ = [
    "DeferredAssertionAuth",
    "HubAssertionAuth",
    "RelayedXuaAuth",
    "HubSecurity",
    "check_patient",
    "deferred_identity",
    "load_hub_key",
    "principal_identity",
]

# Fødselsnummer, D-number and H-number (TRUST-FRAMEWORK §1: identifier systems …4.1.4.1–3).
_FNR_SYSTEMS = tuple(f"urn:oid:{s}" for s in (FNR_SYSTEM, DNR_SYSTEM, HNR_SYSTEM))


def load_hub_key(settings: HubSettings) -> SigningKey:
    """Return the hub's assertion signing key; a development key only in dev mode."""
    if settings.key_file is not None:
        import orjson

        key = SigningKey.from_jwk(orjson.loads(settings.key_file.read_bytes()))
    elif settings.dev_mode:
        key = load_or_create_dev_key(settings.key_dir, name="hub")
    else:
        # Refused before anything is written: a development key is never created outside dev.
        raise DevelopmentKeyRefused("no key_file configured and dev_mode is off")
    return require_usable_key(key, dev_mode=settings.dev_mode)


def principal_identity(principal: Principal) -> str:
    """Return the stable identity snapshots are bound to: issuer, subject and token key."""
    claims = principal.claims
    return f"{claims.issuer}|{claims.subject}|{claims.jkt}"


def _patient_in_query(params: list[tuple[str, str]]) -> str | None:
    for name, value in params:
        if name in ("patient.identifier", "patient"):
            system, _, nin = value.rpartition("|")
            if system in _FNR_SYSTEMS or (not system and nin.isdigit()):
                return nin
    return None


def check_patient(
    principal: Principal,
    params: list[tuple[str, str]],
    headers: Mapping[str, str],
) -> str | None:
    """Refuse a search for a patient the caller's ticket is not about; return the patient.

    Health personnel: the query's patient must be the `nhn-patient-nin` header, bound by the
    attestation's digest (ATT-4, ATT-6). Citizens: themselves or a person they represent.
    The regions check again with their own policy; this stops a mismatch at the door.
    """
    asked = _patient_in_query(params)
    if isinstance(principal, HealthPersonnel):
        nin = headers.get(PATIENT_NIN_HEADER)
        salt = headers.get(PATIENT_SALT_HEADER)
        if not nin or not salt:
            raise PatientBindingFailed(
                f"{PATIENT_NIN_HEADER} and {PATIENT_SALT_HEADER} are required (ATT-6)"
            )
        verify_binding(principal.attestation, nin, salt)
        if asked is not None and asked != nin:
            raise PatientBindingFailed("the query names another patient than the ticket (ATT-4)")
        return nin
    assert isinstance(principal, Citizen)
    if asked is None:
        return None
    allowed = {principal.nin.value, *(r.person.value for r in principal.representation)}
    try:
        NationalIdentityNumber(asked)
    except InvalidIdentifier:
        return asked  # the query parser answers 400
    if asked not in allowed:
        raise PatientBindingFailed("citizens see their own documents or those they represent")
    return asked


@dataclass
class HubAssertionAuth:
    """RegionAuth of one request: a fresh hub assertion per region call, patient headers copied."""

    key: SigningKey
    issuer: str
    principal: Principal
    correlation_id: str
    patient_nin: str | None = None
    patient_salt: str | None = None
    lifetime: int = 60
    clock: Callable[[], float] = time.time
    minted: int = field(default=0, init=False)

    async def headers_for(self, region: Region, method: str, url: str) -> dict[str, str]:
        self.minted += 1
        token = mint_hub_assertion(
            key=self.key,
            issuer=self.issuer,
            audience=region.audience,
            claims=self.principal.claims,
            patient_nin=self.patient_nin,
            patient_salt=self.patient_salt,
            correlation_id=self.correlation_id,
            now=self.clock(),
            lifetime=self.lifetime,
        )
        headers = {HUB_ASSERTION_HEADER: token}
        if self.patient_nin:
            headers[PATIENT_NIN_HEADER] = self.patient_nin
        if self.patient_salt:
            headers[PATIENT_SALT_HEADER] = self.patient_salt
        return headers


@dataclass
class RelayedXuaAuth:
    """RegionAuth of an XDS.b caller (ITI-18/43 at the hub): the caller's own SAML assertion
    relayed with a hub assertion that names it (`xca/relay.py`, docs/xca.md "Trust at the hub").

    The hub assertion carries only the caller's subject, security level and the patient (no
    attestation): the region takes the caller and `resource-id` from the relayed assertion,
    verified with its own trusted issuers, so it trusts the hub for neither.
    """

    key: SigningKey
    issuer: str
    subject: str
    security_level: str
    assertion_id: str
    saml_issuer: str
    relayed: str
    """The `onerecord-xua-assertion` header value (`encode_relayed`)."""
    correlation_id: str
    patient_nin: str | None
    lifetime: int = 60
    clock: Callable[[], float] = time.time

    async def headers_for(self, region: Region, method: str, url: str) -> dict[str, str]:
        claims = AccessTokenClaims(
            issuer=self.saml_issuer,
            audience=region.audience,
            subject=self.subject,
            jti=self.assertion_id,
            issued_at=0,
            expires_at=0,
            jkt="",
            client_id=None,
            scope=frozenset(),
            pid=None,
            security_level=self.security_level,
            acr=None,
            toa=None,
            raw={"sub": self.subject, SECURITY_LEVEL_CLAIM: self.security_level},
        )
        token = mint_hub_assertion(
            key=self.key,
            issuer=self.issuer,
            audience=region.audience,
            claims=claims,
            patient_nin=self.patient_nin,
            patient_salt=None,
            correlation_id=self.correlation_id,
            now=self.clock(),
            lifetime=self.lifetime,
            relayed_xua=relay_digest(self.relayed),
        )
        headers = {HUB_ASSERTION_HEADER: token, XUA_ASSERTION_HEADER: self.relayed}
        if self.patient_nin:
            headers[PATIENT_NIN_HEADER] = self.patient_nin
        return headers


def deferred_identity(auth: object) -> dict[str, Any] | None:
    """What the hub keeps to assert a citizen again later: the claims an assertion copies, and
    the token's issuer, subject, jti and key thumbprint. None without a verified caller."""
    if not isinstance(auth, HubAssertionAuth):
        return None
    claims = auth.principal.claims
    return {
        "iss": claims.issuer,
        "sub": claims.subject,
        "jti": claims.jti,
        "jkt": claims.jkt,
        "claims": {k: claims.raw[k] for k in ASSERTED_CLAIMS if k in claims.raw},
    }


@dataclass
class DeferredAssertionAuth:
    """RegionAuth of a change re-sent from the outbox: a fresh assertion of the citizen who made
    it, marked `deferred_since` (docs/policy.md "Deferred control changes")."""

    key: SigningKey
    issuer: str
    identity: Mapping[str, Any]
    correlation_id: str
    deferred_since: int
    lifetime: int = 60
    clock: Callable[[], float] = time.time

    async def headers_for(self, region: Region, method: str, url: str) -> dict[str, str]:
        raw = dict(self.identity.get("claims") or {})
        claims = AccessTokenClaims(
            issuer=str(self.identity["iss"]),
            audience=region.audience,
            subject=str(self.identity["sub"]),
            jti=str(self.identity["jti"]),
            issued_at=0,
            expires_at=0,
            jkt=str(self.identity.get("jkt") or ""),
            client_id=None,
            scope=frozenset(),
            pid=None,
            security_level=None,
            acr=None,
            toa=None,
            raw=raw,
        )
        token = mint_hub_assertion(
            key=self.key,
            issuer=self.issuer,
            audience=region.audience,
            claims=claims,
            patient_nin=None,
            patient_salt=None,
            correlation_id=self.correlation_id,
            now=self.clock(),
            lifetime=self.lifetime,
            deferred_since=self.deferred_since,
        )
        return {HUB_ASSERTION_HEADER: token}


class HubSecurity:
    """What the hub trusts (issuer, keys, replay cache) and what it signs with."""

    def __init__(
        self,
        *,
        auth: AuthSettings,
        keys: KeyProvider,
        replay: ReplayCache,
        signing_key: SigningKey,
        assertion_issuer: str,
        public_base_url: str,
        assertion_lifetime: int = 60,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.auth = auth
        self.keys = keys
        self.replay = replay
        self.signing_key = signing_key
        self.assertion_issuer = assertion_issuer
        self.public_base_url = public_base_url.rstrip("/")
        self.assertion_lifetime = assertion_lifetime
        self.clock = clock
        self._http: httpx.AsyncClient | None = None

    @classmethod
    def from_settings(cls, settings: HubSettings) -> HubSecurity:
        """Build from HubSettings: remote JWKS of the issuer, memory or Redis replay cache."""
        if not settings.issuer:
            raise ValueError("the hub needs --issuer (or --dev-open-access in development)")
        http = httpx.AsyncClient()
        jwks_url = settings.jwks_url or f"{settings.issuer}/jwks"
        replay: ReplayCache = (
            RedisReplayCache.from_url(settings.redis_url)
            if settings.redis_url
            else MemoryReplayCache()
        )
        security = cls(
            auth=AuthSettings(issuer=settings.issuer, audience=settings.audience),
            keys=RemoteJwks(jwks_url, http),
            replay=replay,
            signing_key=load_hub_key(settings),
            assertion_issuer=settings.assertion_issuer,
            public_base_url=settings.public_base_url,
            assertion_lifetime=settings.assertion_lifetime_s,
        )
        security._http = http
        return security

    def jwks(self) -> dict[str, list[dict[str, object]]]:
        """Return the hub's public JWK Set (what sources fetch to trust the hub)."""
        return {"keys": [self.signing_key.public_jwk()]}

    async def authenticate(
        self, *, method: str, path: str, headers: Mapping[str, str]
    ) -> Principal:
        """Validate `Authorization: DPoP …` and its proof for this request URL."""
        return await authenticate_request(
            authorization_header=headers.get("authorization"),
            dpop_header=headers.get("dpop"),
            method=method,
            url=f"{self.public_base_url}{path}",
            keys=self.keys,
            replay=self.replay,
            settings=self.auth,
            now=self.clock(),
        )

    def region_auth(
        self,
        principal: Principal,
        *,
        correlation_id: str,
        patient_nin: str | None,
        patient_salt: str | None,
    ) -> HubAssertionAuth:
        """Return the RegionAuth that asserts this principal to each region."""
        return HubAssertionAuth(
            key=self.signing_key,
            issuer=self.assertion_issuer,
            principal=principal,
            correlation_id=correlation_id,
            patient_nin=patient_nin,
            patient_salt=patient_salt,
            lifetime=self.assertion_lifetime,
            clock=self.clock,
        )

    def relayed_auth(
        self,
        *,
        subject: str,
        security_level: str,
        assertion_id: str,
        saml_issuer: str,
        relayed: str,
        correlation_id: str,
        patient_nin: str | None,
    ) -> RelayedXuaAuth:
        """Return the RegionAuth that relays an XDS.b caller's own SAML assertion."""
        return RelayedXuaAuth(
            key=self.signing_key,
            issuer=self.assertion_issuer,
            subject=subject,
            security_level=security_level,
            assertion_id=assertion_id,
            saml_issuer=saml_issuer,
            relayed=relayed,
            correlation_id=correlation_id,
            patient_nin=patient_nin,
            lifetime=self.assertion_lifetime,
            clock=self.clock,
        )

    def deferred_auth(
        self, identity: Mapping[str, Any], *, correlation_id: str, since: float
    ) -> DeferredAssertionAuth:
        """Return the RegionAuth that re-asserts a citizen's accepted control change."""
        return DeferredAssertionAuth(
            key=self.signing_key,
            issuer=self.assertion_issuer,
            identity=identity,
            correlation_id=correlation_id,
            deferred_since=int(since),
            lifetime=self.assertion_lifetime,
            clock=self.clock,
        )

    async def aclose(self) -> None:
        """Close the JWKS client and the Redis pool, if any."""
        if self._http is not None:
            await self._http.aclose()
        if isinstance(self.replay, RedisReplayCache):
            await self.replay.aclose()
