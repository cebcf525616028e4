"""A minimal MP4 writer for a synthetic H.264 stream: one video track, every sample a sync one.

`mux_h264` takes an Annex B byte stream (`synth/h264.py`: an access unit delimiter, SPS and
PPS before the first picture, one IDR slice per picture) and writes an ISO base media file:
`ftyp` (isom), `mdat` (each picture's slice as a 4-byte length-prefixed NAL unit, delimiters
dropped), then `moov` with one `trak` — `tkhd`, `mdhd` (the frame rate as timescale, one tick
a frame), `hdlr` vide, `vmhd`, `dref`, and the sample table: `stsd` with `avc1`/`avcC` (the
SPS and PPS, with the High profile fields), `stts`, `stsc`, `stsz`, `stco` (one chunk).
`write_h264_mp4` writes the same file to a stream with the pictures repeated to any count, never
held (a benchmark's 2 GiB clip, bench/media.py --only video). No
encoder and no FFmpeg (GPL) is involved: this is how the synthetic wound clip becomes what a
phone would send over STOW-RS (IHE WIC) and what `rendered` serves as video/mp4.

References: ISO/IEC 14496-12 §4.3 (ftyp), §8.1.1 (mdat), §8.2.2 (mvhd), §8.3.2 (tkhd),
§8.4.2 (mdhd), §8.4.3 (hdlr), §8.4.5.2 (vmhd), §8.7.2 (dref), §8.5.2 (stsd), §8.6.1.2 (stts),
§8.7.4 (stsc), §8.7.3.2 (stsz), §8.7.5 (stco); ISO/IEC 14496-15 §5.3.3.1 (avcC), §5.3.4.1
(avc1); ITU-T H.264 Annex B (byte stream).
"""

from __future__ import annotations

import struct
from typing import Protocol

__all__ = ["Writable", "mux_h264", "write_h264_mp4"]


class Writable(Protocol):
    """Where `write_h264_mp4` writes: a binary file, or anything with its `write`."""

    def write(self, data: bytes, /) -> object: ...


_START = b"\x00\x00\x00\x01"
_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def _box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def _full(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *payload)


def _nal_units(stream: bytes) -> list[bytes]:
    if not stream.startswith(_START):
        raise ValueError("an Annex B stream of 4-byte start codes")
    return [unit for unit in stream.split(_START) if unit]


def _parse(stream: bytes) -> tuple[bytes, bytes, list[bytes]]:
    """The SPS, the PPS and the pictures (each a length-prefixed NAL unit) of `stream`."""
    sps = pps = b""
    samples: list[bytes] = []
    for unit in _nal_units(stream):
        kind = unit[0] & 0x1F
        if kind == 7:
            sps = sps or unit
        elif kind == 8:
            pps = pps or unit
        elif kind in (1, 5):
            samples.append(struct.pack(">I", len(unit)) + unit)
        # 9 (access unit delimiter) and others: not carried in an MP4 sample here
    if not sps or not pps or not samples:
        raise ValueError("the stream needs an SPS, a PPS and at least one picture")
    return sps, pps, samples


_FTYP = _box(b"ftyp", b"isom", struct.pack(">I", 512), b"isom", b"iso2", b"avc1", b"mp41")


def mux_h264(stream: bytes, *, width: int, height: int, fps: int) -> bytes:
    """An MP4 file holding the Annex B H.264 `stream` at `fps` frames a second."""
    sps, pps, samples = _parse(stream)
    mdat = _box(b"mdat", *samples)
    sizes = [len(s) for s in samples]
    moov = _moov(sps, pps, sizes, width=width, height=height, fps=fps, first=len(_FTYP) + 8)
    return _FTYP + mdat + moov


