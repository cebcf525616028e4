"""DICOMweb through the hub (hub/dicomweb.py) against real servers on 127.0.0.1.

A real STS and a real media archive (tests/media/dicomweb_harness.py) behind a real hub with the
trust framework on: the caller's DPoP-bound token is checked at the hub, which asks the archive
with a hub assertion. A second, stand-in archive (a small Starlette app that also checks the
hub assertion) serves what the real one does not yet (Range on a video, docs/media.md) and
misbehaves on request: cut bodies, 500s, silence, slow bodies.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import pytest
import requests
from dicomweb_client import DICOMwebClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from structlog.testing import capture_logs

from onerecord.audit import AuditAction, AuditOutcome, AuditRecord, MemoryAuditSink
from onerecord.domain import HomeCommunityId
from onerecord.hub.app import create_hub_app
from onerecord.hub.breaker import BreakerState
from onerecord.hub.client import FakeRegionClient, RegionResponse
from onerecord.hub.dicomweb import parse_study_path, rewrite_urls
from onerecord.hub.directory import Region, RegionDirectory
from onerecord.hub.security import HubSecurity
from onerecord.hub.settings import HubSettings
from onerecord.mhd import BadRequest, NotFound
from onerecord.synth.dicom import SynthStudy, patient_studies
from onerecord.trust.access_token import AuthSettings
from onerecord.trust.assertion import HUB_ASSERTION_HEADER, verify_hub_request
from onerecord.trust.errors import TrustError
from onerecord.trust.keys import SigningKey, StaticJwks
from onerecord.trust.replay import MemoryReplayCache
from tests.media.dicomweb_harness import STORE_SCOPE, DPoPAuth, MediaNet, start_media
from tests.source.trust_harness import HCID, HUB_ISSUER, Token
from tests.support.servers import free_port, serve_in_thread, serve_process

HUB_AUDIENCE = "nhn:phr"  # the hub's audience; the STS of the harness issues tokens for it
REFERENCE = date(2026, 11, 1)
CT = "1.2.840.10008.5.1.4.1.1.2"
STANDIN = "urn:oid:2.16.578.1.12.4.5.100.2"
DOWN = "urn:oid:2.16.578.1.12.4.5.100.7"
NO_MEDIA = "urn:oid:2.16.578.1.12.4.5.100.8"
SERIES, SOP = "1.2.826.0.1.3680043.10.2", "1.2.826.0.1.3680043.10.3"
BEHAVIOUR = {  # the stand-in archive's studies, each behaving one way
    "1.2.826.0.1.3680043.10.1.1": "video",
    "1.2.826.0.1.3680043.10.1.2": "cut",
    "1.2.826.0.1.3680043.10.1.3": "slow",
    "1.2.826.0.1.3680043.10.1.4": "fail",
    "1.2.826.0.1.3680043.10.1.5": "hang",
    "1.2.826.0.1.3680043.10.1.6": "refuse",
}
STUDY_OF = {kind: uid for uid, kind in BEHAVIOUR.items()}
VIDEO = bytes(range(256)) * (32 * 1024)  # 8 MiB
VIDEO_ETAG = '"video-1"'
RETRIEVE_TIMEOUT_S = 2.0


def oid(hcid: str) -> str:
    return hcid.removeprefix("urn:oid:")


class StandIn:
    """An archive that checks the hub's assertion as the real one does, then plays its part."""

    def __init__(self, hub_key: SigningKey, sts_url: str) -> None:
        self.hub_key = hub_key
        self.sts_url = sts_url
        self.replay = MemoryReplayCache()
        self.release = threading.Event()
        self.released_in_time = False
        self.seen: list[dict[str, str]] = []

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/dicomweb/{path:path}", self.endpoint)])

    async def endpoint(self, request: Request) -> Response:
        try:
            await verify_hub_request(
                request.headers.get(HUB_ASSERTION_HEADER, ""),
                request.headers,
                hub_keys=StaticJwks([self.hub_key]),
                hub_issuer=HUB_ISSUER,
                auth=AuthSettings(issuer=self.sts_url, audience=STANDIN),
                replay=self.replay,
                now=time.time(),
                receiver="archive",
            )
        except TrustError as exc:
            return Response(orjson.dumps({"status": 401, "message": exc.error}), status_code=401)
        self.seen.append(dict(request.headers))
        kind = BEHAVIOUR.get(request.path_params["path"].split("/")[1], "absent")
        if kind == "video":
            return _video(request)
        if kind == "cut":
            return StreamingResponse(
                _cut(), media_type="video/mp4", headers={"content-length": str(len(VIDEO))}
            )
        if kind == "slow":
            return StreamingResponse(self._slow(), media_type="video/mp4")
        if kind == "fail":
            return Response(b"boom", status_code=500)
        if kind == "hang":
            for _ in range(200):
                if await request.is_disconnected():
                    break
                await asyncio.sleep(0.05)
            return Response(b"late")
        if kind == "refuse":
            body = {"status": 403, "message": "access denied by policy: document-blocked"}
            return Response(orjson.dumps(body), status_code=403, media_type="application/json")
        return Response(b'{"status":404}', status_code=404, media_type="application/json")

    async def _slow(self) -> AsyncIterator[bytes]:
        """The first MiB, then the rest only once the test has seen the first through the hub."""
        yield VIDEO[: 1 << 20]
        for _ in range(400):
            if self.release.is_set():
                break
            await asyncio.sleep(0.025)
        # False when the test never saw the first MiB (a hub holding the body back).
        self.released_in_time = self.release.is_set()
        for start in range(1 << 20, len(VIDEO), 1 << 18):
            yield VIDEO[start : start + (1 << 18)]


