"""fan_out against the fake RegionClient: statuses, paging, deadlines, breakers, headers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onerecord.domain import NationalIdentityNumber
from onerecord.hub.breaker import BreakerBoard, BreakerState
from onerecord.hub.client import (
    FakeRegionClient,
    RegionConnectError,
    RegionResponse,
    ResponseTooLarge,
)
from onerecord.hub.directory import Region
from onerecord.hub.fanout import (
    MASKED_COUNT_HEADER,
    Deadlines,
    FindRequest,
    PassThroughAuth,
    RegionCallFailed,
    RequestBudget,
    fan_out,
    forward_headers,
    refusal_reason,
    status_for_http,
)
from onerecord.hub.merge import region_issues
from onerecord.hub.results import RegionStatus
from onerecord.mhd import DENIAL_REASON_SYSTEM
from tests.factories import SYNTHETIC_FNR, synthetic_nin
from tests.hub.conftest import HCID_HSO, HCID_MIDT, HCID_VEST, make_docref, make_region

REQUEST = FindRequest("DocumentReference?status=current", {"x-correlation-id": "c-1"})


def bundle(resources: list[dict[str, Any]], next_url: str | None = None) -> bytes:
    links = [{"relation": "self", "url": "x"}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    return orjson.dumps(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "link": links,
            "entry": [{"resource": r} for r in resources],
        }
    )


def answer(body: bytes, status: int = 200, headers: Mapping[str, str] | None = None) -> Any:
    async def handler(url: str, _headers: Mapping[str, str]) -> RegionResponse:
        return RegionResponse(status, dict(headers or {}), body)

    return handler


def hanging(seconds: float) -> Any:
    async def handler(url: str, _headers: Mapping[str, str]) -> RegionResponse:
        await asyncio.sleep(seconds)
        return RegionResponse(200, {}, bundle([]))

    return handler


@pytest.mark.anyio
async def test_every_status_is_classified() -> None:
    regions = [make_region(f"urn:oid:2.16.578.1.12.4.5.100.{i}") for i in range(1, 7)]
    client = FakeRegionClient()
    client.route(
        regions[0].base_url,
        answer(bundle([make_docref("1.1")]), headers={MASKED_COUNT_HEADER: "3"}),
    )
    client.route(regions[1].base_url, answer(b"<html>", status=200))
    client.route(regions[2].base_url, answer(b"{}", status=403))
    client.route(regions[3].base_url, answer(b"{}", status=503))
    client.route(regions[4].base_url, answer(orjson.dumps({"resourceType": "Patient"})))
    # regions[5] has no route: connection refused
    results = await fan_out(regions, REQUEST, client=client, retry_delay_s=0.001)
    assert [r.status for r in results] == [
        RegionStatus.OK,
        RegionStatus.INVALID_RESPONSE,
        RegionStatus.DENIED,
        RegionStatus.ERROR,
        RegionStatus.INVALID_RESPONSE,
        RegionStatus.UNAVAILABLE,
    ]
    assert results[0].masked_count == 3 and len(results[0].resources) == 1
    assert all(r.latency_ms >= 0 for r in results)


@pytest.mark.anyio
async def test_wrong_resource_type_in_bundle_is_invalid() -> None:
    region = make_region()
    client = FakeRegionClient()
    client.route(region.base_url, answer(bundle([{"resourceType": "Patient"}])))
    (result,) = await fan_out([region], REQUEST, client=client)
    assert result.status is RegionStatus.INVALID_RESPONSE and "Patient" in result.detail


@pytest.mark.anyio
async def test_follows_next_links_up_to_the_cap_and_reports_truncation() -> None:
    region = make_region()
    base = region.base_url
    client = FakeRegionClient()
    client.route(
        f"{base}/DocumentReference?status",
        answer(
            bundle([make_docref(f"1.{i}") for i in range(3)], f"{base}/DocumentReference?page=2")
        ),
    )
    client.route(
        f"{base}/DocumentReference?page=2",
        answer(
            bundle([make_docref(f"1.{i}") for i in range(3, 6)], f"{base}/DocumentReference?page=3")
        ),
    )
    client.route(f"{base}/DocumentReference?page=3", answer(bundle([make_docref("1.9")])))
    (full,) = await fan_out([region], REQUEST, client=client, max_entries=100)
    assert len(full.resources) == 7 and not full.truncated
    (capped,) = await fan_out([region], REQUEST, client=client, max_entries=5)
    assert len(capped.resources) == 5 and capped.truncated


@pytest.mark.anyio
async def test_next_link_off_the_region_is_refused() -> None:
    region = make_region()
    client = FakeRegionClient()
    client.route(region.base_url, answer(bundle([], "http://evil.test/fhir/DocumentReference")))
    (result,) = await fan_out([region], REQUEST, client=client)
    assert result.status is RegionStatus.INVALID_RESPONSE


@pytest.mark.anyio
async def test_per_region_timeout_and_aggregation_deadline() -> None:
    fast, slow, slower = (make_region(h) for h in (HCID_HSO, HCID_VEST, HCID_MIDT))
    slower = Region(slower.name, slower.home_community_id, slower.base_url, timeout_s=9.0)
    client = FakeRegionClient()
    client.route(fast.base_url, answer(bundle([])))
    client.route(slow.base_url, hanging(10))
    client.route(slower.base_url, hanging(10))
    started = time.perf_counter()
    results = await fan_out(
        [fast, slow, slower],
        REQUEST,
        client=client,
        per_region_timeout=0.2,
        aggregation_deadline=0.4,
    )
    elapsed = time.perf_counter() - started
    assert [r.status for r in results] == [
        RegionStatus.OK,
        RegionStatus.TIMEOUT,
        RegionStatus.TIMEOUT,
    ]
    # Cut by its own 0.2 s timeout, before the 0.4 s aggregation deadline cuts the next one.
    assert 150 <= results[1].latency_ms < results[2].latency_ms
    # The region's own 9 s timeout is capped by the aggregation deadline.
    assert results[2].latency_ms >= 350
    # Far below the 9-10 s the hanging regions would take (no tighter bound: speed is the
    # benchmarks' job, and a loaded CI machine delays timers).
    assert elapsed < 4.0


@pytest.mark.anyio
async def test_connect_error_is_retried_once() -> None:
    region = make_region()
    calls = 0

    async def flaky(url: str, _h: Mapping[str, str]) -> RegionResponse:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RegionConnectError("refused")
        return RegionResponse(200, {}, bundle([make_docref("1.1")]))

    client = FakeRegionClient()
    client.route(region.base_url, flaky)
    (result,) = await fan_out([region], REQUEST, client=client, retry_delay_s=0.001)
    assert result.ok and calls == 2


@pytest.mark.anyio
async def test_server_error_is_not_retried() -> None:
    region = make_region()
    client = FakeRegionClient()
    client.route(region.base_url, answer(b"", status=500))
    (result,) = await fan_out([region], REQUEST, client=client)
    assert result.status is RegionStatus.ERROR and len(client.calls) == 1


@pytest.mark.anyio
async def test_open_breaker_skips_region_instantly() -> None:
    region = make_region()
    client = FakeRegionClient()
    client.route(region.base_url, answer(b"", status=500))
    board = BreakerBoard(failure_threshold=2, cooldown_s=60)
    for _ in range(2):
        await fan_out([region], REQUEST, client=client, breakers=board)
    assert board[region.hcid].state is BreakerState.OPEN
    calls = len(client.calls)
    (result,) = await fan_out([region], REQUEST, client=client, breakers=board)
    assert result.status is RegionStatus.UNAVAILABLE and "breaker" in result.detail
    assert len(client.calls) == calls


@pytest.mark.anyio
async def test_denial_does_not_open_the_breaker() -> None:
    region = make_region()
    client = FakeRegionClient()
    client.route(region.base_url, answer(b"", status=403))
    board = BreakerBoard(failure_threshold=1)
    await fan_out([region], REQUEST, client=client, breakers=board)
    assert board[region.hcid].state is BreakerState.CLOSED


@pytest.mark.anyio
async def test_disabled_regions_are_not_asked() -> None:
    on, off = make_region(HCID_HSO), make_region(HCID_VEST, enabled=False)
    client = FakeRegionClient()
    client.route(on.base_url, answer(bundle([])))
    results = await fan_out([on, off], REQUEST, client=client)
    assert [r.region for r in results] == [on]


@pytest.mark.anyio
async def test_headers_sent_to_regions() -> None:
    region = make_region()
    client = FakeRegionClient()
    client.route(region.base_url, answer(bundle([])))
    await fan_out([region], REQUEST, client=client, auth=PassThroughAuth("DPoP abc"))
    ((_url, headers),) = client.calls
    assert headers["x-correlation-id"] == "c-1"
    assert headers["authorization"] == "DPoP abc"


def test_forward_headers_is_an_allow_list() -> None:
    out = forward_headers(
        {
            "NHN-Patient-NIN": "15830012345",
            "NHN-Access-Basis": "FORHOYET_AKUTT",
            "Cookie": "s=1",
            "Host": "hub",
        }
    )
    assert out == {"nhn-patient-nin": "15830012345", "nhn-access-basis": "FORHOYET_AKUTT"}


def test_deadlines_must_be_ordered() -> None:
    Deadlines(4.0, 4.5, 5.0)
    with pytest.raises(ValueError):
        Deadlines(4.5, 4.5, 5.0)
    with pytest.raises(ValueError):
        Deadlines(4.0, 5.0, 4.9)


def _refusal(*reasons: str) -> bytes:
    issues = [
        {
            "severity": "error",
            "code": "forbidden",
            "details": {"coding": [{"system": DENIAL_REASON_SYSTEM, "code": r}]},
            "diagnostics": f"access denied by policy: {r}",
        }
        for r in reasons
    ]
    return orjson.dumps({"resourceType": "OperationOutcome", "issue": issues})


@pytest.mark.anyio
async def test_a_refusing_regions_reason_reaches_its_issue() -> None:
    """The region's denial-reason code travels on, so a client can say why (ATT-5 blocks)."""
    blocked, bare = make_region(HCID_HSO), make_region(HCID_VEST)
    client = FakeRegionClient()
    client.route(blocked.base_url, answer(_refusal("practitioner-blocked"), status=403))
    client.route(bare.base_url, answer(b"{}", status=403))
    results = await fan_out([blocked, bare], REQUEST, client=client)
    assert [(r.status, r.reason) for r in results] == [
        (RegionStatus.DENIED, "practitioner-blocked"),
        (RegionStatus.DENIED, None),
    ]
    issues = region_issues(results)
    codings = [i["details"]["coding"] for i in issues]
    assert {"system": DENIAL_REASON_SYSTEM, "code": "practitioner-blocked"} in codings[0]
    assert all(c["system"] != DENIAL_REASON_SYSTEM for c in codings[1])
    assert "(practitioner-blocked)" in issues[0]["diagnostics"]


