"""DICOMweb at the media archive (PS3.18) through `dicomweb-client`, with the trust framework.

One STS and one archive for the module (tests/media/dicomweb_harness.py); studies are stored
over STOW-RS by a health worker bound to each patient, then searched and retrieved.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import orjson
import pydicom
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import generate_frames
from pydicom.uid import generate_uid

from onerecord.audit import AuditAction, AuditOutcome
from onerecord.dicom import dataset_to_json
from onerecord.synth.dicom import SynthStudy, patient_studies
from tests.media.dicomweb_harness import STORE_SCOPE, MediaNet, start_media
from tests.source.trust_harness import Token, hub_headers

REFERENCE = date(2026, 11, 1)
CT = "1.2.840.10008.5.1.4.1.1.2"


@dataclass
class Stored:
    media: MediaNet
    adult: str
    teen: str
    other: str
    studies: dict[str, list[SynthStudy]]


def _studies(media: MediaNet, key: str, seed: int) -> list[SynthStudy]:
    return patient_studies(
        media.patient(key), seed=seed, reference_date=REFERENCE, ct_slices=3, size=64
    )


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stored]:
    with start_media(tmp_path_factory.mktemp("dicomweb")) as media:
        studies: dict[str, list[SynthStudy]] = {}
        nins = {}
        for key, seed in (("adult", 5), ("teen14", 6), ("elderly", 7)):
            nin = media.net.citizen(key)
            nins[key] = nin
            studies[nin] = _studies(media, key, seed)
            token = media.net.hcp_token(nin, scope=STORE_SCOPE)
            client = media.client(token)
            for study in studies[nin]:
                answer = client.store_instances(list(study.instances))
                assert len(answer.ReferencedSOPSequence) == len(study.instances)
        yield Stored(media, nins["adult"], nins["teen14"], nins["elderly"], studies)


def _ct(stored: Stored) -> SynthStudy:
    return next(s for s in stored.studies[stored.adult] if s.instances[0].SOPClassUID == CT)


def test_stored_studies_are_found_at_every_level(stored: Stored) -> None:
    client = stored.media.client(stored.media.net.hcp_token(stored.adult))
    studies = client.search_for_studies()
    assert len(studies) == len(stored.studies[stored.adult])
    ct = _ct(stored)
    series = client.search_for_series(study_instance_uid=ct.study_instance_uid)
    assert len(series) == 1
    series_uid = series[0]["0020000E"]["Value"][0]
    instances = client.search_for_instances(
        study_instance_uid=ct.study_instance_uid, series_instance_uid=series_uid
    )
    assert sorted(i["00080018"]["Value"][0] for i in instances) == sorted(
        ds.SOPInstanceUID for ds in ct.instances
    )


def _uids(matches: list[dict[str, dict]], tag: str) -> list[str]:
    return [m[tag]["Value"][0] for m in matches]


def test_qido_keys_paging_and_fields(stored: Stored) -> None:
    client = stored.media.client(stored.media.net.hcp_token(stored.adult))
    everything = client.search_for_studies()
    ct = _ct(stored)
    first = ct.instances[0]
    # PatientID of the bound patient, AccessionNumber, a date range, ModalitiesInStudy.
    by_id = client.search_for_studies(search_filters={"PatientID": stored.adult})
    assert len(by_id) == len(everything)
    if first.AccessionNumber:
        found = client.search_for_studies(search_filters={"AccessionNumber": first.AccessionNumber})
        assert ct.study_instance_uid in _uids(found, "0020000D")
    day = first.StudyDate
    found = client.search_for_studies(search_filters={"StudyDate": f"{day}-{day}"})
    assert ct.study_instance_uid in _uids(found, "0020000D")
    assert client.search_for_studies(search_filters={"StudyDate": "19000101-19000102"}) == []
    found = client.search_for_studies(search_filters={"ModalitiesInStudy": "CT"})
    assert _uids(found, "0020000D") == [ct.study_instance_uid]
    assert found[0]["00080061"]["Value"] == ["CT"]
    assert found[0]["00201208"]["Value"] == [len(ct.instances)]
    assert found[0]["00081190"]["Value"][0].endswith(f"/studies/{ct.study_instance_uid}")
    # Paging: limit and offset walk the same order.
    pages = [client.search_for_studies(limit=2, offset=o) for o in range(0, len(everything), 2)]
    assert [u for p in pages for u in _uids(p, "0020000D")] == _uids(everything, "0020000D")
    # includefield: an attribute outside the defaults, from the stored metadata.
    found = client.search_for_instances(
        study_instance_uid=ct.study_instance_uid, fields=["ImagePositionPatient"]
    )
    assert all("00200032" in m for m in found)
    # fuzzymatching: case and ^ ignored, a prefix.
    found = client.search_for_studies(
        fuzzymatching=True, search_filters={"PatientName": "testesen adu"}
    )
    assert len(found) == len(everything)
    series = client.search_for_series(search_filters={"Modality": "CT"})
    assert len(series) == 1 and "0020000D" in series[0]


def test_wado_instance_metadata_frames_rendered(stored: Stored) -> None:
    client = stored.media.client(stored.media.net.hcp_token(stored.adult))
    ct = _ct(stored)
    original = ct.instances[0]
    uids = (ct.study_instance_uid, original.SeriesInstanceUID, original.SOPInstanceUID)
    instance = client.retrieve_instance(*uids)
    assert instance.SOPInstanceUID == original.SOPInstanceUID
    assert instance.PixelData == original.PixelData
    metadata = client.retrieve_instance_metadata(*uids)
    assert metadata["00080018"]["Value"] == [original.SOPInstanceUID]
    bulk = metadata["7FE00010"]["BulkDataURI"]
    assert bulk.startswith(stored.media.dicomweb + f"/studies/{uids[0]}/series/{uids[1]}/")
    assert client.retrieve_bulkdata(bulk) == [original.PixelData]
    token = stored.media.net.hcp_token(stored.adult)
    base = bulk.removeprefix(stored.media.dicomweb + "/").removesuffix("/7FE00010")
    for tail in ("00100010", "00081115/0/00081150", "7FE00010/0/00080018"):
        r = stored.media.get(token, f"{base}/{tail}")
        assert r.status_code in (400, 404), (tail, r.status_code)
    study_metadata = client.retrieve_study_metadata(ct.study_instance_uid)
    assert len(study_metadata) == len(ct.instances)
    frames = client.retrieve_instance_frames(*uids, frame_numbers=[1])
    assert frames == [original.PixelData]
    png = client.retrieve_instance_rendered(*uids, media_types=("image/png",))
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (original.Columns, original.Rows)
    jpeg = client.retrieve_instance_rendered(
        *uids, media_types=("image/jpeg",), params={"window": "40,400"}
    )
    assert Image.open(io.BytesIO(jpeg)).format == "JPEG"
    r = stored.media.get(
        stored.media.net.hcp_token(stored.adult),
        f"studies/{uids[0]}/series/{uids[1]}/instances/{uids[2]}/thumbnail",
        Accept="image/png",
    )
    assert r.status_code == 200, r.text
    assert max(Image.open(io.BytesIO(r.content)).size) <= 128
    series = client.retrieve_series(uids[0], uids[1])
    assert sorted(ds.SOPInstanceUID for ds in series) == sorted(
        ds.SOPInstanceUID for ds in ct.instances
    )


def test_a_photograph_renders_and_retrieves_as_stored(stored: Stored) -> None:
    client = stored.media.client(stored.media.net.hcp_token(stored.adult))
    photo = next(
        ds
        for s in stored.studies[stored.adult]
        for ds in s.instances
        if ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.77.1.4"
    )
    uids = (photo.StudyInstanceUID, photo.SeriesInstanceUID, photo.SOPInstanceUID)
    jpeg = client.retrieve_instance_rendered(*uids, media_types=("image/jpeg",))
    assert Image.open(io.BytesIO(jpeg)).format == "JPEG"
    got = client.retrieve_instance(*uids, media_types=(("application/dicom", "*"),))
    assert got.SOPInstanceUID == photo.SOPInstanceUID


def test_every_kind_of_instance_answers_pixel_requests_without_a_5xx(stored: Stored) -> None:
    token = stored.media.net.hcp_token(stored.adult)
    for study in stored.studies[stored.adult]:
        ds = study.instances[0]
        base = f"studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        base += f"/instances/{ds.SOPInstanceUID}"
        for tail, accept in (
            ("frames/1", "*/*"),
            ("frames/2", "*/*"),
            ("rendered", "image/png"),
            ("rendered", "image/jpeg"),
            ("thumbnail", "*/*"),
            ("bulkdata/7FE00010", "*/*"),
            ("frames/1/rendered", "image/jpeg"),
        ):
            r = stored.media.get(token, f"{base}/{tail}", Accept=accept)
            assert r.status_code in (200, 404, 406), (ds.SOPClassUID, tail, r.status_code, r.text)
        r = stored.media.get(token, f"studies/{ds.StudyInstanceUID}/thumbnail", Accept="*/*")
        assert r.status_code in (200, 406), (ds.SOPClassUID, r.status_code, r.text)


def test_the_same_instance_twice_is_one_instance(stored: Stored) -> None:
    ct = _ct(stored)
    token = stored.media.net.hcp_token(stored.adult, scope=STORE_SCOPE)
    answer = stored.media.client(token).store_instances([ct.instances[0]])
    assert len(answer.ReferencedSOPSequence) == 1
    client = stored.media.client(stored.media.net.hcp_token(stored.adult))
    found = client.search_for_instances(study_instance_uid=ct.study_instance_uid)
    assert len(found) == len(ct.instances)


# --- refusals --------------------------------------------------------------------------------


def _denied(stored: Stored, mark: int, reason: str) -> None:
    records = stored.media.records_since(mark)
    assert any(r.outcome is AuditOutcome.DENIED and r.reason == reason for r in records), [
        (r.action, r.outcome, r.reason) for r in records
    ]


def test_no_token_is_refused_and_audited(stored: Stored) -> None:
    mark = len(stored.media.audit.records)
    r = stored.media.get(None, "studies")
    assert r.status_code == 401
    assert "DPoP" in r.headers["WWW-Authenticate"]
    _denied(stored, mark, "invalid_request")


def test_another_audience_is_refused_and_audited(stored: Stored) -> None:
    from tests.media.dicomweb_harness import OTHER_AUDIENCE

    token = stored.media.net.hcp_token(stored.adult, audience=OTHER_AUDIENCE)
    mark = len(stored.media.audit.records)
    r = stored.media.get(token, "studies")
    assert r.status_code == 401
    _denied(stored, mark, "invalid_token")


def test_another_patients_id_is_refused_and_audited(stored: Stored) -> None:
    token = stored.media.net.hcp_token(stored.adult)
    mark = len(stored.media.audit.records)
    r = stored.media.get(token, f"studies?PatientID={stored.other}")
    assert r.status_code == 403
    _denied(stored, mark, "wrong-patient")
    mark = len(stored.media.audit.records)
    r = stored.media.get(token, "studies?PatientID=1*")
    assert r.status_code == 403
    # A patient header the attestation is not bound to: refused by the binding (ATT-4).
    r = stored.media.get(token, "studies", **{"nhn-patient-nin": stored.other})
    assert r.status_code == 403
    _denied(stored, mark, "insufficient_scope")


def test_guessing_another_patients_uids_is_not_found_and_audited(stored: Stored) -> None:
    theirs = stored.studies[stored.other][0]
    ds = theirs.instances[0]
    token = stored.media.net.hcp_token(stored.adult)
    paths = [
        f"studies/{theirs.study_instance_uid}",
        f"studies/{theirs.study_instance_uid}/metadata",
        f"studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/"
        f"{ds.SOPInstanceUID}/rendered",
    ]
    absent = stored.media.get(token, "studies/1.2.3.4.5/metadata")
    assert absent.status_code == 404
    for path in paths:
        mark = len(stored.media.audit.records)
        r = stored.media.get(token, path)
        assert r.status_code == 404
        assert r.content == absent.content  # no difference between absent and not yours
        _denied(stored, mark, "wrong-patient")
    found = stored.media.client(token).search_for_studies(
        search_filters={"StudyInstanceUID": theirs.study_instance_uid}
    )
    assert found == []


def test_a_citizen_reads_their_own_and_under_16_is_refused(stored: Stored) -> None:
    adult = stored.media.client(stored.media.net.citizen_token("adult"))
    assert len(adult.search_for_studies()) == len(stored.studies[stored.adult])
    teen_token = stored.media.net.citizen_token("teen14")
    mark = len(stored.media.audit.records)
    r = stored.media.get(teen_token, "studies")
    assert r.status_code == 200 and r.json() == []
    assert "citizen-under-age" in r.headers["Warning"]
    assert any(r.reason == "citizen-under-age" for r in stored.media.records_since(mark))
    study = stored.studies[stored.teen][0].study_instance_uid
    mark = len(stored.media.audit.records)
    r = stored.media.get(teen_token, f"studies/{study}/metadata")
    assert r.status_code == 403
    _denied(stored, mark, "citizen-under-age")


def test_a_parent_reads_a_childs_and_a_stranger_is_refused(stored: Stored) -> None:
    child = stored.media.net.citizen("child10")
    parent = stored.media.net.citizen_token("parent", patient=child)
    r = stored.media.get(parent, "studies")
    assert r.status_code == 200 and r.json() == []  # bound to the child, who has no images
    mark = len(stored.media.audit.records)
    stranger = stored.media.net.citizen_token("adult", patient=child)
    assert stored.media.get(stranger, "studies").status_code == 403
    _denied(stored, mark, "no-representation")


def test_stow_to_a_study_stores_only_that_studys_instances(stored: Stored) -> None:
    ct = _ct(stored)
    photo = next(s for s in stored.studies[stored.adult] if s is not ct)
    token = stored.media.net.hcp_token(stored.adult, scope=STORE_SCOPE)
    body, content_type = _stow_body([ct.instances[0], photo.instances[0]])
    r = stored.media.post(token, f"studies/{ct.study_instance_uid}", body, content_type)
    assert r.status_code == 202, r.text
    answer = r.json()
    assert len(answer["00081199"]["Value"]) == 1  # the CT slice (again: one instance)
    assert answer["00081198"]["Value"][0]["00081197"]["Value"] == [0xC000]
    assert answer["00081190"]["Value"][0].endswith(f"/studies/{ct.study_instance_uid}")


def _json_stow_body(ds: Dataset, pixel_type: str, pixels: bytes) -> tuple[bytes, str]:
    metadata = dataset_to_json(ds, bulkdata_uri=lambda path: "pixels", bulkdata_threshold=0)
    metadata = {t: v for t, v in metadata.items() if "BulkDataURI" not in v or t == "7FE00010"}
    boundary = "js0n"
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom+json\r\n\r\n".encode()
        + orjson.dumps([metadata])
        + f"\r\n--{boundary}\r\nContent-Type: {pixel_type}\r\n"
        f"Content-Location: pixels\r\n\r\n".encode()
        + pixels
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f'multipart/related; type="application/dicom+json"; boundary={boundary}'


def test_json_stow_of_native_and_jpeg_pixel_data(stored: Stored) -> None:
    token = stored.media.net.hcp_token(stored.adult, scope=STORE_SCOPE)
    ct = copy.deepcopy(_ct(stored).instances[0])
    ct.SOPInstanceUID = generate_uid()
    body, content_type = _json_stow_body(ct, "application/octet-stream", ct.PixelData)
    r = stored.media.post(token, "studies", body, content_type)
    assert r.status_code == 200, r.text
    photo = copy.deepcopy(
        next(
            ds
            for s in stored.studies[stored.adult]
            for ds in s.instances
            if ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.77.1.4"
        )
    )
    photo.SOPInstanceUID = generate_uid()
    jpeg = next(generate_frames(photo.PixelData, number_of_frames=1))
    photo.file_meta = FileMetaDataset()  # the transfer syntax comes from the part's type
    body, content_type = _json_stow_body(photo, "image/jpeg", jpeg)
    r = stored.media.post(token, "studies", body, content_type)
    assert r.status_code == 200, r.text
    client = stored.media.client(stored.media.net.hcp_token(stored.adult))
    got = client.retrieve_instance(ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.SOPInstanceUID)
    assert got.PixelData == ct.PixelData
    rendered = client.retrieve_instance_rendered(
        photo.StudyInstanceUID,
        photo.SeriesInstanceUID,
        photo.SOPInstanceUID,
        media_types=("image/jpeg",),
    )
    assert rendered == jpeg  # a JPEG baseline frame asked for as JPEG is sent as stored
    body, content_type = _json_stow_body(photo, "image/png", b"\x89PNG\r\n")
    r = stored.media.post(token, "studies", body, content_type)
    assert r.status_code == 409  # a truncated PNG (tests/media/test_wic.py: whole ones)
    assert r.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0xC000]


def test_only_health_personnel_with_the_store_scope_store(stored: Stored) -> None:
    ct = _ct(stored)
    body, content_type = _stow_body([ct.instances[0]])
    for token, reason in (
        (stored.media.net.citizen_token("adult"), "not-health-personnel"),
        (stored.media.net.hcp_token(stored.adult), "scope-missing"),
    ):
        mark = len(stored.media.audit.records)
        r = stored.media.post(token, "studies", body, content_type)
        assert r.status_code == 403, r.text
        _denied(stored, mark, reason)
        assert all(r.action is AuditAction.STORE for r in stored.media.records_since(mark))


def test_storing_another_patients_instance_fails_with_0124(stored: Stored) -> None:
    theirs = stored.studies[stored.other][0].instances[0]
    token = stored.media.net.hcp_token(stored.adult, scope=STORE_SCOPE)
    body, content_type = _stow_body([theirs])
    mark = len(stored.media.audit.records)
    r = stored.media.post(token, "studies", body, content_type)
    assert r.status_code == 409
    failed = r.json()["00081198"]["Value"]
    assert failed[0]["00081197"]["Value"] == [0x0124]
    _denied(stored, mark, "wrong-patient")


def _stow_body(datasets: list[Dataset]) -> tuple[bytes, str]:
    boundary = "b0undary"
    out = b""
    for ds in datasets:
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
        out += f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        out += buffer.getvalue() + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f'multipart/related; type="application/dicom"; boundary={boundary}'


def _hub_headers(stored: Stored, token: Token) -> dict[str, str]:
    """What the hub sends for a caller whose token it validated (docs/hub.md)."""
    return hub_headers(stored.media.net, token, "hub-media-1")


def test_a_hub_assertion_is_accepted_once_and_bound_alike(stored: Stored) -> None:
    headers = _hub_headers(stored, stored.media.net.hcp_token(stored.adult))
    r = stored.media.get(None, "studies", **headers)
    assert r.status_code == 200, r.text
    assert len(r.json()) == len(stored.studies[stored.adult])
    audited = [a for a in stored.media.audit.records if a.correlation_id == "hub-media-1"]
    assert audited[-1].outcome is AuditOutcome.SUCCESS and audited[-1].practitioner is not None
    assert stored.media.get(None, "studies", **headers).status_code == 401  # a replay
    theirs = stored.studies[stored.other][0].study_instance_uid
    headers = _hub_headers(stored, stored.media.net.hcp_token(stored.adult))
    assert stored.media.get(None, f"studies/{theirs}/metadata", **headers).status_code == 404


# --- hostile input ---------------------------------------------------------------------------

_KEYS = [
    "PatientID",
    "PatientName",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ModalitiesInStudy",
    "StudyInstanceUID",
    "SeriesNumber",
    "Modality",
    "SOPInstanceUID",
    "includefield",
    "limit",
    "offset",
    "fuzzymatching",
    "00100020",
    "0020000D",
    "00081030.00080100",
    "accept",
]
_HOSTILE_PARAMS = st.lists(
    st.tuples(st.sampled_from(_KEYS) | st.text(max_size=12), st.text(max_size=40)), max_size=6
)
_PATHS = st.sampled_from(
    ["studies", "series", "instances", "studies/1.2.3/series", "studies/1.2.3/series/1.2/instances"]
) | st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789./%-", max_size=60)


@dataclass
class HostileTokens:
    read: Token
    store: Token


@pytest.fixture(scope="module")
def tokens(stored: Stored) -> HostileTokens:
    net = stored.media.net
    return HostileTokens(
        net.hcp_token(stored.adult), net.hcp_token(stored.adult, scope=STORE_SCOPE)
    )


def _successful_stores(stored: Stored, mark: int) -> int:
    return sum(
        1
        for r in stored.media.records_since(mark)
        if r.action is AuditAction.STORE and r.outcome is AuditOutcome.SUCCESS
    )


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(path=_PATHS, params=_HOSTILE_PARAMS)
def test_hostile_queries_are_4xx_never_5xx(
    stored: Stored, tokens: HostileTokens, path: str, params: list[tuple[str, str]]
) -> None:
    token = tokens.read
    url = f"{stored.media.dicomweb}/{path}"
    r = requests.get(url, params=params, headers=token.headers("GET", url), timeout=30)
    assert r.status_code < 500, (path, params, r.text)
    assert r.status_code in (200, 400, 403, 404, 406), (path, params, r.status_code)


_BOUNDARY = "hostile"
_PART = st.binary(max_size=300) | st.builds(
    lambda head, cut: head[:cut],
    st.just(b"\0" * 128 + b"DICM\x02\x00\x01\x00OB\x00\x00\x02\x00\x00\x00\x00\x01"),
    st.integers(0, 160),
)
_JSON_PARTS = st.lists(
    st.sampled_from(
        [
            b"Content-Type: application/dicom+json\r\n\r\n[{}]",
            b'Content-Type: application/dicom+json\r\n\r\n[{"00080018": {"vr": "UI"}}]',
            b'Content-Type: application/dicom+json\r\n\r\n[{"7FE00010": '
            b'{"vr": "OB", "BulkDataURI": "x"}}]',
            b"Content-Type: application/octet-stream\r\nContent-Location: x\r\n\r\nabc",
            b"Content-Type: image/png\r\nContent-Location: x\r\n\r\n\x89PNG",
            b"Content-Type: application/dicom+json\r\n\r\nnot json",
        ]
    )
    | st.binary(max_size=200).map(lambda b: b"Content-Type: application/dicom+json\r\n\r\n" + b),
    min_size=1,
    max_size=3,
).map(
    lambda parts: (
        b"".join(b"--" + _BOUNDARY.encode() + b"\r\n" + p + b"\r\n" for p in parts)
        + b"--"
        + _BOUNDARY.encode()
        + b"--\r\n"
    )
)
_BODIES = st.one_of(
    st.binary(max_size=500),
    _JSON_PARTS,
    st.lists(_PART, min_size=1, max_size=3).map(
        lambda parts: (
            b"".join(
                b"--"
                + _BOUNDARY.encode()
                + b"\r\nContent-Type: application/dicom\r\n\r\n"
                + p
                + b"\r\n"
                for p in parts
            )
            + b"--"
            + _BOUNDARY.encode()
            + b"--\r\n"
        )
    ),
)
_CONTENT_TYPES = st.sampled_from(
    [
        f'multipart/related; type="application/dicom"; boundary={_BOUNDARY}',
        f"multipart/related; type=application/dicom; boundary={_BOUNDARY}",
        f'multipart/related; type="application/dicom+xml"; boundary={_BOUNDARY}',
        f'multipart/related; type="application/dicom+json"; boundary={_BOUNDARY}',
        "multipart/related; boundary=x",
        "application/dicom",
        "",
    ]
) | st.text(max_size=60)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=_BODIES, content_type=_CONTENT_TYPES)
def test_hostile_stow_bodies_are_4xx_and_store_nothing(
    stored: Stored, tokens: HostileTokens, body: bytes, content_type: str
) -> None:
    token = tokens.store
    mark = len(stored.media.audit.records)
    url = f"{stored.media.dicomweb}/studies"
    headers = token.headers("POST", url)
    if content_type.isprintable():
        headers["Content-Type"] = content_type
    try:
        r = requests.post(url, data=body, headers=headers, timeout=30)
    except ValueError:
        return  # requests itself refuses the header: nothing was sent
    assert 400 <= r.status_code < 500, (content_type, body[:80], r.status_code, r.text)
    assert _successful_stores(stored, mark) == 0
