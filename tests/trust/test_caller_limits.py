"""Per-caller limits: token bucket and requests in flight, on a clock the test moves."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onerecord.trust.caller_limits import (
    PERMIT_STATE,
    CallerLimiter,
    CallerQuota,
    CallerThrottled,
    ReleaseCallerPermits,
    address_key,
    caller_key,
)
from tests.trust.policy_factories import access_token_claims


@dataclass
class Clock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


def limiter(clock: Clock, **quota: Any) -> CallerLimiter:
    return CallerLimiter(CallerQuota(**quota), clock=clock)


def test_a_caller_over_its_rate_is_throttled_with_a_retry_after_and_refills_with_time() -> None:
    clock = Clock()
    limits = limiter(clock, concurrency=0, rate_per_s=2.0, burst=3)
    for _ in range(3):
        limits.acquire("alice").release()
    with pytest.raises(CallerThrottled) as refused:
        limits.acquire("alice")
    assert refused.value.limit == "rate"
    assert refused.value.retry_after_s == 1
    assert refused.value.status == 429 and refused.value.code == "throttled"
    clock.now += 0.5  # one token back at 2 per second
    limits.acquire("alice").release()
    with pytest.raises(CallerThrottled):
        limits.acquire("alice")
    clock.now += 10  # never more than the burst
    for _ in range(3):
        limits.acquire("alice").release()
    with pytest.raises(CallerThrottled):
        limits.acquire("alice")


def test_retry_after_says_how_long_until_a_token_is_back() -> None:
    clock = Clock()
    limits = limiter(clock, concurrency=0, rate_per_s=0.25, burst=1)
    limits.acquire("slow").release()
    with pytest.raises(CallerThrottled) as refused:
        limits.acquire("slow")
    assert refused.value.retry_after_s == 4


def test_one_caller_over_its_limit_leaves_another_caller_untouched() -> None:
    clock = Clock()
    limits = limiter(clock, concurrency=2, rate_per_s=1.0, burst=2)
    held = [limits.acquire("mallory"), limits.acquire("mallory")]
    with pytest.raises(CallerThrottled):
        limits.acquire("mallory")
    permit = limits.acquire("alice")
    assert limits.in_flight("alice") == 1 and limits.in_flight("mallory") == 2
    permit.release()
    for p in held:
        p.release()


def test_concurrency_counts_requests_in_flight_and_release_is_idempotent() -> None:
    clock = Clock()
    limits = limiter(clock, concurrency=2, rate_per_s=0, burst=0)
    first, second = limits.acquire("bob"), limits.acquire("bob")
    with pytest.raises(CallerThrottled) as refused:
        limits.acquire("bob")
    assert refused.value.limit == "concurrency"
    assert refused.value.retry_after_s == 1
    first.release()
    first.release()  # a second release must not free a slot someone else holds
    third = limits.acquire("bob")
    with pytest.raises(CallerThrottled):
        limits.acquire("bob")
    second.release()
    third.release()
    assert limits.in_flight("bob") == 0


def test_a_refused_request_changes_no_count() -> None:
    clock = Clock()
    limits = limiter(clock, concurrency=1, rate_per_s=1.0, burst=5)
    held = limits.acquire("carol")
    for _ in range(20):
        with pytest.raises(CallerThrottled):
            limits.acquire("carol")
    held.release()
    for _ in range(4):  # the 20 refusals took no tokens: four of five are left
        limits.acquire("carol").release()
    with pytest.raises(CallerThrottled):
        limits.acquire("carol")


def test_zero_switches_a_limit_off() -> None:
    clock = Clock()
    limits = limiter(clock, concurrency=0, rate_per_s=0, burst=0)
    permits = [limits.acquire("anyone") for _ in range(1000)]
    assert limits.in_flight("anyone") == 1000
    for p in permits:
        p.release()


def test_the_table_of_callers_stays_bounded_and_keeps_callers_with_requests_in_flight() -> None:
    clock = Clock()
    limits = CallerLimiter(
        CallerQuota(concurrency=1, rate_per_s=1.0, burst=2), clock=clock, max_callers=10
    )
    busy = limits.acquire("busy")
    for i in range(100):
        limits.acquire(f"user{i}").release()
        assert len(limits) <= 10
    assert limits.in_flight("busy") == 1
    with pytest.raises(CallerThrottled):
        limits.acquire("busy")
    busy.release()


def test_quota_scaled_for_calls_relayed_by_the_hub() -> None:
    quota = CallerQuota(concurrency=16, rate_per_s=20.0, burst=200).scaled(4)
    assert quota == CallerQuota(concurrency=64, rate_per_s=80.0, burst=800)
    with pytest.raises(ValueError):
        CallerQuota(concurrency=-1)
    with pytest.raises(ValueError):
        CallerQuota(rate_per_s=1.0, burst=0)


def test_the_key_is_the_tokens_subject_and_client() -> None:
    claims = access_token_claims
    assert caller_key(claims("hp:1", "portal")) != caller_key(claims("hp:1", "ehr"))
    assert caller_key(claims("hp:1", "portal")) != caller_key(claims("hp:2", "portal"))
    assert caller_key(claims("hp:1", None)) == "sub:hp:1|client:-"
    assert address_key("127.0.0.1") == "addr:127.0.0.1"
    assert address_key(None) == "addr:unknown"


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]), st.sampled_from(["acquire", "release", "tick"])
        ),
        max_size=60,
    )
)
def test_in_flight_never_exceeds_concurrency_and_never_goes_negative(
    steps: list[tuple[str, str]],
) -> None:
    clock = Clock()
    limits = limiter(clock, concurrency=3, rate_per_s=5.0, burst=4)
    held: dict[str, list[Any]] = {"a": [], "b": [], "c": []}
    for key, action in steps:
        if action == "acquire":
            try:
                held[key].append(limits.acquire(key))
            except CallerThrottled as exc:
                assert exc.retry_after_s >= 1
        elif action == "release" and held[key]:
            held[key].pop().release()
        else:
            clock.now += 0.1
        for k, permits in held.items():
            assert limits.in_flight(k) == len(permits) <= 3


def test_middleware_releases_the_permit_even_when_the_app_fails() -> None:
    clock = Clock()
    limits = limiter(clock, concurrency=1, rate_per_s=0, burst=0)

    async def app(scope: dict[str, Any], _receive: Any, _send: Any) -> None:
        scope.setdefault("state", {})[PERMIT_STATE] = limits.acquire("dave")
        raise RuntimeError("boom")

    async def run() -> None:
        with pytest.raises(RuntimeError):
            await ReleaseCallerPermits(app)({"type": "http"}, None, None)

    asyncio.run(run())
    assert limits.in_flight("dave") == 0