def _video(request: Request) -> Response:
    """The stored MP4 with HTTP Range (RFC 9110 §14), as the archive's rendered video will be."""
    headers = {"accept-ranges": "bytes", "etag": VIDEO_ETAG}
    if request.headers.get("if-none-match") == VIDEO_ETAG:
        return Response(status_code=304, headers=headers)
    asked = request.headers.get("range")
    if asked is None:
        return StreamingResponse(_chunks(VIDEO), media_type="video/mp4", headers=headers)
    first, _, last = asked.removeprefix("bytes=").partition("-")
    start, end = int(first), min(int(last) if last else len(VIDEO) - 1, len(VIDEO) - 1)
    headers["content-range"] = f"bytes {start}-{end}/{len(VIDEO)}"
    headers["content-length"] = str(end - start + 1)
    return StreamingResponse(
        _chunks(VIDEO[start : end + 1]), status_code=206, media_type="video/mp4", headers=headers
    )


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 1 << 18):
        yield data[start : start + (1 << 18)]


async def _cut() -> AsyncIterator[bytes]:
    yield VIDEO[: len(VIDEO) // 2]
    raise RuntimeError("the archive falls over inside the body")


@dataclass
class Env:
    """The running STS, archives and hub; the stored studies; the hub's audit."""

    media: MediaNet
    hub: str
    hub_app: Any
    hub_audit: MemoryAuditSink
    standin: StandIn
    adult: str
    teen: str
    other: str
    studies: dict[str, list[SynthStudy]]

    def base(self, hcid: str = HCID) -> str:
        return f"{self.hub}/dicomweb/{oid(hcid)}"

    def token(self, patient: str | None) -> Token:
        return self.media.net.hcp_token(patient, audience=HUB_AUDIENCE)

    def client(self, token: Token) -> DICOMwebClient:
        session = requests.Session()
        session.auth = DPoPAuth(token)
        return DICOMwebClient(self.base(), session=session, timeout=60)

    def get(
        self, token: Token, path: str, *, hcid: str = HCID, **headers: str
    ) -> requests.Response:
        url = f"{self.base(hcid)}/{path}"
        return requests.get(url, headers=token.headers("GET", url, **headers), timeout=30)

    def hub_rows(self, mark: int) -> list[AuditRecord]:
        return list(self.hub_audit.records[mark:])

    def archive_rows(self, mark: int) -> list[AuditRecord]:
        return list(self.media.audit.records[mark:])


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    workdir = tmp_path_factory.mktemp("hub-dicomweb")
    with start_media(workdir) as media, ExitStack() as stack:
        net = media.net
        studies: dict[str, list[SynthStudy]] = {}
        nins = {}
        for key, seed in (("adult", 5), ("teen14", 6), ("elderly", 7)):
            nin = net.citizen(key)
            nins[key] = nin
            studies[nin] = patient_studies(
                media.patient(key), seed=seed, reference_date=REFERENCE, ct_slices=3, size=64
            )
            store = media.client(net.hcp_token(nin, scope=STORE_SCOPE))
            for study in studies[nin]:
                store.store_instances(list(study.instances))
        standin = StandIn(net.hub_key, net.sts_url)
        standin_url = stack.enter_context(serve_in_thread(standin.app()))
        port = free_port()
        hub_url = f"http://127.0.0.1:{port}"
        regions: list[dict[str, Any]] = [
            {"name": "Helse Sør-Øst", "home_community_id": HCID, "media_url": media.dicomweb},
            {
                "name": "Stand-in",
                "home_community_id": STANDIN,
                "media_url": f"{standin_url}/dicomweb",
            },
            {
                "name": "Down",
                "home_community_id": DOWN,
                "media_url": f"http://127.0.0.1:{free_port()}/dicomweb",
            },
            {"name": "No images", "home_community_id": NO_MEDIA},
        ]
        for region in regions:
            region["base_url"] = f"{region.get('media_url', standin_url)}/fhir-unused"
        directory = workdir / "regions.json"
        directory.write_bytes(orjson.dumps({"regions": regions}))
        security = HubSecurity(
            auth=AuthSettings(issuer=net.sts_url, audience=HUB_AUDIENCE),
            keys=StaticJwks([net.sts_key]),
            replay=MemoryReplayCache(),
            signing_key=net.hub_key,
            assertion_issuer=HUB_ISSUER,
            public_base_url=hub_url,
        )
        hub_audit = MemoryAuditSink()
        app = create_hub_app(
            HubSettings(
                directory_file=directory,
                public_base_url=hub_url,
                retrieve_timeout_s=RETRIEVE_TIMEOUT_S,
                retry_delay_s=0.001,
            ),
            security=security,
            audit=hub_audit,
        )
        hub = stack.enter_context(serve_in_thread(app, port=port))
        yield Env(
            media,
            hub,
            app,
            hub_audit,
            standin,
            nins["adult"],
            nins["teen14"],
            nins["elderly"],
            studies,
        )


def _ct(env: Env) -> SynthStudy:
    return next(s for s in env.studies[env.adult] if s.instances[0].SOPClassUID == CT)


def _hub_row(env: Env, mark: int) -> AuditRecord:
    (row,) = env.hub_rows(mark)
    return row


# --- through the hub to the real archive ---------------------------------------------------


def test_study_metadata_an_instance_and_a_rendered_frame_through_the_hub(env: Env) -> None:
    ct = _ct(env)
    original = ct.instances[0]
    uids = (ct.study_instance_uid, original.SeriesInstanceUID, original.SOPInstanceUID)
    client = env.client(env.token(env.adult))
    hub_mark, archive_mark = len(env.hub_audit.records), len(env.media.audit.records)

    metadata = client.retrieve_study_metadata(ct.study_instance_uid)
    assert sorted(m["00080018"]["Value"][0] for m in metadata) == sorted(
        ds.SOPInstanceUID for ds in ct.instances
    )
    instance = client.retrieve_instance(*uids)
    assert instance.PixelData == original.PixelData
    assert client.retrieve_instance_frames(*uids, frame_numbers=[1]) == [original.PixelData]
    png = client.retrieve_instance_frames_rendered(
        *uids, frame_numbers=[1], media_types=("image/png",)
    )
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (original.Columns, original.Rows)
    study = client.retrieve_study(ct.study_instance_uid)
    assert sorted(ds.SOPInstanceUID for ds in study) == sorted(
        ds.SOPInstanceUID for ds in ct.instances
    )
    # QIDO-RS under the study.
    assert len(client.search_for_series(ct.study_instance_uid)) == 1
    assert len(client.search_for_instances(ct.study_instance_uid)) == len(ct.instances)

    hub_rows = env.hub_rows(hub_mark)
    assert len(hub_rows) == 7
    assert [r.action for r in hub_rows][-2:] == [AuditAction.SEARCH, AuditAction.SEARCH]
    for row in hub_rows:
        assert row.outcome is AuditOutcome.SUCCESS
        assert row.document_ids == (ct.study_instance_uid,)
        assert row.regions == ((HCID, "ok"),)
        assert row.patient_id == env.adult and row.practitioner is not None
    # The archive saw each request as the hub's, with the hub's correlation id.
    archive_rows = env.archive_rows(archive_mark)
    assert {r.correlation_id for r in archive_rows} == {r.correlation_id for r in hub_rows}
    assert all(r.outcome is AuditOutcome.SUCCESS for r in archive_rows)


def test_the_archives_urls_in_dicom_json_become_the_hubs(env: Env) -> None:
    ct = _ct(env)
    original = ct.instances[0]
    uids = (ct.study_instance_uid, original.SeriesInstanceUID, original.SOPInstanceUID)
    client = env.client(env.token(env.adult))
    metadata = client.retrieve_instance_metadata(*uids)
    bulk = metadata["7FE00010"]["BulkDataURI"]
    assert bulk.startswith(f"{env.base()}/studies/{uids[0]}/series/{uids[1]}/")
    assert client.retrieve_bulkdata(bulk) == [original.PixelData]  # followed through the hub
    (series,) = client.search_for_series(ct.study_instance_uid)
    assert series["00081190"]["Value"][0] == f"{env.base()}/studies/{uids[0]}/series/{uids[1]}"
    assert env.media.media_url.encode() not in orjson.dumps(metadata)


def test_a_thumbnail_and_the_archives_406_through_the_hub(env: Env) -> None:
    ct = _ct(env)
    token = env.token(env.adult)
    r = env.get(token, f"studies/{ct.study_instance_uid}/thumbnail", Accept="image/png")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert max(Image.open(io.BytesIO(r.content)).size) <= 128
    r = env.get(token, f"studies/{ct.study_instance_uid}/metadata", Accept="text/html")
    assert r.status_code == 406  # the archive's answer, as it is


def test_guessing_another_patients_study_is_refused_and_audited_at_both(env: Env) -> None:
    theirs = env.studies[env.other][0]
    ds = theirs.instances[0]
    token = env.token(env.adult)
    absent = env.get(token, "studies/1.2.3.4.5/metadata")
    assert absent.status_code == 404
    for path in (
        f"studies/{theirs.study_instance_uid}",
        f"studies/{theirs.study_instance_uid}/metadata",
        f"studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/"
        f"{ds.SOPInstanceUID}/rendered",
    ):
        hub_mark, archive_mark = len(env.hub_audit.records), len(env.media.audit.records)
        r = env.get(token, path)
        assert r.status_code == 404
        assert r.content == absent.content  # not yours looks like absent, at the hub too
        row = _hub_row(env, hub_mark)
        assert row.outcome is AuditOutcome.ERROR and row.reason == "http-404"
        assert row.document_ids == (theirs.study_instance_uid,)
        denied = [r for r in env.archive_rows(archive_mark) if r.outcome is AuditOutcome.DENIED]
        assert [r.reason for r in denied] == ["wrong-patient"]
        assert denied[0].correlation_id == row.correlation_id


def test_a_citizen_under_16_is_refused_and_audited(env: Env) -> None:
    teen = env.media.net.citizen_token("teen14", audience=HUB_AUDIENCE)
    study = env.studies[env.teen][0].study_instance_uid
    hub_mark, archive_mark = len(env.hub_audit.records), len(env.media.audit.records)
    r = env.get(teen, f"studies/{study}/metadata")
    assert r.status_code == 403
    row = _hub_row(env, hub_mark)
    assert row.outcome is AuditOutcome.DENIED and row.regions == ((HCID, "denied"),)
    assert row.citizen is not None and row.document_ids == (study,)
    assert [r.reason for r in env.archive_rows(archive_mark)] == ["citizen-under-age"]
    # A search under the study answers nothing, and says why.
    r = env.get(teen, f"studies/{study}/series")
    assert r.status_code == 200 and r.json() == []
    assert "citizen-under-age" in r.headers["warning"]
    # An adult citizen reads their own study through the hub.
    adult = env.media.net.citizen_token("adult", audience=HUB_AUDIENCE)
    r = env.get(adult, f"studies/{_ct(env).study_instance_uid}/metadata")
    assert r.status_code == 200, r.text


def test_a_region_scoped_token_is_refused_at_the_hub_and_audited(env: Env) -> None:
    regional = env.media.net.hcp_token(env.adult)  # audience: the region, not the hub
    study = _ct(env).study_instance_uid
    hub_mark, archive_mark = len(env.hub_audit.records), len(env.media.audit.records)
    r = env.get(regional, f"studies/{study}/metadata")
    assert r.status_code == 401
    assert r.json()["resourceType"] == "OperationOutcome"
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    row = _hub_row(env, hub_mark)
    assert row.outcome is AuditOutcome.DENIED and row.reason == "invalid_token"
    assert row.regions == ()  # no region asked
    assert env.archive_rows(archive_mark) == []


def test_a_health_worker_without_the_patient_headers_is_refused_at_the_door(env: Env) -> None:
    token = env.token(env.adult)
    token.patient = None
    hub_mark = len(env.hub_audit.records)
    r = env.get(token, f"studies/{_ct(env).study_instance_uid}/metadata")
    assert r.status_code == 403
    assert _hub_row(env, hub_mark).outcome is AuditOutcome.DENIED


def test_unknown_community_or_one_without_images_is_404(env: Env) -> None:
    token = env.token(env.adult)
    study = _ct(env).study_instance_uid
    for hcid in ("urn:oid:2.16.578.1.12.4.5.100.99", NO_MEDIA):
        hub_mark = len(env.hub_audit.records)
        r = env.get(token, f"studies/{study}/metadata", hcid=hcid)
        assert r.status_code == 404
        assert r.json()["resourceType"] == "OperationOutcome"
        assert _hub_row(env, hub_mark).reason == "http-404"


# --- streaming, Range and failures (the stand-in archive) ----------------------------------


def _video_path(kind: str) -> str:
    return f"studies/{STUDY_OF[kind]}/series/{SERIES}/instances/{SOP}/rendered"


def test_range_on_a_large_instance_is_206_with_its_headers(env: Env) -> None:
    token = env.token(env.adult)
    r = env.get(
        token, _video_path("video"), hcid=STANDIN, Accept="video/mp4", Range="bytes=1000-5999"
    )
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes 1000-5999/{len(VIDEO)}"
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["etag"] == VIDEO_ETAG
    assert r.headers["content-type"] == "video/mp4"
    assert r.content == VIDEO[1000:6000]
    asked = env.standin.seen[-1]
    assert asked["range"] == "bytes=1000-5999" and asked["accept"] == "video/mp4"
    assert "authorization" not in asked and "dpop" not in asked  # the hub's assertion only
    r = env.get(token, _video_path("video"), hcid=STANDIN, Range=f"bytes={len(VIDEO) - 10}-")
    assert r.status_code == 206 and r.content == VIDEO[-10:]
    r = env.get(token, _video_path("video"), hcid=STANDIN, **{"If-None-Match": VIDEO_ETAG})
    assert r.status_code == 304 and r.headers["etag"] == VIDEO_ETAG
    whole = env.get(token, _video_path("video"), hcid=STANDIN)
    assert whole.status_code == 200 and whole.content == VIDEO


def test_the_body_streams_through_chunk_by_chunk(env: Env) -> None:
    """The first MiB reaches the caller while the archive still holds back the rest."""
    token = env.token(env.adult)
    url = f"{env.base(STANDIN)}/{_video_path('slow')}"
    env.standin.release.clear()
    received = 0
    with httpx.stream("GET", url, headers=token.headers("GET", url), timeout=30) as answer:
        assert answer.status_code == 200
        chunks = answer.iter_bytes()
        while received < 1 << 20:
            received += len(next(chunks))
        assert not env.standin.release.is_set()
        env.standin.release.set()
        for chunk in chunks:
            received += len(chunk)
    assert received == len(VIDEO)
    assert env.standin.released_in_time


def test_an_archive_breaking_off_cuts_the_answer_and_counts(env: Env) -> None:
    token = env.token(env.adult)
    url = f"{env.base(STANDIN)}/{_video_path('cut')}"
    breaker = env.hub_app.state.hub.breakers[STANDIN]
    before = breaker.consecutive_failures
    received = 0
    with capture_logs() as logs:
        with httpx.stream("GET", url, headers=token.headers("GET", url), timeout=30) as answer:
            assert answer.status_code == 200  # sent before the break could be known
            with pytest.raises(httpx.RemoteProtocolError):
                for chunk in answer.iter_bytes():
                    received += len(chunk)
        deadline = time.monotonic() + 5
        while breaker.consecutive_failures == before and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
    assert received < len(VIDEO)
    hub_logs = [e for e in logs if e["event"].startswith("hub.") and e["event"] != "hub.request"]
    assert [e["event"] for e in hub_logs] == ["hub.dicomweb.broken_off"]  # logged once
    assert hub_logs[0]["hcid"] == STANDIN and 0 < hub_logs[0]["sent_bytes"] < len(VIDEO)
    assert env.adult not in repr(logs)  # no national id in the logs
    assert breaker.consecutive_failures == before + 1
    breaker.record_success()


def test_region_errors_are_502_timeouts_504_refusals_as_they_are(env: Env) -> None:
    token = env.token(env.adult)
    r = env.get(token, _video_path("fail"), hcid=STANDIN)
    assert r.status_code == 502 and r.json()["resourceType"] == "OperationOutcome"
    started = time.perf_counter()
    r = env.get(token, _video_path("hang"), hcid=STANDIN)
    assert r.status_code == 504
    assert time.perf_counter() - started < RETRIEVE_TIMEOUT_S + 1.5
    hub_mark = len(env.hub_audit.records)
    r = env.get(token, _video_path("refuse"), hcid=STANDIN)
    assert r.status_code == 403
    assert r.json() == {"status": 403, "message": "access denied by policy: document-blocked"}
    assert _hub_row(env, hub_mark).regions == ((STANDIN, "denied"),)
    env.hub_app.state.hub.breakers[STANDIN].record_success()


def test_an_archive_down_is_502_fast_and_slows_no_other(env: Env) -> None:
    token = env.token(env.adult)
    study = _ct(env).study_instance_uid
    hang = _video_path("hang")

    def timed(path: str, hcid: str) -> tuple[int, float]:
        started = time.perf_counter()
        r = env.get(token, path, hcid=hcid)
        return r.status_code, time.perf_counter() - started

    baseline = min(timed(f"studies/{study}/metadata", HCID)[1] for _ in range(3))
    with ThreadPoolExecutor(max_workers=8) as pool:
        hanging = [pool.submit(timed, hang, STANDIN) for _ in range(2)]
        down = [pool.submit(timed, f"studies/{study}", DOWN) for _ in range(6)]
        time.sleep(0.2)
        good = [timed(f"studies/{study}/metadata", HCID) for _ in range(3)]
        assert all(f.result()[0] == 502 for f in down)
        assert all(f.result()[0] == 504 for f in hanging)
    assert all(f.result()[1] < 1.0 for f in down)
    assert all(status == 200 for status, _ in good)
    assert max(s for _, s in good) < baseline + 1.0, (baseline, good)
    breaker = env.hub_app.state.hub.breakers[DOWN]
    assert breaker.state is BreakerState.OPEN
    r = env.get(token, f"studies/{study}", hcid=DOWN)
    assert r.status_code == 502
    env.hub_app.state.hub.breakers[STANDIN].record_success()


# --- the path parser -------------------------------------------------------------------------


_SEGMENTS = st.sampled_from(
    [
        "studies",
        "series",
        "instances",
        "metadata",
        "rendered",
        "thumbnail",
        "frames",
        "bulkdata",
        "1.2.3",
        "1.2.826.0.1",
        "01.2",
        "1..2",
        "1,2",
        "0",
        "7FE00010",
        "",
        "%2F",
        "urn:oid:1.2",
        "1.2." + "3" * 70,
    ]
) | st.text(max_size=12)
_PATHS = st.lists(_SEGMENTS, max_size=9).map("/".join) | st.text(max_size=80)


@settings(max_examples=300, deadline=None)
@given(path=_PATHS)
def test_the_path_parser_says_400_or_404_and_passes_only_checked_segments(path: str) -> None:
    try:
        study = parse_study_path(path)
    except (BadRequest, NotFound) as exc:
        assert exc.status in (400, 404)
        return
    assert study.relative.startswith("studies/")
    assert set(study.relative) <= set("0123456789.,/ABCDEFabcdefghijklmnopqrstuvwxyz")


OpenHub = tuple[httpx.ASGITransport, FakeRegionClient]


@pytest.fixture(scope="module")
def open_hub(tmp_path_factory: pytest.TempPathFactory) -> OpenHub:
    fake = FakeRegionClient()

    async def archive(url: str, headers: Any) -> RegionResponse:
        return RegionResponse(200, {"content-type": "application/dicom+json"}, b"[]")

    fake.route("http://archive.test/dicomweb", archive)
    region = Region(
        name="Region 1",
        home_community_id=HomeCommunityId.parse(HCID),
        base_url="http://archive.test/fhir",
        media_url="http://archive.test/dicomweb",
    )
    app = create_hub_app(
        HubSettings(
            dev_mode=True,
            dev_open_access=True,
            key_dir=tmp_path_factory.mktemp("keys"),
            public_base_url="http://hub.test",
        ),
        region_client=fake,
        directory=RegionDirectory.from_regions([region]),
        audit=MemoryAuditSink(),
    )
    return httpx.ASGITransport(app=app), fake


_QUERY = st.lists(st.tuples(st.text(max_size=10), st.text(max_size=30)), max_size=5)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    path=_PATHS,
    query=_QUERY,
    headers=st.dictionaries(
        st.sampled_from(["accept", "range", "if-none-match"]),
        st.text(max_size=20) | st.sampled_from(["bytes=0-", "x" * 2000, '"etag"']),
    ),
)
def test_hostile_paths_at_the_hub_are_4xx_never_5xx_and_ask_no_region(
    open_hub: OpenHub, path: str, query: list[tuple[str, str]], headers: dict[str, str]
) -> None:
    transport, fake = open_hub
    asked = len(fake.calls)

    async def send() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
            return await client.get(f"/dicomweb/{oid(HCID)}/{path}", params=query, headers=headers)

    try:
        r = asyncio.run(send())
    except (httpx.InvalidURL, UnicodeEncodeError):
        return  # not even a request: nothing reached the hub
    assert r.status_code < 500, (path, r.status_code, r.text)
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("application/fhir+json")
    for url, _headers in fake.calls[asked:]:
        # Only a checked path reaches the archive: UIDs, keywords, frame lists, tags.
        relative = url.removeprefix("http://archive.test/dicomweb/").partition("?")[0]
        parse_study_path(f"{oid(HCID)}/{relative}")
        assert set(relative) <= set("0123456789.,/ABCDEFabcdefghijklmnopqrstuvwxyz")


