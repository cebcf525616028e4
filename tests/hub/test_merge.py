"""De-duplication, total ordering and XCA status consolidation."""

from __future__ import annotations

import random

import pytest

from onerecord.domain import SortField, SortKey
from onerecord.hub.merge import (
    EXT_HOME_COMMUNITY_ID,
    EXT_REGION_LATENCY_MS,
    HubStatus,
    Placed,
    consolidate,
    deduplicate,
    document_unique_id,
    merge,
    sort_documents,
)
from onerecord.hub.results import RegionResult, RegionStatus
from tests.hub.conftest import (
    HCID_HSO,
    HCID_MIDT,
    HCID_VEST,
    failed_result,
    make_docref,
    make_region,
    ok_result,
)

DATE_DESC = (SortKey(SortField.DATE, descending=True),)


def uids(docs: list[Placed] | tuple[Placed, ...]) -> list[str]:
    return [document_unique_id(d.resource).removeprefix("urn:oid:") for d in docs]


def test_duplicate_keeps_current_over_superseded() -> None:
    old = Placed(HCID_HSO, make_docref("1.2.3", status="superseded"))
    new = Placed(HCID_VEST, make_docref("1.2.3", status="current"))
    kept, dups = deduplicate([old, new])
    assert [d.home_community_id for d in kept] == [HCID_VEST]
    assert dups[0].kept == HCID_VEST and dups[0].dropped == HCID_HSO


def test_duplicate_with_same_status_keeps_lower_hcid_whatever_the_arrival_order() -> None:
    a = Placed(HCID_VEST, make_docref("1.2.3"))
    b = Placed(HCID_HSO, make_docref("1.2.3"))
    assert deduplicate([a, b])[0][0].home_community_id == HCID_HSO
    assert deduplicate([b, a])[0][0].home_community_id == HCID_HSO


def test_documents_without_master_identifier_are_never_merged() -> None:
    r1 = make_docref("1.2.3")
    r2 = make_docref("1.2.4")
    del r1["masterIdentifier"], r2["masterIdentifier"]
    kept, dups = deduplicate([Placed(HCID_HSO, r1), Placed(HCID_HSO, r2)])
    assert len(kept) == 2 and not dups


def test_default_sort_is_newest_first_with_total_tie_break() -> None:
    docs = [
        Placed(HCID_VEST, make_docref("1.9", date="2024-01-01T00:00:00+00:00")),
        Placed(HCID_HSO, make_docref("1.8", date="2024-06-01T00:00:00+00:00")),
        Placed(HCID_VEST, make_docref("1.2", date="2024-06-01T00:00:00+00:00")),
        Placed(HCID_HSO, make_docref("1.1", date="2024-06-01T00:00:00+00:00")),
    ]
    ordered = sort_documents(docs, DATE_DESC)
    # Same date: hso before vest, then by uniqueId.
    assert uids(ordered) == ["1.1", "1.8", "1.2", "1.9"]


def test_sort_is_independent_of_input_order() -> None:
    docs = [
        Placed(h, make_docref(f"1.{i}", date=f"2024-0{1 + i % 3}-01T00:00:00+00:00"))
        for i, h in enumerate([HCID_HSO, HCID_VEST, HCID_MIDT] * 4)
    ]
    expected = uids(sort_documents(docs, DATE_DESC))
    for seed in range(5):
        shuffled = docs[:]
        random.Random(seed).shuffle(shuffled)
        assert uids(sort_documents(shuffled, DATE_DESC)) == expected


def test_dates_in_different_zones_compare_as_instants() -> None:
    early = Placed(HCID_HSO, make_docref("1.1", date="2024-03-15T10:00:00+02:00"))  # 08:00Z
    late = Placed(HCID_HSO, make_docref("1.2", date="2024-03-15T09:00:00+00:00"))
    assert uids(sort_documents([early, late], DATE_DESC)) == ["1.2", "1.1"]


def test_title_ascending_then_missing_last() -> None:
    docs = [
        Placed(HCID_HSO, make_docref("1.1", title="röntgen")),
        Placed(HCID_HSO, make_docref("1.2", title="Blodprøve")),
        Placed(HCID_HSO, make_docref("1.3", title="epikrise")),
    ]
    docs[2].resource["content"][0]["attachment"].pop("title")
    ordered = sort_documents(docs, (SortKey(SortField.TITLE, descending=False),))
    assert uids(ordered) == ["1.2", "1.1", "1.3"]


