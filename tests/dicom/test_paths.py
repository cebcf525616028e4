from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from onerecord.dicom.errors import DicomWireError, InvalidRequest, NotFound
from onerecord.dicom.json_model import metadata_json
from onerecord.dicom.paths import (
    DicomWebPath,
    DicomWebTarget,
    bulkdata_segment,
    parse_dicomweb_path,
)
from onerecord.dicom.qido import QidoLevel

S, R, I = "1.2.3", "1.2.3.4", "1.2.3.4.5"  # noqa: E741
T = DicomWebTarget
L = QidoLevel


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("studies", DicomWebPath(T.SEARCH, L.STUDY)),
        ("/series", DicomWebPath(T.SEARCH, L.SERIES)),
        ("instances", DicomWebPath(T.SEARCH, L.INSTANCE)),
        (f"studies/{S}", DicomWebPath(T.RETRIEVE, L.STUDY, S)),
        (f"studies/{S}/series", DicomWebPath(T.SEARCH, L.SERIES, S)),
        (f"studies/{S}/instances", DicomWebPath(T.SEARCH, L.INSTANCE, S)),
        (f"studies/{S}/metadata", DicomWebPath(T.METADATA, L.STUDY, S)),
        (f"studies/{S}/thumbnail", DicomWebPath(T.THUMBNAIL, L.STUDY, S)),
        (f"studies/{S}/series/{R}", DicomWebPath(T.RETRIEVE, L.SERIES, S, R)),
        (f"studies/{S}/series/{R}/rendered", DicomWebPath(T.RENDERED, L.SERIES, S, R)),
        (f"studies/{S}/series/{R}/instances", DicomWebPath(T.SEARCH, L.INSTANCE, S, R)),
        (f"studies/{S}/series/{R}/instances/{I}", DicomWebPath(T.RETRIEVE, L.INSTANCE, S, R, I)),
        (
            f"studies/{S}/series/{R}/instances/{I}/metadata",
            DicomWebPath(T.METADATA, L.INSTANCE, S, R, I),
        ),
        (
            f"studies/{S}/series/{R}/instances/{I}/frames/1,3",
            DicomWebPath(T.FRAMES, L.INSTANCE, S, R, I, (1, 3)),
        ),
        (
            f"studies/{S}/series/{R}/instances/{I}/frames/2/rendered",
            DicomWebPath(T.RENDERED, L.INSTANCE, S, R, I, (2,)),
        ),
        (
            f"studies/{S}/series/{R}/instances/{I}/bulkdata/7FE00010",
            DicomWebPath(T.BULKDATA, L.INSTANCE, S, R, I, bulkdata=(0x7FE00010,)),
        ),
    ],
)
def test_paths(path: str, expected: DicomWebPath) -> None:
    assert parse_dicomweb_path(path) == expected


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("patients", NotFound),
        ("studies/abc", InvalidRequest),
        (f"studies/{S}/series/1..2", InvalidRequest),
        (f"studies/{S}/nothing", NotFound),
        (f"studies/{S}/series/{R}/instances/{I}/frames/0", InvalidRequest),
        (f"studies/{S}/series/{R}/instances/{I}/frames/1/other", NotFound),
        (f"studies/{S}/series/{R}/instances/{I}/bulkdata/7fe00010", NotFound),
        (f"studies/{S}/series/{R}/instances/{I}/bulkdata/00081115/0", NotFound),
        ("studies/" + "1" * 3000, InvalidRequest),
    ],
)
def test_bad_paths(path: str, error: type[DicomWireError]) -> None:
    with pytest.raises(error):
        parse_dicomweb_path(path)


def test_bulkdata_uris_and_paths_agree() -> None:
    ds = Dataset()
    item = Dataset()
    item.add_new(0x00091010, "OB", b"x" * 2000)
    ds.ReferencedSeriesSequence = Sequence([Dataset(), item])
    ds.add_new(0x7FE00010, "OW", b"\x00\x00" * 1000)
    base = f"studies/{S}/series/{R}/instances/{I}/bulkdata/"
    j = metadata_json(ds, bulkdata_uri=lambda p: base + bulkdata_segment(p))
    nested = j["00081115"]["Value"][1]["00091010"]["BulkDataURI"]
    assert nested.endswith("bulkdata/00081115/1/00091010")
    assert parse_dicomweb_path(nested).bulkdata == (0x00081115, 1, 0x00091010)
    assert parse_dicomweb_path(j["7FE00010"]["BulkDataURI"]).bulkdata == (0x7FE00010,)


_segments = st.sampled_from(
    [
        "studies",
        "series",
        "instances",
        S,
        R,
        "x",
        "metadata",
        "frames",
        "1,2",
        "0",
        "rendered",
        "bulkdata",
        "7FE00010",
        "",
        "thumbnail",
    ]
)


@settings(max_examples=500, deadline=None)
@given(parts=st.lists(_segments | st.text(max_size=8), max_size=9))
def test_any_path_is_a_resource_or_a_clear_error(parts: list[str]) -> None:
    try:
        parse_dicomweb_path("/".join(parts))
    except DicomWireError as exc:
        assert exc.status in (400, 404)
