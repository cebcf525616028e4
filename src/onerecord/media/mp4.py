"""An MP4 file checked before anything is written: its boxes, its one H.264 video track.

`read_mp4` walks the ISO base media file format boxes through a `read_at(offset, length)`
callable (the spooled file, or bytes in a test), so a 2 GB clip is never held: the top-level
boxes are read by their headers only, and `moov` (bounded, 64 MiB) whole. It needs `ftyp` first
with an MP4 brand, the top-level boxes tiling the file exactly, one `moov` (not fragmented: no
`mvex`, no `moof`), at least one `mdat`, and exactly one video track whose sample entry is
`avc1`/`avc3` with an `avcC` record. From those it reads profile_idc, the constraint flags and
level_idc (avcC, ISO/IEC 14496-15 §5.3.3.1), the width and height (the visual sample entry),
the frame count (`stts`), the duration (`mdhd`) and so the frame rate, and the creation time.

`h264_transfer_syntax` maps them to the DICOM transfer syntax the stream conforms to (PS3.5
§8.2.8): High Profile / Level 4.1 (.102) for High, Main or Constrained Baseline streams of level
≤ 4.1 up to 1920×1080, High Profile / Level 4.2 For 2D Video (.104) for level 4.2 up to
1920×1080 and 60 frames/s, Stereo High Profile / Level 4.2 (.106) for Stereo High; the frame
size and macroblock rate must be within the stated level (H.264 Table A-1). Anything else —
another codec, High 10, 4:2:2, a level above 4.2, 4K — is `UnsupportedVideo` (the edge: 415 or
FailedSOPSequence 0122); a file that is not a well-formed MP4 is `MalformedMp4` (C000).

References: ISO/IEC 14496-12 §4.2 (box), §4.3 (ftyp), §8.2.2 (mvhd), §8.4.2 (mdhd), §8.4.3
(hdlr), §8.5.2 (stsd, VisualSampleEntry), §8.6.1.2 (stts), §8.8.1 (mvex); ISO/IEC 14496-15
§5.3.3.1 (AVCDecoderConfigurationRecord); ITU-T H.264 Annex A (profiles, Table A-1 levels);
DICOM PS3.5 §8.2.8 (MPEG-4 AVC/H.264 transfer syntaxes).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = [
    "H264_HIGH_41",
    "H264_HIGH_42_2D",
    "H264_STEREO_HIGH_42",
    "H264_TRANSFER_SYNTAXES",
    "MalformedMp4",
    "Mp4Video",
    "UnsupportedVideo",
    "h264_transfer_syntax",
    "read_mp4",
]

H264_HIGH_41 = "1.2.840.10008.1.2.4.102"
H264_BD_HIGH_41 = "1.2.840.10008.1.2.4.103"
H264_HIGH_42_2D = "1.2.840.10008.1.2.4.104"
H264_HIGH_42_3D = "1.2.840.10008.1.2.4.105"
H264_STEREO_HIGH_42 = "1.2.840.10008.1.2.4.106"
#: The MPEG-4 AVC/H.264 transfer syntaxes (PS3.5 §8.2.8): their pixel data is one stream.
H264_TRANSFER_SYNTAXES = frozenset(
    {H264_HIGH_41, H264_BD_HIGH_41, H264_HIGH_42_2D, H264_HIGH_42_3D, H264_STEREO_HIGH_42}
)

ReadAt = Callable[[int, int], bytes]

_MAX_MOOV = 64 * 1024 * 1024
_MAX_TOP_BOXES = 1000
_MAX_DEPTH = 8
_MP4_BRANDS = frozenset(
    {b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"M4V "}
)
_EPOCH_1904 = datetime(1904, 1, 1, tzinfo=UTC)
# H.264 Table A-1: level_idc → (MaxMBPS, MaxFS). level_idc 9 is level 1b.
_LEVELS = {
    9: (1485, 99),
    10: (1485, 99),
    11: (3000, 396),
    12: (6000, 396),
    13: (11880, 396),
    20: (11880, 396),
    21: (19800, 792),
    22: (20250, 1620),
    30: (40500, 1620),
    31: (108000, 3600),
    32: (216000, 5120),
    40: (245760, 8192),
    41: (245760, 8192),
    42: (522240, 8704),
    50: (589824, 22080),
    51: (983040, 36864),
    52: (2073600, 36864),
}
_PROFILES = {
    66: "Baseline",
    77: "Main",
    88: "Extended",
    100: "High",
    110: "High 10",
    122: "High 4:2:2",
    244: "High 4:4:4",
    118: "Multiview High",
    128: "Stereo High",
}


class MalformedMp4(ValueError):
    """The bytes are not a well-formed MP4 file of the shape the archive reads."""


class UnsupportedVideo(ValueError):
    """A well-formed MP4 whose video no DICOM transfer syntax here takes (415 / 0122)."""


@dataclass(frozen=True, slots=True)
class Mp4Video:
    """What the archive needs of an MP4 clip, read from its boxes."""

    size: int
    major_brand: str
    profile_idc: int
    constraint_flags: int
    level_idc: int
    width: int
    height: int
    frames: int
    duration_s: float
    created: datetime | None
    has_audio: bool

    @property
    def frame_rate(self) -> float:
        """Frames per second, on average over the clip."""
        return self.frames / self.duration_s

    @property
    def profile(self) -> str:
        """The profile's name (H.264 Annex A), for messages."""
        return _PROFILES.get(self.profile_idc, f"profile_idc {self.profile_idc}")

    @property
    def level(self) -> str:
        """The level as written (4.1), level_idc 9 as 1b."""
        return "1b" if self.level_idc == 9 else f"{self.level_idc // 10}.{self.level_idc % 10}"


