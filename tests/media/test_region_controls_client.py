"""The archive's client of the source's controls: the answer's parser, the cache, fail closed.

The HTTP exchange is httpx's MockTransport here (the cache's rules: TTL, bound, one request in
flight, failures not cached); tests/media/test_region_controls.py runs it against a real source.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onerecord.domain import NationalIdentityNumber
from onerecord.media.errors import ControlsUnavailable
from onerecord.media.region_controls import (
    MAX_CONTROLS_ANSWER,
    SourceControls,
    read_controls_answer,
)
from onerecord.trust.keys import SigningKey
from onerecord.trust.publish_proof import (
    PUBLISH_PROOF_HEADER,
    PublisherKeys,
    publisher_jwk,
    verify_publish_proof,
)
from onerecord.trust.replay import MemoryReplayCache

pytestmark = pytest.mark.anyio

PATIENT = NationalIdentityNumber("13116900216")
OTHER = NationalIdentityNumber("01017000027")
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
SOURCE = "http://source.test"
AUDIENCE = "urn:oid:2.16.578.1.12.4.5.100.1"
KEY = SigningKey.generate(kid="archive")
ISSUER = "urn:oid:2.16.578.1.12.4.5.100.1.42"
PUBLISHERS = PublisherKeys.from_jwks({"keys": [publisher_jwk(KEY, issuer=ISSUER, archive=True)]})
"""The source's publishers: this archive's key, tied to its issuer and marked an archive."""
EMPTY = {"reservation": False, "documentBlocks": [], "practitionerBlocks": []}


def test_a_well_formed_answer_is_the_patients_controls() -> None:
    body = orjson.dumps(
        {
            "reservation": True,
            "documentBlocks": ["1.2.3", "urn:oid:1.2.4"],
            "practitionerBlocks": ["1234567"],
        }
    )
    controls = read_controls_answer(body, PATIENT, now=NOW)
    assert controls.patient == PATIENT and controls.reserved
    assert {d.value for d in controls.blocked_documents} == {"1.2.3", "1.2.4"}
    assert controls.blocked_practitioners == {"1234567"}


@pytest.mark.parametrize(
    "answer",
    [
        b"",
        b"null",
        b"[]",
        b'{"reservation": false}',
        orjson.dumps({**EMPTY, "extra": 1}),
        orjson.dumps({**EMPTY, "reservation": "false"}),
        orjson.dumps({**EMPTY, "reservation": 0}),
        orjson.dumps({**EMPTY, "documentBlocks": "1.2.3"}),
        orjson.dumps({**EMPTY, "documentBlocks": ["not an oid"]}),
        orjson.dumps({**EMPTY, "documentBlocks": [1.5]}),
        orjson.dumps({**EMPTY, "practitionerBlocks": ["12"]}),
        orjson.dumps({**EMPTY, "practitionerBlocks": ["１２３４５"]}),
        orjson.dumps({**EMPTY, "practitionerBlocks": [123456]}),
        orjson.dumps({**EMPTY, "documentBlocks": ["1.2"] * 10_001}),
        b" " * (MAX_CONTROLS_ANSWER + 1),
    ],
)
def test_anything_else_is_unavailable_never_no_controls(answer: bytes) -> None:
    with pytest.raises(ControlsUnavailable) as caught:
        read_controls_answer(answer, PATIENT, now=NOW)
    assert caught.value.status == 503


_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.from_regex(r"\A[0-9]{4,11}\Z")
    | st.from_regex(r"\A(urn:oid:)?1\.[0-9]{1,3}(\.[0-9]{1,3}){0,3}\Z")
)
_json = st.recursive(
    _leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner, max_size=4)
    ),
    max_leaves=12,
)
_near = st.fixed_dictionaries(
    {"reservation": _json, "documentBlocks": _json, "practitionerBlocks": _json}
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_json, _near).map(orjson.dumps) | st.binary(max_size=200))
def test_the_answer_parser_gives_controls_or_unavailable(answer: bytes) -> None:
    try:
        controls = read_controls_answer(answer, PATIENT, now=NOW)
    except ControlsUnavailable:
        return
    assert controls.patient == PATIENT


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


def _client(handler: Handler, clock: Clock, **kwargs: Any) -> SourceControls:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return SourceControls(
        http=http,
        source_url=SOURCE,
        audience=AUDIENCE,
        issuer=ISSUER,
        key=KEY,
        monotonic=clock,
        **kwargs,
    )


class Source:
    """Answers like the source and counts the requests; checks each proof as the source does."""

    def __init__(self, answer: dict[str, Any] | None = None, *, status: int = 200) -> None:
        self.answer = answer or EMPTY
        self.status = status
        self.asked: list[str] = []
        self.delay = 0.0
        self.replay = MemoryReplayCache()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        await verify_publish_proof(
            request.headers[PUBLISH_PROOF_HEADER],
            keys=PUBLISHERS,
            audience=AUDIENCE,
            htu=f"{SOURCE}/controls/system",
            body=b"",
            now=datetime.now(UTC).timestamp(),
            replay=self.replay,
            method="GET",
        )
        self.asked.append(request.url.params["patient"])
        if self.delay:
            await asyncio.sleep(self.delay)
        return httpx.Response(self.status, content=orjson.dumps(self.answer))


async def test_the_answer_is_cached_for_the_ttl_per_patient() -> None:
    source, clock = Source(), Clock()
    client = _client(source, clock, ttl_s=5.0)
    await client.controls_for(PATIENT)
    clock.now += 4.9
    await client.controls_for(PATIENT)
    assert source.asked == [PATIENT.value]
    await client.controls_for(OTHER)
    clock.now += 0.2
    await client.controls_for(PATIENT)
    assert source.asked == [PATIENT.value, OTHER.value, PATIENT.value]


async def test_one_request_in_flight_per_patient() -> None:
    source, clock = Source(), Clock()
    source.delay = 0.05
    client = _client(source, clock)
    answers = await asyncio.gather(*(client.controls_for(PATIENT) for _ in range(20)))
    assert source.asked == [PATIENT.value]
    assert len({id(a) for a in answers}) == 1


async def test_the_cache_is_bounded() -> None:
    source, clock = Source(), Clock()
    client = _client(source, clock, max_entries=1)
    await client.controls_for(PATIENT)
    await client.controls_for(OTHER)
    await client.controls_for(PATIENT)
    assert source.asked == [PATIENT.value, OTHER.value, PATIENT.value]


async def test_a_ttl_of_zero_asks_every_time() -> None:
    source, clock = Source(), Clock()
    client = _client(source, clock, ttl_s=0)
    await client.controls_for(PATIENT)
    await client.controls_for(PATIENT)
    assert len(source.asked) == 2


@pytest.mark.parametrize("status", [401, 403, 404, 500, 503])
async def test_a_refusal_or_error_is_unavailable_and_not_cached(status: int) -> None:
    source, clock = Source(status=status), Clock()
    client = _client(source, clock)
    for _ in range(2):
        with pytest.raises(ControlsUnavailable):
            await client.controls_for(PATIENT)
    assert len(source.asked) == 2
    source.status = 200
    assert not (await client.controls_for(PATIENT)).reserved


async def test_a_slow_source_is_unavailable() -> None:
    source, clock = Source(), Clock()
    source.delay = 1.0
    client = _client(source, clock, timeout_s=0.1)
    with pytest.raises(ControlsUnavailable):
        await client.controls_for(PATIENT)


async def test_an_unreachable_source_is_unavailable() -> None:
    async def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = _client(refuse, Clock())
    with pytest.raises(ControlsUnavailable):
        await client.controls_for(PATIENT)
