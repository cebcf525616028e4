from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onerecord.dicom.attributes import parse_attribute
from onerecord.dicom.errors import DicomWireError, InvalidRequest
from onerecord.dicom.qido import (
    DEFAULT_LIMIT,
    ListMatch,
    QidoLevel,
    RangeMatch,
    SingleValueMatch,
    WildcardMatch,
    default_return_tags,
    parse_qido_query,
)

STUDY = QidoLevel.STUDY
SERIES = QidoLevel.SERIES
INSTANCE = QidoLevel.INSTANCE


def _one(name: str, value: str, level: QidoLevel = STUDY) -> object:
    (predicate,) = parse_qido_query([(name, value)], level=level).matches
    return predicate


def test_patient_id_by_keyword_or_tag() -> None:
    by_keyword = _one("PatientID", "12345")
    by_tag = _one("00100020", "12345")
    assert by_keyword == by_tag == SingleValueMatch(parse_attribute("PatientID"), "12345")


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [
        ("20260101-20260131", "20260101", "20260131"),
        ("-20260131", None, "20260131"),
        ("20260101-", "20260101", None),
        ("20260115", "20260115", "20260115"),
    ],
)
def test_date_ranges(value: str, low: str | None, high: str | None) -> None:
    assert _one("StudyDate", value) == RangeMatch(parse_attribute("StudyDate"), low, high)


def test_times_are_padded_so_partial_times_cover_their_span() -> None:
    assert _one("StudyTime", "10") == RangeMatch(
        parse_attribute("StudyTime"), "100000.000000", "105959.999999"
    )
    assert _one("StudyTime", "0930-1015") == RangeMatch(
        parse_attribute("StudyTime"), "093000.000000", "101559.999999"
    )
    predicate = _one("StudyTime", "-1030")
    assert isinstance(predicate, RangeMatch)
    assert predicate.matches("103059.500000") and not predicate.matches("103100.000000")


@pytest.mark.parametrize(
    "value",
    ["2026-01-01", "20261301", "20260230", "20260131-20260101", "1-2-3", "-", "2026010"],
)
def test_bad_dates_are_400(value: str) -> None:
    with pytest.raises(InvalidRequest, match="StudyDate"):
        parse_qido_query([("StudyDate", value)], level=STUDY)


def test_wildcards_and_fuzzy_names() -> None:
    predicate = _one("PatientName", "Nord*^K?ri")
    assert isinstance(predicate, WildcardMatch)
    assert predicate.like_pattern() == "Nord%^K_ri"
    assert predicate.matches("Nordmann^Kari") and not predicate.matches("nordmann^kari")
    fuzzy = parse_qido_query([("PatientName", "nordmann"), ("fuzzymatching", "true")], level=STUDY)
    (name,) = fuzzy.matches
    assert isinstance(name, SingleValueMatch) and name.fuzzy and name.matches("Nordmann^Kari")
    assert WildcardMatch(parse_attribute("PatientID"), "a%_\\*").like_pattern() == "a\\%\\_\\\\%"


def test_uid_lists_with_comma_or_backslash() -> None:
    expected = ListMatch(parse_attribute("StudyInstanceUID"), ("1.2.3", "1.2.4"))
    assert _one("StudyInstanceUID", "1.2.3,1.2.4") == expected
    assert _one("0020000D", "1.2.3\\1.2.4") == expected
    with pytest.raises(InvalidRequest, match="UID"):
        parse_qido_query([("StudyInstanceUID", "1.2.*")], level=STUDY)
    with pytest.raises(InvalidRequest, match="UID"):
        parse_qido_query([("StudyInstanceUID", "1.02.3")], level=STUDY)


def test_modalities_in_study() -> None:
    assert _one("ModalitiesInStudy", "CT") == SingleValueMatch(
        parse_attribute("ModalitiesInStudy"), "CT"
    )
    assert _one("ModalitiesInStudy", "CT,MR") == ListMatch(
        parse_attribute("ModalitiesInStudy"), ("CT", "MR")
    )


def test_paging_and_limits() -> None:
    q = parse_qido_query([], level=STUDY)
    assert (q.limit, q.offset, q.limit_lowered) == (DEFAULT_LIMIT, 0, False)
    q = parse_qido_query([("limit", "5"), ("offset", "10")], level=STUDY)
    assert (q.limit, q.offset) == (5, 10)
    q = parse_qido_query([("limit", "999999")], level=STUDY, max_limit=50)
    assert (q.limit, q.limit_lowered) == (50, True)
    for bad in ("-1", "1.5", "", "ten", "+3", "1" * 12):
        with pytest.raises(InvalidRequest, match="limit"):
            parse_qido_query([("limit", bad)], level=STUDY)


