from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onerecord.dicom.attributes import (
    is_uid,
    parse_attribute,
    parse_date,
    parse_time,
    safe_label,
    tag_hex,
)
from onerecord.dicom.errors import DicomWireError, InvalidRequest


def test_keyword_and_tag_name_the_same_attribute() -> None:
    by_keyword = parse_attribute("StudyInstanceUID")
    assert by_keyword == parse_attribute("0020000D") == parse_attribute("0020000d")
    assert (by_keyword.tag, by_keyword.vr, by_keyword.hex) == (0x0020000D, "UI", "0020000D")
    assert tag_hex(0x00100020) == "00100020"


@pytest.mark.parametrize("text", ["NoSuchKeyword", "00110010", "0010002", "(0010,0020)", ""])
def test_unknown_private_or_malformed_attributes_are_400(text: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_attribute(text)


def test_uids() -> None:
    assert is_uid("1.2.840.10008.1.2.1") and is_uid("0") and is_uid("2.25." + "1" * 39)
    for bad in ("", "1..2", "1.02", ".1", "1.", "1.2a", "1." + "2" * 63):
        assert not is_uid(bad), bad


def test_dates_and_times() -> None:
    assert parse_date("20240229", parameter="d") == "20240229"
    with pytest.raises(InvalidRequest, match="no such date"):
        parse_date("20230229", parameter="d")
    assert parse_time("1015", parameter="t") == "101500.000000"
    assert parse_time("1015", parameter="t", upper=True) == "101559.999999"
    assert parse_time("101530.5", parameter="t") == "101530.500000"
    assert parse_time("101530.5", parameter="t", upper=True) == "101530.599999"
    for bad in ("24", "1060", "10:15", "1", "101530.1234567"):
        with pytest.raises(InvalidRequest):
            parse_time(bad, parameter="t")


def test_labels_never_carry_an_identity_number() -> None:
    assert safe_label("PatientID") == "PatientID"
    assert safe_label("00100020") == "00100020"
    assert safe_label("x01017912345") == "(a parameter)"
    assert safe_label("01017912345") == "(a parameter)"
    with pytest.raises(InvalidRequest) as raised:
        parse_attribute("p01017912345")
    assert "01017912345" not in raised.value.message


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=20) | st.from_regex(r"[0-9A-Fa-f]{8}", fullmatch=True))
def test_any_attribute_name_is_an_attribute_or_a_400(text: str) -> None:
    try:
        attribute = parse_attribute(text)
    except DicomWireError as exc:
        assert exc.status == 400
        return
    assert attribute.keyword and (attribute.tag >> 16) % 2 == 0


@settings(max_examples=300, deadline=None)
@given(text=st.text("0123456789.-", max_size=16), upper=st.booleans())
def test_any_time_is_padded_or_a_400(text: str, upper: bool) -> None:
    try:
        padded = parse_time(text, parameter="t", upper=upper)
    except DicomWireError as exc:
        assert exc.status == 400
        return
    assert len(padded) == 13 and padded[6] == "."
