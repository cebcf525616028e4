"""Hostile JOSE headers and claims: every verifier answers with a trust error, cheaply.

Issue 10 B: a header whose `alg` or `typ` was a list or an object (and a DPoP proof whose `iat`
was NaN) raised TypeError/ValueError inside the verifiers, which the services answered with 500
after logging a traceback. `trust.jose` now checks the shape first; these tests pin that.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onerecord.trust.access_token import validate_access_token
from onerecord.trust.assertion import HUB_ASSERTION_TYP, verify_hub_assertion
from onerecord.trust.dpop import access_token_hash, make_proof, normalise_htu, verify_proof
from onerecord.trust.errors import InvalidToken, TrustError
from onerecord.trust.jose import MAX_JWS_LENGTH, numeric_date, parse_compact
from onerecord.trust.keys import Key, SigningKey, StaticJwks, import_public_jwk
from onerecord.trust.publish_proof import (
    PUBLISH_PROOF_TYP,
    PublisherKeys,
    RegisteredPublisher,
    body_digest,
    verify_publish_proof,
)
from onerecord.trust.replay import MemoryReplayCache
from tests.trust.jose_factories import b64, dpop_header, json_bytes, kid_header, signed

ISSUER = "https://sts.example.no"
AUDIENCE = "urn:oid:2.16.578.1.12.4.5.100.1"
URL = "https://source.example.no/fhir/DocumentReference"
BODY = b"{}"
ISSUER_KEY = SigningKey.generate(kid="issuer-1")
CLIENT_KEY = SigningKey.generate(kid="client-1")

# A header member of each JSON type that is not the one RFC 7515 §4.1 registers.
WRONG_TYPES: list[Any] = [["ES256"], {"alg": "ES256"}, 5, 1.5, True, None]


class CountingKeys:
    """A KeyProvider that counts lookups: a malformed token must cost none."""

    def __init__(self, key: SigningKey) -> None:
        self.inner = StaticJwks([key])
        self.lookups = 0

    async def key_for(self, kid: str | None) -> Key:
        self.lookups += 1
        return await self.inner.key_for(kid)


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "hp:x",
        "iat": now,
        "nbf": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(12),
        "htm": "GET",
        "htu": URL,
        "cnf": {"jkt": CLIENT_KEY.thumbprint()},
        "original_jti": "orig",
        "body_sha256": body_digest(BODY),
    }
    claims.update(changes)
    return claims


# -- the verifiers, each as a function of the token ----------------------------------------------

Verifier = Callable[[str, CountingKeys], Awaitable[object]]


async def _access_token(token: str, keys: CountingKeys) -> object:
    return await validate_access_token(
        token, keys=keys, issuer=ISSUER, audience=AUDIENCE, now=time.time()
    )


async def _hub_assertion(token: str, keys: CountingKeys) -> object:
    return await verify_hub_assertion(
        token,
        keys=keys,
        issuer=ISSUER,
        audience=AUDIENCE,
        now=time.time(),
        replay=MemoryReplayCache(),
    )


class _CountingPublishers(PublisherKeys):
    """The publishers' keys (each tied to its issuer), counting lookups into `counting`."""

    def __init__(self, counting: CountingKeys) -> None:
        key = import_public_jwk(ISSUER_KEY.public_jwk())
        super().__init__([RegisteredPublisher(str(ISSUER_KEY.kid), ISSUER, key)])
        self.counting = counting

    def registered(self, kid: str | None) -> RegisteredPublisher:
        self.counting.lookups += 1
        return super().registered(kid)


async def _publish_proof(token: str, keys: CountingKeys) -> object:
    return await verify_publish_proof(
        token,
        keys=_CountingPublishers(keys),
        audience=AUDIENCE,
        htu=URL,
        body=BODY,
        now=time.time(),
        replay=MemoryReplayCache(),
    )


async def _dpop_proof(token: str, keys: CountingKeys) -> object:
    return await verify_proof(
        token,
        htm="GET",
        htu=URL,
        access_token=None,
        jkt=None,
        now=time.time(),
        replay=MemoryReplayCache(),
    )


KID_VERIFIERS: dict[str, tuple[Verifier, str]] = {
    "access token": (_access_token, "at+jwt"),
    "hub assertion": (_hub_assertion, HUB_ASSERTION_TYP),
    "publish proof": (_publish_proof, PUBLISH_PROOF_TYP),
}


def _refused(verifier: Verifier, token: str, keys: CountingKeys | None = None) -> TrustError:
    keys = keys or CountingKeys(ISSUER_KEY)
    with pytest.raises(TrustError) as info:
        asyncio.run(verifier(token, keys))
    return info.value


# -- regression tests -----------------------------------------------------------------------------


