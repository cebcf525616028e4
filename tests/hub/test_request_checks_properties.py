"""Hostile requests to the hub: always a 4xx (or an answer), never a 5xx, and a refused request
asks no region (issue 10 A, B). Properties over the hub's own checks and over the whole app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onerecord.domain import DomainError
from onerecord.hub.app import create_hub_app
from onerecord.hub.client import FakeRegionClient, RegionResponse
from onerecord.hub.directory import RegionDirectory
from onerecord.hub.request_checks import (
    check_find_request,
    check_forwarded_headers,
    check_snapshot_page,
)
from onerecord.hub.settings import HubSettings
from onerecord.mhd import MhdError, read_search_form
from onerecord.trust.errors import TrustError
from tests.hub.conftest import HCID_HSO, HCID_VEST, make_region
from tests.sts.fakes import PARENT

FNR = "urn:oid:2.16.578.1.12.4.1.4.1"
NAMES = (
    "patient.identifier",
    "status",
    "date",
    "creation",
    "period",
    "type",
    "author.given",
    "author.family",
    "_count",
    "_sort",
    "_cursor",
    "_format",
    "_snapshot",
    "_offset",
)
HOSTILE_VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "0001",
            "9999-12-31",
            "ge0001-01-01T00:00:00+14:00",
            "2024-01-01T10:00:00+24:00",
            "2024-01-01T10:00:00+99:99",
            "²",
            "-1",
            "9" * 400,
            f"{FNR}|{PARENT}",
            ",".join(["a|b"] * 60),
            "\\" * 10,
            "",
        ]
    ),
    st.integers(min_value=0, max_value=3000).map(lambda n: "a" * n),
)
PARAMS = st.lists(
    st.tuples(st.one_of(st.sampled_from(NAMES), st.text(max_size=8)), HOSTILE_VALUES),
    max_size=14,
)
HEADERS = st.dictionaries(
    st.sampled_from(["nhn-access-basis", "nhn-patient-nin", "nhn-event-id", "accept-language"]),
    st.one_of(
        st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20),
        st.sampled_from(["AKUTT", "akutt", "X", PARENT, "12345", "A" * 9000]),
    ),
    max_size=3,
)
CALLER_ERRORS = (MhdError, DomainError, TrustError)


@settings(max_examples=150, deadline=None)
@given(params=PARAMS)
def test_check_find_request_refuses_with_a_caller_error_or_lets_through(
    params: list[tuple[str, str]],
) -> None:
    try:
        check_find_request(params, max_page_size=200, region_page_size=200)
    except CALLER_ERRORS as exc:
        status = getattr(exc, "status", 400)
        assert 400 <= status < 500


@settings(max_examples=100, deadline=None)
@given(params=PARAMS)
def test_snapshot_page_check_never_fails_with_anything_but_a_400(
    params: list[tuple[str, str]],
) -> None:
    try:
        check_snapshot_page([("_snapshot", "s"), *params], max_page_size=200)
    except MhdError as exc:
        assert exc.status == 400


@settings(max_examples=100, deadline=None)
@given(headers=HEADERS)
def test_forwarded_header_check_refuses_with_400_or_403_only(headers: dict[str, str]) -> None:
    try:
        check_forwarded_headers(headers.items(), ["nhn-access-basis", "nhn-patient-nin"])
    except MhdError as exc:
        assert exc.status == 400
    except TrustError as exc:
        assert exc.status == 403


@settings(max_examples=100, deadline=None)
@given(body=st.one_of(st.binary(max_size=300), st.integers(0, 200).map(lambda n: b"a=1&" * n)))
def test_search_form_reader_answers_a_form_or_a_4xx(body: bytes) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield body

    try:
        form = asyncio.run(read_search_form(chunks(), declared_length=str(len(body))))
    except MhdError as exc:
        assert exc.status in (400, 413)
    else:
        assert all(isinstance(n, str) and isinstance(v, str) for n, v in form)


def _searchset() -> bytes:
    return orjson.dumps({"resourceType": "Bundle", "type": "searchset", "entry": []})


@pytest.fixture(scope="module")
def open_hub() -> tuple[httpx.AsyncBaseTransport, FakeRegionClient]:
    regions = FakeRegionClient()

    async def answer(_url: str, _headers: Mapping[str, str]) -> RegionResponse:
        return RegionResponse(200, {}, _searchset())

    regions.route("http://region1.test/fhir", answer)
    regions.route("http://region2.test/fhir", answer)
    directory = RegionDirectory.from_regions([make_region(HCID_HSO), make_region(HCID_VEST)])
    settings_ = HubSettings(
        public_base_url="http://hub.test", dev_mode=True, dev_open_access=True, retry_delay_s=0.001
    )
    app = create_hub_app(settings_, region_client=regions, directory=directory)
    return httpx.ASGITransport(app=app), regions


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(params=PARAMS, headers=HEADERS, post=st.booleans())
def test_hostile_searches_get_4xx_never_5xx_and_a_refused_one_asks_no_region(
    open_hub: tuple[httpx.AsyncBaseTransport, FakeRegionClient],
    params: list[tuple[str, str]],
    headers: dict[str, str],
    post: bool,
) -> None:
    transport, regions = open_hub
    before = len(regions.calls)
    safe_headers = {k: v for k, v in headers.items() if v.isascii()}

    async def send() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
            if post:
                return await client.post(
                    "/fhir/DocumentReference/_search", data=dict(params), headers=safe_headers
                )
            return await client.get("/fhir/DocumentReference", params=params, headers=safe_headers)

    r = asyncio.run(send())
    assert r.status_code < 500, r.text[:500]
    if r.status_code >= 400:
        assert r.json()["resourceType"] == "OperationOutcome"
        assert len(regions.calls) == before, "a refused search must not reach a region"


@settings(max_examples=100, deadline=None)
@given(params=PARAMS)
def test_a_checked_search_is_what_the_service_would_parse_itself(
    params: list[tuple[str, str]],
) -> None:
    """The hub parses a search once: what the check hands on is what `find` made of it before."""
    from onerecord.hub.service import HubService

    service = HubService.__new__(HubService)
    service.settings = HubSettings(max_page_size=200, region_page_size=200)
    try:
        checked = check_find_request(params, max_page_size=200, region_page_size=200)
    except CALLER_ERRORS:
        return
    if any(name == "_snapshot" for name, _ in params):
        assert checked is None
        return
    assert checked == service._check(params)
