"""A caller's own error is the caller's: the hub answers 400 itself, asks no region, moves no
breaker (issue 10 A). Real HTTP: a secured hub on 127.0.0.1 in front of four fake regions."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.hub.caller_harness import FNR, REGIONS, FakeRegions, SecuredHub, secured_hub
from tests.sts.fakes import DOCTOR, PARENT


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[SecuredHub]:
    with secured_hub(tmp_path, FakeRegions()) as running:
        yield running


def _issue(r: httpx.Response) -> dict[str, object]:
    body = r.json()
    assert body["resourceType"] == "OperationOutcome", body
    issue: dict[str, object] = body["issue"][0]
    return issue


def _all_closed(hub: SecuredHub) -> None:
    """No breaker has left CLOSED (a breaker is listed once its region has been asked)."""
    states = hub.breaker_states()
    assert set(states) <= set(REGIONS)
    assert all(state == 0.0 for state in states.values()), states


def test_hub_refuses_out_of_range_date_itself_and_no_breaker_opens(hub: SecuredHub) -> None:
    caller = hub.caller()
    token = caller.citizen_token(PARENT)
    for _ in range(5):
        r = hub.citizen_search(caller, token, PARENT, date="0001")
        assert r.status_code == 400, r.text[:300]
        assert _issue(r)["expression"] == ["date"]
    assert hub.regions.calls == 0, "no region may be asked a query the hub refuses"
    _all_closed(hub)
    r = hub.citizen_search(caller, token, PARENT)
    assert r.status_code == 200, r.text[:300]
    assert hub.regions.calls == 4


def test_hub_refuses_unknown_access_basis_itself_and_no_breaker_opens(hub: SecuredHub) -> None:
    caller = hub.caller()
    token, salt = caller.practitioner_token(PARENT)
    url = hub.search_url
    query = {"patient.identifier": f"{FNR}|{PARENT}"}

    def search(*extra: tuple[str, str]) -> httpx.Response:
        headers = list(caller.headers(token, url, patient=PARENT, salt=salt).items())
        return hub.http.get(url, params=query, headers=[*headers, *extra], timeout=30)

    started = time.perf_counter()
    for _ in range(5):
        r = search(("nhn-access-basis", "X"))
        assert r.status_code == 400, r.text[:300]
        issue = _issue(r)
        assert issue["expression"] == ["nhn-access-basis"]
        assert "not a known access basis" in str(issue["diagnostics"])
    assert time.perf_counter() - started < 2.0
    # Checked in one copy and forwarded in another? A repeated header is refused.
    r = search(("nhn-access-basis", "AKUTT"), ("nhn-access-basis", "X"))
    assert r.status_code == 400, r.text[:300]
    r = search(("nhn-access-basis", "A" * 10_000))
    assert r.status_code == 400 and "MAX_HEADER_LENGTH" in str(_issue(r)["diagnostics"])
    assert hub.regions.calls == 0
    _all_closed(hub)
    r = search(("nhn-access-basis", "akutt"))  # as a source reads it: any case
    assert r.status_code == 200, r.text[:300]
    assert hub.regions.calls == 4
    assert all(h["nhn-access-basis"] == "akutt" for h in hub.regions.headers)


def test_hub_refuses_malformed_patient_header_of_a_citizen_without_asking_a_region(
    hub: SecuredHub,
) -> None:
    caller = hub.caller()
    token = caller.citizen_token(PARENT)
    r = hub.citizen_search(caller, token, PARENT, headers={"nhn-patient-nin": "12345"})
    assert r.status_code == 403, r.text[:300]
    assert hub.regions.calls == 0


def test_hub_refuses_a_50000_character_author_given_without_asking_a_region(
    hub: SecuredHub,
) -> None:
    caller = hub.caller()
    token = caller.citizen_token(PARENT)
    url = hub.search_url
    form = urlencode({"patient.identifier": f"{FNR}|{PARENT}", "author.given": "a" * 50_000})
    r = hub.http.post(
        f"{url}/_search",
        content=form,
        headers={
            **caller.headers(token, f"{url}/_search", method="POST"),
            "content-type": "application/x-www-form-urlencoded",
        },
        timeout=30,
    )
    assert r.status_code == 400, r.text[:300]
    issue = _issue(r)
    assert issue["expression"] == ["author.given"]
    assert "MAX_STRING_LENGTH" in str(issue["diagnostics"])
    r = hub.citizen_search(caller, token, PARENT, **{"author.given": "b" * 5_000})
    assert r.status_code == 400, r.text[:300]
    assert hub.regions.calls == 0
    _all_closed(hub)


def test_hub_refuses_post_search_with_100000_parameters_quickly(hub: SecuredHub) -> None:
    caller = hub.caller()
    token = caller.citizen_token(PARENT)
    url = f"{hub.search_url}/_search"

    def post(content: bytes | Iterator[bytes]) -> httpx.Response:
        headers = {
            **caller.headers(token, url, method="POST"),
            "content-type": "application/x-www-form-urlencoded",
        }
        return hub.http.post(url, content=content, headers=headers, timeout=30)

    started = time.perf_counter()
    r = post(b"&".join([f"patient.identifier={FNR}|{PARENT}".encode()] + [b"a=1"] * 100_000))
    assert r.status_code == 413, r.text[:300]
    assert "MAX_BODY_BYTES" in str(_issue(r)["diagnostics"])
    # The same without a Content-Length (chunked): refused as soon as the limit is passed.
    r = post(iter([b"a=1&" * 1000] * 100))
    assert r.status_code == 413, r.text[:300]
    # Under the byte limit but over the parameter limit: counted before it is parsed.
    r = post(b"&".join([b"a"] * 20_000))
    assert r.status_code == 400, r.text[:300]
    assert "MAX_PARAMETERS" in str(_issue(r)["diagnostics"])
    assert time.perf_counter() - started < 3.0
    assert hub.regions.calls == 0
    _all_closed(hub)


def test_hub_refuses_too_many_repeats_of_one_parameter(hub: SecuredHub) -> None:
    caller = hub.caller()
    token = caller.citizen_token(PARENT)
    params = [("patient.identifier", f"{FNR}|{PARENT}")] + [("status", "current")] * 11
    r = hub.http.get(
        hub.search_url,
        params=params,
        headers=caller.headers(token, hub.search_url),
        timeout=30,
    )
    assert r.status_code == 400, r.text[:300]
    assert "MAX_PARAMETER_REPEATS" in str(_issue(r)["diagnostics"])
    assert hub.regions.calls == 0


def test_practitioner_with_a_bad_query_is_refused_after_the_door_and_no_region_is_asked(
    hub: SecuredHub,
) -> None:
    caller = hub.caller()
    token, salt = caller.practitioner_token(DOCTOR)
    headers = caller.headers(token, hub.search_url, patient=DOCTOR, salt=salt)
    params = {"patient.identifier": f"{FNR}|{DOCTOR}", "type": ",".join(["x|y"] * 1000)}
    r = hub.http.get(hub.search_url, params=params, headers=headers, timeout=30)
    assert r.status_code == 400, r.text[:300]
    assert "MAX_OR_VALUES" in str(_issue(r)["diagnostics"])
    assert hub.regions.calls == 0


def test_hub_snapshot_page_refuses_any_parameter_but_its_paging_ones(tmp_path: Path) -> None:
    with secured_hub(tmp_path, FakeRegions(documents=3)) as running:
        caller = running.caller()
        token = caller.citizen_token(PARENT)
        first = running.citizen_search(caller, token, PARENT, _count="5")
        assert first.status_code == 200, first.text[:300]
        next_url = next(lk["url"] for lk in first.json()["link"] if lk["relation"] == "next")
        calls = running.regions.calls

        def page(url: str) -> httpx.Response:
            return running.http.get(url, headers=caller.headers(token, running.search_url))

        refused = {
            "type=x%7Cy": "type",
            f"patient.identifier={FNR}%7C{PARENT}": "patient.identifier",
            "_sort=title": "_sort",
            "_snapshot=other": "_snapshot",
        }
        for extra, expression in refused.items():
            r = page(f"{next_url}&{extra}")
            assert r.status_code == 400, (extra, r.text[:300])
            assert _issue(r)["expression"] == [expression], extra
        snapshot = parse_qs(urlsplit(next_url).query)["_snapshot"][0]
        bad_values = {
            "_count=%C2%B2": "_count",  # a Unicode digit: 400, never int() raising 500
            "_count=201": "_count",
            "_count=0": "_count",
            "_offset=" + "9" * 40: "_offset",
            "_offset=-1": "_offset",
        }
        for value, expression in bad_values.items():
            r = page(f"{running.search_url}?_snapshot={snapshot}&{value}")
            assert r.status_code == 400, (value, r.text[:300])
            assert _issue(r)["expression"] == [expression], value
        r = page(next_url)
        assert r.status_code == 200, r.text[:300]
        assert len([e for e in r.json()["entry"] if e["search"]["mode"] == "match"]) == 5
        assert running.regions.calls == calls, "a snapshot page asks no region"


def test_hub_refuses_an_oversized_or_repeated_token_header_before_checking_any_signature(
    hub: SecuredHub,
) -> None:
    caller = hub.caller()
    token = caller.citizen_token(PARENT)
    headers = caller.headers(token, hub.search_url)
    query = {"patient.identifier": f"{FNR}|{PARENT}"}
    r = hub.http.get(
        hub.search_url, params=query, headers={**headers, "authorization": "DPoP " + "a" * 9000}
    )
    assert r.status_code == 400, r.text[:300]
    assert "MAX_HEADER_LENGTH" in str(_issue(r)["diagnostics"])
    assert _issue(r)["expression"] == ["authorization"]
    r = hub.http.get(
        hub.search_url,
        params=query,
        headers=[*headers.items(), ("authorization", headers["authorization"])],
    )
    assert r.status_code == 400, r.text[:300]
    assert hub.regions.calls == 0
