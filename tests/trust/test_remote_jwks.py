"""RemoteJwks: a token with an unknown kid costs at most one JWKS fetch per 30 s (issue 10 B).

The issue asked where a source's CPU went on hostile tokens; one suspect was a JWKS refetch per
unknown kid. It is not: refetches are bounded by `min_refresh_interval`, which this pins.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from onerecord.trust.errors import InvalidToken
from onerecord.trust.keys import RemoteJwks, SigningKey

ISSUER_KEY = SigningKey.generate(kid="issuer-1")


def test_twenty_unknown_kids_cost_one_refetch_within_the_interval() -> None:
    requests: list[httpx.Request] = []

    def jwks(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json={"keys": [ISSUER_KEY.public_jwk()]})

    now = [1000.0]

    async def run() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(jwks)) as client:
            provider = RemoteJwks("https://sts.test/jwks", client, clock=lambda: now[0])
            assert await provider.key_for("issuer-1")  # first fetch
            now[0] += 31  # past min_refresh_interval: one refetch allowed
            for i in range(20):
                with pytest.raises(InvalidToken):
                    await provider.key_for(f"forged-{i}")
            assert provider.fetch_count == 2

    asyncio.run(run())
    assert len(requests) == 2
