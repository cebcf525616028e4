from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jwt

from onerecord.trust.errors import InvalidToken
from onerecord.trust.keys import SigningKey
from onerecord.trust.publish_proof import (
    IssuerMismatch,
    Publisher,
    PublisherKeys,
    make_publish_proof,
    publisher_jwk,
    verify_publish_proof,
)
from onerecord.trust.replay import MemoryReplayCache

pytestmark = pytest.mark.anyio

AUD = "urn:oid:2.16.578.1.12.4.5.100.1"
URL = "http://127.0.0.1:8001/fhir"
BODY = b'{"resourceType":"Bundle"}'
ISSUER = "urn:oid:2.16.578.1.12.4.5.100.1.9"


def _keys(*keys: SigningKey, issuer: str = ISSUER) -> PublisherKeys:
    return PublisherKeys.from_jwks({"keys": [publisher_jwk(k, issuer=issuer) for k in keys]})


def _proof(key: SigningKey, **overrides: object) -> str:
    values: dict[str, object] = {
        "issuer": ISSUER,
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
        keys=_keys(key),
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
            keys=_keys(known),
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


async def test_a_get_proof_is_bound_to_its_method() -> None:
    key = SigningKey.generate()
    proof = _proof(key, method="GET", body=b"")

    async def verify(method: str) -> Publisher:
        return await verify_publish_proof(
            proof,
            keys=_keys(key),
            audience=AUD,
            htu=URL,
            body=b"",
            now=time.time(),
            replay=MemoryReplayCache(),
            method=method,
        )

    assert (await verify("GET")).issuer == "urn:oid:2.16.578.1.12.4.5.100.1.9"
    with pytest.raises(InvalidToken, match="method"):
        await verify("POST")
    with pytest.raises(InvalidToken, match="method"):
        await _verify(proof, key, body=b"")  # an ITI-65 POST does not take a GET proof


async def test_a_publisher_cannot_claim_another_publishers_issuer() -> None:
    """Both keys are registered, but each only for its own issuer: B's key cannot speak as A."""
    a, b = SigningKey.generate(kid="ehr-a"), SigningKey.generate(kid="ehr-b")
    keys = PublisherKeys.from_jwks(
        {"keys": [publisher_jwk(a, issuer="urn:a"), publisher_jwk(b, issuer="urn:b", archive=True)]}
    )

    async def verify(proof: str) -> Publisher:
        return await verify_publish_proof(
            proof, keys=keys, audience=AUD, htu=URL, body=BODY, now=time.time(),
            replay=MemoryReplayCache(),
        )  # fmt: skip

    first = await verify(_proof(a, issuer="urn:a"))
    assert (first.issuer, first.archive) == ("urn:a", False)
    assert (await verify(_proof(b, issuer="urn:b"))).archive is True
    with pytest.raises(IssuerMismatch) as caught:
        await verify(_proof(b, issuer="urn:a"))
    assert (caught.value.claimed, caught.value.registered) == ("urn:a", "urn:b")
    assert caught.value.status == 401


async def test_a_proof_without_a_kid_is_refused() -> None:
    key = SigningKey.generate()
    claims = {"iss": ISSUER}
    token = jwt.encode({"alg": "ES256", "typ": "onerecord-publish+jwt"}, claims, key.key)
    with pytest.raises(InvalidToken, match="kid"):
        await _verify(token, key)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda j: j.pop("iss"), "needs 'iss'"),
        (lambda j: j.update(iss=""), "needs 'iss'"),
        (lambda j: j.update(iss=7), "needs 'iss'"),
        (lambda j: j.update(iss="x" * 257), "needs 'iss'"),
        (lambda j: j.pop("kid"), "no kid"),
        (lambda j: j.update(onerecord_archive="yes"), "true or false"),
        (lambda j: j.update(kty="oct"), "EC or RSA"),
        (lambda j: j.update(d="c2VjcmV0"), "private"),
    ],
)
def test_a_publishers_jwks_without_an_issuer_per_key_is_refused(change: Any, message: str) -> None:
    jwk = publisher_jwk(SigningKey.generate(kid="k1"), issuer=ISSUER)
    change(jwk)
    with pytest.raises(ValueError, match=message):
        PublisherKeys.from_jwks({"keys": [jwk]})


def test_a_kid_listed_twice_or_no_keys_is_refused() -> None:
    jwk = publisher_jwk(SigningKey.generate(kid="k1"), issuer=ISSUER)
    with pytest.raises(ValueError, match="twice"):
        PublisherKeys.from_jwks({"keys": [jwk, {**jwk, "iss": "urn:other"}]})
    for document in ({"keys": []}, {}, [], {"keys": "x"}):
        with pytest.raises(ValueError):
            PublisherKeys.from_jwks(document)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=20,
    )
)
@settings(max_examples=200, deadline=None)
def test_any_json_is_a_publishers_jwks_or_a_value_error(document: Any) -> None:
    try:
        keys = PublisherKeys.from_jwks(document)
    except ValueError:
        return
    assert len(keys) >= 1
