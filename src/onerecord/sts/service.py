"""The development token service's logic: authorization requests, login, codes and tokens.

Grants:
- `urn:onerecord:params:oauth:grant-type:test-user` — development only: `subject` is the
  synthetic user's fødselsnummer, `acr` the login level (3 is refused, A14/E13), and for health
  personnel `authorization_details` carries the attestation.
- `authorization_code` with PKCE S256 (A17), after `/authorize` or PAR (`/par`) with an
  optional signed request object (A1, A18). `/authorize` with `login_hint` logs that user in at
  once; without it the user is picked on the login page (`sts.login`). Who logs in: a citizen
  when `acr_values` is idporten-loa-high or `onerecord_user_kind=citizen`, health personnel with
  `onerecord_user_kind=health-personnel` (or `practitioner`); otherwise whichever register
  knows the number (HPR first). The response carries a refresh token.
- `refresh_token` (RFC 6749 §6): same client, DPoP proof with the key the refresh token is
  bound to (RFC 9449 §5), rotated on each use (`sts.refresh`). The client assertion may carry a
  new attestation (a new patient), which replaces the previous one; `resource` may pick another
  served audience; `scope` may narrow.

The attestation may come with the authorization request (or the test-user form) or inside the
client assertion on /token, never both (A11, HID-DOUBLE-STRUCTURE). Every token request must
carry a DPoP proof; the token is bound to its key (cnf.jkt). A health worker may log in without
an attestation: that token names the user but opens no patient data until a refresh adds one.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from onerecord.domain import InvalidIdentifier, NationalIdentityNumber
from onerecord.sts.client_auth import verify_client_assertion, verify_request_object
from onerecord.sts.login import (
    AuthorizationRedirect,
    LoginProblem,
    LoginPrompt,
    LoginRequestExpired,
    choose_subject,
)
from onerecord.sts.refresh import RefreshGrant, RefreshTokenStore
from onerecord.sts.representation import (
    CitizenRegisters,
    representation_claim,
    representations_for,
)
from onerecord.sts.settings import StsSettings
from onerecord.sts.userinfo import authenticate_userinfo, userinfo_body
from onerecord.sts.users import LOGIN_OTHERS, UserDirectory, UserKind
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
from onerecord.trust.emergency import MAX_GRANT_SECONDS
from onerecord.trust.errors import (
    AccessDenied,
    InvalidAuthorizationDetails,
    InvalidGrant,
    InvalidRequest,
    InvalidToken,
)
from onerecord.trust.keys import SigningKey
from onerecord.trust.replay import ReplayCache

__all__ = [
    "REFRESH_TOKEN_GRANT",
    "TEST_USER_GRANT",
    "USER_KIND_PARAM",
    "AuthorizationRequest",
    "PendingAuthorization",
    "StsRegisters",
    "TokenService",
    "pkce_challenge",
]

TEST_USER_GRANT = "urn:onerecord:params:oauth:grant-type:test-user"
REFRESH_TOKEN_GRANT = "refresh_token"
USER_KIND_PARAM = "onerecord_user_kind"
_GRANTS = (TEST_USER_GRANT, "authorization_code", REFRESH_TOKEN_GRANT)
_STRING_PARAMETERS = (
    "response_type",
    "redirect_uri",
    "code_challenge",
    "code_challenge_method",
    "acr_values",
    "scope",
    "resource",
    "login_hint",
    "state",
    USER_KIND_PARAM,
)
"""Authorization request parameters that are strings (RFC 6749 §4.1.1, RFC 9101 §4)."""
_DEFAULT_SCOPE = (
    "openid",
    "helseid://scopes/identity/pid",
    "helseid://scopes/identity/security_level",
)


class StsRegisters(Registers, CitizenRegisters, UserDirectory, Protocol):
    """The population the STS logs users in from: practitioners, organisations, citizens."""


def pkce_challenge(verifier: str) -> str:
    """Return the S256 code challenge of `verifier` (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """A validated authorization request whose user is not known yet.

    `authorization_details` is kept as sent: it can only be checked against its user.
    """

    client_id: str
    redirect_uri: str
    code_challenge: str
    acr: str
    user_kind: UserKind | None
    scope: tuple[str, ...]
    resource: str
    authorization_details: Any
    login_hint: str | None
    state: str | None
    expires_at: float


@dataclass(frozen=True, slots=True)
class PendingAuthorization:
    """A logged-in authorization request, waiting for its code to be redeemed."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    subject: str
    user_kind: UserKind
    acr: str
    scope: tuple[str, ...]
    resource: str | None
    attestation: Attestation | None
    state: str | None
    expires_at: float
    auth_time: int = 0


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
        self._requests: dict[str, AuthorizationRequest] = {}
        self._logins: dict[str, AuthorizationRequest] = {}
        self._codes: dict[str, PendingAuthorization] = {}
        self._refresh = RefreshTokenStore()

    # -- helpers -----------------------------------------------------------------------------

    def _user(self, subject: str | None) -> NationalIdentityNumber:
        try:
            return NationalIdentityNumber(subject or "")
        except InvalidIdentifier:
            raise InvalidGrant("subject is not a national identity number") from None

    def _kind(self, wanted: UserKind | None, user: NationalIdentityNumber) -> UserKind | None:
        """Return who `user` logs in as, or None when the register wanted does not know them."""
        in_hpr = self.registers.practitioner(user.value) is not None
        in_population = self.registers.person(user.value) is not None
        if wanted is UserKind.CITIZEN:
            return wanted if in_population else None
        if wanted is UserKind.HEALTH_PERSONNEL:
            return wanted if in_hpr else None
        if in_hpr:
            return UserKind.HEALTH_PERSONNEL
        return UserKind.CITIZEN if in_population else None

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
        grant = attestation.emergency
        if grant is not None and not now < grant.until <= now + MAX_GRANT_SECONDS:
            raise InvalidAuthorizationDetails(
                "emergency_access.until must be in the next 60 minutes (ATT-58)"
            )
        return replace(attestation, toa=toa)

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
        try:
            proof = await verify_proof(
                dpop,
                htm="POST",
                htu=self.settings.token_endpoint,
                access_token=None,
                jkt=None,
                now=now,
                replay=self.replay,
            )
        except InvalidToken as exc:
            # At the token endpoint a bad proof (malformed, stale, replayed) is a 400
            # invalid_dpop_proof, not the resource server's 401 (RFC 9449 §5, §7.1).
            raise InvalidRequest(exc.description, error="invalid_dpop_proof") from None
        return proof.jkt

    def _issue(
        self,
        *,
        client_id: str,
        user: NationalIdentityNumber,
        kind: UserKind,
        jkt: str,
        audience: str,
        scope: tuple[str, ...],
        attestation: Attestation | None,
        auth_time: int,
        now: float,
    ) -> dict[str, Any]:
        claims: dict[str, Any] = {
            PID_CLAIM: user.value,
            SECURITY_LEVEL_CLAIM: "4",
            "amr": ["dev"],
            "auth_time": auth_time,
        }
        if kind is UserKind.HEALTH_PERSONNEL:
            practitioner = self.registers.practitioner(user.value)
            if practitioner is None:
                raise InvalidGrant("subject is not health personnel in the register")
            claims["name"] = f"{practitioner.given} {practitioner.family}"
            if practitioner.hpr is not None:
                claims[HPR_NUMBER_CLAIM] = practitioner.hpr.value
            if attestation is not None:
                claims[ATTESTATION_TYPE] = attestation.to_claim()
                claims["toa"] = attestation.toa
        else:
            if attestation is not None:
                raise InvalidRequest("a citizen's token carries no attestation")
            if self.registers.person(user.value) is None:
                raise InvalidGrant("subject is not in the population register")
            today = datetime.fromtimestamp(now, UTC).date()
            dialogue = audience in self.settings.dialogue_audiences
            reps = representations_for(user.value, self.registers, today, dialogue=dialogue)
            claims["acr"] = CITIZEN_ACR
            claims[REPRESENTATION_CLAIM] = representation_claim(reps)
        lifetime = self.settings.token_lifetime
        if attestation is not None and attestation.emergency is not None:
            # An override token ends when the override does (issue 11, defect 7): its exp
            # bounds it at the hub and at every region, whatever the client does.
            lifetime = max(1, min(lifetime, attestation.emergency.until - int(now)))
        token = issue_access_token(
            key=self.key,
            issuer=self.settings.issuer,
            audience=audience,
            subject=user.value if kind is UserKind.CITIZEN else f"hp:{user.value}",
            jkt=jkt,
            scope=scope,
            now=int(now),
            lifetime=lifetime,
            client_id=client_id,
            claims=claims,
        )
        return {
            "access_token": token,
            "token_type": "DPoP",
            "expires_in": lifetime,
            "scope": " ".join(scope),
        }

    # -- authorization requests --------------------------------------------------------------

    def _authorization_request(
        self, client_id: str, params: Mapping[str, str], now: float
    ) -> AuthorizationRequest:
        merged: dict[str, Any] = dict(params)
        if "request" in params:
            claims = verify_request_object(
                params["request"], client_id=client_id, settings=self.settings, now=now
            )
            for name in _STRING_PARAMETERS:
                if name in claims and not isinstance(claims[name], str):
                    raise InvalidRequest(
                        f"request object {name} must be a string", error="invalid_request_object"
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
        acr_values = merged.get("acr_values")
        acr = self._level(acr_values)
        kind: UserKind | None = UserKind.CITIZEN if acr_values == CITIZEN_ACR else None
        if merged.get(USER_KIND_PARAM):
            try:
                kind = UserKind.parse(str(merged[USER_KIND_PARAM]))
            except ValueError:
                raise InvalidRequest(
                    f"{USER_KIND_PARAM} must be citizen, health-personnel or practitioner"
                ) from None
        scope = tuple(str(merged.get("scope", " ".join(_DEFAULT_SCOPE))).split())
        resource = merged.get("resource")
        hint = merged.get("login_hint")
        state = merged.get("state")
        return AuthorizationRequest(
            client_id=client_id,
            redirect_uri=redirect_uri,
            code_challenge=str(challenge),
            acr=acr,
            user_kind=kind,
            scope=scope,
            resource=self._resource(str(resource) if resource else None),
            authorization_details=merged.get("authorization_details") or None,
            login_hint=str(hint) if hint else None,
            state=str(state) if state else None,
            expires_at=now + self.settings.code_lifetime,
        )

    def _log_in(
        self, request: AuthorizationRequest, subject: str, now: float
    ) -> PendingAuthorization:
        """Log `subject` in for `request`; check the attestation against them."""
        user = self._user(subject)
        kind = self._kind(request.user_kind, user)
        if kind is None:
            raise AccessDenied("the user is not in the register this login asks for")
        raw = request.authorization_details
        if raw and kind is UserKind.CITIZEN:
            raise InvalidRequest("a citizen's login carries no attestation")
        return PendingAuthorization(
            client_id=request.client_id,
            redirect_uri=request.redirect_uri,
            code_challenge=request.code_challenge,
            subject=user.value,
            user_kind=kind,
            acr=request.acr,
            scope=request.scope,
            resource=request.resource,
            attestation=self._attest(raw, user, now) if raw else None,
            state=request.state,
            expires_at=now + self.settings.code_lifetime,
            auth_time=int(now),
        )

    def _redirect(self, pending: PendingAuthorization) -> AuthorizationRedirect:
        now = self.clock()
        for stale in [c for c, p in self._codes.items() if p.expires_at < now]:
            del self._codes[stale]
        code = secrets.token_urlsafe(24)
        self._codes[code] = pending
        query = {"code": code}
        if pending.state:
            query["state"] = pending.state
        return AuthorizationRedirect(pending.redirect_uri, query)

    def _prompt(
        self, request: AuthorizationRequest, problem: LoginProblem | None = None
    ) -> LoginPrompt:
        """Keep `request` under a new random id and return the login page to show."""
        now = self.clock()
        for stale in [k for k, r in self._logins.items() if r.expires_at < now]:
            del self._logins[stale]
        request_id = secrets.token_urlsafe(24)
        self._logins[request_id] = request
        kind = request.user_kind or UserKind.HEALTH_PERSONNEL
        client = self.settings.clients[request.client_id]
        return LoginPrompt(
            request_id=request_id,
            user_kind=kind,
            client_name=client.name or request.client_id,
            users=tuple(self.registers.login_candidates(kind, others=LOGIN_OTHERS)),
            problem=problem,
        )

    async def pushed_authorization_request(self, form: Mapping[str, str]) -> dict[str, Any]:
        """Handle PAR (RFC 9126): authenticate the client, store the request, return its URI."""
        now = self.clock()
        client_id, _ = await verify_client_assertion(
            form, settings=self.settings, replay=self.replay, now=now
        )
        request = self._authorization_request(client_id, form, now)
        if request.login_hint is not None:
            self._log_in(request, request.login_hint, now)  # refuse a bad user or attestation now
        for stale in [u for u, r in self._requests.items() if r.expires_at < now]:
            del self._requests[stale]
        uri = f"urn:ietf:params:oauth:request_uri:{secrets.token_urlsafe(24)}"
        self._requests[uri] = request
        return {"request_uri": uri, "expires_in": self.settings.code_lifetime}

    def authorize(self, params: Mapping[str, str]) -> AuthorizationRedirect | LoginPrompt:
        """Log the `login_hint` user in and redirect, or return the login page to show."""
        now = self.clock()
        client_id = params.get("client_id", "")
        if client_id not in self.settings.clients:
            raise InvalidRequest("unknown client_id")
        if "request_uri" in params:
            request = self._requests.pop(params["request_uri"], None)
            if request is None or request.client_id != client_id or request.expires_at < now:
                raise InvalidRequest("request_uri is unknown, used or expired")
        else:
            request = self._authorization_request(client_id, params, now)
        if request.login_hint is not None:
            return self._redirect(self._log_in(request, request.login_hint, now))
        return self._prompt(replace(request, expires_at=now + self.settings.login_lifetime))

    def login(
        self, *, request_id: str, subject: str | None, typed: str | None = None
    ) -> AuthorizationRedirect | LoginPrompt:
        """Complete a login page: redirect with a code, or show the page again with a problem.

        The request id is single use: a page shown again gets a new one.
        """
        now = self.clock()
        request = self._logins.pop(request_id, None)
        if request is None or request.expires_at < now:
            raise LoginRequestExpired()
        picked = choose_subject(subject, typed)
        if isinstance(picked, LoginProblem):
            return self._prompt(request, picked)
        if self._kind(request.user_kind, NationalIdentityNumber(picked)) is None:
            return self._prompt(request, LoginProblem.UNKNOWN_USER)
        return self._redirect(self._log_in(request, picked, now))

    # -- token endpoint ----------------------------------------------------------------------

    async def token(self, form: Mapping[str, str], dpop: str | None) -> dict[str, Any]:
        """Handle POST /token; raise a TrustError with the RFC 6749 error code on refusal."""
        now = self.clock()
        grant_type = form.get("grant_type")
        if grant_type not in _GRANTS:
            raise InvalidRequest(
                f"unsupported grant_type {grant_type!r}", error="unsupported_grant_type"
            )
        client_id, assertion = await verify_client_assertion(
            form, settings=self.settings, replay=self.replay, now=now
        )
        if grant_type == TEST_USER_GRANT:
            return await self._test_user(client_id, assertion, form, dpop, now)
        if grant_type == REFRESH_TOKEN_GRANT:
            return await self._refresh_grant(client_id, assertion, form, dpop, now)
        return await self._code_grant(client_id, assertion, form, dpop, now)

    async def _test_user(
        self,
        client_id: str,
        assertion: Mapping[str, Any],
        form: Mapping[str, str],
        dpop: str | None,
        now: float,
    ) -> dict[str, Any]:
        user = self._user(form.get("subject"))
        self._level(form.get("acr"))
        in_request = form.get("authorization_details")
        in_assertion = assertion.get("authorization_details")
        if in_request and in_assertion:
            raise AccessDenied("HID-DOUBLE-STRUCTURE: attestation sent twice")
        raw = in_request or in_assertion
        if isinstance(raw, str):
            try:
                raw = orjson.loads(raw)
            except ValueError:
                raise InvalidAuthorizationDetails("authorization_details is not JSON") from None
        attestation = self._attest(raw, user, now) if raw else None
        audience = self._resource(form.get("resource") or form.get("audience"))
        scope = tuple(form.get("scope", " ".join(_DEFAULT_SCOPE)).split())
        jkt = await self._dpop_jkt(dpop, now)
        return self._issue(
            client_id=client_id,
            user=user,
            kind=UserKind.HEALTH_PERSONNEL if attestation is not None else UserKind.CITIZEN,
            jkt=jkt,
            audience=audience,
            scope=scope,
            attestation=attestation,
            auth_time=int(now),
            now=now,
        )

    async def _code_grant(
        self,
        client_id: str,
        assertion: Mapping[str, Any],
        form: Mapping[str, str],
        dpop: str | None,
        now: float,
    ) -> dict[str, Any]:
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
        in_assertion = assertion.get("authorization_details")
        if in_assertion:
            if attestation is not None:
                raise AccessDenied(
                    "HID-DOUBLE-STRUCTURE: attestation in both the request "
                    "object and the client assertion"
                )
            attestation = self._attest(in_assertion, user, now)
        jkt = await self._dpop_jkt(dpop, now)
        audience = pending.resource or self.settings.default_audience
        body = self._issue(
            client_id=client_id,
            user=user,
            kind=pending.user_kind,
            jkt=jkt,
            audience=audience,
            scope=pending.scope,
            attestation=attestation,
            auth_time=pending.auth_time or int(now),
            now=now,
        )
        grant = RefreshGrant(
            client_id=client_id,
            subject=user.value,
            user_kind=pending.user_kind,
            acr=pending.acr,
            scope=pending.scope,
            resource=audience,
            jkt=jkt,
            attestation=attestation,
            auth_time=pending.auth_time or int(now),
            expires_at=now + self.settings.refresh_token_lifetime,
        )
        body["refresh_token"] = self._refresh.issue(grant, now=now)
        return body

    async def _refresh_grant(
        self,
        client_id: str,
        assertion: Mapping[str, Any],
        form: Mapping[str, str],
        dpop: str | None,
        now: float,
    ) -> dict[str, Any]:
        token = form.get("refresh_token")
        if not token:
            raise InvalidRequest("refresh_token is missing")
        if form.get("authorization_details"):
            raise InvalidRequest(
                "on the refresh_token grant the attestation travels in the client assertion"
            )
        jkt = await self._dpop_jkt(dpop, now)
        # From here on nothing awaits: finding and rotating the token is one step.
        grant = self._refresh.find(token, now=now)
        if grant.client_id != client_id:
            raise InvalidGrant("refresh token was issued to another client")
        if not secrets.compare_digest(jkt, grant.jkt):
            raise InvalidGrant(
                "the DPoP proof's key is not the key the refresh token is bound to (RFC 9449 §5)"
            )
        user = self._user(grant.subject)
        attestation = grant.attestation
        in_assertion = assertion.get("authorization_details")
        if in_assertion:
            if grant.user_kind is UserKind.CITIZEN:
                raise InvalidRequest("a citizen's token carries no attestation")
            attestation = self._attest(in_assertion, user, now)
        scope = grant.scope
        if form.get("scope"):
            scope = tuple(form["scope"].split())
            if not set(scope) <= set(grant.scope):
                raise InvalidRequest(
                    "scope asks for more than the login granted", error="invalid_scope"
                )
        body = self._issue(
            client_id=client_id,
            user=user,
            kind=grant.user_kind,
            jkt=jkt,
            audience=self._resource(form.get("resource") or grant.resource),
            scope=scope,
            attestation=attestation,
            auth_time=grant.auth_time,
            now=now,
        )
        body["refresh_token"] = self._refresh.rotate(
            token, replace(grant, attestation=attestation), now=now
        )
        return body

    # -- userinfo ----------------------------------------------------------------------------

    async def userinfo(self, *, authorization: str | None, dpop: str | None) -> dict[str, Any]:
        """Handle GET /userinfo (OIDC Core §5.3) for a DPoP-bound access token of this STS."""
        now = self.clock()
        claims = await authenticate_userinfo(
            authorization=authorization,
            dpop=dpop,
            url=self.settings.userinfo_endpoint,
            key=self.key,
            issuer=self.settings.issuer,
            audiences=self.settings.allowed_audiences,
            replay=self.replay,
            now=now,
            skew=self.settings.skew,
        )
        nin = claims.pid or ""
        practitioner = self.registers.practitioner(nin)
        person = self.registers.person(nin)
        if claims.subject.startswith("hp:") and practitioner is not None:
            name: str | None = f"{practitioner.given} {practitioner.family}"
        else:
            name = person.name if person is not None else None
        today = datetime.fromtimestamp(now, UTC).date()
        # The contact register's language, where the registers hold one (the population's do).
        preferred = getattr(self.registers, "preferred_language", None)
        locale = preferred(nin) if callable(preferred) and person is not None else None
        return userinfo_body(
            claims, registers=self.registers, name=name, today=today, locale=locale
        )
