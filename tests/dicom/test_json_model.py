from __future__ import annotations

import base64
import math
import warnings
from pathlib import Path
from typing import Any

import orjson
import pydicom.data
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from onerecord.dicom.errors import DicomWireError, InvalidRequest, PayloadTooLarge
from onerecord.dicom.json_model import (
    JsonLimits,
    dataset_from_json,
    dataset_to_json,
    metadata_json,
    parse_dicom_json,
    render_dicom_json,
)
from tests.dicom.strategies import datasets


def _sample() -> Dataset:
    ds = Dataset()
    ds.PatientName = "Nordmann^Kari=山田^花子=やまだ^はなこ"
    ds.PatientID = "12345"
    ds.InstanceNumber = "7"
    ds.SliceLocation = "-1.25"
    ds.ModalitiesInStudy = ["CT", "MR"]
    ds.StudyDescription = ""
    ds.add_new(0x00209165, "AT", [0x00100020, 0x0020000D])
    ds.Rows = 2
    ds.add_new(0x7FE00010, "OW", b"\x01\x00" * 1024)
    item = Dataset()
    item.ReferencedSOPInstanceUID = "1.2.3.4"
    ds.ReferencedSeriesSequence = Sequence([item])
    return ds


def test_the_model_as_annex_f_writes_it() -> None:
    j = dataset_to_json(_sample(), bulkdata_threshold=10_000)
    assert j["00100010"] == {
        "vr": "PN",
        "Value": [
            {"Alphabetic": "Nordmann^Kari", "Ideographic": "山田^花子", "Phonetic": "やまだ^はなこ"}
        ],
    }
    assert j["00200013"] == {"vr": "IS", "Value": [7]}
    assert j["00201041"] == {"vr": "DS", "Value": [-1.25]}
    assert j["00209165"] == {"vr": "AT", "Value": ["00100020", "0020000D"]}
    assert j["00081030"] == {"vr": "LO"}
    assert j["00080061"]["Value"] == ["CT", "MR"]
    assert j["00081115"]["Value"][0]["00081155"] == {"vr": "UI", "Value": ["1.2.3.4"]}
    assert base64.b64decode(j["7FE00010"]["InlineBinary"]) == b"\x01\x00" * 1024
    assert list(j) == sorted(j)


def test_agrees_with_pydicom_on_a_plain_dataset() -> None:
    ds = _sample()
    assert dataset_to_json(ds, bulkdata_threshold=10_000) == ds.to_json_dict(
        bulk_data_threshold=10_000
    )


def test_bulk_data_above_the_threshold_becomes_a_uri_named_by_its_path() -> None:
    ds = _sample()
    ds.ReferencedSeriesSequence[0].add_new(0x00091010, "OB", b"x" * 50)
    seen: list[tuple[int, ...]] = []

    def uri(path: tuple[int, ...]) -> str:
        seen.append(path)
        return "https://archive.test/bulk/" + "/".join(map(str, path))

    j = dataset_to_json(ds, bulkdata_uri=uri, bulkdata_threshold=16)
    assert j["7FE00010"] == {"vr": "OW", "BulkDataURI": "https://archive.test/bulk/2145386512"}
    assert j["00081115"]["Value"][0]["00091010"]["BulkDataURI"].endswith("/528661/0/593936")
    assert seen == [(0x00081115, 0, 0x00091010), (0x7FE00010,)]


def test_metadata_never_carries_pixel_data() -> None:
    ds = _sample()
    ds.PixelData = b"\x00\x00"
    without = metadata_json(ds)
    assert "7FE00010" not in without
    assert without["00100020"] == {"vr": "LO", "Value": ["12345"]}
    with_uri = metadata_json(ds, bulkdata_uri=lambda p: "bulk/pixel")
    assert with_uri["7FE00010"] == {"vr": "OW", "BulkDataURI": "bulk/pixel"}


def test_reading_restores_the_dataset() -> None:
    j = dataset_to_json(_sample(), bulkdata_threshold=10_000)
    back = dataset_from_json(j)
    assert str(back.PatientName) == "Nordmann^Kari=山田^花子=やまだ^はなこ"
    assert back.InstanceNumber == 7
    assert back[0x00209165].value == [0x00100020, 0x0020000D]
    assert back.PixelData == b"\x01\x00" * 1024
    assert dataset_to_json(back, bulkdata_threshold=10_000) == j


def test_numbers_may_come_as_strings_and_ds_fits_sixteen_characters() -> None:
    back = dataset_from_json(
        {
            "00201041": {"vr": "DS", "Value": ["2.5", 0.1234567890123456789, 3]},
            "00200013": {"vr": "IS", "Value": ["12"]},
            "00720082": {"vr": "SV", "Value": ["-9223372036854775808"]},
        }
    )
    assert [len(str(v)) <= 16 for v in back.SliceLocation] == [True, True, True]
    assert float(back.SliceLocation[1]) == pytest.approx(0.1234567890123456789)
    assert back.InstanceNumber == 12
    assert dataset_to_json(back)["00720082"]["Value"] == ["-9223372036854775808"]


