"""The synthetic clip as an MP4 file (synth/mp4.py): read by the archive's parser and FFmpeg.

FFmpeg is a test peer here (Debian's, like DCMTK), never a dependency: it checks that the MP4
written in pure Python is H.264 High 4.1 at 25 frames/s and decodes to exactly the pictures the
raw stream decodes to.
"""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from onerecord.cli import app
from onerecord.media.mp4 import H264_HIGH_41, h264_transfer_syntax, read_mp4
from onerecord.synth.dicom import wound_clip_mp4
from onerecord.synth.h264 import YuvFrame, encode_pcm_stream
from onerecord.synth.mp4 import mux_h264, write_h264_mp4
from tests.media.dicom_tools import require_tool


def test_the_archive_reads_the_clip_it_would_be_sent() -> None:
    clip = wound_clip_mp4(3)
    video = read_mp4(lambda offset, length: clip[offset : offset + length], len(clip))
    assert (video.width, video.height, video.frames, video.frame_rate) == (176, 144, 25, 25.0)
    assert (video.profile, video.level) == ("High", "4.1")
    assert h264_transfer_syntax(video) == H264_HIGH_41
    assert wound_clip_mp4(3) == clip  # the same seed, the same bytes


def test_ffmpeg_decodes_the_mp4_to_the_streams_pictures(tmp_path: Path) -> None:
    ffmpeg = require_tool("ffmpeg")
    frames = [
        YuvFrame(32, 16, bytes([16 + n] * 512), bytes([128] * 128), bytes([128 + n] * 128))
        for n in range(5)
    ]
    stream = encode_pcm_stream(frames)
    (tmp_path / "clip.h264").write_bytes(stream)
    (tmp_path / "clip.mp4").write_bytes(mux_h264(stream, width=32, height=16, fps=25))

    def decoded(name: str) -> bytes:
        run = subprocess.run(
            [ffmpeg, "-v", "error", "-i", str(tmp_path / name), "-f", "rawvideo"]
            + ["-pix_fmt", "yuv420p", "-"],
            capture_output=True,
            check=True,
            timeout=60,
        )
        return run.stdout

    assert decoded("clip.mp4") == decoded("clip.h264") != b""
    probe = subprocess.run(
        [ffmpeg.replace("ffmpeg", "ffprobe"), "-v", "error", "-count_frames", "-show_streams"]
        + ["-of", "json", str(tmp_path / "clip.mp4")],
        capture_output=True,
        check=True,
        timeout=60,
    )
    (stream_info,) = json.loads(probe.stdout)["streams"]
    assert (stream_info["codec_name"], stream_info["profile"], stream_info["level"]) == (
        "h264",
        "High",
        41,
    )
    assert stream_info["nb_read_frames"] == "5" and stream_info["r_frame_rate"] == "25/1"


def test_a_stream_without_parameter_sets_is_refused() -> None:
    with pytest.raises(ValueError, match="SPS"):
        mux_h264(b"\x00\x00\x00\x01\x65\x88", width=16, height=16, fps=25)


def test_the_cli_writes_the_clip_as_mp4_when_asked(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["synth", "dicom", "--out", str(tmp_path), "--size", "32", "--slices", "1", "--mp4"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "wound-clip.mp4").read_bytes() == wound_clip_mp4(1)


def test_the_written_long_clip_is_the_muxed_clip_of_the_repeated_pictures() -> None:
    frames = [
        YuvFrame(32, 16, bytes([16 + n] * 512), bytes([128] * 128), bytes([128 + n] * 128))
        for n in range(2)
    ]
    out = io.BytesIO()
    size = write_h264_mp4(out, encode_pcm_stream(frames), width=32, height=16, fps=25, frames=7)
    # encode_pcm_stream alternates idr_pic_id 0, 1: the same slices as the two, again and again
    repeated = encode_pcm_stream([frames[n % 2] for n in range(7)])
    assert out.getvalue() == mux_h264(repeated, width=32, height=16, fps=25)
    assert size == len(out.getvalue())
    video = read_mp4(lambda at, n: out.getvalue()[at : at + n], size)
    assert video.frames == 7 and round(video.frame_rate) == 25
