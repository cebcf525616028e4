"""The trust path every regional resource server shares: whose credential a request carries.

A regional service (the document source, the media archive) accepts two credentials:

    DirectCall  the caller's own DPoP-bound access token with its proof (`authenticate_request`:
                RFC 9449 §7.1, RFC 9068 §4), for this server's audience → a verified Principal
    HubCall     an assertion of the trusted hub (`verify_hub_request`: signature, one audience,
                lifetime, replay, no access token beside it, its patient the patient headers'),
                read into the end user it carries only when the receiver asks (`principal`)

`ResourceServerAuthenticator.verify` tells which one came and checks it; what a credential then
may do is the receiver's own rule (a deferred assertion, a relayed SAML assertion, a required
header), kept in the receiver's subclass. Nothing here reads a publish proof: systems that publish
are checked apart (`publish_proof.py`).

References: RFC 9449 §7.1 (B1–B4), RFC 9068 §4 (B5, B6), ATT-58 (A19, A20); IHE ITI TF-2 3.40
(the initiating gateway asserts the user); TRUST-FRAMEWORK §2.3, §3.2.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar

from onerecord.trust.access_token import (
    AccessTokenClaims,
    AuthSettings,
    Principal,
    authenticate_request,
    principal_from_claims,
)
from onerecord.trust.assertion import HUB_ASSERTION_HEADER, verify_hub_request
from onerecord.trust.keys import KeyProvider
from onerecord.trust.replay import ReplayCache

__all__ = ["DirectCall", "HubCall", "ResourceServerAuthenticator"]


@dataclass(frozen=True, slots=True)
class DirectCall:
    """A caller's own DPoP-bound access token, verified with its proof."""

    principal: Principal

    @property
    def token_jti(self) -> str:
        """The jti of the caller's token: what the audit and the logs may name (F6)."""
        return self.principal.claims.jti


@dataclass(frozen=True, slots=True)
class HubCall:
    """An assertion of the trusted hub, verified and bound to the request's patient headers."""

    claims: AccessTokenClaims

    @property
    def token_jti(self) -> str:
        """The caller's own token jti the hub names (`original_jti`), else the assertion's."""
        original = self.claims.raw.get("original_jti")
        return str(original) if original else self.claims.jti

    @property
    def correlation_id(self) -> str | None:
        """The hub's request id across its fan-out, when the assertion carries one."""
        value = self.claims.raw.get("correlation_id")
        return value if isinstance(value, str) else None

    @property
    def deferred(self) -> bool:
        """The hub re-sends a citizen's control change from its outbox (`deferred_since`)."""
        return "deferred_since" in self.claims.raw

    def principal(self) -> Principal:
        """Return the end user the assertion carries (HealthPersonnel or Citizen)."""
        return principal_from_claims(self.claims)


class ResourceServerAuthenticator:
    """Verify a direct DPoP-bound access token, or an assertion signed by the trusted hub."""

    receiver: ClassVar[str] = "resource server"
    """What the receiver is called in a refusal ("hub assertions are not trusted by this …")."""

    def __init__(
        self,
        *,
        auth: AuthSettings,
        keys: KeyProvider,
        replay: ReplayCache,
        hub_issuer: str | None = None,
        hub_keys: KeyProvider | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.auth = auth
        self.keys = keys
        self.replay = replay
        self.hub_issuer = hub_issuer
        self.hub_keys = hub_keys
        self.clock = clock

    async def verify(
        self, *, method: str, url: str, headers: Mapping[str, str]
    ) -> DirectCall | HubCall:
        """Return the verified credential of the request, or raise a TrustError (401/403).

        A request with the hub assertion header is the hub's, whatever else it carries (an
        access token beside it is refused); any other request needs its own access token.
        """
        assertion = headers.get(HUB_ASSERTION_HEADER)
        if assertion is not None:
            claims = await verify_hub_request(
                assertion,
                headers,
                hub_keys=self.hub_keys,
                hub_issuer=self.hub_issuer,
                auth=self.auth,
                replay=self.replay,
                now=self.clock(),
                receiver=self.receiver,
            )
            return HubCall(claims)
        principal = await authenticate_request(
            authorization_header=headers.get("authorization"),
            dpop_header=headers.get("dpop"),
            method=method,
            url=url,
            keys=self.keys,
            replay=self.replay,
            settings=self.auth,
            now=self.clock(),
        )
        return DirectCall(principal)
