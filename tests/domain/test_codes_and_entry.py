from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from onerecord.domain import (
    Coding,
    DocumentEntry,
    DocumentUniqueId,
    InvalidDocumentEntry,
    NationalIdentityNumber,
    UnknownCode,
    code_tables,
    validate_codes,
)

V = "urn:oid:2.16.578.1.12.4.1.1."


def _nin() -> NationalIdentityNumber:
    for individual in range(1000):
        value = NationalIdentityNumber.with_check_digits(f"150385{individual:03d}")
        if value:
            return NationalIdentityNumber(value)
    raise AssertionError


def _entry() -> DocumentEntry:
    return DocumentEntry(
        unique_id=DocumentUniqueId("2.16.578.1.12.4.5.100.1.1"),
        entry_uuid=uuid4(),
        patient_id=_nin(),
        class_code=Coding(V + "9602", "A00-1"),
        type_code=Coding(V + "9602", "A03-2"),
        confidentiality_codes=(Coding("2.16.840.1.113883.5.25", "N"),),
        format_code=Coding("1.3.6.1.4.1.19376.1.2.3", "urn:no:ehelse:document:pdf"),
        mime_type="application/pdf",
        hash_sha256="a" * 64,
        hash_sha1="b" * 40,
        size=10,
        creation_time=datetime(2024, 1, 1, tzinfo=UTC),
        title="Epikrise",
        language_code="nb-NO",
        healthcare_facility_type=Coding(V + "1303", "86.101"),
        practice_setting=Coding(V + "8451", "14"),
    )


def test_bare_oid_systems_are_normalised() -> None:
    assert Coding("2.16.578.1.12.4.1.1.9602", "A00-1").system == V + "9602"
    assert Coding("urn:ietf:bcp:47", "nb-NO").system == "urn:ietf:bcp:47"


def test_validate_codes_fills_displays() -> None:
    checked = validate_codes(_entry())
    assert checked.class_code.display == "Epikriser og sammenfatninger"
    assert checked.type_code.display == "Epikrise"


def test_unknown_code_names_the_element() -> None:
    entry = replace(_entry(), practice_setting=Coding(V + "8451", "9999"))
    with pytest.raises(UnknownCode) as info:
        validate_codes(entry)
    assert info.value.expression == "context.practiceSetting"


def test_unknown_language_is_refused() -> None:
    with pytest.raises(UnknownCode, match="language"):
        validate_codes(replace(_entry(), language_code="xx-XX"))


def test_type_must_belong_to_class() -> None:
    with pytest.raises(InvalidDocumentEntry, match="does not belong"):
        replace(_entry(), type_code=Coding(V + "9602", "C01-2"))


@pytest.mark.parametrize(
    "change",
    [
        {"size": -1},
        {"hash_sha256": "xyz"},
        {"hash_sha1": "A" * 40},
        {"mime_type": "pdf"},
        {"title": "  "},
        {"confidentiality_codes": ()},
        {"creation_time": datetime(2024, 1, 1)},
    ],
)
def test_inconsistent_metadata_is_refused(change: dict[str, object]) -> None:
    with pytest.raises(InvalidDocumentEntry):
        replace(_entry(), **change)  # type: ignore[arg-type]


def test_service_period_order() -> None:
    start = datetime(2024, 1, 2, tzinfo=UTC)
    with pytest.raises(InvalidDocumentEntry, match="before"):
        replace(_entry(), service_start_time=start, service_stop_time=start - timedelta(days=1))


def test_every_value_set_member_has_a_display() -> None:
    tables = code_tables()
    for name in tables.value_sets:
        for coding in tables.codes(name):
            assert coding.display, (name, coding)