@pytest.mark.parametrize("what", sorted(KID_VERIFIERS))
@pytest.mark.parametrize("member", ["alg", "typ", "kid"])
@pytest.mark.parametrize("value", WRONG_TYPES[:3], ids=["list", "object", "number"])
def test_header_member_list_or_object_is_invalid_token_without_key_lookup(
    what: str, member: str, value: Any
) -> None:
    verifier, typ = KID_VERIFIERS[what]
    token = signed(
        ISSUER_KEY, kid_header(ISSUER_KEY, typ, **{member: value}), json_bytes(_claims())
    )
    keys = CountingKeys(ISSUER_KEY)
    error = _refused(verifier, token, keys)
    assert isinstance(error, InvalidToken) and error.error == "invalid_token"
    assert keys.lookups == 0


@pytest.mark.parametrize(
    "changes",
    [
        {"alg": ["ES256"]},
        {"alg": {"ES256": 1}},
        {"typ": ["dpop+jwt"]},
        {"typ": {"dpop": "jwt"}},
        {"jwk": ["EC"]},
        {"jwk": {"kty": "EC", "crv": "P-256", "x": 5, "y": []}},
        {"jwk": {"kty": "EC", "crv": ["P-256"], "x": "a", "y": "b"}},
        {"jwk": {"kty": "oct", "k": "AAAA"}},
        {"kid": {"a": 1}},
        {"crit": ["exp"]},
        {"crit": 5},
        {"b64": False},
        {"zip": "DEF"},
        {"x5c": "not-a-list"},
    ],
    ids=repr,
)
def test_dpop_proof_header_of_wrong_shape_is_invalid_dpop_proof(changes: dict[str, Any]) -> None:
    token = signed(CLIENT_KEY, dpop_header(CLIENT_KEY, **changes), json_bytes(_claims()))
    assert _refused(_dpop_proof, token).error == "invalid_dpop_proof"


@pytest.mark.parametrize(
    "iat",
    [math.nan, math.inf, -math.inf, 10**30, 2**64, -1, "1700000000", True, None, [1], {"a": 1}],
    ids=repr,
)
def test_dpop_proof_iat_nan_infinity_huge_string_or_bool_is_invalid_dpop_proof(iat: Any) -> None:
    token = signed(CLIENT_KEY, dpop_header(CLIENT_KEY), json_bytes(_claims(iat=iat)))
    assert _refused(_dpop_proof, token).error == "invalid_dpop_proof"


@pytest.mark.parametrize("name", ["htm", "htu", "jti"])
@pytest.mark.parametrize("value", [5, ["GET"], {"a": 1}, None, "x" * 5000], ids=repr)
def test_dpop_proof_string_claims_of_wrong_type_are_invalid_dpop_proof(
    name: str, value: Any
) -> None:
    token = signed(CLIENT_KEY, dpop_header(CLIENT_KEY), json_bytes(_claims(**{name: value})))
    assert _refused(_dpop_proof, token).error == "invalid_dpop_proof"


def test_dpop_proof_htu_with_broken_host_is_invalid_dpop_proof() -> None:
    token = signed(CLIENT_KEY, dpop_header(CLIENT_KEY), json_bytes(_claims(htu="http://[::1/x")))
    assert _refused(_dpop_proof, token).error == "invalid_dpop_proof"
    with pytest.raises(InvalidToken):
        normalise_htu("http://host:99999999/")


@pytest.mark.parametrize("what", sorted(KID_VERIFIERS))
@pytest.mark.parametrize("name", ["iat", "exp"])
@pytest.mark.parametrize("value", [math.nan, math.inf, 10**30, "1700000000", True], ids=repr)
def test_numeric_claims_nan_huge_string_or_bool_are_invalid_token(
    what: str, name: str, value: Any
) -> None:
    verifier, typ = KID_VERIFIERS[what]
    token = signed(ISSUER_KEY, kid_header(ISSUER_KEY, typ), json_bytes(_claims(**{name: value})))
    assert _refused(verifier, token).error == "invalid_token"


def test_dpop_proof_with_a_key_that_does_not_fit_its_alg_is_refused() -> None:
    rsa = SigningKey.generate(kid="rsa", alg="RS256")
    token = signed(rsa, dpop_header(rsa, alg="ES256"), json_bytes(_claims()))
    assert _refused(_dpop_proof, token).error == "invalid_dpop_proof"


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "RSA", "n": "A" * 1500, "e": "AQAB"},  # modulus too long
        {"kty": "RSA", "n": b64(b"\x01" * 128), "e": "AQAB"},  # 1024 bits: too short
        {"kty": "RSA", "n": b64(b"\xc1" * 256), "e": b64(b"\x01" * 512)},  # huge exponent
        {"kty": "EC", "crv": "P-192", "x": "AAAA", "y": "AAAA"},
        {"kty": "EC", "crv": "P-256", "x": "A" * 500, "y": "AAAA"},
        {"kty": "RSA", "n": "!!!", "e": "AQAB"},
    ],
    ids=["long-n", "short-n", "huge-e", "p192", "long-x", "not-base64"],
)
def test_jwk_of_unusual_size_or_curve_is_refused(jwk: dict[str, Any]) -> None:
    with pytest.raises(InvalidToken):
        import_public_jwk(jwk)


