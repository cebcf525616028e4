"""The archive with its instance bytes in S3: real servers on 127.0.0.1 end to end.

A moto S3 server (tests/support/s3.py), the STS and the archive (tests/media/dicomweb_harness.py)
with `content_url=s3://<bucket>/helse-sor-ost/media`; credentials and endpoint reach it through
`AWS_*` variables, as in production. STOW-RS in, WADO-RS out, a clip's Range, a restart that
sweeps a crashed store's staged object, and `onerecord media serve --content-url` with DCMTK.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import obstore
import pytest
from pydantic import ValidationError

from onerecord.media import MediaSettings
from onerecord.synth.dicom import patient_studies, wound_clip_mp4
from tests.media.conftest import SynthFiles
from tests.media.dicom_tools import require_dcmtk
from tests.media.dicomweb_harness import STORE_SCOPE, MediaNet, start_media
from tests.media.test_dicomweb import REFERENCE
from tests.media.test_wic import _stored, wic_body, wic_metadata
from tests.support.s3 import S3Server
from tests.support.servers import free_port, serve_process

PREFIX = "helse-sor-ost/media"
CT = "1.2.840.10008.5.1.4.1.1.2"
_INSTANCE_KEY = re.compile(rf"^{PREFIX}/([0-9a-f]{{2}})/([0-9a-f]{{2}})/\1\2[0-9a-f]{{60}}\.dcm$")


@dataclass
class OnS3:
    media: MediaNet
    server: S3Server
    bucket: str
    workdir: Path

    def instances(self) -> list[str]:
        return [k for k in self.server.keys(self.bucket) if _INSTANCE_KEY.match(k)]

    def staged(self) -> list[str]:
        return [k for k in self.server.keys(self.bucket) if "/.staging/" in k]


@pytest.fixture(scope="module")
def on_s3(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OnS3]:
    bucket = s3_server.new_bucket()
    workdir = tmp_path_factory.mktemp("media-s3")
    with pytest.MonkeyPatch.context() as env:
        for name, value in s3_server.env.items():
            env.setenv(name, value)
        with start_media(workdir, content_url=f"s3://{bucket}/{PREFIX}") as media:
            yield OnS3(media, s3_server, bucket, workdir)


def test_stow_and_wado_of_a_ct_study_on_s3_and_twice_is_once(on_s3: OnS3) -> None:
    media = on_s3.media
    nin = media.net.citizen("adult")
    studies = patient_studies(
        media.patient("adult"), seed=5, reference_date=REFERENCE, ct_slices=3, size=64
    )
    ct = next(s for s in studies if s.instances[0].SOPClassUID == CT)
    store = media.client(media.net.hcp_token(nin, scope=STORE_SCOPE))
    answer = store.store_instances(list(ct.instances))
    assert len(answer.ReferencedSOPSequence) == len(ct.instances)
    assert len(on_s3.instances()) == len(ct.instances)
    assert not (on_s3.workdir / "content").exists() or not any(
        p.suffix == ".dcm" for p in (on_s3.workdir / "content").rglob("*")
    )  # no instance in the folder: the bytes are in the bucket
    read = media.client(media.net.hcp_token(nin))
    original = ct.instances[0]
    uids = (ct.study_instance_uid, original.SeriesInstanceUID, original.SOPInstanceUID)
    got = read.retrieve_instance(*uids)
    assert got.SOPInstanceUID == original.SOPInstanceUID
    assert got.PixelData == original.PixelData
    assert read.retrieve_instance_frames(*uids, frame_numbers=[1]) == [original.PixelData]
    again = store.store_instances([original])  # the same instance twice is one instance
    assert len(again.ReferencedSOPSequence) == 1
    assert len(on_s3.instances()) == len(ct.instances)
    assert len(read.search_for_instances(study_instance_uid=ct.study_instance_uid)) == 3
    assert on_s3.staged() == []


def test_a_clip_on_s3_is_served_by_range(on_s3: OnS3) -> None:
    media = on_s3.media
    nin = media.net.citizen("adult")
    clip = wound_clip_mp4(5)
    body, content_type = wic_body(wic_metadata(nin), "video/mp4", clip)
    before = set(on_s3.instances())
    r = media.post(media.net.hcp_token(nin, scope=STORE_SCOPE), "studies", body, content_type)
    assert r.status_code == 200, r.text
    assert len(set(on_s3.instances()) - before) == 1  # staged, copied to its address
    assert on_s3.staged() == []  # the staged object deleted
    assert not list((on_s3.workdir / "content" / ".staging").glob("*"))  # the spool removed
    rendered = _stored(r.json())["00081190"]["Value"][0]  # type: ignore[index]
    path = rendered.split("/dicomweb/", 1)[1] + "/rendered"
    read = media.net.hcp_token(nin)
    part = media.get(read, path, Accept="video/mp4", Range="bytes=100-1099")
    assert part.status_code == 206, part.text
    assert part.content == clip[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(clip)}"
    tail = media.get(read, path, Accept="video/mp4", Range="bytes=-10")
    assert tail.status_code == 206 and tail.content == clip[-10:]
    assert media.get(read, path, Accept="video/mp4").content == clip


_CRASH_AFTER_STAGE = """
import asyncio, os, sys
from onerecord.media.content import ObstoreInstanceStore

