"""Access tokens (RFC 9068 JWT profile, DPoP-bound) and the whole check of an API request.

Assurance decision (TRUST-FRAMEWORK §2.3, ATT-9, E13): health personnel need
`helseid://claims/identity/security_level` = "4" (as HelseID issues it); citizens need
`acr` = "idporten-loa-high" or security_level "4" (ID-porten's and helsenorge's spelling of the
same level). Anything less → InsufficientAssurance (403).

References: RFC 9068 §2 (claims), §4 (validation, typ at+jwt; HelseID also sends "jwt", B6);
RFC 9449 §6.1 (cnf.jkt), §7.1 (DPoP scheme); RFC 6750 §3 (WWW-Authenticate); ATT-58 (toa).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from onerecord.domain import (
    Coding,
    HprNumber,
    InvalidIdentifier,
    NationalIdentityNumber,
)
from onerecord.trust.attestation import (
    ATTESTATION_TYPE,
    Attestation,
    AttestIdentifier,
    parse_attestation_claim,
)
from onerecord.trust.dpop import DPoPProof, verify_proof
from onerecord.trust.errors import (
    AttestationExpired,
    InsufficientAssurance,
    InvalidAuthorizationDetails,
    InvalidToken,
)
from onerecord.trust.jose import numeric_date
from onerecord.trust.keys import KeyProvider, SigningKey, verify_signed_jwt
from onerecord.trust.principal import (
    CitizenContext,
    HealthPersonnelContext,
    Organisation,
    RelationKind,
    Representation,
)
from onerecord.trust.replay import ReplayCache

__all__ = [
    "ACCESS_TOKEN_TYP",
    "ATTESTATION_MAX_AGE",
    "CITIZEN_ACR",
    "HPR_NUMBER_CLAIM",
    "PID_CLAIM",
    "REPRESENTATION_CLAIM",
    "SECURITY_LEVEL_CLAIM",
    "AccessTokenClaims",
    "AuthSettings",
    "AuthenticatedRequest",
    "Citizen",
    "HealthPersonnel",
    "Principal",
    "authenticate_request",
    "authenticate_request_with_proof",
    "check_assurance",
    "issue_access_token",
    "principal_from_claims",
    "token_log_id",
    "validate_access_token",
]

ACCESS_TOKEN_TYP = "at+jwt"
_ACCEPTED_TYP = frozenset({"at+jwt", "application/at+jwt", "jwt", "JWT"})
SECURITY_LEVEL_CLAIM = "helseid://claims/identity/security_level"
PID_CLAIM = "helseid://claims/identity/pid"
HPR_NUMBER_CLAIM = "helseid://claims/hpr/hpr_number"
REPRESENTATION_CLAIM = "onerecord:representation"
CITIZEN_ACR = "idporten-loa-high"
ATTESTATION_MAX_AGE = 3600
"""ATT-58: an attestation older than 60 minutes is refused ("attestation_has_expired")."""


@dataclass(frozen=True, slots=True)
class AccessTokenClaims:
    """The validated claims of an access token; `raw` keeps every claim for policy."""

    issuer: str
    audience: str
    subject: str
    jti: str
    issued_at: int
    expires_at: int
    jkt: str
    client_id: str | None
    scope: frozenset[str]
    pid: str | None
    security_level: str | None
    acr: str | None
    toa: int | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)


def token_log_id(claims: AccessTokenClaims) -> str:
    """Return what may be logged about a token: its jti, never the token itself."""
    return claims.jti


def issue_access_token(
    *,
    key: SigningKey,
    issuer: str,
    audience: str,
    subject: str,
    jkt: str,
    scope: Sequence[str],
    now: int,
    lifetime: int = 600,
    client_id: str | None = None,
    claims: Mapping[str, Any] | None = None,
    jti: str | None = None,
) -> str:
    """Sign an RFC 9068 access token bound to the DPoP key `jkt` (typ at+jwt, one aud)."""
    body: dict[str, Any] = {
        **(claims or {}),
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "jti": jti or secrets.token_urlsafe(16),
        "scope": " ".join(scope),
        "cnf": {"jkt": jkt},
    }
    if client_id is not None:
        body["client_id"] = client_id
    return key.sign(body, typ=ACCESS_TOKEN_TYP)


def _int_claim(claims: Mapping[str, Any], name: str, *, required: bool) -> int | None:
    return numeric_date(claims, name, what="access token", required=required)


def _scope(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return frozenset(value)
    return frozenset()


def check_assurance(
    claims: Mapping[str, Any],
    *,
    toa: int | None,
    now: float,
    skew: float,
    attestation_max_age: int = ATTESTATION_MAX_AGE,
) -> tuple[str | None, str | None]:
    """Check the login assurance and attestation age of any token kind; return (level, acr).

    Health personnel (an attestation is present) need security level 4 and a `toa` at most
    60 minutes old; citizens need level 4 or `acr` idporten-loa-high.
    References: ATT-9, ATT-58 (A14, A19, A20, E13); TRUST-FRAMEWORK §8 (`toa`).
    """
    level = claims.get(SECURITY_LEVEL_CLAIM)
    level = str(level) if level is not None else None
    acr = claims.get("acr") if isinstance(claims.get("acr"), str) else None
    if claims.get(ATTESTATION_TYPE) is not None:
        if level != "4":
            raise InsufficientAssurance("health personnel must log in at security level 4")
        if toa is None:
            raise InvalidToken("an attested token needs toa")
        if toa > now + skew:
            raise InvalidToken("toa lies in the future")
        if now - toa > attestation_max_age:
            raise AttestationExpired()
    elif level != "4" and acr != CITIZEN_ACR:
        raise InsufficientAssurance("citizens must log in at level 4 (idporten-loa-high)")
    return level, acr


async def validate_access_token(
    token: str,
    *,
    keys: KeyProvider,
    issuer: str,
    audience: str,
    now: float,
    skew: float = 300,
    attestation_max_age: int = ATTESTATION_MAX_AGE,
) -> AccessTokenClaims:
    """Validate signature, typ, iss, one aud, lifetimes, cnf.jkt, assurance and toa.

    References: RFC 9068 §4; TRUST-FRAMEWORK §2.3 (API validation), B5, B6, A19, A20.
    """
    claims = await verify_signed_jwt(
        token, keys=keys, accepted_typ=_ACCEPTED_TYP, what="access token"
    )

    if claims.get("iss") != issuer:
        raise InvalidToken("access token issuer is not trusted")
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    if len(auds) != 1 or auds[0] != audience:
        raise InvalidToken("access token must have exactly one audience, this service")
    exp = _int_claim(claims, "exp", required=True)
    iat = _int_claim(claims, "iat", required=True)
    nbf = _int_claim(claims, "nbf", required=False)
    assert exp is not None and iat is not None
    if now > exp + skew:
        raise InvalidToken("access token has expired")
    if nbf is not None and now + skew < nbf:
        raise InvalidToken("access token is not valid yet (nbf)")
    if iat > now + skew:
        raise InvalidToken("access token was issued in the future (iat)")
    jti, sub = claims.get("jti"), claims.get("sub")
    if not isinstance(jti, str) or not jti or not isinstance(sub, str) or not sub:
        raise InvalidToken("access token needs jti and sub")
    cnf = claims.get("cnf")
    jkt = cnf.get("jkt") if isinstance(cnf, Mapping) else None
    if not isinstance(jkt, str) or not jkt:
        raise InvalidToken("access token is not DPoP-bound (cnf.jkt missing)")

    toa = _int_claim(claims, "toa", required=claims.get(ATTESTATION_TYPE) is not None)
    level, acr = check_assurance(
        claims, toa=toa, now=now, skew=skew, attestation_max_age=attestation_max_age
    )

    pid = claims.get(PID_CLAIM)
    client_id = claims.get("client_id")
    return AccessTokenClaims(
        issuer=issuer,
        audience=audience,
        subject=sub,
        jti=jti,
        issued_at=iat,
        expires_at=exp,
        jkt=jkt,
        client_id=client_id if isinstance(client_id, str) else None,
        scope=_scope(claims.get("scope")),
        pid=pid if isinstance(pid, str) else None,
        security_level=level,
        acr=acr,
        toa=toa,
        raw=claims,
    )


def _organisation(ident: AttestIdentifier | None) -> Organisation | None:
    return None if ident is None else Organisation(ident.id, ident.name, ident.system)


@dataclass(frozen=True, slots=True)
class HealthPersonnel:
    """A health worker: validated token and the attestation it carries."""

    claims: AccessTokenClaims
    attestation: Attestation
    nin: NationalIdentityNumber

    def context(self) -> HealthPersonnelContext:
        """Return the access policy's view of this caller."""
        p, c = self.attestation.practitioner, self.attestation.care_relationship
        hpr = p.hpr_nr.id if p.hpr_nr else self.claims.raw.get(HPR_NUMBER_CLAIM)
        name = p.identifier.name if p.identifier and p.identifier.name else ""
        legal_entity = _organisation(p.legal_entity)
        point_of_care = _organisation(p.point_of_care)
        assert legal_entity is not None and point_of_care is not None
        return HealthPersonnelContext(
            practitioner_nin=self.nin,
            name=name,
            legal_entity=legal_entity,
            point_of_care=point_of_care,
            decision_ref_id=c.decision_ref.id,
            purpose_of_use=c.purpose_of_use.code,
            hpr=HprNumber(str(hpr)) if hpr else None,
            roles=(p.authorization.code,) if p.authorization else (),
            scope=self.claims.scope,
            department=_organisation(p.department),
            healthcare_service=(
                Coding(
                    c.healthcare_service.system,
                    c.healthcare_service.code,
                    c.healthcare_service.text,
                )
                if c.healthcare_service
                else None
            ),
            purpose_details=(
                Coding(
                    c.purpose_of_use_details.system,
                    c.purpose_of_use_details.code,
                    c.purpose_of_use_details.text,
                )
                if c.purpose_of_use_details
                else None
            ),
            decision_user_selected=c.decision_ref.user_selected,
            emergency=self.attestation.emergency,
            security_level=int(self.claims.security_level or 0),
        )