def test_over_long_token_is_refused_before_decoding() -> None:
    keys = CountingKeys(ISSUER_KEY)
    token = "a" * (MAX_JWS_LENGTH + 1) + ".b.c"
    assert "MAX_JWS_LENGTH" in _refused(_access_token, token, keys).description
    assert keys.lookups == 0


def test_www_authenticate_of_a_description_with_any_characters_stays_printable_ascii() -> None:
    challenge = InvalidToken('kid «ø»\r\n"\\ x').www_authenticate()
    assert challenge.isascii() and "\r" not in challenge and "\n" not in challenge
    challenge.encode("latin-1")


def test_numeric_date_accepts_whole_and_fractional_seconds() -> None:
    assert numeric_date({"iat": 1_700_000_000}, "iat", what="t") == 1_700_000_000
    assert numeric_date({"iat": 1_700_000_000.9}, "iat", what="t") == 1_700_000_000


def test_well_formed_tokens_still_pass() -> None:
    proof = make_proof(CLIENT_KEY, htm="GET", htu=URL, access_token="tok")
    result = asyncio.run(
        verify_proof(
            proof,
            htm="GET",
            htu=URL,
            access_token="tok",
            jkt=CLIENT_KEY.thumbprint(),
            now=time.time(),
            replay=MemoryReplayCache(),
        )
    )
    assert result.ath == access_token_hash("tok")
    token = ISSUER_KEY.sign(_claims(htm="POST"), typ=PUBLISH_PROOF_TYP)
    assert asyncio.run(_publish_proof(token, CountingKeys(ISSUER_KEY)))


# -- the property: hostile shapes raise trust errors and nothing else --------------------------

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
_json = st.recursive(
    _json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_HEADER_NAMES = ["alg", "typ", "kid", "jwk", "crit", "b64", "zip", "x5c", "x5t", "cty", "jku"]
_CLAIM_NAMES = ["iat", "exp", "nbf", "htm", "htu", "ath", "jti", "iss", "aud", "sub", "toa", "cnf"]


@st.composite
def hostile_tokens(draw: st.DrawFn) -> tuple[str, str]:
    """A (verifier name, token): a valid token of that kind with hostile parts put in."""
    what = draw(st.sampled_from([*sorted(KID_VERIFIERS), "DPoP proof"]))
    if what == "DPoP proof":
        key, header = CLIENT_KEY, dpop_header(CLIENT_KEY)
    else:
        key, header = ISSUER_KEY, kid_header(ISSUER_KEY, KID_VERIFIERS[what][1])
    header.update(draw(st.dictionaries(st.sampled_from(_HEADER_NAMES), _json, max_size=3)))
    claims = _claims(**draw(st.dictionaries(st.sampled_from(_CLAIM_NAMES), _json, max_size=4)))
    whole_header = draw(st.sampled_from(["object", "replaced"]))
    if whole_header == "replaced":
        header = draw(_json)
    token = signed(key, header, json_bytes(claims))
    mangle = draw(st.sampled_from(["none", "segment", "huge", "dots", "signature"]))
    head, payload, signature = token.split(".")
    if mangle == "segment":
        junk = draw(st.text(max_size=40))
        token = draw(
            st.sampled_from([f"{junk}.{payload}.{signature}", f"{head}.{junk}.{signature}"])
        )
    elif mangle == "huge":
        token = f"{head}.{payload + 'A' * draw(st.integers(1, 20_000))}.{signature}"
    elif mangle == "dots":
        token = ".".join([head] * draw(st.integers(0, 6)))
    elif mangle == "signature":
        token = f"{head}.{payload}.{draw(st.text(max_size=100))}"
    return what, token


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=hostile_tokens())
def test_hostile_jws_raises_only_trust_errors(case: tuple[str, str]) -> None:
    what, token = case
    verifier = _dpop_proof if what == "DPoP proof" else KID_VERIFIERS[what][0]
    try:
        asyncio.run(verifier(token, CountingKeys(ISSUER_KEY)))
    except TrustError:
        pass


@settings(max_examples=100, deadline=None)
@given(token=st.text(max_size=300) | st.binary(max_size=300).map(b64))
def test_parse_compact_of_any_text_raises_only_invalid_token(token: str) -> None:
    try:
        parse_compact(token, what="token")
    except InvalidToken:
        pass