def test_refusal_reason_reads_only_small_operation_outcomes() -> None:
    assert refusal_reason(_refusal("patient-binding-mismatch", "x")) == "patient-binding-mismatch"
    assert refusal_reason(b"not json") is None
    assert refusal_reason(orjson.dumps({"resourceType": "Bundle"})) is None
    assert refusal_reason(orjson.dumps({"resourceType": "OperationOutcome", "issue": 3})) is None
    assert refusal_reason(_refusal("r" * 500)) == "r" * 64
    padded = orjson.dumps(
        {
            "resourceType": "OperationOutcome",
            "issue": orjson.loads(_refusal("late"))["issue"],
            "text": {"div": "x" * 70_000},
        }
    )
    assert refusal_reason(padded) is None


# Issue 10 A/C: what counts toward a breaker, truthful causes, bounded pages, the budget ----------


@pytest.mark.parametrize(
    ("http", "status"),
    [
        (200, None),
        (400, RegionStatus.REJECTED),
        (404, RegionStatus.REJECTED),
        (413, RegionStatus.REJECTED),
        (422, RegionStatus.REJECTED),
        (429, RegionStatus.REJECTED),
        (401, RegionStatus.DENIED),
        (403, RegionStatus.DENIED),
        (408, RegionStatus.TIMEOUT),
        (500, RegionStatus.ERROR),
        (503, RegionStatus.ERROR),
        (302, RegionStatus.ERROR),
        (204, RegionStatus.ERROR),
    ],
)
def test_status_for_http(http: int, status: RegionStatus | None) -> None:
    assert status_for_http(http) is status


