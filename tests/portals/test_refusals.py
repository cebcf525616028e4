"""Why a region refused or answered with nothing, as the portals tell it (pure parts).

A patient's block of a health worker (ATT-5) and a reservation against sharing (D4) reach the
portal as denial-reason codes in the hub's issues; each gets its own words instead of the
generic "no access" or an empty list that looks like "no documents".
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from onerecord.hub.merge import region_issues
from onerecord.hub.render import outcome_entry
from onerecord.hub.results import RegionResult, RegionStatus
from onerecord.mhd import Issue
from onerecord.portals.errors import HubRefused
from onerecord.portals.gateway import _checked
from onerecord.portals.i18n import catalog
from onerecord.portals.overview import build_overview
from tests.hub.conftest import HCID_HSO, HCID_VEST, make_region

REGIONS = [
    {"home_community_id": HCID_HSO, "name": "Helse Sør-Øst"},
    {"home_community_id": HCID_VEST, "name": "Helse Vest"},
]


def _denied(hcid: str, reason: str | None) -> RegionResult:
    return RegionResult(make_region(hcid), RegionStatus.DENIED, 2.0, reason=reason)


def _reserved(hcid: str) -> RegionResult:
    issue = Issue(
        code="suppressed", severity="information", diagnostics="d", reason="patient-reserved"
    )
    return RegionResult(make_region(hcid), RegionStatus.OK, 2.0, warnings=(issue.render(),))


def _searchset(results: list[RegionResult]) -> dict[str, Any]:
    """The hub's searchset for these region results, with no documents."""
    outcome = outcome_entry(region_issues(results))
    entries = [orjson.loads(outcome)] if outcome is not None else []
    return {"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": entries}


def _hub_refusal(results: list[RegionResult]) -> httpx.Response:
    body = {"resourceType": "OperationOutcome", "issue": region_issues(results)}
    return httpx.Response(403, content=orjson.dumps(body))


def test_a_reserved_patients_overview_says_so() -> None:
    overview = build_overview(_searchset([_reserved(HCID_HSO), _reserved(HCID_VEST)]), REGIONS)
    assert overview.reserved and overview.rows == () and overview.complete
    assert [r.reason for r in overview.regions] == ["patient-reserved"] * 2
    plain = build_overview(_searchset([]), REGIONS)
    assert not plain.reserved


def test_a_blocked_health_worker_is_told_in_each_regions_line_without_a_retry() -> None:
    ok = RegionResult(make_region(HCID_HSO), RegionStatus.OK, 1.0)
    overview = build_overview(_searchset([ok, _denied(HCID_VEST, "practitioner-blocked")]), REGIONS)
    vest = overview.regions[1]
    assert vest.message_key == "region.denied.practitioner-blocked"
    assert not vest.retry_helps
    other = build_overview(_searchset([ok, _denied(HCID_VEST, None)]), REGIONS).regions[1]
    assert other.message_key == "region.denied" and not other.retry_helps
    timeout = RegionResult(make_region(HCID_VEST), RegionStatus.TIMEOUT, 4000.0)
    assert build_overview(_searchset([ok, timeout]), REGIONS).regions[1].retry_helps


def test_the_hub_refusing_because_of_a_block_gets_its_own_error() -> None:
    refusal = _hub_refusal(
        [_denied(HCID_HSO, "practitioner-blocked"), _denied(HCID_VEST, "practitioner-blocked")]
    )
    with pytest.raises(HubRefused) as raised:
        _checked(refusal)
    assert raised.value.message_key == "error.practitioner-blocked"
    assert raised.value.advice_key == "error.practitioner-blocked.advice"
    for key in (raised.value.message_key, raised.value.advice_key):
        assert set(catalog()[key]) == {"nb", "nn", "en"}


@pytest.mark.parametrize(
    "response",
    [
        _hub_refusal([_denied(HCID_HSO, "practitioner-blocked"), _denied(HCID_VEST, None)]),
        _hub_refusal([_denied(HCID_HSO, "patient-binding-mismatch")]),
        httpx.Response(403, content=b"not json"),
    ],
)
def test_other_refusals_keep_the_general_message(response: httpx.Response) -> None:
    with pytest.raises(HubRefused) as raised:
        _checked(response)
    assert raised.value.message_key == "error.hub-refused"
