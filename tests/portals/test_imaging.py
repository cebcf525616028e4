"""The imaging viewer's edge: the manifest's parser, the proxy's checks, the proxy over ASGI.

`parse_imaging_study` reads what a region sent and `parse_viewer_request` what a browser sent:
both are hostile input, so hypothesis feeds them anything and they answer with their own
refusal (never another exception). Over ASGI, with the hub a fake: a study page and its pixels
through the proxy, the hub asked with the user's token for exactly the manifest's study, and
anything else refused 4xx before the hub is asked.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onerecord.media.manifest import (
    ManifestInstance,
    ManifestSeries,
    ManifestStudy,
    imaging_study,
)
from onerecord.portals.imaging import (
    MADO_FORMAT,
    InvalidManifest,
    ViewerRequestRefused,
    number_of_frames,
    parse_imaging_study,
    parse_viewer_request,
)
from onerecord.portals.imaging_pages import viewer_state
from onerecord.synth.dicom import DicomPatient, SynthStudy, patient_studies
from onerecord.synth.numbers import synthetic_fnr
from onerecord.trust.patient_binding import PATIENT_NIN_HEADER
from tests.portals.test_app import HSO, HUB, PATIENT_NIN, Fakes, _at_overview, running_portal

NIN = synthetic_fnr(random.Random(4), date(1970, 5, 6))
STUDIES = patient_studies(
    DicomPatient(NIN, "Testesen", "Test", NIN.birth_date, "F"),
    seed=2,
    reference_date=date(2026, 11, 1),
    ct_slices=3,
    size=64,
)
CT, CR, US, PHOTO1, PHOTO2, VIDEO = STUDIES
ARCHIVE = "https://archive.example/dicomweb"
HCID_OID = HSO.removeprefix("urn:oid:")
TOKEN = f"{HCID_OID}~2.16.578.1.12.4.5.100.1.2~{CT.study_instance_uid}"


def _study_resource(study: SynthStudy) -> dict[str, Any]:
    """The ImagingStudy the archive publishes for `study` (media.manifest, MEDIA-CONTRACT §1)."""
    series: dict[str, list[Any]] = {}
    for ds in study.instances:
        series.setdefault(ds.SeriesInstanceUID, []).append(ds)
    first = study.instances[0]
    held = ManifestStudy(
        study_instance_uid=study.study_instance_uid,
        patient_id=NIN.value,
        issuer_of_patient_id="",
        study_date=str(first.StudyDate),
        study_time=str(first.get("StudyTime", "")),
        accession_number=str(first.get("AccessionNumber", "")),
        study_description=str(first.get("StudyDescription", "")),
        created=datetime.now(UTC),
        series=tuple(
            ManifestSeries(
                series_instance_uid=uid,
                modality=str(items[0].Modality),
                series_number=int(items[0].SeriesNumber),
                series_description=str(items[0].get("SeriesDescription", "")),
                body_part_examined=str(items[0].get("BodyPartExamined", "")),
                instances=tuple(
                    ManifestInstance(ds.SOPInstanceUID, ds.SOPClassUID, int(ds.InstanceNumber))
                    for ds in items
                ),
            )
            for uid, items in series.items()
        ),
    )
    return imaging_study(held, patient=NIN, wado_base_url=ARCHIVE)


def _manifest(study: Any = CT) -> bytes:
    return orjson.dumps(_study_resource(study))


def _uids(study: Any = CT) -> tuple[str, str, str]:
    ds = study.instances[0]
    return study.study_instance_uid, ds.SeriesInstanceUID, ds.SOPInstanceUID


# --- the manifest --------------------------------------------------------------------------------


def test_a_manifest_of_each_kind_is_read() -> None:
    ct = parse_imaging_study(_manifest(CT))
    assert ct.study_uid == CT.study_instance_uid and ct.modalities == ("CT",)
    assert [i.uid for i in ct.series[0].instances] == [ds.SOPInstanceUID for ds in CT.instances]
    assert ct.series[0].windowed and not ct.is_photo
    assert ct.body_sites == (("818981001", "Abdomen"),)
    assert ct.started == CT.instances[0].StudyDate[:4] + "-" + CT.instances[0].StudyDate[4:6] + (
        "-" + CT.instances[0].StudyDate[6:]
    )
    first, second = parse_imaging_study(_manifest(PHOTO1)), parse_imaging_study(_manifest(PHOTO2))
    assert first.is_photo and first.site_key == second.site_key is not None
    video = parse_imaging_study(_manifest(VIDEO))
    assert video.series[0].is_video and not video.is_photo


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s.update(resourceType="DocumentReference"),
        lambda s: s.update(identifier=[]),
        lambda s: s["identifier"][0].update(value="urn:oid:1.02.3"),
        lambda s: s["series"][0].update(uid="1.2.x"),
        lambda s: s["series"][0]["instance"][0].update(uid=7),
        lambda s: s["series"][0]["instance"][0].update(number=-1),
        lambda s: s["series"][0].update(description="a\x00b"),
        lambda s: s["series"][0].update(description="x" * 300),
        lambda s: s["series"][0]["modality"].update(code="c t"),
        lambda s: s.update(series=[s["series"][0], s["series"][0]]),
        lambda s: s.update(series=[{"uid": f"1.{n}"} for n in range(201)]),
        lambda s: s.update(started="yesterday"),
        lambda s: s.update(series="many"),
    ],
)
def test_a_manifest_out_of_shape_is_refused(change: Any) -> None:
    study = _study_resource(CT)
    change(study)
    with pytest.raises(InvalidManifest):
        parse_imaging_study(orjson.dumps(study))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        json_values.map(orjson.dumps),
        st.fixed_dictionaries(
            {
                "resourceType": st.just("ImagingStudy"),
                "identifier": json_values,
                "series": json_values,
            }
        ).map(orjson.dumps),
    )
)
def test_any_manifest_is_read_or_refused_as_invalid(content: bytes) -> None:
    try:
        parse_imaging_study(content)
    except InvalidManifest:
        pass


# --- the proxy's checks ---------------------------------------------------------------------


def test_what_the_viewer_asks_for_is_admitted() -> None:
    manifest = parse_imaging_study(_manifest(CT))
    study, series, sop = _uids(CT)
    base = f"studies/{study}"
    for path in (
        f"{base}/thumbnail",
        f"{base}/metadata",
        f"{base}/series/{series}/thumbnail",
        f"{base}/series/{series}/instances/{sop}/rendered",
    ):
        assert parse_viewer_request(manifest, path, ()).relative == path
    windowed = parse_viewer_request(
        manifest,
        f"{base}/series/{series}/instances/{sop}/rendered",
        [("window", "-600,1500,linear")],
    )
    assert windowed.query == (("window", "-600,1500,linear"),)
    assert windowed.accept.startswith("image/png")
    video = parse_imaging_study(_manifest(VIDEO))
    v_study, v_series, v_sop = _uids(VIDEO)
    clip = parse_viewer_request(
        video,
        f"studies/{v_study}/series/{v_series}/instances/{v_sop}/rendered",
        (),
        range_header="bytes=100-",
    )
    assert clip.accept == "video/mp4" and clip.range == "bytes=100-"
    # A range on an image is not passed on (it would cut the picture).
    image = parse_viewer_request(
        manifest, f"{base}/series/{series}/thumbnail", (), range_header="bytes=0-1"
    )
    assert image.range is None


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("studies/{other}/thumbnail", (), 404),
        ("studies/{study}/series/{other_series}/thumbnail", (), 404),
        ("studies/{study}/series/{series}/instances/{other_sop}/rendered", (), 404),
        ("studies/{study}/series/{series}/instances/{sop}/frames/1", (), 404),
        ("studies/{study}/series/{series}/instances/{sop}", (), 404),
        ("studies/{study}/rendered", (), 404),
        ("studies/{study}", (), 404),
        ("studies/{study}/series/{series}/instances/{sop}/bulkdata/x", (), 404),
        ("studies/{study}/series/{series}/instances/{sop}/rendered", [("window", "1,0")], 400),
        ("studies/{study}/series/{series}/instances/{sop}/rendered", [("window", "a,b")], 400),
        (
            "studies/{study}/series/{series}/instances/{sop}/rendered",
            [("window", "1,2,cubic")],
            400,
        ),
        ("studies/{study}/series/{series}/instances/{sop}/rendered", [("viewport", "1,1")], 400),
        (
            "studies/{study}/series/{series}/instances/{sop}/rendered",
            [("window", "1,2"), ("window", "3,4")],
            400,
        ),
        ("studies/{study}/thumbnail", [("window", "1,2")], 400),
        ("studies/1.02/thumbnail", (), 400),
        ("studies/../thumbnail", (), 400),
        ("series", (), 404),
        ("", (), 404),
    ],
)
def test_anything_else_is_refused(path: str, params: Any, status: int) -> None:
    manifest = parse_imaging_study(_manifest(CT))
    study, series, sop = _uids(CT)
    other, other_series, other_sop = _uids(CR)
    path = path.format(
        study=study,
        series=series,
        sop=sop,
        other=other,
        other_series=other_series,
        other_sop=other_sop,
    )
    with pytest.raises(ViewerRequestRefused) as refused:
        parse_viewer_request(manifest, path, params)
    assert refused.value.status == status


@settings(max_examples=400, deadline=None)
@given(
    segments=st.lists(
        st.sampled_from(
            [
                "studies",
                "series",
                "instances",
                "thumbnail",
                "rendered",
                "metadata",
                "frames",
                "1",
                "..",
            ]
            + list(_uids(CT))
            + list(_uids(CR))
        )
        | st.text(max_size=12),
        max_size=8,
    ),
    params=st.lists(st.tuples(st.text(max_size=8), st.text(max_size=30)), max_size=3),
    range_header=st.none() | st.text(max_size=40),
)
def test_any_request_is_admitted_only_within_the_manifest_or_refused_4xx(
    segments: list[str], params: list[tuple[str, str]], range_header: str | None
) -> None:
    manifest = parse_imaging_study(_manifest(CT))
    try:
        asked = parse_viewer_request(
            manifest, "/".join(segments), params, range_header=range_header
        )
    except ViewerRequestRefused as exc:
        assert exc.status in (400, 404)
        return
    parts = asked.relative.split("/")
    assert parts[:2] == ["studies", CT.study_instance_uid]
    names = {CT.study_instance_uid, *(ds.SeriesInstanceUID for ds in CT.instances)}
    names |= {ds.SOPInstanceUID for ds in CT.instances}
    assert all(
        p in names or p in {"series", "instances", "thumbnail", "rendered", "metadata"}
        for p in parts
    )


def test_frames_only_of_a_multi_frame_image() -> None:
    cine = parse_imaging_study(_manifest(US))
    study, series, sop = _uids(US)
    base = f"studies/{study}/series/{series}/instances/{sop}"
    asked = parse_viewer_request(cine, f"{base}/frames/12/rendered", [("window", "40,400")])
    assert asked.relative == f"{base}/frames/12/rendered" and asked.kind == "rendered"
    for frame in ("0", "01", "10001", "1,2", "x", ""):
        with pytest.raises(ViewerRequestRefused) as refused:
            parse_viewer_request(cine, f"{base}/frames/{frame}/rendered", ())
        assert refused.value.status in (400, 404)
    with pytest.raises(ViewerRequestRefused):
        parse_viewer_request(cine, f"{base}/frames/2", ())  # frames themselves: not the viewer's


@pytest.mark.parametrize(
    ("metadata", "frames"),
    [
        (b'[{"00280008": {"vr": "IS", "Value": [12]}}]', 12),
        (b'[{"00280008": {"vr": "IS", "Value": ["25 "]}}]', 25),
        (b'[{"00280008": {"vr": "IS", "Value": [0]}}]', 1),
        (b'[{"00280008": {"vr": "IS", "Value": [100001]}}]', 1),
        (b'[{"00280008": {"vr": "IS", "Value": [true]}}]', 1),
        (b'[{"00280008": {"vr": "IS", "Value": [1, 2]}}]', 1),
        (b"[{}]", 1),
        (b"[]", 1),
        (b"{", 1),
    ],
)
def test_the_number_of_frames_from_the_metadata(metadata: bytes, frames: int) -> None:
    assert number_of_frames(metadata) == frames


@settings(max_examples=200, deadline=None)
@given(json_values.map(lambda v: orjson.dumps([{"00280008": {"Value": [v]}}])) | st.binary())
def test_any_metadata_gives_a_number_of_frames_in_range(metadata: bytes) -> None:
    assert 1 <= number_of_frames(metadata) <= 10_000


def test_the_page_state_is_read_leniently() -> None:
    manifest = parse_imaging_study(_manifest(CT))
    series = manifest.series[0]
    assert viewer_state(manifest, {}).index == 0
    state = viewer_state(manifest, {"serie": series.uid, "bilde": "3", "vindu": "lunge"})
    assert (state.index, state.preset) == (2, "lunge")
    assert viewer_state(manifest, {"bilde": "999"}).index == len(series.instances) - 1
    assert viewer_state(manifest, {"bilde": "-1", "vindu": "x", "serie": "1.2"}).index == 0
    photo = parse_imaging_study(_manifest(PHOTO1))
    assert viewer_state(photo, {"vindu": "lunge"}).preset is None  # no presets on a photograph


# --- the proxy over ASGI -----------------------------------------------------------------------


@dataclass
class ImagingFakes(Fakes):
    """The fake hub lists one MADO manifest and answers Binary and DICOMweb under its study."""

    dicomweb: list[httpx.Request] = field(default_factory=list)
    answer_status: int = 200

    def handler(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if url.startswith(f"{HUB}/DocumentReference"):
            return httpx.Response(200, json=_bundle())
        if url == f"{HUB}/Binary/{TOKEN}":
            return httpx.Response(
                200, content=_manifest(CT), headers={"content-type": "application/fhir+json"}
            )
        if url.startswith("https://hub.example/dicomweb/"):
            self.dicomweb.append(request)
            if self.answer_status != 200:
                return httpx.Response(self.answer_status, text="no")
            kind = "image/png" if "rendered" in url else "image/jpeg"
            return httpx.Response(200, content=b"\x89PNG pixels", headers={"content-type": kind})
        return super().handler(request)


def _bundle() -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 1,
        "entry": [
            {
                "resource": {
                    "resourceType": "DocumentReference",
                    "date": "2026-09-22T10:00:00+02:00",
                    "masterIdentifier": {"value": f"urn:oid:{CT.study_instance_uid}"},
                    "extension": [
                        {
                            "url": "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-HomeCommunityId",
                            "valueIdentifier": {"value": HSO},
                        }
                    ],
                    "content": [
                        {
                            "attachment": {
                                "title": "CT abdomen",
                                "contentType": "application/fhir+json",
                                "url": f"{HUB}/Binary/{TOKEN}",
                            },
                            "format": {"code": MADO_FORMAT},
                        }
                    ],
                }
            }
        ],
    }


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def viewer(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, ImagingFakes]]:
    fakes = ImagingFakes()
    async with running_portal(tmp_path, fakes) as app:
        overview = await _at_overview(app.client)
        assert f"/helsepersonell/dokument/{TOKEN}" in overview.text
        yield app.client, fakes


@pytest.mark.anyio
async def test_the_study_page_and_its_pixels_through_the_proxy(
    viewer: tuple[httpx.AsyncClient, ImagingFakes],
) -> None:
    client, fakes = viewer
    page = await client.get(f"/helsepersonell/dokument/{TOKEN}")
    assert page.status_code == 200, page.text[:2000]
    study, series, sop = _uids(CT)
    rendered = (
        f"/helsepersonell/dokument/{TOKEN}/bilder/studies/{study}"
        f"/series/{series}/instances/{sop}/rendered"
    )
    assert rendered in page.text and "data-viewer" in page.text
    got = await client.get(rendered, params={"window": "40,400,linear"})
    assert got.status_code == 200 and got.content == b"\x89PNG pixels"
    assert got.headers["content-type"] == "image/png"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in got.headers["content-security-policy"]
    (sent,) = fakes.dicomweb
    assert str(sent.url) == (
        f"https://hub.example/dicomweb/{HCID_OID}/studies/{study}/series/{series}"
        f"/instances/{sop}/rendered?window=40%2C400%2Clinear"
    )
    assert sent.headers["authorization"].startswith("DPoP ")
    assert sent.headers[PATIENT_NIN_HEADER] == PATIENT_NIN
    assert sent.headers["accept"].startswith("image/png")
    assert "cookie" not in sent.headers


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("suffix", "status"),
    [
        ("studies/{other}/thumbnail", 404),
        ("studies/{study}/series/{series}/instances/{sop}/frames/1", 404),
        ("studies/{study}/series/{series}/instances/{sop}/rendered?window=0,0", 400),
        ("studies/{study}/series/{series}/instances/{sop}/rendered?quality=1", 400),
        ("studies/%2e%2e/thumbnail", 400),
        ("studies/{study}/series/{series}/instances/{sop}/rendered/%2e%2e/%2e%2e/thumbnail", 404),
    ],
)
async def test_the_proxy_refuses_before_the_hub_is_asked(
    viewer: tuple[httpx.AsyncClient, ImagingFakes], suffix: str, status: int
) -> None:
    client, fakes = viewer
    await client.get(f"/helsepersonell/dokument/{TOKEN}")
    study, series, sop = _uids(CT)
    path = suffix.format(study=study, series=series, sop=sop, other=CR.study_instance_uid)
    got = await client.get(f"/helsepersonell/dokument/{TOKEN}/bilder/{path}")
    assert got.status_code in (status, 404), got.text
    assert fakes.dicomweb == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("hub", "portal"), [(401, 403), (403, 403), (404, 404), (500, 502), (502, 502)]
)
async def test_the_hubs_refusals_become_the_portals(
    viewer: tuple[httpx.AsyncClient, ImagingFakes], hub: int, portal: int
) -> None:
    client, fakes = viewer
    fakes.answer_status = hub
    study = CT.study_instance_uid
    got = await client.get(f"/helsepersonell/dokument/{TOKEN}/bilder/studies/{study}/thumbnail")
    assert got.status_code == portal and b"no" not in got.content


@pytest.mark.anyio
async def test_a_document_not_listed_has_no_pixels(
    viewer: tuple[httpx.AsyncClient, ImagingFakes],
) -> None:
    client, fakes = viewer
    other = f"{HCID_OID}~2.16.578.1.12.4.5.100.1.2~{CR.study_instance_uid}"
    got = await client.get(
        f"/helsepersonell/dokument/{other}/bilder/studies/{CR.study_instance_uid}/thumbnail"
    )
    assert got.status_code == 404 and fakes.dicomweb == []


@pytest.mark.anyio
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    segments=st.lists(
        st.sampled_from(
            ["studies", "series", "instances", "frames", "thumbnail", "rendered", "metadata", "2"]
            + list(_uids(CT))
            + list(_uids(US))
        )
        | st.text(max_size=10),
        min_size=1,
        max_size=8,
    ),
    query=st.lists(
        st.tuples(st.sampled_from(["window", "viewport", "x"]), st.text(max_size=20)), max_size=2
    ),
    range_header=st.none()
    | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
)
async def test_any_proxy_request_is_4xx_or_reaches_the_hub_for_this_study_only(
    viewer: tuple[httpx.AsyncClient, ImagingFakes],
    segments: list[str],
    query: list[tuple[str, str]],
    range_header: str | None,
) -> None:
    client, fakes = viewer
    before = len(fakes.dicomweb)
    path = "/".join(quote(s, safe="") for s in segments)
    headers = {"range": range_header} if range_header is not None else {}
    got = await client.get(
        f"/helsepersonell/dokument/{TOKEN}/bilder/{path}", params=query, headers=headers
    )
    assert got.status_code < 500, (path, query, got.status_code)
    sent = fakes.dicomweb[before:]
    if got.status_code >= 400:
        assert sent == []
    for request in sent:
        assert request.url.path.startswith(f"/dicomweb/{HCID_OID}/studies/{CT.study_instance_uid}/")
