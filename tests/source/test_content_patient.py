"""A published document whose content names another patient than its metadata is refused (G1).

Unit tests of `onerecord.source.content_patient` on the formats the project produces (synth FHIR
documents and KITH messages), hostile XML, and ITI-65 over real HTTP on SQLite and PostgreSQL:
refused with an OperationOutcome and nothing written, the right patient accepted.
"""

from __future__ import annotations

import secrets
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from onerecord.domain import Coding, DocumentEntry, NationalIdentityNumber
from onerecord.mhd import build_provide_bundle
from onerecord.mhd.iti65 import SubmittedDocument
from onerecord.source.content_patient import (
    ContentPatientMismatch,
    UnreadableContent,
    check_document_patient,
    content_patients,
)
from onerecord.synth import clinical, kith
from onerecord.synth.fhir_document import DocumentParties, render_fhir_document
from tests.factories import make_entry, synthetic_nin
from tests.source.conftest import SourceServer

V = "urn:oid:2.16.578.1.12.4.1.1."
FORMAT_SYSTEM = "urn:oid:1.3.6.1.4.1.19376.1.2.3"
PATIENT = synthetic_nin(5)
OTHER = synthetic_nin(6)
SCENARIO = clinical.SCENARIOS[0]
CREATED = datetime(2023, 9, 14, 13, 5, 0, tzinfo=UTC)


def fhir_document(patient: str) -> bytes:
    parties = DocumentParties(
        document_id=uuid.uuid4(),
        created=CREATED,
        patient_nin=NationalIdentityNumber(patient),
        patient_given="Kari",
        patient_family="Nordmann",
        organisation_name="Testsykehuset HF",
        organisation_number="974000016",
        department_name="Medisinsk klinikk",
        department_resh="4001031",
        author_given="Lege",
        author_family="Legesen",
        author_hpr="9144889",
    )
    return render_fhir_document(parties, SCENARIO)


def kith_epikrise(patient: str) -> bytes:
    parties = kith.MessageParties(
        msg_id=str(uuid.uuid4()),
        created=CREATED,
        patient_nin=patient,
        patient_given="Kari",
        patient_family="Nordmann",
        organisation_name="Testsykehuset HF",
        organisation_number="974000016",
        department_name="Medisinsk klinikk",
        department_resh="4001031",
        author_name="Lege Legesen",
        author_hpr="9144889",
    )
    return kith.render_epikrise(parties, SCENARIO)


def fhir_entry(patient: str, content: bytes) -> DocumentEntry:
    return make_entry(
        patient_id=patient,
        content=content,
        mime_type="application/fhir+json",
        format_code=Coding(FORMAT_SYSTEM, "urn:ihe:iti:xds:2017:mimeTypeSufficient"),
    )


def kith_entry(patient: str, content: bytes) -> DocumentEntry:
    return make_entry(
        patient_id=patient,
        content=content,
        mime_type="text/xml",
        format_code=Coding(FORMAT_SYSTEM, "urn:no:kith:xmlstds:epikrise"),
    )


def submitted(entry: DocumentEntry, content: bytes) -> SubmittedDocument:
    return SubmittedDocument(entry=entry, content=content, full_url="urn:uuid:x")


# --- what each format names -------------------------------------------------------------------


def test_fhir_document_names_its_composition_subject() -> None:
    assert content_patients("application/fhir+json", fhir_document(PATIENT)) == [PATIENT]


def test_kith_message_names_its_patient() -> None:
    assert content_patients("text/xml", kith_epikrise(PATIENT)) == [PATIENT]


def test_cda_names_its_record_target() -> None:
    cda = (
        b'<ClinicalDocument xmlns="urn:hl7-org:v3"><recordTarget><patientRole>'
        b'<id root="2.16.578.1.12.4.1.4.1" extension="' + OTHER.encode() + b'"/>'
        b"</patientRole></recordTarget></ClinicalDocument>"
    )
    assert content_patients("application/xml", cda) == [OTHER]


def test_a_bare_doctype_is_harmless_and_read() -> None:
    xhtml = b'<?xml version="1.0"?><!DOCTYPE html><html xmlns="http://www.w3.org/1999/xhtml"/>'
    assert content_patients("application/xhtml+xml", xhtml) == []
    no_subset = kith_epikrise(OTHER).replace(b"<Epikrise", b"<!DOCTYPE Epikrise><Epikrise", 1)
    assert content_patients("text/xml", no_subset) == [OTHER]


def test_formats_without_a_patient_are_not_read() -> None:
    assert content_patients("application/pdf", b"%PDF-1.7 <!DOCTYPE") == []
    assert content_patients("text/xml", b"<note>no patient here</note>") == []
    assert content_patients("application/fhir+json", b'{"resourceType": "Binary"}') == []


def test_other_patient_in_fhir_document_is_refused() -> None:
    content = fhir_document(OTHER)
    with pytest.raises(ContentPatientMismatch, match="another patient"):
        check_document_patient(submitted(fhir_entry(PATIENT, content), content))
    check_document_patient(submitted(fhir_entry(OTHER, content), content))