def test_only_the_regions_ill_health_counts_against_its_breaker() -> None:
    counted = {s for s in RegionStatus if s.counts_against_breaker}
    assert counted == {
        RegionStatus.UNAVAILABLE,
        RegionStatus.TIMEOUT,
        RegionStatus.INVALID_RESPONSE,
        RegionStatus.TOO_LARGE,
        RegionStatus.ERROR,
    }


@pytest.mark.anyio
@pytest.mark.parametrize("http", [400, 404, 422, 429])
async def test_a_regions_4xx_never_opens_its_breaker(http: int) -> None:
    region = make_region()
    client = FakeRegionClient()
    client.route(region.base_url, answer(_rejection("unknown parameter"), status=http))
    board = BreakerBoard(failure_threshold=2, cooldown_s=60)
    for _ in range(5):
        (result,) = await fan_out([region], REQUEST, client=client, breakers=board)
        assert result.status is RegionStatus.REJECTED
    assert board[region.hcid].state is BreakerState.CLOSED
    assert board[region.hcid].consecutive_failures == 0
    assert len(client.calls) == 5


@pytest.mark.anyio
async def test_a_rejection_says_what_the_region_found_wrong_and_when_to_retry() -> None:
    region = make_region()
    client = FakeRegionClient()
    client.route(
        region.base_url,
        answer(_rejection("x" * 500), status=429, headers={"retry-after": "7"}),
    )
    (result,) = await fan_out([region], REQUEST, client=client)
    assert result.http_status == 429 and result.retry_after == "7"
    assert result.detail == "HTTP 429: " + "x" * 200