def test_an_empty_number_among_several_is_null() -> None:
    ds = Dataset()
    ds.add_new(0x00200013, "IS", ["1", ""])
    ds.add_new(0x00280030, "DS", ["", "0.5"])
    j = dataset_to_json(ds)
    assert j["00200013"]["Value"] == [1, None]
    assert j["00280030"]["Value"] == [None, 0.5]
    assert dataset_to_json(dataset_from_json(j)) == j
    with pytest.raises(InvalidRequest, match="integer"):
        dataset_from_json({"00280010": {"vr": "US", "Value": [1, None]}})


def test_file_meta_goes_to_file_meta() -> None:
    ds = dataset_from_json(
        {
            "00020010": {"vr": "UI", "Value": ["1.2.840.10008.1.2.4.50"]},
            "00080018": {"vr": "UI", "Value": ["1.2.3"]},
        }
    )
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    assert "TransferSyntaxUID" not in ds


def _bulk(uri: str) -> dict[str, Any]:
    return {"7FE00010": {"vr": "OW", "BulkDataURI": uri}}


def test_bulk_data_uris_resolve_through_the_request_parts() -> None:
    parts = {"cid:pixel": b"\x00\x01" * 4}
    ds = dataset_from_json(
        {"7FE00010": {"vr": "OW", "BulkDataURI": "cid:pixel"}}, bulkdata=parts.get
    )
    assert ds.PixelData == b"\x00\x01" * 4
    with pytest.raises(InvalidRequest, match="names no part"):
        dataset_from_json(
            {"7FE00010": {"vr": "OW", "BulkDataURI": "cid:other"}}, bulkdata=parts.get
        )
    with pytest.raises(InvalidRequest, match="names no part"):
        dataset_from_json({"7FE00010": {"vr": "OW", "BulkDataURI": "cid:pixel"}})


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([], "JSON object"),
        ({"0010002": {"vr": "LO"}}, "eight hex"),
        ({"00100020": {"vr": "XX"}}, "unknown vr"),
        ({"00100020": {"vr": "LO", "Value": "x"}}, "array"),
        ({"00100020": {"vr": "LO", "Value": [1]}}, "string"),
        ({"00100020": {"vr": "LO", "Value": ["a\\b"]}}, "backslash"),
        ({"00100020": {"vr": "LO", "Value": ["a"], "InlineBinary": "AA=="}}, "at most one"),
        ({"00100020": {"vr": "LO", "Vaule": ["a"]}}, "unexpected"),
        ({"00280010": {"vr": "US", "Value": [70000]}}, "range"),
        ({"00280010": {"vr": "US", "Value": [True]}}, "integer"),
        ({"00280010": {"vr": "US", "Value": [1.5]}}, "integer"),
        ({"00201041": {"vr": "DS", "Value": ["1,5"]}}, "decimal"),
        ({"00201041": {"vr": "DS", "Value": [1e400]}}, "range"),
        ({"00209165": {"vr": "AT", "Value": ["(0010,0020)"]}}, "AT"),
        ({"00100010": {"vr": "PN", "Value": ["Doe^John"]}}, "PN value"),
        ({"00100010": {"vr": "PN", "Value": [{"Alphabetic": "a=b"}]}}, "PN group"),
        ({"7FE00010": {"vr": "OW", "InlineBinary": "not base64!"}}, "base64"),
        ({"7FE00010": {"vr": "OW", "InlineBinary": "AAAA"}}, "multiple of 2"),
        ({"7FE00010": {"vr": "OW", "Value": [1]}}, "InlineBinary or BulkDataURI"),
        ({"00100020": {"vr": "LO", "BulkDataURI": "x"}}, "binary VRs"),
        ({"00081115": {"vr": "SQ", "Value": [1]}}, "JSON object"),
        ({"00081115": {"vr": "SQ", "Value": [{"00020010": {"vr": "UI"}}]}}, "file meta"),
    ],
)
def test_bad_json_is_a_clear_400(obj: Any, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        dataset_from_json(obj)


def test_nesting_and_size_are_bounded() -> None:
    deep: dict[str, Any] = {}
    for _ in range(20):
        deep = {"00081115": {"vr": "SQ", "Value": [deep]}}
    with pytest.raises(InvalidRequest, match="too deep"):
        dataset_from_json(deep)
    many = {f"0011{i:04X}": {"vr": "LO", "Value": ["x"]} for i in range(20)}
    with pytest.raises(PayloadTooLarge):
        dataset_from_json(many, limits=JsonLimits(max_attributes=10))
    with pytest.raises(PayloadTooLarge):
        parse_dicom_json(b"[{}]" + b" " * 100, limits=JsonLimits(max_bytes=50))


def test_parse_dicom_json_takes_an_array() -> None:
    body = render_dicom_json([dataset_to_json(_sample())])
    (ds,) = parse_dicom_json(body)
    assert ds.PatientID == "12345"
    for bad in (b"", b"{", b"[]", b"3", b"[1]", b'"x"'):
        with pytest.raises(InvalidRequest):
            parse_dicom_json(bad)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ds=datasets())
