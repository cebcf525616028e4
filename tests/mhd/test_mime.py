from __future__ import annotations

import pytest

from onerecord.mhd import UnsupportedMediaType, check_mime_type, matches_mime_type, sniff_mime_type
from tests.factories import sample_pdf

SAMPLES = {
    "application/pdf": sample_pdf(),
    "image/png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 16,
    "image/jpeg": b"\xff\xd8\xff\xe0" + b"\x00" * 16,
    "image/gif": b"GIF89a" + b"\x00" * 16,
    "image/tiff": b"II*\x00" + b"\x00" * 16,
    "application/dicom": b"\x00" * 128 + b"DICM" + b"\x02\x00",
    "video/mp4": b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 12,
    "application/rtf": b"{\\rtf1\\ansi Hei}",
    "application/json": b'\xef\xbb\xbf {"resourceType": "Patient"}',
    "application/xml": b'\xef\xbb\xbf<?xml version="1.0"?><a/>',
    "text/plain": "Blåbærsyltetøy\n".encode(),
}


@pytest.mark.parametrize("mime", sorted(SAMPLES))
def test_sniffs_each_signature(mime: str) -> None:
    assert sniff_mime_type(SAMPLES[mime]) == mime
    assert matches_mime_type(mime, SAMPLES[mime])


@pytest.mark.parametrize(
    ("declared", "sample"),
    [
        ("application/fhir+json", "application/json"),
        ("text/xml", "application/xml"),
        ("application/hl7-v3+xml", "application/xml"),
        ("text/rtf", "application/rtf"),
        ("text/plain", "application/xml"),
        ("text/plain; charset=utf-8", "text/plain"),
    ],
)
def test_related_declarations_are_accepted(declared: str, sample: str) -> None:
    check_mime_type(declared, SAMPLES[sample])


@pytest.mark.parametrize("declared", sorted(SAMPLES))
def test_mismatch_is_415_naming_both_types(declared: str) -> None:
    other = "image/png" if declared != "image/png" else "application/pdf"
    if declared == "text/plain":
        other = "image/png"
    with pytest.raises(UnsupportedMediaType) as caught:
        check_mime_type(declared, SAMPLES[other], expression="x")
    assert caught.value.status == 415
    assert declared in caught.value.message and other in caught.value.message
    assert caught.value.expression == "x"


def test_text_with_nul_or_bad_utf8_is_not_text() -> None:
    assert not matches_mime_type("text/plain", b"abc\x00def")
    assert not matches_mime_type("text/plain", b"\xff\xfe\xfa")
    assert sniff_mime_type(b"\xff\xfe\xfa\x00") is None


def test_broken_json_is_not_fhir_json() -> None:
    assert not matches_mime_type("application/fhir+json", b'{"resourceType": ')


def test_unknown_declared_type_is_accepted() -> None:
    assert matches_mime_type("application/octet-stream", b"\x00\x01")
    assert matches_mime_type("application/msword", sample_pdf())
