"""The patient header: the number looked up in the population register (PDQm ITI-78) first.

The app over an ASGI transport, with the STS, its register and the hub as fakes behind
httpx.MockTransport (the real network: tests/browser/test_patient_header.py).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from onerecord.domain import NationalIdentityNumber
from onerecord.portals.patient_lookup import (
    ADDRESS_PROTECTION_EXTENSION,
    LookupStatus,
    PatientHeader,
    read_patient_bundle,
)
from tests.portals.pages import csrf_token
from tests.portals.test_app import (
    BASIS,
    PATIENT_NIN,
    STS,
    App,
    Fakes,
    _log_in,
    running_portal,
)

pytestmark = pytest.mark.anyio

REGISTER = f"{STS}/fhir"
FNR = "urn:oid:2.16.578.1.12.4.1.4.1"
UNKNOWN = "01819010001"


def _patient(nin: str = PATIENT_NIN, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": FNR, "value": nin}],
        "name": [{"text": "Ingrid <i>Berg</i>", "family": "Berg", "given": ["Ingrid"]}],
        "gender": "female",
        "birthDate": "1980-08-15",
        "deceasedBoolean": False,
        "generalPractitioner": [
            {"type": "Practitioner", "display": "Dr. Ola Fastlege"},
            {"type": "Organization", "display": "Byåsen legesenter"},
        ],
        **extra,
    }


def _searchset(*patients: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(patients),
        "entry": [{"resource": p, "search": {"mode": "match"}} for p in patients],
    }


@dataclass
class RegisterFakes(Fakes):
    """The fakes of test_app.py and the register beside the STS."""

    answer: Callable[[httpx.Request], httpx.Response] = field(
        default=lambda request: httpx.Response(200, json=_searchset(_patient()))
    )
    register_requests: list[httpx.Request] = field(default_factory=list)

    def handler(self, request: httpx.Request) -> httpx.Response:
        if str(request.url).startswith(f"{REGISTER}/Patient"):
            self.register_requests.append(request)
            return self.answer(request)
        return super().handler(request)


@pytest.fixture
async def portal(tmp_path: Path) -> AsyncIterator[App]:
    async with running_portal(tmp_path, RegisterFakes(), register_fhir=REGISTER) as app:
        yield app


def _fakes(portal: App) -> RegisterFakes:
    assert isinstance(portal.fakes, RegisterFakes)
    return portal.fakes


async def _choose(portal: App, patient: str) -> httpx.Response:
    client = portal.client
    workplace = await _log_in(client)
    await client.post(
        "/helsepersonell/arbeidssted",
        data={"csrf_token": csrf_token(workplace), "workplace": "974000024:111"},
    )
    form = await client.get("/helsepersonell/pasient")
    return await client.post(
        "/helsepersonell/pasient",
        data={"csrf_token": csrf_token(form), "patient": patient, **BASIS},
    )


def _header(page: str) -> str:
    found = re.search(r'<section class="patient-header".*?</section>', page, re.S)
    assert found, page[:3000]
    return found.group(0)


async def test_the_header_names_the_patient_on_overview_document_and_emergency_pages(
    portal: App,
) -> None:
    sent = await _choose(portal, PATIENT_NIN)
    assert sent.status_code == 303 and sent.headers["location"] == "/helsepersonell/oversikt"
    overview = await portal.client.get("/helsepersonell/oversikt")
    header = _header(overview.text)
    assert "Ingrid &lt;i&gt;Berg&lt;/i&gt;" in header  # escaped, like every register text
    assert PATIENT_NIN in header and "Kvinne" in header
    assert "Dr. Ola Fastlege, Byåsen legesenter" in header
    assert re.search(r"\(\d+ år\)", header)
    assert 'data-lookup="found"' in header
    ref = re.search(r'href="/helsepersonell/dokument/([^"/]+)"', overview.text)
    assert ref, overview.text[:3000]
    document = await portal.client.get(f"/helsepersonell/dokument/{ref.group(1)}")
    assert document.status_code == 200, document.text[:2000]
    assert "Ingrid" in _header(document.text)
    emergency = await portal.client.get("/helsepersonell/nodtilgang")
    assert "Ingrid" in _header(emergency.text)


async def test_the_lookup_uses_a_register_token_bound_to_the_number(portal: App) -> None:
    await _choose(portal, PATIENT_NIN)
    fakes = _fakes(portal)
    (request,) = fakes.register_requests
    assert request.url.params["identifier"] == f"{FNR}|{PATIENT_NIN}"
    assert request.headers["authorization"].startswith("DPoP ")
    assert request.headers["dpop"] and request.headers["nhn-patient-nin"] == PATIENT_NIN
    assert request.headers["onerecord-patient-salt"]
    resources = [form.get("resource") for form in fakes.token_forms]
    assert resources[-2:] == ["onerecord:pdqm", "onerecord:hub"]


async def test_an_unknown_number_is_said_to_be_unknown_and_no_record_is_opened(
    portal: App,
) -> None:
    fakes = _fakes(portal)
    fakes.answer = lambda request: httpx.Response(200, json=_searchset())
    refused = await _choose(portal, UNKNOWN)
    assert refused.status_code == 404
    assert "ingen person med dette nummeret i folkeregisteret" in refused.text
    assert 'aria-invalid="true"' in refused.text and UNKNOWN in refused.text  # kept in the form
    assert fakes.hub_requests == []
    assert [f.get("resource") for f in fakes.token_forms][-1] == "onerecord:pdqm"
    overview = await portal.client.get("/helsepersonell/oversikt")
    assert overview.status_code == 303
    assert overview.headers["location"] == "/helsepersonell/pasient"


async def test_a_register_that_is_down_is_said_and_the_documents_still_come(
    portal: App,
) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    fakes = _fakes(portal)
    fakes.answer = down
    sent = await _choose(portal, PATIENT_NIN)
    assert sent.status_code == 303
    overview = await portal.client.get("/helsepersonell/oversikt")
    header = _header(overview.text)
    assert 'data-lookup="unavailable"' in header
    assert "Folkeregisteret svarte ikke" in header and PATIENT_NIN in header
    assert fakes.hub_requests  # the documents come from the hub all the same
    assert "Sperret" in overview.text


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (500, {"resourceType": "OperationOutcome"}, "unavailable"),
        (200, {"resourceType": "Patient"}, "unavailable"),
        (200, _searchset(_patient(nin=UNKNOWN)), "unavailable"),
        (403, {"resourceType": "OperationOutcome"}, "refused"),
    ],
)
async def test_a_garbled_or_refusing_register_never_shows_a_wrong_person(
    portal: App, status: int, body: dict[str, Any], expected: str
) -> None:
    _fakes(portal).answer = lambda request: httpx.Response(status, json=body)
    await _choose(portal, PATIENT_NIN)
    header = _header((await portal.client.get("/helsepersonell/oversikt")).text)
    assert f'data-lookup="{expected}"' in header and "Ingrid" not in header


async def test_protected_address_and_death_are_flagged(portal: App) -> None:
    protected = _patient(
        deceasedDateTime="2025-01-10",
        extension=[
            {
                "url": ADDRESS_PROTECTION_EXTENSION,
                "valueCoding": {"code": "strengt-fortrolig"},
            }
        ],
    )
    del protected["deceasedBoolean"]
    _fakes(portal).answer = lambda request: httpx.Response(200, json=_searchset(protected))
    await _choose(portal, PATIENT_NIN)
    header = _header((await portal.client.get("/helsepersonell/oversikt")).text)
    assert "Strengt fortrolig adresse (kode 6)" in header
    assert "Død" in header and "2025" in header
    assert "(44 år)" in header  # the age at death: born 15 August 1980, died 10 January 2025


def test_reading_the_searchset() -> None:
    nin = NationalIdentityNumber(PATIENT_NIN)
    assert read_patient_bundle(_searchset(), nin) is None
    header = read_patient_bundle(_searchset(_patient()), nin)
    assert header == PatientHeader(
        name="Ingrid <i>Berg</i>",
        birth_date=date(1980, 8, 15),
        sex="female",
        deceased=False,
        deceased_on=None,
        address_protection=None,
        gp_name="Dr. Ola Fastlege",
        gp_office="Byåsen legesenter",
    )
    assert header.age_on(date(2026, 8, 14)) == 45 and header.age_on(date(2026, 8, 15)) == 46
    labelled = _patient(meta={"security": [{"code": "R"}]})
    found = read_patient_bundle(_searchset(labelled), nin)
    assert found is not None and found.address_protection == "fortrolig"
    for bad in (
        [],
        {"resourceType": "Bundle", "type": "collection"},
        _searchset(_patient(), _patient()),
        _searchset(_patient(nin=UNKNOWN)),
        _searchset({k: v for k, v in _patient().items() if k != "birthDate"}),
        _searchset({k: v for k, v in _patient().items() if k != "name"}),
    ):
        with pytest.raises(ValueError):
            read_patient_bundle(bad, nin)
    assert LookupStatus.UNKNOWN.value == "unknown"


def test_the_contact_e_mail_is_read_only_when_plain_and_never_with_protection() -> None:
    """Issue 11, defect 7: the address of the emergency notice (never shown on a page)."""
    nin = NationalIdentityNumber(PATIENT_NIN)

    def read(**extra: Any) -> PatientHeader | None:
        return read_patient_bundle(_searchset(_patient(**extra)), nin)

    email = [{"system": "email", "value": "ingrid.berg.042@innbygger.example"}]
    found = read(telecom=email)
    assert found is not None and found.contact_email == "ingrid.berg.042@innbygger.example"
    for bad in ("a@b.example\r\nBcc: x@y.example", "no-at-sign", "a b@c.example", 42):
        got = read(telecom=[{"system": "email", "value": bad}])
        assert got is not None and got.contact_email is None
    protected = read(
        telecom=email,
        extension=[
            {"url": ADDRESS_PROTECTION_EXTENSION, "valueCoding": {"code": "strengt-fortrolig"}}
        ],
    )
    assert protected is not None and protected.contact_email is None