def test_other_patient_in_kith_message_is_refused() -> None:
    content = kith_epikrise(OTHER)
    with pytest.raises(ContentPatientMismatch, match="another patient") as caught:
        check_document_patient(submitted(kith_entry(PATIENT, content), content))
    assert OTHER not in caught.value.message and PATIENT not in caught.value.message
    check_document_patient(submitted(kith_entry(OTHER, content), content))


def test_another_patient_resource_that_is_not_the_subject_is_allowed() -> None:
    """A FHIR document may hold other Patients (a mother): only Composition.subject counts."""
    bundle = orjson.loads(fhir_document(PATIENT))
    extra = {
        "fullUrl": "urn:uuid:mother",
        "resource": {
            "resourceType": "Patient",
            "id": "mother",
            "identifier": [{"system": "urn:oid:2.16.578.1.12.4.1.4.1", "value": OTHER}],
        },
    }
    bundle["entry"].append(extra)
    assert content_patients("application/fhir+json", orjson.dumps(bundle)) == [PATIENT]


# --- hostile XML: refused quickly, nothing fetched --------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Epikrise xmlns="http://www.kith.no/xmlstds/epikrise/2012-02-15"><Patient><OffId>&lol9;</OffId>
</Patient></Epikrise>"""


def _external_entity(url: str) -> bytes:
    return (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "' + url.encode() + b'">]>'
        b'<Epikrise xmlns="http://www.kith.no/xmlstds/epikrise/2012-02-15">'
        b"<Patient><OffId>&xxe;</OffId></Patient></Epikrise>"
    )


@pytest.mark.parametrize(
    "content",
    [
        BILLION_LAUGHS,
        _external_entity("file:///etc/passwd"),
        _external_entity("http://127.0.0.1:9/x"),
        BILLION_LAUGHS.decode().replace('<?xml version="1.0"?>', "").encode("utf-16"),
        b"<Epikrise><Patient>",
    ],
    ids=["billion-laughs", "file-entity", "network-entity", "utf-16-doctype", "malformed"],
)
def test_hostile_or_malformed_xml_is_refused_quickly(content: bytes) -> None:
    started = time.perf_counter()
    with pytest.raises(UnreadableContent):
        content_patients("text/xml", content)
    assert time.perf_counter() - started < 5.0  # an unhardened parser would expand for minutes


# --- ITI-65 over HTTP: refused, nothing written; the right patient accepted --------------------


def _post(server: SourceServer, pairs: list[tuple[DocumentEntry, bytes]]) -> httpx.Response:
    bundle = build_provide_bundle(
        pairs,
        source_id="urn:oid:2.16.578.1.12.4.5.100.1.9",
        submission_set_unique_id=f"2.16.578.1.12.4.5.100.1.8.{secrets.randbelow(10**9)}",
    )
    return httpx.post(
        server.fhir,
        content=orjson.dumps(bundle),
        headers={"content-type": "application/fhir+json"},
        timeout=30,
    )


def _blobs(content_dir: Path) -> list[Path]:
    if not content_dir.exists():
        return []
    return [p for p in content_dir.rglob("*") if p.is_file()]


def _search(server: SourceServer, patient: str) -> dict[str, Any]:
    r = httpx.get(
        f"{server.fhir}/DocumentReference",
        params={"patient.identifier": f"urn:oid:2.16.578.1.12.4.1.4.1|{patient}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", ["fhir", "kith"])
def test_publish_of_a_document_naming_another_patient_is_refused_and_writes_nothing(
    source_server: SourceServer, kind: str
) -> None:
    render, make = (fhir_document, fhir_entry) if kind == "fhir" else (kith_epikrise, kith_entry)
    wrong = render(OTHER)
    fine = render(PATIENT)
    # The mismatching document sits second: the first one must not be written either.
    r = _post(source_server, [(make(PATIENT, fine), fine), (make(PATIENT, wrong), wrong)])
    assert r.status_code == 422, r.text
    issue = r.json()["issue"][0]
    assert r.json()["resourceType"] == "OperationOutcome"
    assert "another patient" in issue["diagnostics"] and OTHER not in r.text
    assert issue["expression"] == ["Bundle.entry[1].resource.content[0].attachment"]
    assert _blobs(source_server.settings.content_dir) == []
    assert _search(source_server, PATIENT)["total"] == 0
    assert _search(source_server, OTHER)["total"] == 0
    ok = _post(source_server, [(make(PATIENT, fine), fine)])
    assert ok.status_code == 200, ok.text
    assert _search(source_server, PATIENT)["total"] == 1


def test_publish_of_hostile_xml_is_refused_and_writes_nothing(source_server: SourceServer) -> None:
    started = time.perf_counter()
    r = _post(source_server, [(kith_entry(PATIENT, BILLION_LAUGHS), BILLION_LAUGHS)])
    assert r.status_code == 422 and "entity declarations" in r.text
    xxe = _external_entity("http://127.0.0.1:9/x")
    assert _post(source_server, [(kith_entry(PATIENT, xxe), xxe)]).status_code == 422
    assert time.perf_counter() - started < 5.0
    assert _blobs(source_server.settings.content_dir) == []
