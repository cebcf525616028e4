"""A clip stored over WIC at the real archive, played through the real hub with byte ranges.

Uses the hub, STS and archive of tests/hub/test_dicomweb.py (its `env` fixture): a health
worker stores an H.264 MP4 (made by Debian's FFmpeg, a test peer) at the archive, then a reader
asks the hub for `rendered` as video/mp4 — whole, one range, past the end, and conditionally.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hub.test_dicomweb import HCID, Env, env  # noqa: F401 - the module's servers
from tests.media.dicomweb_harness import STORE_SCOPE
from tests.media.test_wic import ffmpeg_clip, wic_body, wic_metadata


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path: Path = tmp_path_factory.mktemp("hub-wic") / "clip.mp4"
    return ffmpeg_clip(path, "-c:v", "libx264", "-pix_fmt", "yuv420p")


def test_a_wic_clip_plays_through_the_hub_with_ranges(env: Env, clip: bytes) -> None:  # noqa: F811
    store = env.media.net.hcp_token(env.adult, scope=STORE_SCOPE)
    body, content_type = wic_body(wic_metadata(env.adult), "video/mp4", clip)
    r = env.media.post(store, "studies", body, content_type)
    assert r.status_code == 200, r.text
    url = r.json()["00081199"]["Value"][0]["00081190"]["Value"][0]
    path = url.split("/dicomweb/", 1)[1] + "/rendered"
    token = env.token(env.adult)
    whole = env.get(token, path, hcid=HCID, Accept="video/mp4")
    assert whole.status_code == 200, whole.text
    assert whole.content == clip
    assert whole.headers["content-type"] == "video/mp4"
    assert whole.headers["accept-ranges"] == "bytes"
    part = env.get(token, path, hcid=HCID, Accept="video/mp4", Range="bytes=1000-4999")
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 1000-4999/{len(clip)}"
    assert part.content == clip[1000:5000]
    past = env.get(token, path, hcid=HCID, Range=f"bytes={len(clip)}-")
    assert past.status_code == 416
    etag = whole.headers["etag"]
    assert env.get(token, path, hcid=HCID, **{"If-None-Match": etag}).status_code == 304
    other = env.token(env.other)  # another patient's reader: as if absent
    assert env.get(other, path, hcid=HCID, Accept="video/mp4").status_code == 404
