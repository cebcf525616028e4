from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onerecord.dicom.errors import DicomWireError, InvalidRequest, NotAcceptable, NotFound
from onerecord.dicom.wado import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    Representation,
    WadoResource,
    check_frames,
    negotiate,
    offers_for,
    parse_frame_list,
)

JPEG = "1.2.840.10008.1.2.4.50"
H264 = "1.2.840.10008.1.2.4.102"
DICOM = 'multipart/related; type="application/dicom"'
OCTETS = 'multipart/related; type="application/octet-stream"'


def test_instances_default_to_explicit_vr_little_endian() -> None:
    offers = offers_for(WadoResource.INSTANCES, stored_transfer_syntax=JPEG)
    assert negotiate(offers, None).transfer_syntax == EXPLICIT_VR_LITTLE_ENDIAN
    assert negotiate(offers, DICOM).transfer_syntax == EXPLICIT_VR_LITTLE_ENDIAN
    assert negotiate(offers, DICOM + "; transfer-syntax=*").transfer_syntax == JPEG
    assert negotiate(offers, DICOM + f"; transfer-syntax={JPEG}").transfer_syntax == JPEG
    assert negotiate(offers, "*/*").multipart


def test_instances_that_cannot_be_decoded_come_as_stored() -> None:
    offers = offers_for(WadoResource.INSTANCES, stored_transfer_syntax=JPEG, can_decode=False)
    assert negotiate(offers, DICOM).transfer_syntax == JPEG
    with pytest.raises(NotAcceptable, match="application/dicom"):
        negotiate(offers, DICOM + f"; transfer-syntax={EXPLICIT_VR_LITTLE_ENDIAN}")


def test_metadata_and_search_are_dicom_json() -> None:
    offers = offers_for(WadoResource.METADATA)
    assert negotiate(offers, "application/dicom+json") == Representation("application/dicom+json")
    assert negotiate(offers, "application/json").media_type == "application/dicom+json"
    assert negotiate(offers, "application/*;q=0.5").media_type == "application/dicom+json"
    with pytest.raises(NotAcceptable):
        negotiate(offers, 'multipart/related; type="application/dicom+xml"')
    with pytest.raises(NotAcceptable):
        negotiate(offers_for(WadoResource.SEARCH), "application/dicom+xml")


def test_frames_compressed_or_decoded() -> None:
    offers = offers_for(WadoResource.FRAMES, stored_transfer_syntax=JPEG)
    assert negotiate(offers, OCTETS).media_type == "application/octet-stream"
    jpeg = negotiate(offers, 'multipart/related; type="image/jpeg"')
    assert (jpeg.media_type, jpeg.transfer_syntax, jpeg.multipart) == ("image/jpeg", JPEG, True)
    assert jpeg.part_content_type() == f"image/jpeg; transfer-syntax={JPEG}"
    assert negotiate(offers, None).media_type == "application/octet-stream"
    native = offers_for(WadoResource.FRAMES)
    with pytest.raises(NotAcceptable):
        negotiate(native, 'multipart/related; type="image/jpeg"')


def test_video_rendered_and_bulk() -> None:
    offers = offers_for(WadoResource.BULKDATA, stored_transfer_syntax=H264, can_decode=False)
    assert negotiate(offers, 'multipart/related; type="video/mp4"').media_type == "video/mp4"
    rendered = offers_for(WadoResource.RENDERED, is_video=True)
    assert negotiate(rendered, "video/*") == Representation("video/mp4")


def test_weights_order_and_refusals() -> None:
    offers = offers_for(WadoResource.RENDERED)
    assert negotiate(offers, "image/png, image/jpeg;q=0.5").media_type == "image/png"
    assert negotiate(offers, "image/jpeg;q=0.2, image/png;q=0.9").media_type == "image/png"
    assert negotiate(offers, "image/*, image/jpeg;q=0").media_type == "image/png"
    assert negotiate(offers_for(WadoResource.THUMBNAIL), "").media_type == "image/jpeg"
    with pytest.raises(NotAcceptable, match="image/jpeg, image/png"):
        negotiate(offers, "image/gif")


def test_the_accept_query_parameter_overrides_the_header() -> None:
    offers = offers_for(WadoResource.RENDERED)
    assert negotiate(offers, "image/jpeg", query_accept="image/png").media_type == "image/png"


@pytest.mark.parametrize(
    "header", ["image", "image/png;q=2", "a/b; transfer-syntax=abc", 'multipart/related; type="x"']
)
def test_malformed_accept_is_400(header: str) -> None:
    with pytest.raises(InvalidRequest):
        negotiate(offers_for(WadoResource.INSTANCES), header)


def test_frame_lists() -> None:
    assert parse_frame_list("1,3,5") == (1, 3, 5)
    assert parse_frame_list("7") == (7,)
    for bad in ("", "0", "1,,2", "1, 2", "-1", "a", "1,1", "01"):
        with pytest.raises(InvalidRequest, match="frames"):
            parse_frame_list(bad)
    with pytest.raises(InvalidRequest, match="more than 2"):
        parse_frame_list("1,2,3", max_frames=2)
    check_frames((1, 3), 3)
    with pytest.raises(NotFound):
        check_frames((1, 4), 3)


_accept = st.one_of(
    st.text(max_size=60),
    st.lists(
        st.sampled_from(
            [
                DICOM,
                OCTETS,
                "*/*",
                "image/*",
                "image/png",
                "application/json",
                "video/mp4",
                "; transfer-syntax=*",
                f"; transfer-syntax={JPEG}",
                ";q=0",
                ";q=0.5",
                ", ",
                ";",
            ]
        ),
        max_size=6,
    ).map("".join),
)


@settings(max_examples=500, deadline=None)
@given(
    accept=_accept,
    resource=st.sampled_from(list(WadoResource)),
    stored=st.none() | st.sampled_from([JPEG, H264, EXPLICIT_VR_LITTLE_ENDIAN]),
    can_decode=st.booleans(),
)
def test_any_accept_is_a_choice_or_a_clear_error(
    accept: str, resource: WadoResource, stored: str | None, can_decode: bool
) -> None:
    offers = offers_for(resource, stored_transfer_syntax=stored, can_decode=can_decode)
    try:
        chosen = negotiate(offers, accept)
    except DicomWireError as exc:
        assert exc.status in (400, 406)
        return
    assert chosen in offers


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=30) | st.from_regex(r"[0-9,]{0,20}", fullmatch=True))
def test_any_frame_list_is_frames_or_a_400(text: str) -> None:
    try:
        frames = parse_frame_list(text)
    except DicomWireError as exc:
        assert exc.status == 400
        return
    assert all(f >= 1 for f in frames) and len(set(frames)) == len(frames)