@dataclass(frozen=True, slots=True)
class _Box:
    type: bytes
    start: int  # of the box header
    body: int  # of the payload
    end: int


def _header(read_at: ReadAt, pos: int, end: int) -> _Box:
    head = read_at(pos, 16)
    if len(head) < 8 or pos + 8 > end:
        raise MalformedMp4("a box header runs past its container")
    size, kind = struct.unpack(">I4s", head[:8])
    body = pos + 8
    if size == 1:
        if len(head) < 16:
            raise MalformedMp4("a 64-bit box size runs past its container")
        size = struct.unpack(">Q", head[8:16])[0]
        body = pos + 16
    elif size == 0:
        size = end - pos  # to the end of the container (14496-12 §4.2)
    if kind == b"uuid":
        body += 16
    if size < body - pos or pos + size > end:
        raise MalformedMp4(f"box {_name(kind)} has an impossible size")
    return _Box(kind, pos, body, pos + size)


def _name(kind: bytes) -> str:
    return kind.decode("latin-1").encode("ascii", "backslashreplace").decode()[:8]


def _children(data: bytes, start: int, end: int) -> Iterator[_Box]:
    pos = start
    count = 0
    while pos < end:
        box = _header(lambda o, n: data[o : o + n], pos, end)
        yield box
        pos = box.end
        count += 1
        if count > 10_000:
            raise MalformedMp4("too many boxes")


def _find(data: bytes, box: _Box, path: tuple[bytes, ...]) -> _Box | None:
    """The first box along `path` under `box` (each step the first child of that type)."""
    found: _Box | None = box
    for kind in path:
        assert found is not None
        found = next((c for c in _children(data, found.body, found.end) if c.type == kind), None)
        if found is None:
            return None
    return found


def _u(data: bytes, at: int, size: int, end: int) -> int:
    if at + size > end:
        raise MalformedMp4("a box is too short for its fields")
    return int.from_bytes(data[at : at + size], "big")


def read_mp4(read_at: ReadAt, size: int) -> Mp4Video:
    """Read and check an MP4 file of `size` bytes; MalformedMp4 or UnsupportedVideo if not."""
    if size < 16:
        raise MalformedMp4("too short for an MP4 file")
    top: list[_Box] = []
    pos = 0
    while pos < size:
        box = _header(read_at, pos, size)
        top.append(box)
        if len(top) > _MAX_TOP_BOXES:
            raise MalformedMp4("too many top-level boxes")
        pos = box.end
    if top[0].type != b"ftyp":
        raise MalformedMp4("an MP4 file begins with its ftyp box")
    ftyp = read_at(top[0].body, min(top[0].end - top[0].body, 4096))
    if len(ftyp) < 8:
        raise MalformedMp4("ftyp is too short")
    brands = {ftyp[0:4]} | {ftyp[i : i + 4] for i in range(8, len(ftyp) - 3, 4)}
    if not brands & _MP4_BRANDS:
        raise UnsupportedVideo(f"not an MP4 file (brand {_name(ftyp[0:4])!r})")
    kinds = [b.type for b in top]
    if b"moof" in kinds:
        raise UnsupportedVideo("a fragmented MP4 (moof) is not taken")
    if kinds.count(b"moov") != 1:
        raise MalformedMp4("an MP4 file has one moov box")
    if b"mdat" not in kinds:
        raise MalformedMp4("an MP4 file has its media in an mdat box")
    moov = top[kinds.index(b"moov")]
    if moov.end - moov.start > _MAX_MOOV:
        raise UnsupportedVideo(f"the movie box is over {_MAX_MOOV} bytes")
    data = read_at(moov.start, moov.end - moov.start)
    if len(data) != moov.end - moov.start:
        raise MalformedMp4("the file ends inside moov")
    root = _Box(b"moov", 0, moov.body - moov.start, len(data))
    return _movie(data, root, size, ftyp[0:4])


