"""What a third-party FHIR client needs of the hub, against real sources on 127.0.0.1.

Issue 10 G: `_count=0` (fhirpy's `.count()`) was refused, errors of unknown routes were plain
JSON, and each entry's fullUrl pointed at its region, which the caller cannot read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from tests.factories import SYNTHETIC_FNR, make_entry, sample_pdf, synthetic_nin
from tests.hub.test_integration import (  # noqa: F401 (stack is a fixture)
    FHIR,
    PATIENT,
    RealRegion,
    documents,
    misbehaving_app,
    start_hub,
    start_source,
    write_directory,
)
from tests.support.servers import free_port, serve_in_thread

PATIENT_NIN = {"nhn-patient-nin": SYNTHETIC_FNR}
OTHER_FNR = synthetic_nin(1)


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as s:
        yield s


def _outcome(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(FHIR)
    body: dict[str, Any] = r.json()
    assert body["resourceType"] == "OperationOutcome"
    return body


def _network(
    stack: ExitStack, tmp_path: Path, *, down: bool = False
) -> tuple[str, list[RealRegion]]:
    """Two sources with 2 and 1 documents of the patient (and a refused region if `down`)."""
    r1, r2 = start_source(stack, tmp_path, 1), start_source(stack, tmp_path, 2)
    pdf = sample_pdf()
    r1.publish([(make_entry(content=pdf), pdf), (make_entry(content=pdf), pdf)])
    r2.publish([(make_entry(content=pdf), pdf)])
    regions = [("Region 1", r1.hcid, r1.fhir, None), ("Region 2", r2.hcid, r2.fhir, None)]
    if down:
        refused = f"http://127.0.0.1:{free_port()}/fhir"
        regions.append(("Refused", "urn:oid:2.16.578.1.12.4.5.100.9", refused, None))
    # Nothing here is about deadlines: generous ones keep a loaded CI machine from turning a
    # cold first request into a 504 (the refused region fails at once either way).
    directory = write_directory(tmp_path / "regions.json", regions)
    hub = start_hub(
        stack,
        directory,
        per_region_timeout_s=8.0,
        aggregation_deadline_s=9.0,
        request_deadline_s=10.0,
    )
    return hub, [r1, r2]


def test_hub_unknown_route_and_method_are_operation_outcomes(
    stack: ExitStack, tmp_path: Path
) -> None:
    hub, _ = _network(stack, tmp_path)
    assert _outcome(httpx.get(f"{hub}/Patient"), 404)["issue"][0]["code"] == "not-found"
    r = httpx.delete(f"{hub}/DocumentReference", params=PATIENT)
    assert _outcome(r, 405)["issue"][0]["code"] == "not-supported"
    assert "GET" in r.headers["allow"]
    _outcome(httpx.get(f"{hub}/DocumentReference/not-a-hub-id", headers=PATIENT_NIN), 404)


@pytest.mark.parametrize("ask", [{"_summary": "count"}, {"_count": "0", "_totalMethod": "count"}])
def test_hub_count_sums_regions_and_reports_the_failed_one(
    stack: ExitStack, tmp_path: Path, ask: dict[str, str]
) -> None:
    hub, _ = _network(stack, tmp_path, down=True)
    r = httpx.get(f"{hub}/DocumentReference", params={**PATIENT, **ask}, timeout=10)
    assert r.status_code == 200, r.text
    bundle = r.json()
    assert bundle["total"] == 3
    assert documents(bundle) == []
    (outcome,) = [e["resource"] for e in bundle["entry"]]
    assert outcome["resourceType"] == "OperationOutcome"
    assert any("Refused" in i["diagnostics"] for i in outcome["issue"])


def test_hub_count_without_failures_has_no_entries(stack: ExitStack, tmp_path: Path) -> None:
    hub, _ = _network(stack, tmp_path)
    bundle = httpx.get(f"{hub}/DocumentReference", params={**PATIENT, "_count": "0"}).json()
    assert bundle["total"] == 3 and "entry" not in bundle


def test_hub_full_urls_are_readable_at_the_hub(stack: ExitStack, tmp_path: Path) -> None:
    hub, regions = _network(stack, tmp_path)
    bundle = httpx.get(f"{hub}/DocumentReference", params=PATIENT, timeout=10).json()
    entries = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "DocumentReference"]
    assert len(entries) == 3
    for entry in entries:
        resource = entry["resource"]
        assert entry["fullUrl"] == f"{hub}/DocumentReference/{resource['id']}"
        assert not any(entry["fullUrl"].startswith(r.fhir) for r in regions)
        read = httpx.get(entry["fullUrl"], headers=PATIENT_NIN, timeout=10)
        assert read.status_code == 200, read.text
        assert read.headers["content-type"].startswith(FHIR)
        assert read.json() == resource
        assert read.json()["content"][0]["attachment"]["url"].startswith(f"{hub}/Binary/")


def test_hub_read_of_another_patients_document_is_404(stack: ExitStack, tmp_path: Path) -> None:
    hub, _ = _network(stack, tmp_path)
    bundle = httpx.get(f"{hub}/DocumentReference", params=PATIENT, timeout=10).json()
    url = bundle["entry"][0]["fullUrl"]
    other = make_entry(content=sample_pdf(), patient_id="13116900216").patient_id.value
    _outcome(httpx.get(url, headers={"nhn-patient-nin": other}), 404)


def test_hub_read_routes_unknown_community_and_down_region_as_outcomes(
    stack: ExitStack, tmp_path: Path
) -> None:
    hub, _ = _network(stack, tmp_path, down=True)
    entry_hex = "0" * 32
    unknown = f"{hub}/DocumentReference/2.16.578.1.12.4.5.100.77-{entry_hex}"
    _outcome(httpx.get(unknown, headers=PATIENT_NIN), 404)
    down = f"{hub}/DocumentReference/2.16.578.1.12.4.5.100.9-{entry_hex}"
    _outcome(httpx.get(down, headers=PATIENT_NIN, timeout=10), 502)


def test_hub_count_asks_each_region_once_for_its_total_and_adds_them(
    stack: ExitStack, tmp_path: Path
) -> None:
    """Regions answer their total only; a malformed count answer is that region's failure."""
    asked: list[str] = []

    def region(total: object) -> Starlette:
        async def endpoint(request: Request) -> Response:
            asked.append(str(request.url.query))
            body = {"resourceType": "Bundle", "type": "searchset", "total": total}
            return Response(orjson.dumps(body), media_type=FHIR)

        return misbehaving_app(endpoint)

    big = stack.enter_context(serve_in_thread(region(40)))
    bad = stack.enter_context(serve_in_thread(region("many")))
    r1 = start_source(stack, tmp_path, 1)
    pdf = sample_pdf()
    r1.publish([(make_entry(content=pdf), pdf)])
    directory = write_directory(
        tmp_path / "regions.json",
        [
            ("Region 1", r1.hcid, r1.fhir, None),
            ("Big", "urn:oid:2.16.578.1.12.4.5.100.5", f"{big}/fhir", None),
            ("Bad", "urn:oid:2.16.578.1.12.4.5.100.6", f"{bad}/fhir", None),
        ],
    )
    hub = start_hub(stack, directory)
    r = httpx.get(f"{hub}/DocumentReference", params={**PATIENT, "_summary": "count"}, timeout=10)
    assert r.status_code == 200, r.text
    bundle = r.json()
    assert bundle["total"] == 41
    assert len(asked) == 2 and all("_summary=count" in q for q in asked)
    (outcome,) = [e["resource"] for e in bundle["entry"]]
    statuses = {
        i["location"][0]: i["details"]["coding"][0]["code"]
        for i in outcome["issue"]
        if i.get("location")
    }
    assert statuses == {"urn:oid:2.16.578.1.12.4.5.100.6": "invalid-response"}