@pytest.mark.parametrize("descending", [False, True])
def test_missing_period_sorts_last_in_both_directions(descending: bool) -> None:
    docs = [
        Placed(HCID_HSO, make_docref("1.1")),
        Placed(HCID_HSO, make_docref("1.2", period_start="2024-01-01")),
        Placed(HCID_HSO, make_docref("1.3", period_start="2023-01-01")),
    ]
    ordered = uids(sort_documents(docs, (SortKey(SortField.PERIOD, descending),)))
    assert ordered[-1] == "1.1"
    assert ordered[:2] == (["1.2", "1.3"] if descending else ["1.3", "1.2"])


def test_secondary_sort_key_orders_within_equal_primary() -> None:
    docs = [
        Placed(HCID_HSO, make_docref("1.1", title="B")),
        Placed(HCID_HSO, make_docref("1.2", title="A")),
        Placed(HCID_HSO, make_docref("1.3", title="C", date="2025-01-01T00:00:00+00:00")),
    ]
    keys = (SortKey(SortField.DATE, True), SortKey(SortField.TITLE, False))
    assert uids(sort_documents(docs, keys)) == ["1.3", "1.2", "1.1"]


def statuses(*pairs: RegionStatus | None) -> list[RegionResult]:
    out = []
    for i, status in enumerate(pairs):
        region = make_region(f"urn:oid:2.16.578.1.12.4.5.100.{i + 1}")
        out.append(ok_result(region) if status is None else failed_result(region, status))
    return out


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        (statuses(None, None), (HubStatus.SUCCESS, 200)),
        (statuses(None, RegionStatus.TIMEOUT), (HubStatus.PARTIAL_SUCCESS, 200)),
        (statuses(RegionStatus.TIMEOUT, RegionStatus.TIMEOUT), (HubStatus.FAILURE, 504)),
        (statuses(RegionStatus.TIMEOUT, RegionStatus.UNAVAILABLE), (HubStatus.FAILURE, 502)),
        (statuses(RegionStatus.ERROR), (HubStatus.FAILURE, 502)),
        (statuses(RegionStatus.DENIED, RegionStatus.DENIED), (HubStatus.FAILURE, 403)),
        ([], (HubStatus.FAILURE, 502)),
    ],
)
def test_consolidate(results: list[RegionResult], expected: tuple[HubStatus, int]) -> None:
    assert consolidate(results) == expected


def test_partial_success_names_each_failed_community_with_cause_and_latency() -> None:
    hso, vest, midt = (make_region(h) for h in (HCID_HSO, HCID_VEST, HCID_MIDT))
    results = [
        ok_result(hso, make_docref("1.1"), masked=2),
        failed_result(vest, RegionStatus.TIMEOUT, latency_ms=4500.4),
        failed_result(midt, RegionStatus.INVALID_RESPONSE, latency_ms=12.0, detail="not JSON"),
    ]
    merged = merge(results, DATE_DESC)
    assert merged.status is HubStatus.PARTIAL_SUCCESS and merged.http_status == 200
    assert uids(merged.documents) == ["1.1"]
    assert merged.masked_count == 2
    by_hcid = {i["location"][0]: i for i in merged.issues}
    assert set(by_hcid) == {HCID_VEST, HCID_MIDT}
    timeout = by_hcid[HCID_VEST]
    assert timeout["code"] == "timeout"
    assert timeout["details"]["coding"][0]["code"] == "timeout"
    ext = {e["url"]: e for e in timeout["extension"]}
    assert ext[EXT_HOME_COMMUNITY_ID]["valueUri"] == HCID_VEST
    assert ext[EXT_REGION_LATENCY_MS]["valueInteger"] == 4500
    assert by_hcid[HCID_MIDT]["details"]["coding"][0]["code"] == "invalid-response"
    assert "not JSON" in by_hcid[HCID_MIDT]["diagnostics"]


def test_total_failure_returns_no_documents_and_an_issue_per_region() -> None:
    results = statuses(RegionStatus.TIMEOUT, RegionStatus.UNAVAILABLE)
    merged = merge(results, DATE_DESC)
    assert merged.status is HubStatus.FAILURE and merged.http_status == 502
    assert merged.documents == ()
    assert [i["details"]["coding"][0]["code"] for i in merged.issues] == [
        "timeout",
        "unavailable",
    ]


