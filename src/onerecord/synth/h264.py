"""A minimal H.264 encoder in pure Python: every picture an IDR of I_PCM macroblocks.

I_PCM carries the samples uncoded (ITU-T H.264 7.3.5, mb_type 25 in an I slice), so no
transform, prediction or entropy coding of residuals is needed: the stream is valid High
Profile H.264 (4:2:0, 8-bit, CAVLC), lossless, and large — fine for a short synthetic clip, and
free of any GPL encoder (x264 is GPL). Each picture is one IDR access unit: an access unit
delimiter, then SPS and PPS before the first, then one slice holding every macroblock.

References: ITU-T H.264 (08/2021) 7.3.1 (NAL unit, emulation prevention), 7.3.2.1.1 (SPS),
7.3.2.2 (PPS), 7.3.2.4 (access unit delimiter), 7.3.3 (slice header), 7.3.4 (slice data),
7.3.5 (macroblock layer, pcm samples), 9.1 (Exp-Golomb), Annex A.3 (levels), Annex B (byte
stream).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["HIGH_PROFILE", "YuvFrame", "encode_pcm_stream"]

HIGH_PROFILE = 100
_START_CODE = b"\x00\x00\x00\x01"


@dataclass(frozen=True, slots=True)
class YuvFrame:
    """One 4:2:0 picture: Y is width×height bytes, Cb and Cr (width/2)×(height/2) each."""

    width: int
    height: int
    y: bytes
    cb: bytes
    cr: bytes

    def __post_init__(self) -> None:
        if self.width % 16 or self.height % 16 or not self.width or not self.height:
            raise ValueError("width and height are whole macroblocks (multiples of 16)")
        if len(self.y) != self.width * self.height:
            raise ValueError("Y plane has the wrong size")
        if len(self.cb) != len(self.cr) or len(self.cb) != self.width * self.height // 4:
            raise ValueError("chroma planes have the wrong size")


class _Bits:
    """A big-endian bit writer with Exp-Golomb codes (H.264 9.1)."""

    def __init__(self) -> None:
        self._bytes = bytearray()
        self._acc = 0
        self._n = 0

    def u(self, bits: int, value: int) -> None:
        for shift in range(bits - 1, -1, -1):
            self._acc = (self._acc << 1) | ((value >> shift) & 1)
            self._n += 1
            if self._n == 8:
                self._bytes.append(self._acc)
                self._acc = self._n = 0

    def ue(self, value: int) -> None:
        code = value + 1
        length = code.bit_length()
        self.u(length - 1, 0)
        self.u(length, code)

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def align_zero(self) -> None:
        while self._n:
            self.u(1, 0)

    def raw(self, data: bytes) -> None:
        assert self._n == 0, "raw bytes only on a byte boundary"
        self._bytes += data

    def trailing(self) -> bytes:
        """rbsp_trailing_bits (7.3.2.11): a one, then zeros to the byte boundary."""
        self.u(1, 1)
        self.align_zero()
        return bytes(self._bytes)


def _nal(ref_idc: int, unit_type: int, rbsp: bytes) -> bytes:
    """A NAL unit in the byte stream: start code, header, payload with emulation prevention."""
    out = bytearray(_START_CODE)
    out.append((ref_idc << 5) | unit_type)
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def _sps(width_mbs: int, height_mbs: int, level_idc: int) -> bytes:
    b = _Bits()
    b.u(8, HIGH_PROFILE)
    b.u(8, 0)  # constraint_set0..5 flags, reserved_zero_2bits
    b.u(8, level_idc)
    b.ue(0)  # seq_parameter_set_id
    b.ue(1)  # chroma_format_idc: 4:2:0
    b.ue(0)  # bit_depth_luma_minus8
    b.ue(0)  # bit_depth_chroma_minus8
    b.u(1, 0)  # qpprime_y_zero_transform_bypass_flag
    b.u(1, 0)  # seq_scaling_matrix_present_flag
    b.ue(0)  # log2_max_frame_num_minus4
    b.ue(2)  # pic_order_cnt_type: output order is decoding order
    b.ue(1)  # max_num_ref_frames
    b.u(1, 0)  # gaps_in_frame_num_value_allowed_flag
    b.ue(width_mbs - 1)
    b.ue(height_mbs - 1)
    b.u(1, 1)  # frame_mbs_only_flag
    b.u(1, 1)  # direct_8x8_inference_flag
    b.u(1, 0)  # frame_cropping_flag
    b.u(1, 0)  # vui_parameters_present_flag
    return _nal(3, 7, b.trailing())


def _pps() -> bytes:
    b = _Bits()
    b.ue(0)  # pic_parameter_set_id
    b.ue(0)  # seq_parameter_set_id
    b.u(1, 0)  # entropy_coding_mode_flag: CAVLC
    b.u(1, 0)  # bottom_field_pic_order_in_frame_present_flag
    b.ue(0)  # num_slice_groups_minus1
    b.ue(0)  # num_ref_idx_l0_default_active_minus1
    b.ue(0)  # num_ref_idx_l1_default_active_minus1
    b.u(1, 0)  # weighted_pred_flag
    b.u(2, 0)  # weighted_bipred_idc
    b.se(0)  # pic_init_qp_minus26
    b.se(0)  # pic_init_qs_minus26
    b.se(0)  # chroma_qp_index_offset
    b.u(1, 1)  # deblocking_filter_control_present_flag
    b.u(1, 0)  # constrained_intra_pred_flag
    b.u(1, 0)  # redundant_pic_cnt_present_flag
    return _nal(3, 8, b.trailing())


def _access_unit_delimiter() -> bytes:
    b = _Bits()
    b.u(3, 0)  # primary_pic_type: I slices only
    return _nal(0, 9, b.trailing())


def _idr_slice(frame: YuvFrame, idr_pic_id: int) -> bytes:
    b = _Bits()
    b.ue(0)  # first_mb_in_slice
    b.ue(7)  # slice_type: I, and every slice of the picture is I
    b.ue(0)  # pic_parameter_set_id
    b.u(4, 0)  # frame_num (log2_max_frame_num = 4): 0 in an IDR picture
    b.ue(idr_pic_id)  # differs between consecutive IDR pictures (7.4.3)
    b.u(1, 0)  # no_output_of_prior_pics_flag
    b.u(1, 0)  # long_term_reference_flag
    b.se(0)  # slice_qp_delta
    b.ue(1)  # disable_deblocking_filter_idc: off
    width_mbs, height_mbs = frame.width // 16, frame.height // 16
    chroma_width = frame.width // 2
    for my in range(height_mbs):
        for mx in range(width_mbs):
            b.ue(25)  # mb_type I_PCM
            b.align_zero()  # pcm_alignment_zero_bit
            for row in range(16):
                start = (my * 16 + row) * frame.width + mx * 16
                b.raw(frame.y[start : start + 16])
            for plane in (frame.cb, frame.cr):
                for row in range(8):
                    start = (my * 8 + row) * chroma_width + mx * 8
                    b.raw(plane[start : start + 8])
    return _nal(3, 5, b.trailing())


def encode_pcm_stream(frames: Sequence[YuvFrame], *, level_idc: int = 41) -> bytes:
    """Encode the frames as an H.264 Annex B byte stream, High Profile, every picture an IDR."""
    if not frames:
        raise ValueError("at least one frame")
    first = frames[0]
    if any((f.width, f.height) != (first.width, first.height) for f in frames):
        raise ValueError("every frame has the same size")
    out = bytearray()
    for index, frame in enumerate(frames):
        out += _access_unit_delimiter()
        if index == 0:
            out += _sps(first.width // 16, first.height // 16, level_idc)
            out += _pps()
        out += _idr_slice(frame, index % 2)
    return bytes(out)
