"""Photos with a message (issue 15): type- and size-checked, upright, without metadata.

`clean_photo` on real JPEG and PNG files carrying EXIF (camera, GPS, orientation), XMP and PNG
text chunks, and on anything else (hypothesis: only `PhotoRefused`); then end to end on a real
server: a citizen's e-consultation with a photo, read back by the office without metadata and
refused to a stranger, and a photo that is not one refused with 400 and nothing stored.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from onerecord.dialogue.images import MAX_EDGE, MAX_PHOTO_BYTES, PhotoRefused, clean_photo
from tests.dialogue.harness import ADULT, STRANGER, Dialogue, communication, running_dialogue

GPS_IFD = 0x8825
ORIENTATION = 274
MAKE = 271


def camera_jpeg(width: int = 2400, height: int = 1200, orientation: int = 6) -> bytes:
    """A JPEG as a phone writes it: EXIF with make, GPS position and orientation, and XMP."""
    image = Image.new("RGB", (width, height), (200, 80, 60))
    exif = Image.Exif()
    exif[MAKE] = "Synthetic Phone"
    exif[ORIENTATION] = orientation
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (59.0, 54.0, 0.0), 3: "E", 4: (10.0, 45.0, 0.0)})
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif, xmp=b"<x:xmpmeta>secret place</x:xmpmeta>")
    return out.getvalue()


def texty_png() -> bytes:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Comment", "taken at Storgata 1")
    out = io.BytesIO()
    Image.new("RGBA", (300, 200), (0, 0, 0, 0)).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def test_a_camera_jpeg_loses_its_metadata_and_stands_upright() -> None:
    original = camera_jpeg()
    assert b"Synthetic Phone" in original and b"secret place" in original
    clean = clean_photo(original, "image/jpeg")
    assert clean.content_type == "image/jpeg"
    for secret in (b"Synthetic Phone", b"secret place", b"Exif\x00\x00"):
        assert secret not in clean.data
    with Image.open(io.BytesIO(clean.data)) as stored:
        assert stored.format == "JPEG"
        assert not stored.getexif()
        assert "exif" not in stored.info and "xmp" not in stored.info
        # Orientation 6 (rotate 90° clockwise): the 2400 × 1200 sensor image stands upright.
        assert stored.size == (MAX_EDGE // 2, MAX_EDGE)


def test_a_png_loses_its_text_chunks() -> None:
    clean = clean_photo(texty_png(), "image/png")
    assert b"Storgata" not in clean.data and b"tEXt" not in clean.data
    with Image.open(io.BytesIO(clean.data)) as stored:
        assert stored.format == "PNG" and stored.size == (300, 200)


@pytest.mark.parametrize(
    ("data", "kind", "reason"),
    [
        (texty_png(), "image/jpeg", "type"),  # a PNG said to be a JPEG
        (camera_jpeg(40, 40), "image/gif", "type"),
        (camera_jpeg(40, 40), "application/pdf", "type"),
        (b"", "image/png", "size"),
        (b"\xff\xd8\xff" + b"\0" * (MAX_PHOTO_BYTES - 2), "image/jpeg", "size"),
        (b"\xff\xd8\xff\xe0 not really a jpeg", "image/jpeg", "unreadable"),
        (camera_jpeg(60, 60)[:200], "image/jpeg", "unreadable"),  # cut short
    ],
)
def test_what_is_not_a_photo_is_refused(data: bytes, kind: str, reason: str) -> None:
    with pytest.raises(PhotoRefused) as refused:
        clean_photo(data, kind)
    assert refused.value.reason == reason


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=600),
        st.binary(max_size=400).map(lambda b: b"\xff\xd8\xff" + b),
        st.binary(max_size=400).map(lambda b: b"\x89PNG\r\n\x1a\n" + b),
    ),
    st.sampled_from(["image/jpeg", "image/png", "image/webp", "", "IMAGE/JPEG; x=1"]),
)
def test_any_bytes_are_a_clean_photo_or_refused(data: bytes, kind: str) -> None:
    try:
        clean = clean_photo(data, kind)
    except PhotoRefused:
        return
    with Image.open(io.BytesIO(clean.data)) as stored:
        assert not stored.getexif()


# --- end to end ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dialogue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dialogue]:
    path: Path = tmp_path_factory.mktemp("photos") / "dialogue.db"
    with running_dialogue(f"sqlite:///{path}", None) as running:
        yield running


def with_photo(text: str, data: bytes, kind: str = "image/jpeg") -> dict[str, object]:
    body = communication(ADULT, text)
    encoded = base64.b64encode(data).decode()
    body["payload"].append({"contentAttachment": {"contentType": kind, "data": encoded}})
    return body


def test_an_e_consultation_with_a_photo_reaches_the_office_without_metadata(
    dialogue: Dialogue,
) -> None:
    me, gp = dialogue.citizen(ADULT), dialogue.staff()
    r = dialogue.post(me, "Communication", with_photo("Utslett, se bildet.", camera_jpeg()))
    assert r.status_code == 201, r.text
    attachment = r.json()["payload"][1]["contentAttachment"]
    assert attachment["contentType"] == "image/jpeg"
    assert attachment["url"].startswith("Binary/")
    url = f"{dialogue.fhir}/{attachment['url']}"

    read = dialogue.client.get(url, headers=gp.headers("GET", url))
    assert read.status_code == 200, read.text
    assert read.headers["content-type"] == "image/jpeg"
    assert len(read.content) == attachment["size"]
    assert b"Synthetic Phone" not in read.content and b"secret place" not in read.content
    mine = dialogue.client.get(url, headers=me.headers("GET", url))
    assert mine.status_code == 200 and mine.content == read.content

    stranger = dialogue.citizen(STRANGER)
    refused = dialogue.client.get(url, headers=stranger.headers("GET", url))
    assert refused.status_code == 403

    listed = dialogue.entries(me, "Communication", patient=ADULT)
    assert any(len(m["payload"]) == 2 for m in listed)


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (texty_png(), "image/jpeg"),
        (b"%PDF-1.7 not a photo", "application/pdf"),
        (b"x", "image/png"),
    ],
)
def test_a_photo_that_is_not_one_is_refused_and_nothing_is_stored(
    dialogue: Dialogue, data: bytes, kind: str
) -> None:
    me = dialogue.citizen(ADULT)
    before = len(dialogue.entries(me, "Communication", patient=ADULT))
    r = dialogue.post(me, "Communication", with_photo("Se vedlegg.", data, kind))
    assert r.status_code == 400, r.text
    assert len(dialogue.entries(me, "Communication", patient=ADULT)) == before


def test_a_body_with_four_photos_is_refused(dialogue: Dialogue) -> None:
    me = dialogue.citizen(ADULT)
    body = with_photo("Mange bilder.", camera_jpeg(40, 40))
    body["payload"] = body["payload"] + body["payload"][1:] * 3  # type: ignore[operator]
    assert dialogue.post(me, "Communication", body).status_code == 400


def office_answer(in_response_to: str, text: str, *photos: tuple[bytes, str]) -> dict[str, object]:
    body = communication(None, text, category=None, fee=None, in_response_to=in_response_to)
    for data, kind in photos:
        encoded = base64.b64encode(data).decode()
        body["payload"].append({"contentAttachment": {"contentType": kind, "data": encoded}})
    return body


def test_the_offices_answer_with_a_photo_is_read_by_the_citizen(dialogue: Dialogue) -> None:
    me, gp = dialogue.citizen(ADULT), dialogue.staff()
    asked = dialogue.post(me, "Communication", communication(ADULT, "Hvordan steller jeg såret?"))
    assert asked.status_code == 201, asked.text
    answer = office_answer(
        asked.json()["id"], "Slik, se bildet.", (camera_jpeg(800, 600), "image/jpeg")
    )
    r = dialogue.post(gp, "Communication", answer)
    assert r.status_code == 201, r.text
    attachment = r.json()["payload"][1]["contentAttachment"]
    url = f"{dialogue.fhir}/{attachment['url']}"

    mine = dialogue.client.get(url, headers=me.headers("GET", url))
    assert mine.status_code == 200, mine.text
    assert mine.headers["content-type"] == "image/jpeg"
    assert mine.headers["x-content-type-options"] == "nosniff"
    assert b"Synthetic Phone" not in mine.content and b"secret place" not in mine.content
    thread = dialogue.entries(me, "Communication", patient=ADULT)
    assert any(m["id"] == r.json()["id"] and len(m["payload"]) == 2 for m in thread)
    stranger = dialogue.citizen(STRANGER)
    assert dialogue.client.get(url, headers=stranger.headers("GET", url)).status_code == 403


@pytest.mark.parametrize(
    "photos",
    [
        [(texty_png(), "image/jpeg")],
        [(b"%PDF-1.7 not a photo", "application/pdf")],
        [(camera_jpeg(40, 40), "image/jpeg")] * 4,
    ],
)
def test_an_offices_answer_with_a_bad_photo_is_refused_and_nothing_is_stored(
    dialogue: Dialogue, photos: list[tuple[bytes, str]]
) -> None:
    me, gp = dialogue.citizen(ADULT), dialogue.staff()
    asked = dialogue.post(me, "Communication", communication(ADULT, "Et spørsmål."))
    assert asked.status_code == 201, asked.text
    before = len(dialogue.entries(me, "Communication", patient=ADULT))
    r = dialogue.post(gp, "Communication", office_answer(asked.json()["id"], "Svar.", *photos))
    assert r.status_code == 400, r.text
    assert len(dialogue.entries(me, "Communication", patient=ADULT)) == before