@dataclass(frozen=True, slots=True)
class Citizen:
    """A citizen: own identity number and the persons the STS says they may act for."""

    claims: AccessTokenClaims
    nin: NationalIdentityNumber
    representation: tuple[Representation, ...] = ()

    def context(self) -> CitizenContext:
        """Return the access policy's view of this caller."""
        return CitizenContext(nin=self.nin, acr_level=4, representations=self.representation)


Principal = HealthPersonnel | Citizen


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """What a resource server (hub or source) trusts: issuer, its own audience, clock slack."""

    issuer: str
    audience: str
    skew: float = 300
    dpop_max_age: float = 60
    dpop_skew: float = 5
    attestation_max_age: int = ATTESTATION_MAX_AGE


@dataclass(frozen=True, slots=True)
class AuthenticatedRequest:
    """The outcome of authenticate_request when the proof is wanted too."""

    principal: Principal
    proof: DPoPProof


def _nin(value: Any, what: str) -> NationalIdentityNumber:
    try:
        return NationalIdentityNumber(str(value))
    except InvalidIdentifier:
        raise InvalidToken(f"{what} is not a national identity number") from None


def _representation(value: Any) -> tuple[Representation, ...]:
    if not isinstance(value, list):
        raise InvalidToken(f"{REPRESENTATION_CLAIM} must be an array")
    out = []
    for item in value:
        if not isinstance(item, Mapping):
            raise InvalidToken(f"{REPRESENTATION_CLAIM} entries must be objects")
        try:
            relation = RelationKind(str(item.get("relation")))
        except ValueError:
            raise InvalidToken(f"{REPRESENTATION_CLAIM} has an unknown relation") from None
        out.append(Representation(_nin(item.get("nin"), "represented person"), relation))
    return tuple(out)