def test_duplicates_across_regions_are_noted() -> None:
    hso, vest = make_region(HCID_HSO), make_region(HCID_VEST)
    merged = merge(
        [ok_result(hso, make_docref("1.5")), ok_result(vest, make_docref("1.5"))], DATE_DESC
    )
    assert len(merged.documents) == 1 and merged.status is HubStatus.SUCCESS
    (issue,) = merged.issues
    assert issue["severity"] == "information" and issue["code"] == "duplicate"
    assert "1.5" in issue["diagnostics"]


def test_truncated_region_gets_a_warning() -> None:
    region = make_region(HCID_HSO)
    result = RegionResult(
        region, RegionStatus.OK, 5.0, resources=(make_docref("1.1"),), truncated=True
    )
    merged = merge([result], DATE_DESC, region_cap=1)
    (issue,) = merged.issues
    assert issue["severity"] == "warning" and issue["location"] == [HCID_HSO]


# Issue 10 A/C: the caller's error is the caller's; truthful causes -----------------------------


def _rejected(region_hcid: str, http: int = 400, retry_after: str | None = None) -> RegionResult:
    return RegionResult(
        make_region(region_hcid),
        RegionStatus.REJECTED,
        3.0,
        detail=f"HTTP {http}: unknown parameter",
        http_status=http,
        retry_after=retry_after,
    )


def test_every_region_rejecting_the_request_is_the_callers_400_not_502() -> None:
    assert consolidate([_rejected(HCID_HSO), _rejected(HCID_VEST)]) == (HubStatus.FAILURE, 400)
    denied = failed_result(make_region(HCID_MIDT), RegionStatus.DENIED)
    assert consolidate([_rejected(HCID_HSO), denied]) == (HubStatus.FAILURE, 400)


def test_every_region_throttling_the_caller_is_429_with_the_longest_retry_after() -> None:
    results = [_rejected(HCID_HSO, 429, "3"), _rejected(HCID_VEST, 429, "9")]
    merged = merge(results, DATE_DESC)
    assert merged.http_status == 429 and merged.retry_after == "9"
    assert {i["code"] for i in merged.issues} == {"throttled"}


def test_a_rejection_beside_a_regions_failure_is_still_502() -> None:
    down = failed_result(make_region(HCID_MIDT), RegionStatus.UNAVAILABLE)
    assert consolidate([_rejected(HCID_HSO), down]) == (HubStatus.FAILURE, 502)


def test_a_rejecting_region_beside_a_healthy_one_is_partial_success() -> None:
    results = [ok_result(make_region(HCID_HSO), make_docref("1.1")), _rejected(HCID_VEST)]
    merged = merge(results, DATE_DESC)
    assert (merged.status, merged.http_status) == (HubStatus.PARTIAL_SUCCESS, 200)
    (issue,) = merged.issues
    assert issue["code"] == "invalid" and issue["location"] == [HCID_VEST]
    assert "caller's error" in issue["diagnostics"] and "unknown parameter" in issue["diagnostics"]


def test_too_large_is_named_as_such() -> None:
    result = failed_result(
        make_region(HCID_VEST), RegionStatus.TOO_LARGE, detail="exceeds the hub's limit"
    )
    (issue,) = merge([result], DATE_DESC).issues
    assert issue["code"] == "too-costly"
    assert issue["details"]["coding"][0]["code"] == "too-large"
    assert "size limit" in issue["diagnostics"] and "unavailable" not in issue["diagnostics"]


def test_a_regions_warning_cannot_claim_another_community() -> None:
    spoof = {
        "severity": "warning",
        "code": "informational",
        "extension": [
            {"url": EXT_HOME_COMMUNITY_ID, "valueUri": HCID_MIDT},
            {"url": "https://example.org/own", "valueString": "kept"},
        ],
        "location": [HCID_MIDT],
    }
    result = RegionResult(make_region(HCID_VEST), RegionStatus.OK, 1.0, warnings=(spoof,))
    (issue,) = merge([result], DATE_DESC).issues
    assert issue["location"] == [HCID_VEST]
    assert [e.get("valueUri") for e in issue["extension"] if e["url"] == EXT_HOME_COMMUNITY_ID] == [
        HCID_VEST
    ]
    assert {"url": "https://example.org/own", "valueString": "kept"} in issue["extension"]
