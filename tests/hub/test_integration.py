"""The hub against real servers on 127.0.0.1: document sources and misbehaving regions."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onerecord.domain import DocumentEntry
from onerecord.hub.app import create_hub_app
from onerecord.hub.fanout import MASKED_COUNT_HEADER
from onerecord.hub.settings import HubSettings
from onerecord.mhd import RetrieveKey, build_provide_bundle
from onerecord.source.app import create_app
from onerecord.source.settings import SourceSettings
from tests.factories import SYNTHETIC_FNR, make_entry, sample_pdf
from tests.support.servers import free_port, serve_in_thread

FHIR = "application/fhir+json"
PATIENT = {"patient.identifier": f"urn:oid:2.16.578.1.12.4.1.4.1|{SYNTHETIC_FNR}"}
_ids = itertools.count(1)


@dataclass(frozen=True)
class RealRegion:
    name: str
    hcid: str
    fhir: str

    def publish(self, docs: list[tuple[DocumentEntry, bytes]]) -> None:
        bundle = build_provide_bundle(
            docs,
            source_id=f"{self.hcid}.9",
            submission_set_unique_id=f"{self.hcid.removeprefix('urn:oid:')}.8.{next(_ids)}",
        )
        r = httpx.post(
            self.fhir, content=orjson.dumps(bundle), headers={"content-type": FHIR}, timeout=60
        )
        assert r.status_code == 200, r.text


def start_source(stack: ExitStack, tmp_path: Path, number: int) -> RealRegion:
    port = free_port()
    hcid = f"urn:oid:2.16.578.1.12.4.5.100.{number}"
    settings = SourceSettings(
        region=f"Region {number}",
        home_community_id=hcid,
        repository_unique_id=f"2.16.578.1.12.4.5.100.{number}.2",
        db_url=f"sqlite:///{tmp_path / f'r{number}.db'}",
        content_dir=tmp_path / f"content{number}",
        public_base_url=f"http://127.0.0.1:{port}",
        dev_mode=True,
        dev_open_access=True,
    )
    url = stack.enter_context(serve_in_thread(create_app(settings), port=port))
    return RealRegion(f"Region {number}", hcid, f"{url}/fhir")


async def _hang(request: Request) -> Response:
    """Answer after 10 s, or stop as soon as the hub hangs up."""
    for _ in range(200):
        if await request.is_disconnected():
            break
        await asyncio.sleep(0.05)
    return Response(b"{}", media_type=FHIR)


async def _malformed(_request: Request) -> Response:
    return Response(b'{"resourceType": "Bundle", "type": "searchset", "entry": [', media_type=FHIR)


def misbehaving_app(endpoint: Any) -> Starlette:
    return Starlette(routes=[Route("/fhir/{path:path}", endpoint)])


@dataclass
class Flaky:
    """A region whose health a test switches; counts the requests it saw."""

    healthy: bool = False
    seen: int = 0

    def app(self) -> Starlette:
        async def endpoint(_request: Request) -> Response:
            self.seen += 1
            if not self.healthy:
                return Response(b"down", status_code=503)
            body = orjson.dumps({"resourceType": "Bundle", "type": "searchset", "entry": []})
            return Response(body, media_type=FHIR)

        return misbehaving_app(endpoint)


def write_directory(path: Path, regions: list[tuple[str, str, str, float | None]]) -> Path:
    data = {
        "regions": [
            {"name": n, "home_community_id": h, "base_url": u, "timeout_s": t}
            for n, h, u, t in regions
        ]
    }
    path.write_bytes(orjson.dumps(data))
    return path


def start_hub(stack: ExitStack, directory: Path, **overrides: Any) -> str:
    port = free_port()
    values: dict[str, Any] = {
        "directory_file": directory,
        "public_base_url": f"http://127.0.0.1:{port}",
        "per_region_timeout_s": 0.8,
        "aggregation_deadline_s": 1.0,
        "request_deadline_s": 1.5,
        **overrides,
    }
    settings = HubSettings(**values)
    url = stack.enter_context(serve_in_thread(create_hub_app(settings), port=port))
    return f"{url}/fhir"


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as s:
        yield s


def documents(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        e["resource"]
        for e in bundle.get("entry", [])
        if e["resource"]["resourceType"] == "DocumentReference"
    ]


def outcome_issues(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        i["location"][0]: i
        for e in bundle.get("entry", [])
        if e["resource"]["resourceType"] == "OperationOutcome"
        for i in e["resource"]["issue"]
    }


def test_partial_success_across_real_and_misbehaving_regions(
    stack: ExitStack, tmp_path: Path
) -> None:
    r1, r2 = start_source(stack, tmp_path, 1), start_source(stack, tmp_path, 2)
    pdf = sample_pdf()
    e1 = make_entry(content=pdf)
    e2 = make_entry(content=pdf)
    r1.publish([(e1, pdf)])
    r2.publish([(e2, pdf)])
    hang_url = stack.enter_context(serve_in_thread(misbehaving_app(_hang)))
    bad_url = stack.enter_context(serve_in_thread(misbehaving_app(_malformed)))
    refused = f"http://127.0.0.1:{free_port()}/fhir"
    hcid = "urn:oid:2.16.578.1.12.4.5.100.{}".format
    directory = write_directory(
        tmp_path / "regions.json",
        [
            ("Region 1", r1.hcid, r1.fhir, None),
            ("Region 2", r2.hcid, r2.fhir, None),
            ("Hanging", hcid(7), f"{hang_url}/fhir", 5.0),  # capped by the 1.0 s aggregation
            ("Malformed", hcid(8), f"{bad_url}/fhir", None),
            ("Refused", hcid(9), refused, None),
        ],
    )
    hub = start_hub(stack, directory)
    started = time.perf_counter()
    r = httpx.get(
        f"{hub}/DocumentReference",
        params=PATIENT,
        headers={"x-correlation-id": "corr-123"},
        timeout=10,
    )
    elapsed = time.perf_counter() - started
    assert r.status_code == 200, r.text
    assert r.headers["x-correlation-id"] == "corr-123"
    assert r.headers[MASKED_COUNT_HEADER] == "0"
    # The hanging region (5 s timeout) is cut at the 1.0 s aggregation deadline: the answer comes
    # after the deadline and far before the region's own timeout. Not a speed test (that is
    # bench/fanout.py), so the upper bound leaves room for a loaded CI machine.
    assert 0.9 <= elapsed < 4.0, elapsed
    bundle = r.json()
    docs = documents(bundle)
    assert {d["masterIdentifier"]["value"] for d in docs} == {
        e1.unique_id.urn,
        e2.unique_id.urn,
    }
    for doc in docs:
        assert doc["content"][0]["attachment"]["url"].startswith(f"{hub}/Binary/")
    issues = outcome_issues(bundle)
    assert set(issues) == {hcid(7), hcid(8), hcid(9)}
    assert issues[hcid(7)]["details"]["coding"][0]["code"] == "timeout"
    assert issues[hcid(8)]["details"]["coding"][0]["code"] == "invalid-response"
    assert issues[hcid(9)]["details"]["coding"][0]["code"] == "unavailable"

    metrics = httpx.get(hub.removesuffix("/fhir") + "/metrics").text
    assert f'onerecord_hub_region_timeouts_total{{hcid="{hcid(7)}"}} 1.0' in metrics
    assert "onerecord_hub_region_latency_seconds_bucket" in metrics


def test_only_refused_region_fails_fast_with_502(stack: ExitStack, tmp_path: Path) -> None:
    refused = f"http://127.0.0.1:{free_port()}/fhir"
    directory = write_directory(
        tmp_path / "regions.json", [("Refused", "urn:oid:2.16.578.1.12.4.5.100.9", refused, None)]
    )
    # Long deadlines, so that failing fast (a refused connection) is told apart from waiting
    # for them by a wide margin: a loaded CI machine once took 0.63 s for the whole search.
    hub = start_hub(
        stack,
        directory,
        per_region_timeout_s=8.0,
        aggregation_deadline_s=9.0,
        request_deadline_s=10.0,
    )
    started = time.perf_counter()
    r = httpx.get(f"{hub}/DocumentReference", params=PATIENT, timeout=20)
    assert time.perf_counter() - started < 4.0
    assert r.status_code == 502
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["location"] == ["urn:oid:2.16.578.1.12.4.5.100.9"]


def test_all_regions_timing_out_is_504(stack: ExitStack, tmp_path: Path) -> None:
    hang_url = stack.enter_context(serve_in_thread(misbehaving_app(_hang)))
    directory = write_directory(
        tmp_path / "regions.json",
        [("Hanging", "urn:oid:2.16.578.1.12.4.5.100.7", f"{hang_url}/fhir", None)],
    )
    hub = start_hub(stack, directory)
    r = httpx.get(f"{hub}/DocumentReference", params=PATIENT, timeout=10)
    assert r.status_code == 504
    assert r.json()["issue"][0]["code"] == "timeout"


def test_bad_query_is_400_outcome_without_fan_out(stack: ExitStack, tmp_path: Path) -> None:
    flaky = Flaky(healthy=True)
    url = stack.enter_context(serve_in_thread(flaky.app()))
    directory = write_directory(
        tmp_path / "regions.json", [("F", "urn:oid:2.16.578.1.12.4.5.100.5", f"{url}/fhir", None)]
    )
    hub = start_hub(stack, directory)
    r = httpx.get(f"{hub}/DocumentReference", params={"foo": "bar"}, timeout=10)
    assert r.status_code == 400
    assert r.json()["resourceType"] == "OperationOutcome"
    assert flaky.seen == 0


def test_breaker_opens_and_recovers_after_cooldown(stack: ExitStack, tmp_path: Path) -> None:
    flaky = Flaky(healthy=False)
    url = stack.enter_context(serve_in_thread(flaky.app()))
    hcid = "urn:oid:2.16.578.1.12.4.5.100.5"
    directory = write_directory(tmp_path / "regions.json", [("Flaky", hcid, f"{url}/fhir", None)])
    hub = start_hub(stack, directory, breaker_failure_threshold=2, breaker_cooldown_s=3.0)
    metrics_url = hub.removesuffix("/fhir") + "/metrics"
    for _ in range(2):
        assert httpx.get(f"{hub}/DocumentReference", params=PATIENT).status_code == 502
    assert flaky.seen == 2
    assert f'onerecord_hub_breaker_state{{hcid="{hcid}"}} 2.0' in httpx.get(metrics_url).text
    r = httpx.get(f"{hub}/DocumentReference", params=PATIENT)
    assert r.status_code == 502 and "breaker" in r.text
    assert flaky.seen == 2, "an open breaker must not call the region"
    flaky.healthy = True
    time.sleep(3.05)
    r = httpx.get(f"{hub}/DocumentReference", params=PATIENT)
    assert r.status_code == 200, r.text
    assert flaky.seen == 3
    assert f'onerecord_hub_breaker_state{{hcid="{hcid}"}} 0.0' in httpx.get(metrics_url).text


@pytest.mark.slow
def test_paging_through_1000_documents_gives_each_exactly_once(
    stack: ExitStack, tmp_path: Path
) -> None:
    r1, r2 = start_source(stack, tmp_path, 1), start_source(stack, tmp_path, 2)
    pdf = sample_pdf()
    published: set[str] = set()
    for region, n in ((r1, 600), (r2, 400)):
        for batch in range(0, n, 100):
            docs = [
                (make_entry(content=pdf, title=f"Notat {batch + i:04d}"), pdf) for i in range(100)
            ]
            region.publish(docs)
            published |= {e.unique_id.urn for e, _ in docs}
    directory = write_directory(
        tmp_path / "regions.json",
        [("Region 1", r1.hcid, r1.fhir, None), ("Region 2", r2.hcid, r2.fhir, None)],
    )
    hub = start_hub(
        stack,
        directory,
        per_region_timeout_s=20,
        aggregation_deadline_s=25,
        request_deadline_s=30,
    )
    auth = {"authorization": "Bearer alice"}
    r = httpx.get(
        f"{hub}/DocumentReference",
        params={**PATIENT, "_count": "150", "_sort": "title"},
        headers=auth,
        timeout=60,
    )
    assert r.status_code == 200, r.text
    seen: list[str] = []
    titles: list[str] = []
    page = r.json()
    assert page["total"] == 1000
    next_url = None
    pages = 0
    while True:
        pages += 1
        for doc in documents(page):
            seen.append(doc["masterIdentifier"]["value"])
            titles.append(doc["content"][0]["attachment"]["title"])
        next_url = next((lk["url"] for lk in page["link"] if lk["relation"] == "next"), None)
        if next_url is None:
            break
        if pages == 2:
            # A region changes mid-traversal: the snapshot does not.
            r1.publish([(make_entry(content=pdf, title="Notat 0000a"), pdf)])
            stranger = httpx.get(next_url, headers={"authorization": "Bearer mallory"})
            assert stranger.status_code == 404
        resp = httpx.get(next_url, headers=auth, timeout=30)
        assert resp.status_code == 200, resp.text
        page = resp.json()
    assert pages == 7
    assert len(seen) == 1000 and set(seen) == published
    assert titles == sorted(titles, key=str.casefold)


def test_expired_snapshot_is_410(stack: ExitStack, tmp_path: Path) -> None:
    r1 = start_source(stack, tmp_path, 1)
    pdf = sample_pdf()
    r1.publish([(make_entry(content=pdf), pdf) for _ in range(3)])
    directory = write_directory(tmp_path / "regions.json", [("R1", r1.hcid, r1.fhir, None)])
    hub = start_hub(stack, directory, snapshot_ttl_s=0.2)
    first = httpx.get(f"{hub}/DocumentReference", params={**PATIENT, "_count": "2"}).json()
    next_url = next(lk["url"] for lk in first["link"] if lk["relation"] == "next")
    time.sleep(0.3)
    r = httpx.get(next_url)
    assert r.status_code == 410
    assert "search again" in r.json()["issue"][0]["diagnostics"]


def test_retrieve_through_the_hub_streams_the_right_bytes(stack: ExitStack, tmp_path: Path) -> None:
    r1 = start_source(stack, tmp_path, 1)
    big = sample_pdf("Langt notat " * 60_000)  # about 700 kB
    entry = make_entry(content=big)
    r1.publish([(entry, big)])
    down_hcid = "urn:oid:2.16.578.1.12.4.5.100.6"
    directory = write_directory(
        tmp_path / "regions.json",
        [
            ("R1", r1.hcid, r1.fhir, None),
            ("Down", down_hcid, f"http://127.0.0.1:{free_port()}/fhir", None),
        ],
    )
    hub = start_hub(stack, directory)
    (doc,) = documents(httpx.get(f"{hub}/DocumentReference", params=PATIENT).json())
    url = doc["content"][0]["attachment"]["url"]
    assert url.startswith(f"{hub}/Binary/")
    with httpx.stream("GET", url, headers={"nhn-patient-nin": SYNTHETIC_FNR}) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("application/pdf")
        got = b"".join(resp.iter_bytes())
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(big).hexdigest()

    key = RetrieveKey.parse(url.rsplit("/", 1)[1])
    unknown = url.replace(key.home_community_id.oid.value, "2.16.578.1.12.4.5.100.99", 1)
    r = httpx.get(unknown)
    assert r.status_code == 404 and r.json()["resourceType"] == "OperationOutcome"
    down = url.replace(key.home_community_id.oid.value, "2.16.578.1.12.4.5.100.6", 1)
    r = httpx.get(down)
    assert r.status_code == 502 and r.json()["resourceType"] == "OperationOutcome"
    missing = url[: -len(entry.unique_id.value)] + "2.25.1"
    assert httpx.get(missing).status_code == 404
