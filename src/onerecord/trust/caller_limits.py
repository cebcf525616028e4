"""Per-caller limits: how many requests one caller may have in flight, and how fast it may send.

One caller must not starve the others (issue 10 A). Each caller — the subject and client of a
verified access token, never anything an unauthenticated request could choose — has a token
bucket (`rate_per_s` sustained, `burst` at once) and a count of requests in flight
(`concurrency`). A request over either limit is refused at once with `CallerThrottled`, which
the edge answers with 429, `Retry-After` and an OperationOutcome (code `throttled`); nothing
waits in a queue, so a throttled caller costs the others nothing.

The limiter is pure: a clock is passed in, there is no I/O, and every method runs without an
await, so on one event loop acquire and release are atomic. The counts live in one process;
replicas each enforce their own share (docs/security.md).

    CallerThrottled     429 throttled (retry_after_s, limit: "rate" or "concurrency")

References: RFC 6585 §4 (429 Too Many Requests), RFC 9110 §10.2.3 (Retry-After); FHIR R4
IssueType `throttled`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from onerecord.trust.access_token import AccessTokenClaims

__all__ = [
    "PERMIT_STATE",
    "CallerLimiter",
    "CallerPermit",
    "CallerQuota",
    "CallerThrottled",
    "ReleaseCallerPermits",
    "address_key",
    "caller_key",
]

PERMIT_STATE = "caller_permit"
"""Where a request keeps its CallerPermit in the ASGI scope's `state` until it has answered."""


class CallerThrottled(Exception):
    """The caller is over its limit; it may try again after `retry_after_s` seconds."""

    status = 429
    code = "throttled"

    def __init__(self, message: str, *, limit: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.message = message
        self.limit = limit
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class CallerQuota:
    """What one caller may use: requests in flight, and a token bucket. 0 switches a part off."""

    concurrency: int = 16
    rate_per_s: float = 20.0
    burst: int = 200

    def __post_init__(self) -> None:
        if self.concurrency < 0 or self.rate_per_s < 0 or self.burst < 0:
            raise ValueError("caller limits must not be negative")
        if self.rate_per_s > 0 and self.burst < 1:
            raise ValueError("a rate limit needs a burst of at least 1")

    def scaled(self, factor: float) -> CallerQuota:
        """Return this quota times `factor` (e.g. for calls the hub relays for a user)."""
        return CallerQuota(
            concurrency=math.ceil(self.concurrency * factor),
            rate_per_s=self.rate_per_s * factor,
            burst=math.ceil(self.burst * factor),
        )


def caller_key(claims: AccessTokenClaims) -> str:
    """Return the key of a verified caller: its token's subject and client (`sub`, `client_id`).

    For a hub assertion these are the end user's and the end user's client, so a source limits
    each user behind the hub, not the hub as one caller.
    """
    return f"sub:{claims.subject}|client:{claims.client_id or '-'}"


def address_key(host: str | None) -> str:
    """Return the key of a caller that has no verified identity: its network address."""
    return f"addr:{host or 'unknown'}"


@dataclass(slots=True)
class _Caller:
    tokens: float
    updated: float
    in_flight: int = 0


@dataclass(slots=True)
class CallerPermit:
    """One admitted request; `release()` (once, idempotent) when it has been answered."""

    _limiter: CallerLimiter
    _key: str
    _released: bool = field(default=False)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._limiter._release(self._key)


class CallerLimiter:
    """Admit or refuse each request of a caller by its key (see the module docstring)."""

    def __init__(
        self,
        quota: CallerQuota,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_callers: int = 100_000,
    ) -> None:
        self.quota = quota
        self.clock = clock
        self.max_callers = max_callers
        self._callers: dict[str, _Caller] = {}

    def acquire(self, key: str) -> CallerPermit:
        """Admit one request of `key`, or raise CallerThrottled without changing any count."""
        quota = self.quota
        now = self.clock()
        caller = self._callers.get(key)
        if caller is None:
            self._make_room(now)
            caller = _Caller(tokens=float(quota.burst), updated=now)
            self._callers[key] = caller
        self._refill(caller, now)
        if quota.concurrency and caller.in_flight >= quota.concurrency:
            raise CallerThrottled(
                f"too many requests in flight for this caller (at most {quota.concurrency})",
                limit="concurrency",
                retry_after_s=1,
            )
        if quota.rate_per_s:
            if caller.tokens < 1.0:
                wait = (1.0 - caller.tokens) / quota.rate_per_s
                raise CallerThrottled(
                    f"too many requests from this caller (at most {quota.rate_per_s:g} per "
                    f"second, {quota.burst} at once)",
                    limit="rate",
                    retry_after_s=max(1, math.ceil(wait)),
                )
            caller.tokens -= 1.0
        caller.in_flight += 1
        return CallerPermit(self, key)

    def in_flight(self, key: str) -> int:
        """Return how many requests of `key` are being served."""
        caller = self._callers.get(key)
        return caller.in_flight if caller is not None else 0

    def __len__(self) -> int:
        return len(self._callers)

    def _release(self, key: str) -> None:
        caller = self._callers.get(key)
        if caller is not None and caller.in_flight > 0:
            caller.in_flight -= 1

    def _refill(self, caller: _Caller, now: float) -> None:
        elapsed = max(0.0, now - caller.updated)
        caller.tokens = min(
            float(self.quota.burst), caller.tokens + elapsed * self.quota.rate_per_s
        )
        caller.updated = now

    def _make_room(self, now: float) -> None:
        """Keep at most `max_callers` entries: forget idle callers, fullest buckets first.

        An idle caller whose bucket has refilled is the same as a new one, so forgetting it
        loses nothing; only when that is not enough are idle callers forgotten early (they get
        a full bucket back, never a smaller one). Callers with requests in flight are kept.
        Room is made for a tenth more at once, so the sweep is paid rarely.
        """
        if len(self._callers) < self.max_callers:
            return
        for key, caller in list(self._callers.items()):
            self._refill(caller, now)
            if caller.in_flight == 0 and caller.tokens >= self.quota.burst:
                del self._callers[key]
        target = self.max_callers - max(1, self.max_callers // 10)
        excess = len(self._callers) - target
        if excess <= 0:
            return
        idle = sorted(
            ((c.tokens, k) for k, c in self._callers.items() if c.in_flight == 0), reverse=True
        )
        for _tokens, key in idle[:excess]:
            del self._callers[key]


Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Any]


class ReleaseCallerPermits:
    """ASGI middleware: release the request's CallerPermit once its answer has been sent.

    The permit is taken after authentication (see each app) and kept in the scope's `state`;
    releasing it here covers every way out — a response, an error, a streamed body, a client
    that hung up.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            state = scope.get("state")
            permit = state.get(PERMIT_STATE) if isinstance(state, MutableMapping) else None
            if isinstance(permit, CallerPermit):
                permit.release()
