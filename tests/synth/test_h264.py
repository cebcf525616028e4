"""The pure-Python H.264 writer: Exp-Golomb codes, emulation prevention, frame checks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onerecord.synth.h264 import YuvFrame, _Bits, _nal, encode_pcm_stream


def _frame(width: int = 16, height: int = 16, fill: int = 0) -> YuvFrame:
    quarter = width * height // 4
    return YuvFrame(
        width, height, bytes([fill]) * width * height, b"\x80" * quarter, b"\x80" * quarter
    )


@pytest.mark.parametrize(
    ("value", "bits"), [(0, "1"), (1, "010"), (2, "011"), (3, "00100"), (7, "0001000")]
)
def test_unsigned_exp_golomb(value: int, bits: str) -> None:  # H.264 Table 9-2
    writer = _Bits()
    writer.ue(value)
    data = writer.trailing()
    text = "".join(f"{b:08b}" for b in data)
    assert text.startswith(bits + "1")


@given(st.binary(max_size=300))
def test_no_start_code_prefix_survives_inside_a_nal_unit(payload: bytes) -> None:
    unit = _nal(3, 5, payload)[4:]
    for i in range(len(unit) - 2):
        assert not (unit[i] == 0 and unit[i + 1] == 0 and unit[i + 2] <= 3 and unit[i + 2] != 3)
    # Removing the emulation prevention bytes gives the payload back (7.4.1).
    out, zeros, skip = bytearray(), 0, False
    for byte in unit[1:]:
        if zeros >= 2 and byte == 3 and not skip:
            zeros, skip = 0, True
            continue
        skip = False
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    assert bytes(out) == payload


def test_black_frames_need_emulation_prevention_and_get_it() -> None:
    stream = encode_pcm_stream([_frame(fill=0), _frame(fill=0)])
    body = stream.split(b"\x00\x00\x00\x01")
    assert [b[0] & 0x1F for b in body if b] == [9, 7, 8, 5, 9, 5]  # AUD SPS PPS IDR AUD IDR


@pytest.mark.parametrize(("width", "height"), [(15, 16), (16, 0), (24, 16)])
def test_frames_are_whole_macroblocks(width: int, height: int) -> None:
    with pytest.raises(ValueError):
        YuvFrame(width, height, b"", b"", b"")


def test_frames_of_one_size() -> None:
    with pytest.raises(ValueError):
        encode_pcm_stream([_frame(16, 16), _frame(32, 16)])
