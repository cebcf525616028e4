from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from onerecord.synth import clinical, kith
from onerecord.synth.pdf import PdfParagraph, render_pdf
from onerecord.synth.png import render_png

from .formats import check_pdf, check_png, parse_xml

CREATED = datetime(2024, 2, 3, 10, 30, tzinfo=UTC)


def test_pdf_structure_and_xref() -> None:
    pdf = render_pdf(
        "Epikrise – test",
        [PdfParagraph("Forløp", heading=True), PdfParagraph("Pasienten (85) fikk \\ behandling.")],
        author="Kari Nordmann",
        created=CREATED,
    )
    assert check_pdf(pdf) == 7  # catalog, pages, two fonts, info, one page and its stream
    assert b"/WinAnsiEncoding" in pdf
    # æøå are encoded in WinAnsi (cp1252), parentheses and backslash escaped.
    assert "Forløp".encode("cp1252") in pdf
    assert b"\\(85\\)" in pdf and b"\\\\ behandling" in pdf


def test_long_pdf_has_several_valid_pages() -> None:
    text = " ".join(["Lang tekst om forløpet med mange ord."] * 400)
    pdf = render_pdf("Lang", [PdfParagraph(text)], author="A", created=CREATED)
    objects = check_pdf(pdf)
    pages = pdf.count(b"/Type /Page ")
    assert pages >= 2 and objects == 5 + 2 * pages
    assert f"/Count {pages}".encode() in pdf


def test_pdf_is_reproducible() -> None:
    args = ("T", [PdfParagraph("x")])
    assert render_pdf(*args, author="a", created=CREATED) == render_pdf(
        *args, author="a", created=CREATED
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_png_is_valid(seed: int) -> None:
    data = render_png(random.Random(seed), width=40, height=30)
    assert check_png(data) == (40, 30)


def test_png_checker_catches_a_corrupt_crc() -> None:
    data = bytearray(render_png(random.Random(1), width=8, height=8))
    data[-5] ^= 0xFF  # inside the IEND CRC
    with pytest.raises(AssertionError):
        check_png(bytes(data))


def _parties() -> kith.MessageParties:
    return kith.MessageParties(
        msg_id="m-1",
        created=CREATED,
        patient_nin="01010112345",
        patient_given="Kari",
        patient_family="Ås & Ørn <test>",
        organisation_name="St. Olavs hospital HF",
        organisation_number="312345678",
        department_name="Medisinsk klinikk",
        department_resh="123456",
        author_name="Per Lege",
        author_hpr="1234567",
    )


def test_svarrapport_is_well_formed_with_reference_ranges() -> None:
    hb, crp = clinical.ANALYSES[0], clinical.ANALYSES[1]
    xml = kith.render_svarrapport(_parties(), [kith.LabResult(hb, 9.9), kith.LabResult(crp, 3)])
    root = parse_xml(xml)
    ns = {"k": kith.SVAR_NS}
    assert root.tag == f"{{{kith.SVAR_NS}}}Svarrapport"
    items = root.findall("k:ServReport/k:ResultItem", ns)
    assert [i.find("k:Analysis", ns).text for i in items] == ["Hemoglobin", "CRP"]
    assert items[0].find("k:DevResultInd", ns).get("V") == "L"
    assert items[1].find("k:DevResultInd", ns) is None
    assert items[0].find("k:RefInterval/k:Low", ns).get("V") == "11.7"
    assert root.find("k:Patient/k:Name", ns).text == "Ås & Ørn <test>, Kari"
    assert b"KITH-style" in xml


@pytest.mark.parametrize(
    ("render", "ns", "tag"),
    [
        (kith.render_epikrise, kith.EPIKRISE_NS, "Epikrise"),
        (kith.render_henvisning, kith.HENVISNING_NS, "Henvisning"),
    ],
)
def test_epikrise_and_henvisning_are_well_formed(render: object, ns: str, tag: str) -> None:
    scenario = clinical.SCENARIOS[0]
    xml = render(_parties(), scenario)  # type: ignore[operator]
    root = parse_xml(xml)
    assert root.tag == f"{{{ns}}}{tag}"
    concept = root.find(f"{{{ns}}}Diagnosis/{{{ns}}}Concept")
    assert concept is not None and concept.get("V") == scenario.icd10