def _movie(data: bytes, moov: _Box, size: int, brand: bytes) -> Mp4Video:
    if _find(data, moov, (b"mvex",)) is not None:
        raise UnsupportedVideo("a fragmented MP4 (mvex) is not taken")
    created = None
    mvhd = _find(data, moov, (b"mvhd",))
    if mvhd is not None:
        version = _u(data, mvhd.body, 1, mvhd.end)
        stamp = _u(data, mvhd.body + 4, 8 if version == 1 else 4, mvhd.end)
        if 0 < stamp < 2**40:
            created = _EPOCH_1904 + timedelta(seconds=stamp)
    videos = []
    has_audio = False
    for trak in _children(data, moov.body, moov.end):
        if trak.type != b"trak":
            continue
        hdlr = _find(data, trak, (b"mdia", b"hdlr"))
        if hdlr is None:
            raise MalformedMp4("a track without a handler")
        handler = data[hdlr.body + 8 : hdlr.body + 12]
        if handler == b"soun":
            has_audio = True
        elif handler == b"vide":
            videos.append(trak)
    if len(videos) != 1:
        raise UnsupportedVideo(f"one video track is taken, this file has {len(videos)}")
    return _video_track(data, videos[0], size, brand, created, has_audio)


def _video_track(
    data: bytes,
    trak: _Box,
    size: int,
    brand: bytes,
    created: datetime | None,
    has_audio: bool,
) -> Mp4Video:
    mdhd = _find(data, trak, (b"mdia", b"mdhd"))
    stbl = _find(data, trak, (b"mdia", b"minf", b"stbl"))
    if mdhd is None or stbl is None:
        raise MalformedMp4("the video track lacks mdhd or stbl")
    version = _u(data, mdhd.body, 1, mdhd.end)
    if version == 1:
        timescale = _u(data, mdhd.body + 20, 4, mdhd.end)
        duration = _u(data, mdhd.body + 24, 8, mdhd.end)
    else:
        timescale = _u(data, mdhd.body + 12, 4, mdhd.end)
        duration = _u(data, mdhd.body + 16, 4, mdhd.end)
    if not timescale or not duration:
        raise MalformedMp4("the video track has no duration")
    stsd = _find(data, stbl, (b"stsd",))
    stts = _find(data, stbl, (b"stts",))
    if stsd is None or stts is None:
        raise MalformedMp4("the video track lacks stsd or stts")
    if _u(data, stsd.body + 4, 4, stsd.end) != 1:
        raise UnsupportedVideo("one sample description is taken")
    entry = next(_children(data, stsd.body + 8, stsd.end), None)
    if entry is None:
        raise MalformedMp4("stsd is empty")
    if entry.type not in (b"avc1", b"avc3"):
        raise UnsupportedVideo(f"the video is {_name(entry.type)!r}, not H.264 (avc1)")
    width = _u(data, entry.body + 24, 2, entry.end)
    height = _u(data, entry.body + 26, 2, entry.end)
    avcc = next((c for c in _children(data, entry.body + 78, entry.end) if c.type == b"avcC"), None)
    if avcc is None or avcc.end - avcc.body < 7 or data[avcc.body] != 1:
        raise MalformedMp4("the H.264 sample entry has no valid avcC record")
    profile, flags, level = data[avcc.body + 1], data[avcc.body + 2], data[avcc.body + 3]
    count = _u(data, stts.body + 4, 4, stts.end)
    if stts.body + 8 + 8 * count > stts.end:
        raise MalformedMp4("stts is shorter than its entry count")
    frames = sum(
        _u(data, stts.body + 8 + 8 * i, 4, stts.end) for i in range(count)
    )  # sample_count of each entry
    if not frames or not width or not height:
        raise MalformedMp4("the video track has no frames or no size")
    return Mp4Video(
        size=size,
        major_brand=_name(brand),
        profile_idc=profile,
        constraint_flags=flags,
        level_idc=level,
        width=width,
        height=height,
        frames=frames,
        duration_s=duration / timescale,
        created=created,
        has_audio=has_audio,
    )


def h264_transfer_syntax(video: Mp4Video) -> str:
    """The DICOM transfer syntax the clip's H.264 stream conforms to, or UnsupportedVideo."""
    profile, level = video.profile_idc, video.level_idc
    constrained_baseline = profile == 66 and bool(video.constraint_flags & 0x40)
    if profile not in (77, 100, 128) and not constrained_baseline:
        raise UnsupportedVideo(
            f"H.264 {video.profile} is not taken (High, Main, Constrained Baseline, Stereo High)"
        )
    if level not in _LEVELS:
        raise UnsupportedVideo(f"H.264 level_idc {level} is not a level")
    max_mbps, max_fs = _LEVELS[level]
    mbs = ((video.width + 15) // 16) * ((video.height + 15) // 16)
    if mbs > max_fs or mbs * video.frame_rate > max_mbps * 1.01:
        raise UnsupportedVideo(
            f"{video.width}×{video.height} at {video.frame_rate:.2f} frames/s exceeds level "
            f"{video.level}"
        )
    if video.width > 1920 or video.height > 1080:
        raise UnsupportedVideo(f"{video.width}×{video.height} is over 1920×1080 (PS3.5 §8.2.8)")
    if level > 42:
        raise UnsupportedVideo(f"H.264 level {video.level} is above 4.2 (PS3.5 §8.2.8)")
    if profile == 128:
        if level <= 42:
            return H264_STEREO_HIGH_42
    if level <= 41:
        return H264_HIGH_41
    if video.frame_rate > 60.5:
        raise UnsupportedVideo("level 4.2 is taken up to 60 frames/s (PS3.5 §8.2.8)")
    return H264_HIGH_42_2D