@pytest.mark.parametrize("fault", ["another-patient", "no-subject", "content-number"])
def test_a_regions_faulty_read_answer_is_502_and_never_passed_on(
    stack: ExitStack, tmp_path: Path, fault: str
) -> None:
    """A read is held to a search entry's rules: the patient asked for, the types the hub reads."""
    other = OTHER_FNR
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "status": "current",
        "subject": {"identifier": {"system": "urn:oid:2.16.578.1.12.4.1.4.1", "value": other}},
        "content": [{"attachment": {"contentType": "application/pdf", "title": "Epikrise"}}],
    }
    if fault == "no-subject":
        del resource["subject"]
    if fault == "content-number":
        resource["subject"]["identifier"]["value"] = SYNTHETIC_FNR
        resource["content"] = 5

    async def endpoint(_request: Request) -> Response:
        return Response(orjson.dumps(resource), media_type=FHIR)

    faulty = stack.enter_context(serve_in_thread(misbehaving_app(endpoint)))
    hcid = "urn:oid:2.16.578.1.12.4.5.100.8"
    directory = write_directory(
        tmp_path / "regions.json", [("Faulty", hcid, f"{faulty}/fhir", None)]
    )
    hub = start_hub(stack, directory)
    url = f"{hub}/DocumentReference/2.16.578.1.12.4.5.100.8-{'0' * 32}"
    body = _outcome(httpx.get(url, headers=PATIENT_NIN, timeout=10), 502)
    assert other not in orjson.dumps(body).decode()
    # A read names its patient, as a retrieve does.
    _outcome(httpx.get(url, timeout=10), 400)


def test_a_hanging_regions_read_is_answered_504_at_the_request_deadline(
    stack: ExitStack, tmp_path: Path
) -> None:
    """The read's own timeout (retrieve_timeout_s, 10 s) is longer: the request deadline wins."""

    async def endpoint(_request: Request) -> Response:
        await asyncio.sleep(4)
        return Response(b"{}", media_type=FHIR)

    hanging = stack.enter_context(serve_in_thread(misbehaving_app(endpoint)))
    hcid = "urn:oid:2.16.578.1.12.4.5.100.8"
    directory = write_directory(
        tmp_path / "regions.json", [("Hanging", hcid, f"{hanging}/fhir", None)]
    )
    hub = start_hub(stack, directory)  # request deadline 1.5 s
    url = f"{hub}/DocumentReference/2.16.578.1.12.4.5.100.8-{'0' * 32}"
    started = time.monotonic()
    _outcome(httpx.get(url, headers=PATIENT_NIN, timeout=15), 504)
    assert time.monotonic() - started < 5.0
