"""DPoP proofs (RFC 9449 §4.3) and the replay caches behind them (B2–B4 building blocks)."""

from __future__ import annotations

import os
import secrets
import time

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey

from onerecord.trust.dpop import (
    DPoPProof,
    access_token_hash,
    jwk_thumbprint,
    make_proof,
    normalise_htu,
    verify_proof,
)
from onerecord.trust.errors import InvalidToken
from onerecord.trust.keys import SigningKey
from onerecord.trust.replay import MemoryReplayCache, RedisReplayCache

URL = "https://hub.example.no/R4/fhir/DocumentReference/_search"
pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate(kid="client-1")


async def _verify(proof: str, key: SigningKey, **kw: object) -> DPoPProof:
    args: dict[str, object] = {
        "htm": "POST",
        "htu": URL,
        "access_token": "tok",
        "jkt": key.thumbprint(),
        "now": time.time(),
        "replay": MemoryReplayCache(),
    }
    args.update(kw)
    return await verify_proof(proof, **args)  # type: ignore[arg-type]


async def test_valid_proof_is_accepted_and_reports_thumbprint(key: SigningKey) -> None:
    proof = make_proof(key, htm="POST", htu=URL + "?a=1#f", access_token="tok")
    result = await _verify(proof, key)
    assert result.jkt == jwk_thumbprint(key) == key.thumbprint()
    assert result.ath == access_token_hash("tok")


def test_ath_is_base64url_sha256_of_token() -> None:
    # RFC 9449 §7.1 example token and its ath.
    token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
    assert access_token_hash(token) == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"


def test_htu_normalisation_drops_default_port_query_and_fragment() -> None:
    assert normalise_htu("HTTPS://Hub.Example.no:443/a/b?x=1#y") == "https://hub.example.no/a/b"
    assert normalise_htu("http://127.0.0.1:8080/t") == "http://127.0.0.1:8080/t"


async def test_B3_proof_from_another_key_is_refused(key: SigningKey) -> None:
    other = SigningKey.generate(kid="other")
    proof = make_proof(other, htm="POST", htu=URL, access_token="tok")
    with pytest.raises(InvalidToken, match="cnf.jkt"):
        await _verify(proof, key)


async def test_B4_ath_mismatch_is_refused(key: SigningKey) -> None:
    proof = make_proof(key, htm="POST", htu=URL, access_token="another token")
    with pytest.raises(InvalidToken, match="ath") as info:
        await _verify(proof, key)
    assert info.value.error == "invalid_dpop_proof"


async def test_B4_replayed_jti_is_refused(key: SigningKey) -> None:
    cache = MemoryReplayCache()
    proof = make_proof(key, htm="POST", htu=URL, access_token="tok")
    await _verify(proof, key, replay=cache)
    with pytest.raises(InvalidToken, match="replay"):
        await _verify(proof, key, replay=cache)


@pytest.mark.parametrize("age", [61, -30])
async def test_B4_stale_or_future_iat_is_refused(key: SigningKey, age: int) -> None:
    proof = make_proof(key, htm="POST", htu=URL, access_token="tok", iat=int(time.time()) - age)
    with pytest.raises(InvalidToken, match="iat"):
        await _verify(proof, key)


async def test_iat_within_window_is_accepted(key: SigningKey) -> None:
    proof = make_proof(key, htm="POST", htu=URL, access_token="tok", iat=int(time.time()) - 55)
    await _verify(proof, key)


@pytest.mark.parametrize(
    ("htm", "htu"),
    [
        ("GET", URL),
        ("POST", "https://hub.example.no/R4/fhir/Other"),
        ("POST", "http://hub.example.no/R4/fhir/DocumentReference/_search"),
    ],
)
async def test_method_or_uri_mismatch_is_refused(key: SigningKey, htm: str, htu: str) -> None:
    proof = make_proof(key, htm=htm, htu=htu, access_token="tok")
    with pytest.raises(InvalidToken, match="htm|htu"):
        await _verify(proof, key)


