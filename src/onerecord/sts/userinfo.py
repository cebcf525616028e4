"""The STS's userinfo endpoint: who the holder of one of its access tokens is.

`GET /userinfo` with `Authorization: DPoP <token>` and a DPoP proof for that URL (with `ath`).
The token must be one this STS signed, for any audience it serves. The answer:
`sub`, `name`, `pid` (fødselsnummer), `security_level`; for health personnel `hpr_number`
when they have one; for citizens `acr`, `onerecord:representation` (the token claim with each
person's `name` added) and `onerecord:representation_refused`: `[{"nin", "name", "relation",
"reason"}]`, the people the register relates the citizen to but who may not be acted for
(reasons: `sts.representation.RefusalReason`). Both lists are worked out afresh from the
registers, from one assessment, so they never overlap. Beside them
`onerecord:representation_dialogue`: `[{"nin", "name", "relation"}]`, the people the citizen may
act for in the dialogue with the GP office only (a child of 12–15 at a parent's address), who
stay in the refused list for the record (`child-12-15`). A citizen's `locale` (OIDC standard
claim) is the language they chose in the contact register (nb, nn or en), when it has one: the
portal's default language for them.

References: OIDC Core §5.3 (UserInfo endpoint), RFC 9449 §7.1 (DPoP at a protected resource),
RFC 6750 §3 (errors in WWW-Authenticate).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from onerecord.sts.representation import (
    CitizenRegisters,
    assess_representation,
    dialogue_only_representations,
)
from onerecord.trust.access_token import (
    HPR_NUMBER_CLAIM,
    REPRESENTATION_CLAIM,
    AccessTokenClaims,
    validate_access_token,
)
from onerecord.trust.dpop import verify_proof
from onerecord.trust.errors import InvalidToken
from onerecord.trust.jose import parse_compact
from onerecord.trust.keys import SigningKey, StaticJwks
from onerecord.trust.replay import ReplayCache

__all__ = ["DIALOGUE_ONLY_CLAIM", "REFUSED_CLAIM", "authenticate_userinfo", "userinfo_body"]

REFUSED_CLAIM = "onerecord:representation_refused"
DIALOGUE_ONLY_CLAIM = "onerecord:representation_dialogue"


def _audience(token: str) -> Any:
    # Only to learn which of our audiences to require; the signature is checked next.
    return parse_compact(token, what="access token").claims.get("aud")


async def authenticate_userinfo(
    *,
    authorization: str | None,
    dpop: str | None,
    url: str,
    key: SigningKey,
    issuer: str,
    audiences: tuple[str, ...],
    replay: ReplayCache,
    now: float,
    skew: float,
) -> AccessTokenClaims:
    """Check the DPoP-bound access token and proof of a userinfo request; return its claims."""
    if not authorization:
        raise InvalidToken("no access token (Authorization: DPoP <token>)", error="invalid_request")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "dpop":
        raise InvalidToken("access token is DPoP-bound: use the DPoP scheme with a DPoP proof")
    if not token or " " in token:
        raise InvalidToken("malformed Authorization header", error="invalid_request")
    if not dpop:
        raise InvalidToken("DPoP proof header is missing", error="invalid_dpop_proof")
    audience = _audience(token)
    if not isinstance(audience, str) or audience not in audiences:
        raise InvalidToken("access token is not for an audience this token service serves")
    claims = await validate_access_token(
        token, keys=StaticJwks([key]), issuer=issuer, audience=audience, now=now, skew=skew
    )
    await verify_proof(
        dpop, htm="GET", htu=url, access_token=token, jkt=claims.jkt, now=now, replay=replay
    )
    return claims


def _name(registers: CitizenRegisters, nin: str) -> str | None:
    record = registers.person(nin)
    return record.name if record is not None else None


def userinfo_body(
    claims: AccessTokenClaims,
    *,
    registers: CitizenRegisters,
    name: str | None,
    today: date,
    locale: str | None = None,
) -> dict[str, Any]:
    """Return the userinfo answer for a validated token (`name`: the user's, from a register)."""
    body: dict[str, Any] = {
        "sub": claims.subject,
        "name": name,
        "pid": claims.pid,
        "security_level": claims.security_level,
    }
    if REPRESENTATION_CLAIM not in claims.raw:
        hpr = claims.raw.get(HPR_NUMBER_CLAIM)
        if hpr is not None:
            body["hpr_number"] = hpr
        return body
    body["acr"] = claims.acr
    if locale is not None:
        body["locale"] = locale
    assessment = assess_representation(claims.pid or "", registers, today)
    body[REPRESENTATION_CLAIM] = [
        {
            "nin": r.person.value,
            "name": _name(registers, r.person.value),
            "relation": r.relation.value,
            "acp": r.relation.acp,
        }
        for r in assessment.allowed
    ]
    body[REFUSED_CLAIM] = [
        {
            "nin": r.person.value,
            "name": _name(registers, r.person.value),
            "relation": r.relation.value,
            "reason": r.reason.value,
        }
        for r in assessment.refused
    ]
    body[DIALOGUE_ONLY_CLAIM] = [
        {
            "nin": r.person.value,
            "name": _name(registers, r.person.value),
            "relation": r.relation.value,
        }
        for r in dialogue_only_representations(claims.pid or "", registers, today)
    ]
    return body
