"""Per-caller limits at the hub over real HTTP: one caller over its limit gets 429 with
Retry-After, and another caller searching at the same time is served as usual (issue 10 A)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.hub.caller_harness import FakeRegions, SecuredHub, secured_hub
from tests.hub.tokens import ApiCaller
from tests.sts.fakes import CHILD_8, PARENT


def _search(hub: SecuredHub, caller: ApiCaller, token: str, nin: str) -> httpx.Response:
    return hub.citizen_search(caller, token, nin)


def _throttled(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text[:300]
    assert int(r.headers["retry-after"]) >= 1
    issue = r.json()["issue"][0]
    assert r.json()["resourceType"] == "OperationOutcome"
    assert issue["code"] == "throttled"


def test_a_caller_over_its_rate_gets_429_with_retry_after_while_another_caller_is_served(
    tmp_path: Path,
) -> None:
    overrides = {"caller_rate_per_s": 0.05, "caller_burst": 3, "caller_concurrency": 0}
    with secured_hub(tmp_path, FakeRegions(), **overrides) as hub:
        mallory, alice = hub.caller(), hub.caller()
        mallory_token = mallory.citizen_token(PARENT)
        alice_token = alice.citizen_token(CHILD_8)
        with ThreadPoolExecutor(max_workers=8) as pool:
            flood = [pool.submit(_search, hub, mallory, mallory_token, PARENT) for _ in range(12)]
            served = [_search(hub, alice, alice_token, CHILD_8) for _ in range(3)]
            answers = [f.result() for f in flood]
        assert [r.status_code for r in served] == [200, 200, 200]
        assert sorted(r.status_code for r in answers) == [200] * 3 + [429] * 9
        for r in answers:
            if r.status_code == 429:
                _throttled(r)
        # The throttled requests asked no region: 3 + 3 searches reached the four regions.
        assert hub.regions.calls == 6 * 4
        # A fresh DPoP proof or other headers do not make a new caller: the token's sub does.
        r = hub.citizen_search(mallory, mallory_token, PARENT, headers={"x-correlation-id": "n"})
        _throttled(r)


def test_a_caller_over_its_concurrency_is_refused_at_once_and_does_not_slow_another(
    tmp_path: Path,
) -> None:
    overrides = {"caller_concurrency": 2, "caller_rate_per_s": 0, "caller_burst": 0}
    with secured_hub(tmp_path, FakeRegions(delay_s=0.6), **overrides) as hub:
        mallory, alice = hub.caller(), hub.caller()
        mallory_token = mallory.citizen_token(PARENT)
        alice_token = alice.citizen_token(CHILD_8)

        def timed(caller: ApiCaller, token: str, nin: str) -> tuple[int, float]:
            started = time.perf_counter()
            r = _search(hub, caller, token, nin)
            return r.status_code, time.perf_counter() - started

        with ThreadPoolExecutor(max_workers=10) as pool:
            flood = [pool.submit(timed, mallory, mallory_token, PARENT) for _ in range(8)]
            time.sleep(0.2)  # while two of mallory's searches are in flight
            alice_status, alice_s = timed(alice, alice_token, CHILD_8)
            answers = [f.result() for f in flood]
        assert alice_status == 200
        assert alice_s < 1.5, alice_s  # one region round (0.6 s), not held back behind mallory
        statuses = sorted(status for status, _ in answers)
        assert statuses.count(200) >= 2 and statuses.count(429) >= 4, statuses
        assert all(s < 0.5 for status, s in answers if status == 429), answers
        # Once mallory's searches are done its slots are free again.
        assert _search(hub, mallory, mallory_token, PARENT).status_code == 200


def test_unauthenticated_requests_are_refused_before_the_limiter_and_take_nobodys_slot(
    tmp_path: Path,
) -> None:
    overrides = {"caller_rate_per_s": 0.1, "caller_burst": 2, "caller_concurrency": 0}
    with secured_hub(tmp_path, FakeRegions(), **overrides) as hub:
        alice = hub.caller()
        token = alice.citizen_token(PARENT)
        # Requests naming alice's subject without her verified token count for no one.
        for _ in range(5):
            r = hub.http.get(
                hub.search_url,
                params={"patient.identifier": PARENT},
                headers={"authorization": f"DPoP {token}"},  # no DPoP proof
                timeout=10,
            )
            assert r.status_code == 401
        assert [_search(hub, alice, token, PARENT).status_code for _ in range(2)] == [200, 200]
        _throttled(_search(hub, alice, token, PARENT))