@pytest.mark.anyio
async def test_an_entry_about_another_patient_makes_the_region_invalid_and_counts() -> None:
    region = make_region()
    client = FakeRegionClient()
    other = make_docref("1.2", patient=synthetic_nin(1))
    client.route(region.base_url, answer(bundle([make_docref("1.1"), other])))
    board = BreakerBoard(failure_threshold=5)
    request = FindRequest("DocumentReference?x=1", patient=NationalIdentityNumber(SYNTHETIC_FNR))
    (result,) = await fan_out([region], request, client=client, breakers=board)
    assert result.status is RegionStatus.INVALID_RESPONSE and result.resources == ()
    assert "another patient" in result.detail and synthetic_nin(1) not in result.detail
    assert board[region.hcid].consecutive_failures == 1


@pytest.mark.anyio
async def test_an_oversized_answer_is_too_large_and_counts() -> None:
    region = make_region()

    async def too_large(url: str, _h: Mapping[str, str]) -> RegionResponse:
        raise ResponseTooLarge("the answer exceeds the hub's limit of 10 bytes")

    client = FakeRegionClient()
    client.route(region.base_url, too_large)
    board = BreakerBoard(failure_threshold=5)
    (result,) = await fan_out([region], REQUEST, client=client, breakers=board)
    assert result.status is RegionStatus.TOO_LARGE
    assert board[region.hcid].consecutive_failures == 1


@pytest.mark.anyio
async def test_endless_next_links_cost_at_most_max_pages_requests() -> None:
    region = make_region()
    pages = 0

    async def endless(url: str, _h: Mapping[str, str]) -> RegionResponse:
        nonlocal pages
        pages += 1
        nxt = f"{region.base_url}/DocumentReference?page={pages + 1}"
        return RegionResponse(200, {}, bundle([make_docref(f"1.{pages}")], nxt))

    client = FakeRegionClient()
    client.route(region.base_url, endless)
    (result,) = await fan_out([region], REQUEST, client=client, max_pages=4)
    assert pages == 4 and len(result.resources) == 4
    assert result.ok and result.truncated and result.stopped_after_pages == 4
    (issue,) = region_issues([result])
    assert "after 4 pages" in issue["diagnostics"] and "page-limit" in issue["diagnostics"]


@pytest.mark.anyio
async def test_a_last_page_at_the_page_limit_is_not_a_cut() -> None:
    region = make_region()
    client = FakeRegionClient()
    client.route(region.base_url, answer(bundle([make_docref("1.1")])))
    (result,) = await fan_out([region], REQUEST, client=client, max_pages=1)
    assert not result.truncated and result.stopped_after_pages is None


@pytest.mark.anyio
async def test_a_region_cut_short_by_the_request_budget_is_not_blamed() -> None:
    """Time the token check took is taken from the fan-out; the region's breaker is not told."""
    region = make_region()
    client = FakeRegionClient()
    client.route(region.base_url, hanging(5))
    board = BreakerBoard(failure_threshold=1)
    loop = asyncio.get_running_loop()
    budget = RequestBudget(aggregation_at=loop.time() + 0.1, request_at=loop.time() + 0.3)
    started = time.perf_counter()
    (result,) = await fan_out(
        [region], REQUEST, client=client, breakers=board, per_region_timeout=2.0, budget=budget
    )
    # Cut by the request budget, not by the region's own 2 s timeout.
    assert time.perf_counter() - started < 1.5
    assert result.status is RegionStatus.TIMEOUT
    assert board[region.hcid].state is BreakerState.CLOSED


