"""Single-use identifiers (DPoP proof jti, client assertion jti): remember them until they expire.

One process: `MemoryReplayCache`. Several hub replicas: `RedisReplayCache` (SET NX EX), so a
proof replayed against another replica is refused as well.

References: RFC 9449 §11.1 (DPoP proof replay), RFC 7523 §3 item 7 (client assertion jti).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis

__all__ = ["MemoryReplayCache", "RedisReplayCache", "ReplayCache"]


class ReplayCache(Protocol):
    """Remembers identifiers that may be used once."""

    async def seen(self, jti: str, expires_at: float) -> bool:
        """Record `jti` until `expires_at` (Unix seconds); return True if it was already there."""
        ...


class MemoryReplayCache:
    """An in-process cache with expiry and a bound on its size.

    When full, expired entries go first, then the oldest; size it for (requests per second ×
    proof lifetime) so that eviction only touches entries whose proofs are already stale.
    """

    def __init__(
        self, *, max_entries: int = 100_000, clock: Callable[[], float] = time.time
    ) -> None:
        self._entries: OrderedDict[str, float] = OrderedDict()
        self._max = max_entries
        self._clock = clock

    def __len__(self) -> int:
        return len(self._entries)

    def _purge(self, now: float) -> None:
        expired = [k for k, exp in self._entries.items() if exp <= now]
        for k in expired:
            del self._entries[k]

    async def seen(self, jti: str, expires_at: float) -> bool:
        now = self._clock()
        known = self._entries.get(jti)
        if known is not None and known > now:
            return True
        if len(self._entries) >= self._max:
            self._purge(now)
            while len(self._entries) >= self._max:
                self._entries.popitem(last=False)
        self._entries[jti] = expires_at
        self._entries.move_to_end(jti)
        return False


class RedisReplayCache:
    """A replay cache shared by all replicas through Redis: SET key NX EX ttl."""

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = "onerecord:jti:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._clock = clock

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "onerecord:jti:") -> RedisReplayCache:
        """Connect to the Redis at `url` (redis://host:port/db)."""
        return cls(Redis.from_url(url), prefix=prefix)

    async def seen(self, jti: str, expires_at: float) -> bool:
        ttl = max(1, math.ceil(expires_at - self._clock()))
        stored = await self._client.set(f"{self._prefix}{jti}", b"1", nx=True, ex=ttl)
        return not stored

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()
