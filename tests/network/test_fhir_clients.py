"""Third-party FHIR clients against the demo network: fhirpy and fhirclient, with DPoP.

Issue 10 G. The examples are the ones in docs/hub.md («Third-party FHIR clients»), run as they
are written: search, `count`, paging through `next` links, and reading an entry by the id in its
fullUrl, through the hub and back from the owning region.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import requests
from joserfc.jwk import ECKey

from onerecord.search_client import FNR_SYSTEM
from onerecord.trust.patient_binding import PATIENT_NIN_HEADER, PATIENT_SALT_HEADER
from tests.network.conftest import Network
from tests.network.test_network import documents, publish

pytestmark = pytest.mark.slow

_DOCS = Path(__file__).resolve().parents[2] / "docs" / "hub.md"
_EXAMPLE = re.compile(r"<!-- tested example: (\S+) -->\n```python\n(.*?)```", re.DOTALL)


def examples() -> dict[str, str]:
    return dict(_EXAMPLE.findall(_DOCS.read_text(encoding="utf-8")))


def run_example(name: str, **names: Any) -> dict[str, Any]:
    """Run one example of docs/hub.md with `names` defined; return what it defined."""
    namespace: dict[str, Any] = dict(names)
    exec(compile(examples()[name], f"docs/hub.md ({name})", "exec"), namespace)  # noqa: S102
    return namespace


@pytest.fixture(scope="module")
def patient(network: Network) -> str:
    adult = str(network.manifest["patients"]["adult"])
    publish(network, 0, adult, 6)  # enough entries for three pages of ten
    publish(network, 1, adult, 6)
    return adult


@pytest.fixture(scope="module")
def expected(network: Network, patient: str) -> dict[str, Any]:
    """The hub's answer to the same search, made with the project's own client."""
    return network.hub_search(network.practitioner(patient), patient)


def keys(resources: list[dict[str, Any]]) -> list[str]:
    """The uniqueId of each entry in order; a masked (blocked) entry gets a new id each search."""
    return [str((r.get("masterIdentifier") or {}).get("value", "masked")) for r in resources]


class CountingAuth:
    """Count the requests the example's auth hook signs (each needs its own proof)."""

    def __init__(self, auth: Any) -> None:
        self.auth = auth
        self.urls: list[str] = []
        self.proofs: set[str] = set()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        signed = self.auth(request)
        self.urls.append(str(request.url))
        self.proofs.add(signed.headers["DPoP"])
        return signed


@pytest.fixture
def auth(network: Network, patient: str) -> CountingAuth:
    session = network.practitioner(patient)
    defined = run_example("dpop-auth")
    headers = {PATIENT_NIN_HEADER: patient, PATIENT_SALT_HEADER: session.patient_salt or ""}
    key = ECKey.import_key(session.dpop_key.private_jwk())
    return CountingAuth(defined["DPoPAuth"](session.token, key, headers=headers))


def test_the_doc_examples_are_found() -> None:
    assert set(examples()) == {"dpop-auth", "fhirpy", "fhirclient"}


def test_fhirpy_searches_counts_pages_and_reads_through_the_hub(
    network: Network, patient: str, expected: dict[str, Any], auth: CountingAuth
) -> None:
    done = run_example("fhirpy", hub_fhir=network.hub_fhir, auth=auth, patient=patient)
    total, found, first = done["total"], done["documents"], done["first"]
    assert total == expected["total"] >= 21
    assert len(found) == total
    assert keys([d.serialize() for d in found]) == keys(documents(expected))
    assert first.serialize() == done["shown"][0].serialize()
    assert first["subject"]["identifier"]["value"] == patient
    read_urls = [u for u in auth.urls if "/DocumentReference/" in u]
    assert read_urls == [f"{network.hub_fhir}/DocumentReference/{first.id}"]
    pages = [u for u in auth.urls if "_snapshot=" in u]
    assert len(pages) == (total - 1) // 10  # every page after the first, by its next link
    assert len(auth.proofs) == len(auth.urls)  # a fresh proof for each request


def test_fhirclient_searches_counts_pages_and_reads_through_the_hub(
    network: Network, patient: str, expected: dict[str, Any], auth: CountingAuth
) -> None:
    done = run_example("fhirclient", hub_fhir=network.hub_fhir, auth=auth, patient=patient)
    total, found, first = done["total"], done["documents"], done["first"]
    assert total == expected["total"] >= 21
    assert keys([d.as_json() for d in found]) == keys(documents(expected))
    assert len(done["pages"]) == (total + 9) // 10
    assert first.as_json() == done["shown"][0].as_json()
    assert first.subject.identifier.value == patient
    assert len(auth.proofs) == len(auth.urls)


def test_a_hub_full_url_is_readable_and_a_region_error_is_an_operation_outcome(
    network: Network, patient: str, expected: dict[str, Any], auth: CountingAuth
) -> None:
    entry = next(
        e
        for e in expected["entry"]
        if e["resource"]["resourceType"] == "DocumentReference"
        and "masterIdentifier" in e["resource"]
    )
    assert entry["fullUrl"].startswith(f"{network.hub_fhir}/DocumentReference/")
    read = requests.get(entry["fullUrl"], auth=auth, timeout=30)
    assert read.status_code == 200, read.text
    assert read.json() == entry["resource"]
    missing = requests.get(
        f"{network.hub_fhir}/DocumentReference/{network.hcid(0).removeprefix('urn:oid:')}-"
        + "0" * 32,
        auth=auth,
        timeout=30,
    )
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"
    unknown = requests.get(f"{network.hub_fhir}/Patient", auth=auth, timeout=30)
    assert unknown.status_code == 404
    assert unknown.json()["resourceType"] == "OperationOutcome"
    count = requests.get(
        f"{network.hub_fhir}/DocumentReference",
        params={"patient.identifier": f"{FNR_SYSTEM}|{patient}", "_summary": "count"},
        auth=auth,
        timeout=30,
    )
    assert count.json()["total"] == expected["total"] and "entry" not in count.json()


def test_reading_another_patients_entry_is_404_like_a_missing_one(
    network: Network, patient: str, expected: dict[str, Any]
) -> None:
    """A health worker bound to another patient learns nothing from a hub id they hold."""
    stranger = str(network.manifest["patients"]["elderly"])
    session = network.practitioner(stranger)
    key = ECKey.import_key(session.dpop_key.private_jwk())
    headers = {PATIENT_NIN_HEADER: stranger, PATIENT_SALT_HEADER: session.patient_salt or ""}
    auth = run_example("dpop-auth")["DPoPAuth"](session.token, key, headers=headers)
    entry = next(
        e
        for e in expected["entry"]
        if e["resource"]["resourceType"] == "DocumentReference"
        and "masterIdentifier" in e["resource"]
    )
    foreign = requests.get(entry["fullUrl"], auth=auth, timeout=30)
    hcid, _, _entry = entry["resource"]["id"].partition("-")
    missing = requests.get(
        f"{network.hub_fhir}/DocumentReference/{hcid}-{'0' * 32}", auth=auth, timeout=30
    )
    assert foreign.status_code == missing.status_code == 404, foreign.text
    assert foreign.json()["resourceType"] == "OperationOutcome"
    assert foreign.json()["issue"][0]["code"] == missing.json()["issue"][0]["code"]