def write_h264_mp4(
    out: Writable, stream: bytes, *, width: int, height: int, fps: int, frames: int
) -> int:
    """Write to `out` an MP4 of `frames` pictures: the stream's pictures again and again.

    The same file as `mux_h264` of a stream holding those pictures, written as it goes: only
    the stream's own pictures are held, so a clip of gigabytes costs no memory (a benchmark's
    large clip). Give an even number of pictures of alternating `idr_pic_id` (as
    `encode_pcm_stream` writes them) for a valid stream. The file is below 4 GiB (32-bit box
    sizes and chunk offsets). Returns its size in bytes.
    """
    sps, pps, samples = _parse(stream)
    if frames < 1:
        raise ValueError("at least one frame")
    sizes = [len(samples[n % len(samples)]) for n in range(frames)]
    mdat_size = 8 + sum(sizes)
    moov = _moov(sps, pps, sizes, width=width, height=height, fps=fps, first=len(_FTYP) + 8)
    if len(_FTYP) + mdat_size + len(moov) >= 1 << 32:
        raise ValueError("the file would be 4 GiB or more (64-bit boxes are not written)")
    out.write(_FTYP)
    out.write(struct.pack(">I4s", mdat_size, b"mdat"))
    for n in range(frames):
        out.write(samples[n % len(samples)])
    out.write(moov)
    return len(_FTYP) + mdat_size + len(moov)


def _moov(
    sps: bytes, pps: bytes, sizes: list[int], *, width: int, height: int, fps: int, first: int
) -> bytes:
    """The `moov` of one video track whose samples, of `sizes`, form one chunk at `first`."""
    profile, compatibility, level = sps[1], sps[2], sps[3]
    avcc = bytes([1, profile, compatibility, level, 0xFF, 0xE1])
    avcc += struct.pack(">H", len(sps)) + sps + b"\x01" + struct.pack(">H", len(pps)) + pps
    if profile in (100, 110, 122, 144):
        avcc += bytes([0xFC | 1, 0xF8, 0xF8, 0])  # 4:2:0, 8-bit luma and chroma, no SPS ext
    count = len(sizes)
    duration_ms = count * 1000 // fps
    visual = (
        bytes(6)
        + struct.pack(">H", 1)  # data_reference_index
        + bytes(16)
        + struct.pack(">HHII", width, height, 0x480000, 0x480000)
        + bytes(4)
        + struct.pack(">H", 1)  # frame_count
        + bytes([len(b"onerecord synth")])
        + b"onerecord synth".ljust(31, b"\0")
        + struct.pack(">Hh", 0x18, -1)
    )
    stbl = _box(
        b"stbl",
        _full(b"stsd", 0, 0, struct.pack(">I", 1), _box(b"avc1", visual, _box(b"avcC", avcc))),
        _full(b"stts", 0, 0, struct.pack(">III", 1, count, 1)),
        _full(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, count, 1)),
        _full(
            b"stsz",
            0,
            0,
            struct.pack(">II", 0, count),
            *(struct.pack(">I", size) for size in sizes),
        ),
        _full(b"stco", 0, 0, struct.pack(">II", 1, first)),
    )
    minf = _box(
        b"minf",
        _full(b"vmhd", 0, 1, bytes(8)),
        _box(b"dinf", _full(b"dref", 0, 0, struct.pack(">I", 1), _full(b"url ", 0, 1))),
        stbl,
    )
    mdia = _box(
        b"mdia",
        _full(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, fps, count, 0x55C4, 0)),  # und
        _full(b"hdlr", 0, 0, bytes(4), b"vide", bytes(12), b"VideoHandler\0"),
        minf,
    )
    tkhd = _full(
        b"tkhd",
        0,
        3,  # enabled, in movie
        struct.pack(">IIIII", 0, 0, 1, 0, duration_ms),
        bytes(8),
        struct.pack(">hhhH", 0, 0, 0, 0),
        _MATRIX,
        struct.pack(">II", width << 16, height << 16),
    )
    mvhd = _full(
        b"mvhd",
        0,
        0,
        struct.pack(">IIIIIH", 0, 0, 1000, duration_ms, 0x10000, 0x100),
        bytes(10),
        _MATRIX,
        bytes(24),
        struct.pack(">I", 2),  # next_track_ID
    )
    return _box(b"moov", mvhd, _box(b"trak", tkhd, mdia))