@pytest.mark.anyio
async def test_a_region_timing_out_within_its_own_timeout_is_blamed() -> None:
    region = make_region()
    client = FakeRegionClient()
    client.route(region.base_url, hanging(5))
    board = BreakerBoard(failure_threshold=1)
    budget = RequestBudget.starting(Deadlines(0.1, 0.3, 0.4))
    (result,) = await fan_out(
        [region], REQUEST, client=client, breakers=board, per_region_timeout=0.1, budget=budget
    )
    assert result.status is RegionStatus.TIMEOUT
    assert board[region.hcid].state is BreakerState.OPEN


@pytest.mark.anyio
async def test_no_time_left_asks_no_region_and_blames_none() -> None:
    region = make_region()
    client = FakeRegionClient()
    client.route(region.base_url, answer(bundle([])))
    board = BreakerBoard(failure_threshold=1)
    loop = asyncio.get_running_loop()
    budget = RequestBudget(aggregation_at=loop.time() - 1, request_at=loop.time())
    (result,) = await fan_out([region], REQUEST, client=client, breakers=board, budget=budget)
    assert result.status is RegionStatus.TIMEOUT and "not asked" in result.detail
    assert client.calls == [] and board[region.hcid].consecutive_failures == 0


@pytest.mark.anyio
async def test_a_cancelled_fan_out_leaves_no_region_call_behind() -> None:
    region = make_region()
    finished = False

    async def slow(url: str, _h: Mapping[str, str]) -> RegionResponse:
        nonlocal finished
        await asyncio.sleep(0.3)
        finished = True
        return RegionResponse(200, {}, bundle([]))

    client = FakeRegionClient()
    client.route(region.base_url, slow)
    board = BreakerBoard(failure_threshold=1, cooldown_s=0)
    board[region.hcid].record_failure()  # open; cooled down at once: the next call is the probe
    task = asyncio.create_task(fan_out([region], REQUEST, client=client, breakers=board))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.4)
    assert not finished
    assert board[region.hcid].allow(), "the probe slot was given back"


def _rejection(diagnostics: str) -> bytes:
    issue = {"severity": "error", "code": "invalid", "diagnostics": diagnostics}
    return orjson.dumps({"resourceType": "OperationOutcome", "issue": [issue]})


_ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=300),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3)
    ),
    max_leaves=10,
)


@st.composite
def refusal_bodies(draw: st.DrawFn) -> bytes:
    """A region's refusal: an OperationOutcome whose parts may be anything, or not JSON at all."""
    if draw(st.integers(min_value=0, max_value=5)) == 0:
        return draw(st.binary(max_size=50))
    issue = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "diagnostics": _ANY_JSON,
                "details": _ANY_JSON,
                "severity": _ANY_JSON,
                "code": _ANY_JSON,
            },
        )
    )
    issues = draw(st.sampled_from([[issue], issue, [issue, 5], None]))
    return orjson.dumps(
        {"resourceType": draw(st.sampled_from(["OperationOutcome", 5])), "issue": issues}
    )


@settings(max_examples=150, deadline=None)
@given(
    body=refusal_bodies(),
    http=st.sampled_from([400, 403, 404, 429, 500]),
    retry_after=st.text(max_size=12),
)
def test_a_regions_refusal_is_read_without_fail_whatever_it_holds(
    body: bytes, http: int, retry_after: str
) -> None:
    """Property: reading a refusal never raises and keeps what it passes on short."""
    failure = status_for_http(http)
    assert failure is not None
    failed = RegionCallFailed.for_response(
        RegionResponse(http, {"retry-after": retry_after}, body), failure
    )
    assert len(failed.detail) <= len(f"HTTP {http}: ") + 200
    reason = refusal_reason(body)
    assert reason is None or 0 < len(reason) <= 64
    assert failed.retry_after is None or failed.retry_after.isdigit()


@pytest.mark.anyio
async def test_a_region_whose_own_timeout_passes_the_aggregation_deadline_is_still_blamed() -> None:
    """A few milliseconds of token check do not excuse a region that had its whole time."""
    slow = Region("Slow", make_region().home_community_id, make_region().base_url, timeout_s=9.0)
    client = FakeRegionClient()
    client.route(slow.base_url, hanging(5))
    board = BreakerBoard(failure_threshold=1)
    loop = asyncio.get_running_loop()
    budget = RequestBudget(aggregation_at=loop.time() + 0.29, request_at=loop.time() + 0.4)
    (result,) = await fan_out(
        [slow],
        REQUEST,
        client=client,
        breakers=board,
        per_region_timeout=0.1,
        aggregation_deadline=0.3,
        budget=budget,
    )
    assert result.status is RegionStatus.TIMEOUT
    assert board[slow.hcid].state is BreakerState.OPEN
