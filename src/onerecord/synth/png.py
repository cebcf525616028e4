"""Small PNG images generated in pure Python (zlib), for the media case of the demo.

References: PNG Specification (W3C, 2nd ed.) 5.2 signature, 5.3 chunk layout and CRC,
11.2.2 IHDR, 9.2 filter type 0 (None).
"""

from __future__ import annotations

import math
import random
import struct
import zlib

__all__ = ["PNG_SIGNATURE", "render_png"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def render_png(rng: random.Random, *, width: int = 96, height: int = 72) -> bytes:
    """Return an 8-bit greyscale PNG resembling an ultrasound sector: a noisy fan on black."""
    cx, cy = width / 2, -height * 0.15
    radius_in, radius_out = height * 0.35, height * 1.05
    half_angle = math.radians(35 + rng.randint(-5, 5))
    blob_x, blob_y = rng.uniform(0.35, 0.65) * width, rng.uniform(0.45, 0.75) * height
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter type None
        for x in range(width):
            dx, dy = x - cx, y - cy
            r = math.hypot(dx, dy)
            angle = math.atan2(dx, dy)
            value = 0
            if radius_in <= r <= radius_out and abs(angle) <= half_angle:
                speckle = rng.randint(0, 90)
                depth = 1 - (r - radius_in) / (radius_out - radius_in)
                value = int(40 + 80 * depth) + speckle
                if math.hypot(x - blob_x, y - blob_y) < height * 0.12:
                    value //= 4  # an echo-poor structure, as a cyst or a vessel
            rows.append(min(value, 255))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"tEXt", b"Comment\x00synthetic image, onerecord synth")
        + _chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + _chunk(b"IEND", b"")
    )