async def clip():
    for _ in range(3):
        yield os.urandom(1024 * 1024)

async def main():
    staged = await ObstoreInstanceStore.from_url(sys.argv[1]).stage(clip())
    print(staged.key.sha256, flush=True)
    os._exit(9)  # the process dies between stage and commit

asyncio.run(main())
"""


def test_a_restart_sweeps_a_crashed_stores_staged_object(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process staged a clip on S3 and died before commit; the next start removes it."""
    bucket = s3_server.new_bucket()
    url = f"s3://{bucket}/{PREFIX}"
    crashed = subprocess.run(
        [sys.executable, "-c", _CRASH_AFTER_STAGE, url],
        env={**os.environ, **s3_server.env},
        capture_output=True,
        timeout=60,
    )
    assert crashed.returncode == 9, crashed.stderr
    sha = crashed.stdout.decode().strip()
    (temp,) = s3_server.keys(bucket)
    assert temp.startswith(f"{PREFIX}/.staging/") and temp.endswith(".part")
    unrelated = "someone-else/.staging/x.part"  # outside the archive's prefix: never touched
    obstore.put(s3_server.store(bucket), unrelated, b"not ours")
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    time.sleep(1.1)  # S3 times are whole seconds
    with start_media(tmp_path, content_url=url, orphan_grace_s=0.5) as media:
        assert s3_server.keys(bucket) == [unrelated]
        nin = media.net.citizen("adult")
        client = media.client(media.net.hcp_token(nin))
        assert client.search_for_studies() == []  # nothing was registered
    assert re.fullmatch(r"[0-9a-f]{64}", sha)


def test_a_content_url_is_an_object_store_without_credentials() -> None:
    for bad in (
        "http://bucket/prefix",
        "/var/media",
        "s3://key:secret@bucket/prefix",
        "memory://",  # gone at the next start
    ):
        with pytest.raises(ValidationError):
            MediaSettings(content_url=bad)
    assert MediaSettings(content_url="s3://bucket/prefix").content_url == "s3://bucket/prefix"


def test_serve_with_content_url_stores_dimse_instances_in_the_bucket(
    s3_server: S3Server, tmp_path: Path, synth_files: SynthFiles
) -> None:
    """`onerecord media serve --content-url` as its own process; DCMTK's storescu sends."""
    bucket = s3_server.new_bucket()
    http_port, dimse_port = free_port(), free_port()
    args = [
        "-m", "onerecord.cli", "media", "serve",
        "--db", f"sqlite:///{tmp_path / 'archive.db'}", "--content", str(tmp_path / "spool"),
        "--content-url", f"s3://{bucket}/{PREFIX}",
        "--port", str(http_port), "--dimse-port", str(dimse_port), "--ae-title", "HN_ARCHIVE",
        "--modality", "CT1=127.0.0.1:1104", "--log-level", "warning",
    ]  # fmt: skip
    sent = synth_files.paths[:3]
    with serve_process(args, http_port, env=s3_server.env):
        peer = ["-aet", "CT1", "-aec", "HN_ARCHIVE", "127.0.0.1", str(dimse_port)]
        subprocess.run([require_dcmtk("storescu"), *peer, *map(str, sent)], check=True, timeout=120)
    keys = [k for k in s3_server.keys(bucket) if _INSTANCE_KEY.match(k)]
    assert len(keys) == len(sent)
    assert not list((tmp_path / "spool").rglob("*.dcm"))