def principal_from_claims(claims: AccessTokenClaims) -> Principal:
    """Return HealthPersonnel (attestation present) or Citizen (representation claim present)."""
    if claims.pid is None:
        raise InvalidToken(f"access token has no {PID_CLAIM}")
    nin = _nin(claims.pid, "pid")
    attest = claims.raw.get(ATTESTATION_TYPE)
    rep = claims.raw.get(REPRESENTATION_CLAIM)
    if attest is not None and rep is not None:
        raise InvalidToken("access token is both a health-personnel and a citizen token")
    if attest is not None:
        try:
            attestation = parse_attestation_claim(attest)
        except InvalidAuthorizationDetails as exc:
            raise InvalidToken(f"attestation in token: {exc.description}") from None
        attestation = replace(attestation, toa=claims.toa)
        ident = attestation.practitioner.identifier
        if ident is not None and ident.id != nin.value:
            raise InvalidToken("attestation practitioner is not the token's user (ATT-11)")
        return HealthPersonnel(claims, attestation, nin)
    if rep is not None:
        return Citizen(claims, nin, _representation(rep))
    raise InvalidToken("access token carries neither an attestation nor citizen claims")


async def authenticate_request(
    *,
    authorization_header: str | None,
    dpop_header: str | None,
    method: str,
    url: str,
    keys: KeyProvider,
    replay: ReplayCache,
    settings: AuthSettings,
    now: float | None = None,
) -> Principal:
    """Check `Authorization: DPoP <token>` and its proof; return who is calling.

    References: RFC 9449 §7.1 (DPoP scheme, proof with ath), B1–B4; RFC 9068 §4.
    """
    return (
        await authenticate_request_with_proof(
            authorization_header=authorization_header,
            dpop_header=dpop_header,
            method=method,
            url=url,
            keys=keys,
            replay=replay,
            settings=settings,
            now=now,
        )
    ).principal


async def authenticate_request_with_proof(
    *,
    authorization_header: str | None,
    dpop_header: str | None,
    method: str,
    url: str,
    keys: KeyProvider,
    replay: ReplayCache,
    settings: AuthSettings,
    now: float | None = None,
) -> AuthenticatedRequest:
    """Like authenticate_request, and also return the verified DPoP proof."""
    now = time.time() if now is None else now
    if not authorization_header:
        raise InvalidToken("no access token (Authorization: DPoP <token>)", error="invalid_request")
    scheme, _, token = authorization_header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "dpop":
        raise InvalidToken("access token is DPoP-bound: use the DPoP scheme with a DPoP proof")
    if not token or " " in token:
        raise InvalidToken("malformed Authorization header", error="invalid_request")
    if not dpop_header:
        raise InvalidToken("DPoP proof header is missing", error="invalid_dpop_proof")
    claims = await validate_access_token(
        token,
        keys=keys,
        issuer=settings.issuer,
        audience=settings.audience,
        now=now,
        skew=settings.skew,
        attestation_max_age=settings.attestation_max_age,
    )
    proof = await verify_proof(
        dpop_header,
        htm=method.upper(),
        htu=url,
        access_token=token,
        jkt=claims.jkt,
        now=now,
        replay=replay,
        max_age=settings.dpop_max_age,
        skew=settings.dpop_skew,
    )
    return AuthenticatedRequest(principal_from_claims(claims), proof)
