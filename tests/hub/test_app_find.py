"""The hub's search edge: the caller's error from regions, and an audit row whatever happens."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import orjson
import pytest

from onerecord.audit import AuditAction, AuditOutcome, MemoryAuditSink
from onerecord.hub.app import create_hub_app
from onerecord.hub.client import FakeRegionClient, RegionResponse
from onerecord.hub.directory import RegionDirectory
from onerecord.hub.settings import HubSettings
from tests.factories import SYNTHETIC_FNR
from tests.hub.conftest import HCID_HSO, HCID_VEST, make_region

pytestmark = pytest.mark.anyio
BASE = "http://hub.test"
QUERY = {"patient.identifier": f"urn:oid:2.16.578.1.12.4.1.4.1|{SYNTHETIC_FNR}"}


def _throttling(retry_after: str) -> Any:
    async def handler(url: str, _headers: Mapping[str, str]) -> RegionResponse:
        issue = {"severity": "error", "code": "throttled", "diagnostics": "too many requests"}
        body = orjson.dumps({"resourceType": "OperationOutcome", "issue": [issue]})
        return RegionResponse(429, {"retry-after": retry_after}, body)

    return handler


def _hub(client: FakeRegionClient, audit: MemoryAuditSink) -> Any:
    directory = RegionDirectory.from_regions([make_region(HCID_HSO), make_region(HCID_VEST)])
    return create_hub_app(
        HubSettings(public_base_url=BASE), region_client=client, directory=directory, audit=audit
    )


async def test_regions_throttling_the_caller_answer_429_with_retry_after_not_502() -> None:
    client = FakeRegionClient()
    client.route("http://region1.test/fhir", _throttling("4"))
    client.route("http://region2.test/fhir", _throttling("11"))
    audit = MemoryAuditSink()
    app = _hub(client, audit)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        r = await http.get("/fhir/DocumentReference", params=QUERY)
    assert r.status_code == 429, r.text
    assert r.headers["retry-after"] == "11"
    assert {i["code"] for i in r.json()["issue"]} == {"throttled"}
    assert app.state.hub.breakers[HCID_HSO].consecutive_failures == 0
    (row,) = audit.records
    assert dict(row.regions) == {HCID_HSO: "rejected", HCID_VEST: "rejected"}


async def test_an_unexpected_failure_of_the_search_is_still_audited() -> None:
    audit = MemoryAuditSink()
    app = _hub(FakeRegionClient(), audit)

    async def crash(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    app.state.hub.find = crash
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        r = await http.get("/fhir/DocumentReference", params=QUERY)
    assert r.status_code == 500
    assert r.json()["resourceType"] == "OperationOutcome" and "a bug" not in r.text
    (row,) = audit.records
    assert row.action is AuditAction.SEARCH and row.outcome is AuditOutcome.ERROR
    assert row.reason == "http-500"


async def test_total_is_answered_by_the_hub_and_not_asked_of_regions() -> None:
    """`_total` costs a region a count query; the hub counts the merged answer itself."""
    asked: list[str] = []

    async def empty(url: str, _headers: Mapping[str, str]) -> RegionResponse:
        asked.append(url)
        body = {"resourceType": "Bundle", "type": "searchset", "link": []}
        return RegionResponse(200, {"content-type": "application/fhir+json"}, orjson.dumps(body))

    client = FakeRegionClient()
    client.route("http://region1.test/fhir", empty)
    client.route("http://region2.test/fhir", empty)
    app = _hub(client, MemoryAuditSink())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        r = await http.get("/fhir/DocumentReference", params={**QUERY, "_total": "accurate"})
    assert r.status_code == 200, r.text
    assert r.json()["total"] == 0
    assert len(asked) == 2 and not any("_total" in url for url in asked)
