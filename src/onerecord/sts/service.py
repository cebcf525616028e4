"""The development token service's logic: authorization requests, codes and token issuance.

Grants:
- `urn:onerecord:params:oauth:grant-type:test-user` — development only: `subject` is the
  synthetic user's fødselsnummer, `acr` the login level (3 is refused, A14/E13), and for health
  personnel `authorization_details` carries the attestation.
- `authorization_code` with PKCE S256 (A17), after `/authorize` or PAR (`/par`) with an
  optional signed request object (A1, A18). The development `/authorize` logs in the user named
  by `login_hint` at once.

The attestation may come with the authorization request (or the test-user form) or inside the
client assertion on /token, never both (A11, HID-DOUBLE-STRUCTURE). Every token request must
carry a DPoP proof; the token is bound to its key (cnf.jkt).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from onerecord.domain import InvalidIdentifier, NationalIdentityNumber
from onerecord.sts.client_auth import verify_client_assertion, verify_request_object
from onerecord.sts.representation import (
    CitizenRegisters,
    representation_claim,
    representations_for,
)
from onerecord.sts.settings import StsSettings
from onerecord.trust.access_token import (
    CITIZEN_ACR,
    HPR_NUMBER_CLAIM,
    PID_CLAIM,
    REPRESENTATION_CLAIM,
    SECURITY_LEVEL_CLAIM,
    issue_access_token,
)
from onerecord.trust.attestation import (
    ATTESTATION_TYPE,
    Attestation,
    Registers,
    enrich,
    parse_authorization_details,
)
from onerecord.trust.dpop import verify_proof
from onerecord.trust.errors import (
    AccessDenied,
    InvalidAuthorizationDetails,
    InvalidGrant,
    InvalidRequest,
)
from onerecord.trust.keys import SigningKey
from onerecord.trust.replay import ReplayCache

__all__ = [
    "TEST_USER_GRANT",
    "PendingAuthorization",
    "StsRegisters",
    "TokenService",
    "pkce_challenge",
]

TEST_USER_GRANT = "urn:onerecord:params:oauth:grant-type:test-user"
_DEFAULT_SCOPE = (
    "openid",
    "helseid://scopes/identity/pid",
    "helseid://scopes/identity/security_level",
)


class StsRegisters(Registers, CitizenRegisters, Protocol):
    """The population the STS logs users in from: practitioners, organisations, citizens."""


def pkce_challenge(verifier: str) -> str:
    """Return the S256 code challenge of `verifier` (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class PendingAuthorization:
    """A validated authorization request, waiting for its code to be redeemed."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    subject: str
    acr: str
    scope: tuple[str, ...]
    resource: str | None
    attestation: Attestation | None
    state: str | None
    expires_at: float


class TokenService:
    """Issues DPoP-bound access tokens for synthetic users; holds codes in memory."""

    def __init__(
        self,
        *,
        settings: StsSettings,
        key: SigningKey,
        registers: StsRegisters,
        replay: ReplayCache,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.key = key
        self.registers = registers
        self.replay = replay
        self.clock = clock
        self._requests: dict[str, PendingAuthorization] = {}
        self._codes: dict[str, PendingAuthorization] = {}

    # -- helpers -----------------------------------------------------------------------------

    def _user(self, subject: str | None) -> NationalIdentityNumber:
        try:
            return NationalIdentityNumber(subject or "")
        except InvalidIdentifier:
            raise InvalidGrant("subject is not a national identity number") from None

    def _attest(self, raw: Any, user: NationalIdentityNumber, now: float) -> Attestation:
        if self.registers.practitioner(user.value) is None:
            raise InvalidGrant("subject is not health personnel in the register")
        attestation = parse_authorization_details(raw, registers=self.registers)
        attestation = enrich(attestation, self.registers, user)
        toa = attestation.toa
        if toa is None:
            toa = int(now)
        elif toa > now + self.settings.skew or now - toa > 3600:
            raise InvalidAuthorizationDetails("toa must be within the last 60 minutes (ATT-58)")
        return Attestation(
            attestation.practitioner, attestation.care_relationship, attestation.patients, toa
        )

    def _resource(self, value: str | None) -> str:
        audience = value or self.settings.default_audience
        if audience not in self.settings.allowed_audiences:
            raise InvalidRequest(
                f"resource {audience!r} is not served here", error="invalid_target"
            )
        return audience

    @staticmethod
    def _level(acr: str | None) -> str:
        level = {"4": "4", "idporten-loa-high": "4", "3": "3", "idporten-loa-substantial": "3"}
        value = level.get(acr or "4")
        if value is None:
            raise InvalidRequest("acr must be 4 (or 3, which is refused)")
        if value != "4":
            raise AccessDenied("the user logged in at level 3; level 4 is required (ATT-9)")
        return value

    async def _dpop_jkt(self, dpop: str | None, now: float) -> str:
        if not dpop:
            raise InvalidRequest("a DPoP proof is required", error="invalid_dpop_proof")
        proof = await verify_proof(
            dpop,
            htm="POST",
            htu=self.settings.token_endpoint,
            access_token=None,
            jkt=None,
            now=now,
            replay=self.replay,
        )
        return proof.jkt

    def _issue(
        self,
        *,
        client_id: str,
        user: NationalIdentityNumber,
        jkt: str,
        audience: str,
        scope: tuple[str, ...],
        attestation: Attestation | None,
        now: float,
    ) -> dict[str, Any]:
        claims: dict[str, Any] = {
            PID_CLAIM: user.value,
            SECURITY_LEVEL_CLAIM: "4",
            "amr": ["dev"],
            "auth_time": int(now),
        }
        if attestation is not None:
            practitioner = self.registers.practitioner(user.value)
            assert practitioner is not None
            claims[ATTESTATION_TYPE] = attestation.to_claim()
            claims["toa"] = attestation.toa
            claims["name"] = f"{practitioner.given} {practitioner.family}"
            if practitioner.hpr is not None:
                claims[HPR_NUMBER_CLAIM] = practitioner.hpr.value
        else:
            if self.registers.person(user.value) is None:
                raise InvalidGrant("subject is not in the population register")
            today = datetime.fromtimestamp(now, UTC).date()
            reps = representations_for(user.value, self.registers, today)
            claims["acr"] = CITIZEN_ACR
            claims[REPRESENTATION_CLAIM] = representation_claim(reps)
        token = issue_access_token(
            key=self.key,
            issuer=self.settings.issuer,
            audience=audience,
            subject=user.value if attestation is None else f"hp:{user.value}",
            jkt=jkt,
            scope=scope,
            now=int(now),
            lifetime=self.settings.token_lifetime,
            client_id=client_id,
            claims=claims,
        )
        return {
            "access_token": token,
            "token_type": "DPoP",
            "expires_in": self.settings.token_lifetime,
            "scope": " ".join(scope),
        }

    # -- authorization requests --------------------------------------------------------------

    def _authorization_request(
        self, client_id: str, params: Mapping[str, str], now: float
    ) -> PendingAuthorization:
        merged: dict[str, Any] = dict(params)
        if "request" in params:
            claims = verify_request_object(
                params["request"], client_id=client_id, settings=self.settings, now=now
            )
            merged = {k: v for k, v in params.items() if k in ("client_id", "request")}
            merged.update(claims)
        if merged.get("response_type", "code") != "code":
            raise InvalidRequest("response_type must be code", error="unsupported_response_type")
        client = self.settings.clients[client_id]
        redirect_uri = str(merged.get("redirect_uri", ""))
        if redirect_uri not in client.redirect_uris:
            raise InvalidRequest("redirect_uri is not registered for this client")
        challenge = merged.get("code_challenge")
        if not challenge or merged.get("code_challenge_method") != "S256":
            raise InvalidRequest("PKCE with code_challenge_method=S256 is required")
        user = self._user(merged.get("login_hint"))
        acr = self._level(merged.get("acr_values"))
        raw = merged.get("authorization_details")
        attestation = self._attest(raw, user, now) if raw else None
        scope = tuple(str(merged.get("scope", " ".join(_DEFAULT_SCOPE))).split())
        resource = merged.get("resource")
        return PendingAuthorization(
            client_id=client_id,
            redirect_uri=redirect_uri,
            code_challenge=str(challenge),
            subject=user.value,
            acr=acr,
            scope=scope,
            resource=self._resource(str(resource) if resource else None),
            attestation=attestation,
            state=merged.get("state"),
            expires_at=now + self.settings.code_lifetime,
        )

    async def pushed_authorization_request(self, form: Mapping[str, str]) -> dict[str, Any]:
        """Handle PAR (RFC 9126): authenticate the client, store the request, return its URI."""
        now = self.clock()
        client_id, _ = await verify_client_assertion(
            form, settings=self.settings, replay=self.replay, now=now
        )
        pending = self._authorization_request(client_id, form, now)
        uri = f"urn:ietf:params:oauth:request_uri:{secrets.token_urlsafe(24)}"
        self._requests[uri] = pending
        return {"request_uri": uri, "expires_in": self.settings.code_lifetime}

    def authorize(self, params: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        """Log the `login_hint` user in (development) and return (redirect_uri, query)."""
        now = self.clock()
        client_id = params.get("client_id", "")
        if client_id not in self.settings.clients:
            raise InvalidRequest("unknown client_id")
        if "request_uri" in params:
            pending = self._requests.pop(params["request_uri"], None)
            if pending is None or pending.client_id != client_id or pending.expires_at < now:
                raise InvalidRequest("request_uri is unknown, used or expired")
        else:
            pending = self._authorization_request(client_id, params, now)
        code = secrets.token_urlsafe(24)
        self._codes[code] = pending
        query = {"code": code}
        if pending.state:
            query["state"] = pending.state
        return pending.redirect_uri, query

    # -- token endpoint ----------------------------------------------------------------------

    async def token(self, form: Mapping[str, str], dpop: str | None) -> dict[str, Any]:
        """Handle POST /token; raise a TrustError with the RFC 6749 error code on refusal."""
        now = self.clock()
        grant_type = form.get("grant_type")
        if grant_type not in (TEST_USER_GRANT, "authorization_code"):
            raise InvalidRequest(
                f"unsupported grant_type {grant_type!r}", error="unsupported_grant_type"
            )
        client_id, assertion = await verify_client_assertion(
            form, settings=self.settings, replay=self.replay, now=now
        )
        in_assertion = assertion.get("authorization_details")
        if grant_type == TEST_USER_GRANT:
            user = self._user(form.get("subject"))
            self._level(form.get("acr"))
            in_request = form.get("authorization_details")
            if in_request and in_assertion:
                raise AccessDenied("HID-DOUBLE-STRUCTURE: attestation sent twice")
            raw = in_request or in_assertion
            if isinstance(raw, str):
                try:
                    raw = json.loads(raw)
                except ValueError:
                    raise InvalidAuthorizationDetails("authorization_details is not JSON") from None
            attestation = self._attest(raw, user, now) if raw else None
            audience = self._resource(form.get("resource") or form.get("audience"))
            scope = tuple(form.get("scope", " ".join(_DEFAULT_SCOPE)).split())
            jkt = await self._dpop_jkt(dpop, now)
            return self._issue(
                client_id=client_id,
                user=user,
                jkt=jkt,
                audience=audience,
                scope=scope,
                attestation=attestation,
                now=now,
            )

        pending = self._codes.pop(form.get("code", ""), None)
        if pending is None or pending.expires_at < now or pending.client_id != client_id:
            raise InvalidGrant("code is unknown, used, expired or issued to another client")
        if form.get("redirect_uri") != pending.redirect_uri:
            raise InvalidGrant("redirect_uri differs from the authorization request")
        verifier = form.get("code_verifier")
        if not verifier or not secrets.compare_digest(
            pkce_challenge(verifier), pending.code_challenge
        ):
            raise InvalidGrant("code_verifier does not match the code_challenge (PKCE)")
        user = self._user(pending.subject)
        attestation = pending.attestation
        if in_assertion:
            if attestation is not None:
                raise AccessDenied(
                    "HID-DOUBLE-STRUCTURE: attestation in both the request "
                    "object and the client assertion"
                )
            attestation = self._attest(in_assertion, user, now)
        jkt = await self._dpop_jkt(dpop, now)
        return self._issue(
            client_id=client_id,
            user=user,
            jkt=jkt,
            audience=pending.resource or self.settings.default_audience,
            scope=pending.scope,
            attestation=attestation,
            now=now,
        )