def test_round_trip_of_random_datasets(ds: Dataset) -> None:
    j = dataset_to_json(ds)
    body = render_dicom_json([j])
    (back,) = parse_dicom_json(body)
    assert dataset_to_json(back) == j


def _normalise(obj: Any) -> Any:
    """pydicom and we may write an integral DS as 7 or 7.0, an empty PN as {} or null, and an
    empty sequence or PN group as `[]`/`""` or absent (both are empty, PS3.18 §F.2.2, §F.2.5)."""
    if isinstance(obj, dict):
        return {k: _normalise(v) for k, v in obj.items() if v not in ([], "")} or None
    if isinstance(obj, list):
        # An empty value among several: null in Annex F, "" from pydicom.
        return [None if v == "" else _normalise(v) for v in obj]
    if isinstance(obj, int | float) and not isinstance(obj, bool) and math.isfinite(obj):
        return float(obj) if abs(obj) <= 2**53 else str(int(obj))
    return obj


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ds=datasets())
def test_agrees_with_pydicom_to_json_dict(ds: Dataset) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            theirs = ds.to_json_dict(bulk_data_threshold=1024)
        except ValueError:
            # pydicom 3.0.2 cannot write an empty IS among several (int('')); ours writes null,
            # checked by the round trip and test_an_empty_number_among_several_is_null.
            assume(False)
    assert _normalise(dataset_to_json(ds)) == _normalise(theirs)


# The files bundled with pydicom, read from its folder: get_testdata_files would try to download.
_TEST_FILES = sorted(
    str(p)
    for p in (Path(pydicom.data.__file__).parent / "test_files").glob("*.dcm")
    if p.stat().st_size < 4 * 1024 * 1024
)


@pytest.mark.parametrize("path", _TEST_FILES, ids=lambda p: Path(p).name)
def test_round_trip_of_pydicoms_test_files(path: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = dcmread(path, force=True)
        except Exception:
            pytest.skip("pydicom itself cannot read this file")
    try:
        j = dataset_to_json(ds, bulkdata_uri=lambda p: "bulk/" + ".".join(map(str, p)))
    except InvalidRequest:
        return  # a deliberately broken test file: refused, not crashed
    assert "vr" not in j
    back = dataset_from_json(j, bulkdata=lambda uri: b"")
    again = dataset_to_json(back, bulkdata_uri=lambda p: "bulk/" + ".".join(map(str, p)))
    assert _normalise(_drop_bulk(again)) == _normalise(_drop_bulk(j))


def _drop_bulk(obj: Any) -> Any:
    # Resolved bulk data came back empty on purpose: compare the rest.
    if isinstance(obj, dict):
        if "BulkDataURI" in obj:
            return {"vr": obj["vr"]}
        return {k: _drop_bulk(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_drop_bulk(v) for v in obj]
    return obj


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=9), inner, max_size=4)
    ),
    max_leaves=20,
)
_members = st.fixed_dictionaries(
    {
        "vr": st.sampled_from(
            ["PN", "AT", "US", "DS", "IS", "SQ", "OW", "OB", "LO", "UI", "FL", "SV", "XX"]
        )
    },
    optional={"Value": _json, "InlineBinary": _json, "BulkDataURI": _json},
)
_keys = st.sampled_from(
    [
        "00100010",
        "00209165",
        "00280010",
        "00201041",
        "00081115",
        "7FE00010",
        "00020010",
        "0010001",
        "zz",
    ]
)


@settings(max_examples=400, deadline=None)
@given(obj=st.one_of(_json, st.dictionaries(_keys, st.one_of(_members, _json), max_size=5)))
def test_any_json_is_a_dataset_or_a_clear_error(obj: Any) -> None:
    try:
        ds = dataset_from_json(obj, bulkdata=lambda uri: b"\x00\x00" if uri == "ok" else None)
    except DicomWireError as exc:
        assert exc.status in (400, 413)
        return
    dataset_to_json(ds)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=200) | _json.map(orjson.dumps))
def test_any_body_is_datasets_or_a_clear_error(body: bytes) -> None:
    try:
        parse_dicom_json(body)
    except DicomWireError as exc:
        assert exc.status in (400, 413)