async def test_wrong_typ_is_refused(key: SigningKey) -> None:
    claims = {"jti": secrets.token_hex(8), "htm": "POST", "htu": URL, "iat": int(time.time())}
    jwk = {k: v for k, v in key.public_jwk().items() if k not in ("kid", "use", "alg")}
    proof = jwt.encode({"alg": "ES256", "typ": "JWT", "jwk": jwk}, claims, key.key)
    with pytest.raises(InvalidToken, match="typ"):
        await _verify(proof, key, access_token=None)


async def test_symmetric_algorithm_is_refused(key: SigningKey) -> None:
    claims = {"jti": secrets.token_hex(8), "htm": "POST", "htu": URL, "iat": int(time.time())}
    oct_key = OctKey.generate_key(256)
    proof = jwt.encode({"alg": "HS256", "typ": "dpop+jwt", "jwk": {"kty": "oct"}}, claims, oct_key)
    with pytest.raises(InvalidToken, match="asymmetric"):
        await _verify(proof, key, access_token=None)


async def test_private_key_in_header_is_refused(key: SigningKey) -> None:
    claims = {"jti": secrets.token_hex(8), "htm": "POST", "htu": URL, "iat": int(time.time())}
    private = {k: v for k, v in key.private_jwk().items() if k != "alg"}
    proof = jwt.encode({"alg": "ES256", "typ": "dpop+jwt", "jwk": private}, claims, key.key)
    with pytest.raises(InvalidToken, match="private"):
        await _verify(proof, key, access_token=None)


async def test_tampered_signature_is_refused(key: SigningKey) -> None:
    proof = make_proof(key, htm="POST", htu=URL, access_token="tok")
    head, body, sig = proof.split(".")
    forged_body = make_proof(key, htm="GET", htu=URL, access_token="tok").split(".")[1]
    with pytest.raises(InvalidToken, match="signature"):
        await _verify(f"{head}.{forged_body}.{sig}", key, htm="GET")


async def test_memory_cache_expires_and_stays_bounded() -> None:
    now = [1000.0]
    cache = MemoryReplayCache(max_entries=3, clock=lambda: now[0])
    assert await cache.seen("a", 1010) is False
    assert await cache.seen("a", 1010) is True
    now[0] = 1011
    assert await cache.seen("a", 1020) is False  # expired, so usable again
    for jti in ("b", "c", "d", "e"):
        await cache.seen(jti, 1100)
    assert len(cache) <= 3


@pytest.fixture
async def redis_cache() -> object:
    from redis.asyncio import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    client = Redis.from_url(os.environ.get("ONERECORD_TEST_REDIS", "redis://127.0.0.1:6379/0"))
    try:
        await client.ping()
    except (RedisConnectionError, OSError) as exc:
        await client.aclose()
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but Redis is not reachable: {exc}")
        pytest.skip("Redis at 127.0.0.1:6379 is not reachable (allowed outside CI)")
    cache = RedisReplayCache(client, prefix=f"test:{secrets.token_hex(6)}:")
    yield cache
    await cache.aclose()


async def test_redis_cache_refuses_second_use(redis_cache: RedisReplayCache) -> None:
    jti = secrets.token_hex(8)
    assert await redis_cache.seen(jti, time.time() + 30) is False
    assert await redis_cache.seen(jti, time.time() + 30) is True
    assert await redis_cache.seen(jti + "x", time.time() + 30) is False


async def test_redis_cache_backs_proof_verification(
    key: SigningKey, redis_cache: RedisReplayCache
) -> None:
    proof = make_proof(key, htm="POST", htu=URL, access_token="tok")
    await _verify(proof, key, replay=redis_cache)
    with pytest.raises(InvalidToken, match="replay"):
        await _verify(proof, key, replay=redis_cache)