def test_includefield_and_universal_matching() -> None:
    q = parse_qido_query(
        [("includefield", "StudyDescription,00081030"), ("includefield", "all"), ("StudyID", "")],
        level=STUDY,
    )
    assert q.include_all and [a.keyword for a in q.includefields] == ["StudyDescription"]
    assert q.matches == () and [a.keyword for a in q.universal] == ["StudyID"]
    assert parse_attribute("StudyDescription").tag in q.return_tags()
    with pytest.raises(InvalidRequest, match="includefield"):
        parse_qido_query([("includefield", "NoSuchThing")], level=STUDY)


def test_levels_and_paths() -> None:
    q = parse_qido_query([("Modality", "CT"), ("PatientID", "1")], level=SERIES, study_uid="1.2.3")
    assert [p.attribute.keyword for p in q.matches] == ["Modality", "PatientID"]
    with pytest.raises(InvalidRequest, match="not a matching key at the study level"):
        parse_qido_query([("Modality", "CT")], level=STUDY)
    with pytest.raises(InvalidRequest, match="valid UID"):
        parse_qido_query([], level=SERIES, study_uid="abc")
    with pytest.raises(InvalidRequest, match="under its study"):
        parse_qido_query([], level=INSTANCE, series_uid="1.2")


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([("foo", "1")], "unknown DICOM keyword"),
        ([("patientid", "1")], "unknown DICOM keyword"),
        ([("00110010", "x")], "private"),
        ([("PatientID", "1"), ("00100020", "2")], "more than once"),
        ([("limit", "1"), ("limit", "2")], "more than once"),
        ([("fuzzymatching", "yes")], "true or false"),
        ([("RequestAttributeSequence.RequestedProcedureID", "1")], "sequences"),
        ([("PatientID", "a\\b")], "one value"),
        ([("PatientID", "a\x00")], "control"),
        ([("PixelData", "x")], "not a matching key"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(
    pairs: list[tuple[str, str]], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        parse_qido_query(pairs, level=STUDY)


def test_default_return_attributes_per_level() -> None:
    def keywords(tags: tuple[int, ...]) -> set[str]:
        from pydicom.datadict import keyword_for_tag

        return {keyword_for_tag(t) for t in tags}

    study = keywords(default_return_tags(STUDY))
    assert {"StudyInstanceUID", "PatientID", "ModalitiesInStudy", "RetrieveURL"} <= study
    series_in_study = keywords(default_return_tags(SERIES, "1.2.3"))
    assert "SeriesInstanceUID" in series_in_study and "PatientID" not in series_in_study
    assert "PatientID" in keywords(default_return_tags(SERIES))
    everything = keywords(default_return_tags(INSTANCE))
    assert {
        "SOPInstanceUID",
        "NumberOfFrames",
        "SeriesInstanceUID",
        "StudyInstanceUID",
    } <= everything


_names = st.sampled_from(
    [
        "PatientID",
        "00100020",
        "StudyDate",
        "StudyTime",
        "PatientName",
        "StudyInstanceUID",
        "ModalitiesInStudy",
        "Modality",
        "SeriesNumber",
        "limit",
        "offset",
        "includefield",
        "fuzzymatching",
        "accept",
        "foo",
        "",
        "00100010",
        "SOPInstanceUID",
        "a.b",
    ]
)
_values = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"-?[0-9]{0,9}-?[0-9]{0,9}", fullmatch=True),
    st.from_regex(r"[0-9.,\\*?]{0,20}", fullmatch=True),
)


@settings(max_examples=500, deadline=None)
@given(
    pairs=st.lists(st.tuples(_names | st.text(max_size=12), _values), max_size=6),
    level=st.sampled_from(list(QidoLevel)),
    study_uid=st.none() | st.sampled_from(["1.2.3", "x"]),
)
def test_any_query_is_a_query_or_a_400(
    pairs: list[tuple[str, str]], level: QidoLevel, study_uid: str | None
) -> None:
    try:
        q = parse_qido_query(pairs, level=level, study_uid=study_uid)
    except DicomWireError as exc:
        assert exc.status == 400
        return
    assert 0 <= q.limit <= 1000 and q.offset >= 0
    q.return_tags()
    for predicate in q.matches:
        predicate.matches("x")
        if isinstance(predicate, WildcardMatch):
            predicate.like_pattern()
