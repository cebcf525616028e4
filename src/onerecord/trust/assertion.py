"""The hub-signed assertion: the JWT analogue of the XUA SAML assertion the hub sends a region.

The national hub validates the caller's DPoP-bound access token once, then asks each region on
the caller's behalf with a short-lived assertion it signs itself (typ `hub-assertion+jwt`):

    iss            the hub's id               aud            the region's audience (one value)
    iat, exp       exp - iat <= 60 s          jti            its own, single use at the region
    original_jti   the caller's token jti     original_iss   the caller's token issuer
    correlation_id the hub request id         patient        {"nin": ..., "salt": ...} or absent
    deferred_since when the hub accepted a control change it re-sends from its outbox, else absent
    xua_sha256     the digest of the caller's own SAML assertion the hub relays with it (XDS.b
                   callers, `onerecord.xca.relay`), else absent

and the caller's identity (`sub`, pid, HPR number), assurance (security level, acr), `scope`,
`toa`, `client_id`, attestation (`nhn:tillitsrammeverk:parameters`) and representation claims
copied over unchanged. The hub sends it in the `onerecord-hub-assertion` header (no Authorization
header) with the patient headers `nhn-patient-nin` and `onerecord-patient-salt` copied from the
caller. The region recomputes the patient digest from those headers against the attestation's
`identifier_digest` itself ("sources never trust the hub blindly for the patient binding"), and
refuses an assertion whose `patient` differs from the headers.

References: IHE ITI TF-2 3.40 (XUA: the initiating gateway asserts the user to the responding
gateway); TRUST-FRAMEWORK §3.2 (attributes carried to the source), §8 (hub binds the patient);
RFC 7519 §4.1 (registered claims); ATT-58 (toa at most 60 minutes old).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from onerecord.trust.access_token import (
    ATTESTATION_MAX_AGE,
    HPR_NUMBER_CLAIM,
    PID_CLAIM,
    REPRESENTATION_CLAIM,
    SECURITY_LEVEL_CLAIM,
    AccessTokenClaims,
    AuthSettings,
    check_assurance,
)
from onerecord.trust.attestation import ATTESTATION_TYPE
from onerecord.trust.errors import (
    InvalidToken,
    PatientBindingFailed,
)
from onerecord.trust.jose import numeric_date
from onerecord.trust.keys import KeyProvider, SigningKey, verify_signed_jwt
from onerecord.trust.patient_binding import PATIENT_NIN_HEADER, PATIENT_SALT_HEADER
from onerecord.trust.replay import ReplayCache

__all__ = [
    "ASSERTED_CLAIMS",
    "HUB_ASSERTION_HEADER",
    "HUB_ASSERTION_MAX_LIFETIME",
    "HUB_ASSERTION_TYP",
    "assertion_patient",
    "check_assertion_patient",
    "mint_hub_assertion",
    "verify_hub_assertion",
    "verify_hub_request",
]

HUB_ASSERTION_TYP = "hub-assertion+jwt"
HUB_ASSERTION_HEADER = "onerecord-hub-assertion"
HUB_ASSERTION_MAX_LIFETIME = 60
"""An assertion lives at most 60 seconds: it covers one fan-out, not a session."""

_COPIED_CLAIMS = (
    "sub",
    "client_id",
    "scope",
    "toa",
    "acr",
    "name",
    PID_CLAIM,
    HPR_NUMBER_CLAIM,
    SECURITY_LEVEL_CLAIM,
    ATTESTATION_TYPE,
    REPRESENTATION_CLAIM,
)

ASSERTED_CLAIMS = _COPIED_CLAIMS
"""The caller's claims an assertion carries over unchanged (what a deferred change keeps)."""


def mint_hub_assertion(
    *,
    key: SigningKey,
    issuer: str,
    audience: str,
    claims: AccessTokenClaims,
    patient_nin: str | None,
    patient_salt: str | None,
    correlation_id: str,
    now: float,
    lifetime: int = HUB_ASSERTION_MAX_LIFETIME,
    deferred_since: int | None = None,
    relayed_xua: str | None = None,
) -> str:
    """Sign an assertion of the caller's validated token for one region (typ hub-assertion+jwt).

    `relayed_xua`: the hub relays the caller's own SAML assertion in the
    `onerecord-xua-assertion` header (`xca/relay.py`); the claim `xua_sha256` names it, and the
    region then takes the caller and the patient from that assertion, verified itself.

    `deferred_since`: the hub re-sends a citizen's control change it accepted at that time (its
    outbox, docs/policy.md "Deferred control changes"); the claim `deferred_since` says so.
    """
    if not 0 < lifetime <= HUB_ASSERTION_MAX_LIFETIME:
        raise ValueError(f"lifetime must be 1..{HUB_ASSERTION_MAX_LIFETIME} seconds")
    iat = int(now)
    body: dict[str, Any] = {k: claims.raw[k] for k in _COPIED_CLAIMS if k in claims.raw}
    body.update(
        iss=issuer,
        aud=audience,
        iat=iat,
        exp=iat + lifetime,
        jti=secrets.token_urlsafe(16),
        original_jti=claims.jti,
        original_iss=claims.issuer,
        correlation_id=correlation_id,
        cnf={"jkt": claims.jkt},
    )
    body.setdefault("sub", claims.subject)
    if patient_nin is not None:
        body["patient"] = {"nin": patient_nin, "salt": patient_salt}
    if deferred_since is not None:
        body["deferred_since"] = deferred_since
    if relayed_xua is not None:
        body["xua_sha256"] = relayed_xua
    return key.sign(body, typ=HUB_ASSERTION_TYP)


