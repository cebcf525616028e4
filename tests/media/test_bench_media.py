"""bench/media.py runs end to end at tiny sizes on our side (the CI machine may have no Orthanc).

The archive as its own process behind the trust framework, STOW-RS, C-STORE (DCMTK), the reads,
and the bulk filling of its index with other patients' instances; the figures are not checked,
only that every step answered and the filled rows are counted and leave the patient's answers
as they were.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.media.dicom_tools import require_dcmtk

ROOT = Path(__file__).resolve().parents[2]


def test_the_benchmark_runs_on_our_side(tmp_path: Path) -> None:
    require_dcmtk("storescu")  # skipped without DCMTK, failed when CI=true
    out = tmp_path / "media.json"
    command = [
        sys.executable, str(ROOT / "bench" / "media.py"), "--no-orthanc", "--instances", "4",
        "--clients", "1", "2", "--per-request", "1", "2", "--processes", "1", "--size", "64",
        "--rounds", "2", "--fill", "250", "--video-mb", "0", "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert [r["instances"] for r in figures["stow"]["onerecord"]] == [4, 4, 4, 4]
    assert figures["cstore"]["onerecord"][0]["instances"] == 4
    small, large = figures["reads_small"]["onerecord"], figures["reads_large"]["onerecord"]
    assert figures["counts_large"]["onerecord"] == figures["counts_small"]["onerecord"] + 250
    for reads in (small, large):
        assert reads["series_instances_found"] == reads["metadata_instances"] == 50
        assert reads["studies_found"] == small["studies_found"] > 1
    assert "orthanc" not in figures["stow"]
    assert "video_hub" not in figures  # --video-mb 0: the next test runs that section


def test_the_video_section_runs_a_small_clip_through_the_hub(tmp_path: Path) -> None:
    """`--only video` at 3 MiB: the archive and the hub each its own process, the trust path
    (a DPoP-bound token at the archive for the store, at the hub for the reads, the hub's
    assertion at the archive), the bytes back whole and by ranges, RSS figures for both."""
    out = tmp_path / "video.json"
    command = [
        sys.executable, str(ROOT / "bench" / "media.py"), "--only", "video", "--video-mb", "3",
        "--seeks", "2", "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["clip"]["bytes"] > 2 * 1024 * 1024
    assert figures["read_whole"]["bytes_identical"] is True
    assert figures["read_whole"]["content_type"] == "video/mp4"
    assert figures["range_seeks"]["bytes_identical"] is True
    assert figures["range_seeks"]["seeks"] == 2
    for phase in ("store", "read_whole", "range_seeks"):
        for process in ("archive", "hub"):
            assert figures[phase][process]["rss_before_mib"] > 0
            assert figures[phase][process]["rss_growth_sampled_mib"] is not None
    assert isinstance(figures["target_met"], bool)
