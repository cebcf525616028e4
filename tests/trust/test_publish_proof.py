from __future__ import annotations

import time

import pytest

from onerecord.trust.errors import InvalidToken
from onerecord.trust.keys import SigningKey, StaticJwks
from onerecord.trust.publish_proof import Publisher, make_publish_proof, verify_publish_proof
from onerecord.trust.replay import MemoryReplayCache

pytestmark = pytest.mark.anyio

AUD = "urn:oid:2.16.578.1.12.4.5.100.1"
URL = "http://127.0.0.1:8001/fhir"
BODY = b'{"resourceType":"Bundle"}'


def _proof(key: SigningKey, **overrides: object) -> str:
    values: dict[str, object] = {
        "issuer": "urn:oid:2.16.578.1.12.4.5.100.1.9",
        "audience": AUD,
        "htu": URL,
        "body": BODY,
        "now": time.time(),
    }
    values.update(overrides)
    return make_publish_proof(key, **values)  # type: ignore[arg-type]


async def _verify(
    proof: str, key: SigningKey, *, body: bytes = BODY, replay: MemoryReplayCache | None = None
) -> Publisher:
    return await verify_publish_proof(
        proof,
        keys=StaticJwks([key]),
        audience=AUD,
        htu=URL,
        body=body,
        now=time.time(),
        replay=MemoryReplayCache() if replay is None else replay,
    )


async def test_valid_proof_names_the_publisher() -> None:
    key = SigningKey.generate()
    publisher = await _verify(_proof(key), key)
    assert publisher.issuer == "urn:oid:2.16.578.1.12.4.5.100.1.9"


async def test_proof_for_another_body_is_refused() -> None:
    key = SigningKey.generate()
    with pytest.raises(InvalidToken, match="body"):
        await _verify(_proof(key), key, body=BODY + b" ")


async def test_replayed_proof_is_refused() -> None:
    key = SigningKey.generate()
    replay = MemoryReplayCache()
    proof = _proof(key)
    await _verify(proof, key, replay=replay)
    with pytest.raises(InvalidToken, match="replay"):
        await _verify(proof, key, replay=replay)


async def test_unknown_key_is_refused() -> None:
    known, stranger = SigningKey.generate(), SigningKey.generate()
    with pytest.raises(InvalidToken):
        await verify_publish_proof(
            _proof(stranger),
            keys=StaticJwks([known]),
            audience=AUD,
            htu=URL,
            body=BODY,
            now=time.time(),
            replay=MemoryReplayCache(),
        )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"audience": "urn:oid:1.2.3"}, "audience"),
        ({"htu": "http://127.0.0.1:8001/fhir/other"}, "URL"),
        ({"now": time.time() - 3600}, "expired"),
    ],
)
async def test_wrong_binding_is_refused(overrides: dict[str, object], message: str) -> None:
    key = SigningKey.generate()
    with pytest.raises(InvalidToken, match=message):
        await _verify(_proof(key, **overrides), key)


async def test_garbage_is_refused() -> None:
    with pytest.raises(InvalidToken, match="compact JWS"):
        await _verify("not a jwt", SigningKey.generate())
