"""What a third-party FHIR client needs of a source: errors as OperationOutcome, counts, reads.

Issue 10 G: fhirpy's `.count()` sent `_count=0` and was refused; `DocumentReference/<id>`
answered 404 with a plain JSON body.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from onerecord.source.app import create_app
from tests.conftest import Database
from tests.factories import make_entry, sample_pdf, synthetic_nin
from tests.source.conftest import SourceServer, make_settings
from tests.source.test_api import FHIR, FNR_SYSTEM, post_bundle, resources, search
from tests.support.servers import free_port, serve_in_thread

PATIENT_NIN_HEADER = "nhn-patient-nin"


def _outcome(r: httpx.Response, status: int) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(FHIR)
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["severity"] == "error"
    return body  # type: ignore[no-any-return]


def test_unknown_route_is_operation_outcome_404(source_server: SourceServer) -> None:
    body = _outcome(httpx.get(f"{source_server.fhir}/Patient/1"), 404)
    assert body["issue"][0]["code"] == "not-found"  # type: ignore[index]


def test_wrong_method_is_operation_outcome_405_with_allow(source_server: SourceServer) -> None:
    r = httpx.delete(f"{source_server.fhir}/DocumentReference")
    body = _outcome(r, 405)
    assert body["issue"][0]["code"] == "not-supported"  # type: ignore[index]
    assert "GET" in r.headers["allow"]


def test_wrong_content_type_of_search_form_is_operation_outcome_415(
    source_server: SourceServer,
) -> None:
    r = httpx.post(
        f"{source_server.fhir}/DocumentReference/_search",
        content=b"{}",
        headers={"content-type": "application/json"},
    )
    _outcome(r, 415)


_patients = iter(range(1, 10_000))


def _published(server: SourceServer, count: int) -> str:
    """Publish `count` documents of a new synthetic patient; return the patient's number."""
    patient = synthetic_nin(next(_patients))
    docs = [(make_entry(patient_id=patient, content=c), c) for c in [sample_pdf()] * count]
    assert post_bundle(server, docs).status_code == 200
    return patient


@pytest.mark.parametrize("ask", [{"_summary": "count"}, {"_count": "0"}])
def test_summary_count_answers_total_without_entries(
    source_server: SourceServer, ask: dict[str, str]
) -> None:
    patient = _published(source_server, 3)
    bundle = search(source_server, patient, **ask)
    assert bundle["total"] == 3
    assert "entry" not in bundle


def test_fhirpy_count_parameters_are_accepted(source_server: SourceServer) -> None:
    patient = _published(source_server, 2)
    bundle = search(source_server, patient, _count="0", _totalMethod="count")
    assert bundle["total"] == 2 and "entry" not in bundle


def test_summary_other_than_count_is_400(source_server: SourceServer) -> None:
    r = httpx.get(
        f"{source_server.fhir}/DocumentReference",
        params={"patient.identifier": f"{FNR_SYSTEM}|13116900216", "_summary": "true"},
    )
    _outcome(r, 400)


def test_read_document_reference_by_id_follows_full_url(source_server: SourceServer) -> None:
    patient = _published(source_server, 2)
    entry = search(source_server, patient)["entry"][0]
    r = httpx.get(entry["fullUrl"], headers={PATIENT_NIN_HEADER: patient})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(FHIR)
    assert r.json() == entry["resource"]


def test_read_of_another_patients_document_is_404_like_a_missing_one(
    source_server: SourceServer,
) -> None:
    patient = _published(source_server, 1)
    other = _published(source_server, 1)
    (doc,) = resources(search(source_server, patient))
    url = f"{source_server.fhir}/DocumentReference/{doc['id']}"
    foreign = httpx.get(url, headers={PATIENT_NIN_HEADER: other})
    missing = httpx.get(
        f"{source_server.fhir}/DocumentReference/00000000-0000-4000-8000-000000000000",
        headers={PATIENT_NIN_HEADER: patient},
    )
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json()["issue"][0]["code"] == missing.json()["issue"][0]["code"]
    assert _outcome(httpx.get(f"{source_server.fhir}/DocumentReference/nope"), 404)


def test_read_without_patient_header_is_400(source_server: SourceServer) -> None:
    patient = _published(source_server, 1)
    (doc,) = resources(search(source_server, patient))
    _outcome(httpx.get(f"{source_server.fhir}/DocumentReference/{doc['id']}"), 400)


def test_request_validation_error_is_operation_outcome_400(
    database: Database, tmp_path: Path
) -> None:
    port = free_port()
    app = create_app(make_settings(database, tmp_path, port))

    @app.get("/fhir/test-only/{number}")
    async def typed(number: int) -> dict[str, int]:
        return {"number": number}

    with serve_in_thread(app, port=port) as url:
        r = httpx.get(f"{url}/fhir/test-only/not-a-number")
    body = _outcome(r, 400)
    assert body["issue"][0]["code"] == "invalid"  # type: ignore[index]
    assert "not-a-number" not in r.text  # the location and the reason, never the value
