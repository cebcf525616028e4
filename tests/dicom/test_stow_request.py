from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.encaps import generate_frames

from onerecord.dicom.errors import DicomWireError, InvalidRequest, UnsupportedMediaType
from onerecord.dicom.multipart import MultipartParser, OutgoingPart, Part, render_multipart
from onerecord.dicom.stow_request import read_json_instances

JSON = "application/dicom+json"
JPEG_BYTES = b"\xff\xd8\xff\xe0" + b"jpeg" * 10 + b"\xff\xd9"


def _meta(pixel_uri: str | None = "pixel", **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "00080016": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.77.1.4"]},
        "00080018": {"vr": "UI", "Value": ["1.2.3.4"]},
        "00100020": {"vr": "LO", "Value": ["12345"]},
        **extra,
    }
    if pixel_uri is not None:
        obj["7FE00010"] = {"vr": "OB", "BulkDataURI": pixel_uri}
    return obj


def _part(content_type: str | None, body: bytes, location: str | None = None) -> Part:
    headers = []
    if content_type is not None:
        headers.append(("content-type", content_type))
    if location is not None:
        headers.append(("content-location", location))
    return Part(headers=tuple(headers), body=body)


def test_a_jpeg_of_another_class_is_encapsulated() -> None:
    endoscopy = {"00080016": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.77.1.1"]}}
    parts = [
        _part(JSON, orjson.dumps([_meta(**endoscopy)])),
        _part("image/jpeg", JPEG_BYTES, "pixel"),
    ]
    (instance,) = read_json_instances(parts)
    ds = instance.dataset
    assert instance.pixel_media_type == "image/jpeg" and instance.pixel_data is None
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    assert list(generate_frames(ds.PixelData, number_of_frames=1)) == [JPEG_BYTES]
    assert ds.PatientID == "12345"


def test_video_png_and_a_photos_jpeg_are_left_to_the_archive() -> None:
    for media_type in ("video/mp4", "image/png", "image/jpeg"):
        parts = [_part(JSON, orjson.dumps([_meta()])), _part(media_type, b"bytes", "pixel")]
        (instance,) = read_json_instances(parts)
        assert instance.pixel_media_type == media_type
        assert instance.pixel_data == b"bytes"
        assert "PixelData" not in instance.dataset


def test_uncompressed_pixel_data_and_several_instances() -> None:
    parts = [
        _part(JSON, orjson.dumps([_meta("a"), _meta("b")])),
        _part("application/octet-stream", b"\x00\x01", "a"),
        _part("application/octet-stream", b"\x02\x03", "b"),
    ]
    one, two = read_json_instances(parts)
    assert (one.dataset.PixelData, two.dataset.PixelData) == (b"\x00\x01", b"\x02\x03")
    assert one.pixel_media_type is None


def test_the_transfer_syntax_parameter_and_the_metadata_must_agree() -> None:
    ls = "1.2.840.10008.1.2.4.80"
    stated = {"00020010": {"vr": "UI", "Value": ["1.2.840.10008.1.2.4.50"]}}
    parts = [
        _part(JSON, orjson.dumps([_meta(**stated)])),
        _part(f"image/jls; transfer-syntax={ls}", b"ls", "pixel"),
    ]
    with pytest.raises(InvalidRequest, match="disagrees"):
        read_json_instances(parts)
    parts[0] = _part(JSON, orjson.dumps([_meta()]))
    (instance,) = read_json_instances(parts)
    assert instance.dataset.file_meta.TransferSyntaxUID == ls


@pytest.mark.parametrize(
    ("parts", "error", "message"),
    [
        ([_part("image/jpeg", b"x", "pixel")], InvalidRequest, "no application/dicom\\+json"),
        ([_part(JSON, orjson.dumps([_meta()]))], InvalidRequest, "names no part"),
        (
            [_part(JSON, orjson.dumps([_meta()])), _part("image/jpeg", b"x")],
            InvalidRequest,
            "Content-Location",
        ),
        (
            [
                _part(JSON, orjson.dumps([_meta()])),
                _part("image/jpeg", b"x", "pixel"),
                _part("image/jpeg", b"y", "pixel"),
            ],
            InvalidRequest,
            "share",
        ),
        (
            [_part(JSON, orjson.dumps([_meta()])), _part("text/html", b"x", "pixel")],
            UnsupportedMediaType,
            "not taken",
        ),
        ([_part(JSON, b"{")], InvalidRequest, "not valid JSON"),
        ([_part(JSON, b"{}")], InvalidRequest, "array"),
    ],
)
def test_bad_requests(parts: list[Part], error: type[DicomWireError], message: str) -> None:
    with pytest.raises(error, match=message):
        read_json_instances(parts)


def test_from_a_multipart_body_end_to_end() -> None:
    boundary = "b1"
    body = b"".join(
        render_multipart(
            [
                OutgoingPart(JSON, orjson.dumps([_meta()])),
                OutgoingPart("image/jpeg", JPEG_BYTES, content_location="pixel"),
            ],
            boundary,
        )
    )
    parser = MultipartParser(boundary)
    parts = parser.feed(body)
    parser.close()
    (instance,) = read_json_instances(parts)
    assert instance.dataset.SOPInstanceUID == "1.2.3.4"


_types = st.sampled_from(
    [
        JSON,
        "application/json",
        "image/jpeg",
        "image/png",
        "video/mp4",
        "text/plain",
        None,
        "application/octet-stream",
        "image/jls; transfer-syntax=x",
        "a/b;",
    ]
)
_bodies = st.one_of(
    st.binary(max_size=40),
    st.just(orjson.dumps([_meta()])),
    st.just(orjson.dumps([_meta("x", **{"00020010": {"vr": "UI", "Value": ["1.2"]}})])),
)


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(
        st.builds(_part, _types, _bodies, st.none() | st.sampled_from(["pixel", "x"])),
        max_size=4,
    )
)
def test_any_parts_are_instances_or_a_clear_error(parts: list[Part]) -> None:
    try:
        read_json_instances(parts)
    except DicomWireError as exc:
        assert exc.status in (400, 413, 415)