# --- memory: a large body through a hub process -----------------------------------------------

_BLOCK = bytes(range(256)) * 4096  # 1 MiB, sent again and again: the archive holds no copy


def _big_archive(megabytes: int) -> Starlette:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(megabytes):
            yield _BLOCK

    async def endpoint(_request: Request) -> Response:
        length = str(megabytes * len(_BLOCK))
        return StreamingResponse(body(), media_type="video/mp4", headers={"content-length": length})

    return Starlette(routes=[Route("/dicomweb/{path:path}", endpoint)])


@pytest.mark.slow
def test_a_large_video_through_a_hub_process_keeps_its_memory_flat(tmp_path: Path) -> None:
    megabytes = 300
    with ExitStack() as stack:
        archive = stack.enter_context(serve_in_thread(_big_archive(megabytes)))
        directory = tmp_path / "regions.json"
        region = {
            "name": "Big",
            "home_community_id": STANDIN,
            "base_url": f"{archive}/fhir",
            "media_url": f"{archive}/dicomweb",
        }
        directory.write_bytes(orjson.dumps({"regions": [region]}))
        port = free_port()
        args = ["-m", "onerecord.cli", "hub", "serve", "--directory", str(directory)]
        args += ["--port", str(port), "--dev-open-access", "--key-dir", str(tmp_path / "keys")]
        proc = stack.enter_context(serve_process(args, port))
        hub = psutil.Process(proc.pid)
        url = f"http://127.0.0.1:{port}/dicomweb/{oid(STANDIN)}/{_video_path('video')}"
        httpx.get(url, headers={"range": "bytes=0-0"}, timeout=30)  # warm up the relay
        baseline = peak = hub.memory_info().rss
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, hub.memory_info().rss)
                done.wait(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        received = 0
        try:
            with httpx.stream("GET", url, timeout=120) as answer:
                assert answer.status_code == 200
                for chunk in answer.iter_raw():
                    received += len(chunk)
        finally:
            done.set()
            sampler.join()
    assert received == megabytes * len(_BLOCK)
    growth_mb = (peak - baseline) / (1024 * 1024)
    assert growth_mb < 40, f"the hub's RSS grew {growth_mb:.1f} MB relaying {megabytes} MB"


_NEEDLE = b'"http://archive.test/dicomweb/'


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(
        st.sampled_from([_NEEDLE, b'"', b"http://", b"x", b"/", b"dicomweb/"])
        | st.binary(max_size=8),
        max_size=30,
    ),
    cuts=st.lists(st.integers(0, 400), max_size=8),
)
def test_rewriting_urls_across_any_chunking_is_a_plain_replace(
    pieces: list[bytes], cuts: list[int]
) -> None:
    data = b"".join(pieces)
    bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    chunks = [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]

    async def run() -> bytes:
        async def source() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk

        return b"".join([c async for c in rewrite_urls(source(), _NEEDLE, b'"http://hub/x/')])

    assert asyncio.run(run()) == data.replace(_NEEDLE, b'"http://hub/x/')


def test_the_open_hub_relays_a_checked_path_and_query(open_hub: OpenHub) -> None:
    transport, fake = open_hub
    asked = len(fake.calls)

    async def send() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
            return await client.get(
                f"/dicomweb/{oid(HCID)}/studies/1.2.3/series/",
                params=[("Modality", "CT"), ("includefield", "00080060")],
                headers={"range": "bytes=0-9", "cookie": "not relayed"},
            )

    r = asyncio.run(send())
    assert r.status_code == 200 and r.content == b"[]"
    ((url, headers),) = fake.calls[asked:]
    assert url == (
        "http://archive.test/dicomweb/studies/1.2.3/series?Modality=CT&includefield=00080060"
    )
    assert headers["range"] == "bytes=0-9" and "cookie" not in headers