def _number(claims: Mapping[str, Any], name: str) -> int:
    value = numeric_date(claims, name, what="hub assertion")
    assert value is not None
    return value


async def verify_hub_assertion(
    token: str,
    *,
    keys: KeyProvider,
    issuer: str,
    audience: str,
    now: float,
    replay: ReplayCache,
    skew: float = 300,
    attestation_max_age: int = ATTESTATION_MAX_AGE,
) -> AccessTokenClaims:
    """Check signature, typ, iss, one aud, exp/iat, lifetime, jti replay, assurance and toa.

    The result reads like a validated access token: `issuer` is the hub, `jti` the assertion's
    own and `raw` keeps `original_jti`, `correlation_id` and `patient`.
    References: RFC 7519 §4.1.3–4.1.7; ATT-58 (A19/A20); RFC 9449 §11.1 (replay).
    """
    claims = await verify_signed_jwt(
        token, keys=keys, accepted_typ=frozenset({HUB_ASSERTION_TYP}), what="hub assertion"
    )

    if claims.get("iss") != issuer:
        raise InvalidToken("hub assertion issuer is not the trusted hub")
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    if len(auds) != 1 or auds[0] != audience:
        raise InvalidToken("hub assertion must have exactly one audience, this source")
    iat, exp = _number(claims, "iat"), _number(claims, "exp")
    if exp - iat > HUB_ASSERTION_MAX_LIFETIME or exp < iat:
        raise InvalidToken("hub assertion lifetime exceeds 60 seconds")
    if now > exp + skew:
        raise InvalidToken("hub assertion has expired")
    if iat > now + skew:
        raise InvalidToken("hub assertion was issued in the future (iat)")
    jti, sub = claims.get("jti"), claims.get("sub")
    original_jti = claims.get("original_jti")
    if not all(isinstance(v, str) and v for v in (jti, sub, original_jti)):
        raise InvalidToken("hub assertion needs jti, sub and original_jti")
    assert isinstance(jti, str) and isinstance(sub, str)

    toa = _number(claims, "toa") if claims.get(ATTESTATION_TYPE) is not None else None
    level, acr = check_assurance(
        claims, toa=toa, now=now, skew=skew, attestation_max_age=attestation_max_age
    )
    # Replay last, so that a forged or expired assertion cannot burn a jti.
    if await replay.seen(f"hub:{jti}", exp + skew):
        raise InvalidToken("hub assertion jti has been used before (replay)")

    cnf = claims.get("cnf")
    jkt = cnf.get("jkt") if isinstance(cnf, Mapping) else None
    pid, client_id = claims.get(PID_CLAIM), claims.get("client_id")
    scope = claims.get("scope")
    return AccessTokenClaims(
        issuer=issuer,
        audience=audience,
        subject=sub,
        jti=jti,
        issued_at=iat,
        expires_at=exp,
        jkt=jkt if isinstance(jkt, str) else "",
        client_id=client_id if isinstance(client_id, str) else None,
        scope=frozenset(scope.split()) if isinstance(scope, str) else frozenset(),
        pid=pid if isinstance(pid, str) else None,
        security_level=level,
        acr=acr,
        toa=toa,
        raw=claims,
    )


def assertion_patient(claims: AccessTokenClaims) -> tuple[str | None, str | None]:
    """Return the (nin, salt) the hub asserted, or (None, None) for a patient-less request."""
    patient = claims.raw.get("patient")
    if not isinstance(patient, Mapping):
        return None, None
    nin, salt = patient.get("nin"), patient.get("salt")
    return (
        nin if isinstance(nin, str) else None,
        salt if isinstance(salt, str) else None,
    )


def check_assertion_patient(
    claims: AccessTokenClaims, *, nin_header: str | None, salt_header: str | None
) -> None:
    """Refuse an assertion whose patient differs from the patient headers sent with it (ATT-4)."""
    nin, salt = assertion_patient(claims)
    if (nin, salt) != (nin_header or None, salt_header or None):
        raise PatientBindingFailed("hub assertion names another patient than the request (ATT-4)")


async def verify_hub_request(
    assertion: str,
    headers: Mapping[str, str],
    *,
    hub_keys: KeyProvider | None,
    hub_issuer: str | None,
    auth: AuthSettings,
    replay: ReplayCache,
    now: float,
    receiver: str,
) -> AccessTokenClaims:
    """A request the hub relays: its assertion verified and bound to the request's patient.

    Refused when the receiver (`receiver`: "source", "archive", … for the message) trusts no
    hub, when an access token comes too (one caller, one credential), when the assertion does
    not verify (`verify_hub_assertion`) or names another patient than the patient headers
    (`check_assertion_patient`, ATT-4). What the claims then mean is the receiver's to decide.
    """
    if hub_keys is None or hub_issuer is None:
        raise InvalidToken(f"hub assertions are not trusted by this {receiver}")
    if headers.get("authorization"):
        raise InvalidToken(
            "send either a hub assertion or an access token, not both",
            error="invalid_request",
        )
    claims = await verify_hub_assertion(
        assertion,
        keys=hub_keys,
        issuer=hub_issuer,
        audience=auth.audience,
        now=now,
        replay=replay,
        skew=auth.skew,
        attestation_max_age=auth.attestation_max_age,
    )
    check_assertion_patient(
        claims,
        nin_header=headers.get(PATIENT_NIN_HEADER),
        salt_header=headers.get(PATIENT_SALT_HEADER),
    )
    return claims
