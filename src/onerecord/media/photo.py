"""A photograph from a phone or a medical camera, checked and cleaned before it becomes DICOM.

`read_photo` takes the bytes of a JPEG or PNG part and gives the pixel data the VL
Photographic Image will hold, with nothing of the camera's metadata left:

- **Checked first**: the magic number, the size in bytes, and the dimensions read from the
  header (JPEG SOF, PNG IHDR) against `PhotoLimits` — before Pillow decodes anything, so a
  decompression bomb is refused by its header (and Pillow's own bomb check stays on).
- **JPEG**: the marker segments are walked; only what decoding needs is kept (DQT, DHT, SOF,
  DRI, SOS and the entropy-coded data, APP0 JFIF, APP14 Adobe, APP2 ICC profile); EXIF and XMP
  (APP1, where GPS lives), MPF and other APPn, comments, and anything after EOI (phones append
  preview images there) are dropped — losslessly, the compressed data untouched. When the EXIF
  orientation is not 1, or the JPEG is not baseline 8-bit (progressive, CMYK), it is decoded,
  turned upright and re-encoded once as baseline (quality 95, 4:2:2) by Pillow. The result is
  stored in the JPEG Baseline transfer syntax (1.2.840.10008.1.2.4.50).
- **PNG**: decoded to native pixels (upright by its eXIf orientation; text chunks, XMP and EXIF
  are not carried), stored in Explicit VR Little Endian. **Decision**: PNG has no DICOM transfer
  syntax, and a photo sent as PNG was chosen lossless by its sender; native pixels keep it
  lossless with no encoder dependency, every DICOM reader takes them, and the archive's frames
  and rendered routes already serve them. The cost is size (width × height × 3 bytes);
  JPEG-LS or JPEG 2000 lossless would need codecs outside the default install. Alpha is
  composited on white; 16-bit colour is refused (8-bit would lose precision), 16-bit grey kept.

Errors: `InvalidPhoto` (C000: not the format it claims, truncated, undecodable),
`UnsupportedPhoto` (0122: a kind not taken), `PhotoTooLarge` (A700: over a limit).

References: ITU-T T.81 (JPEG) Annex B (markers, B.1.1.5 entropy-coded segments), JFIF 1.02,
CIPA DC-008 (EXIF: APP1, orientation 0x0112, DateTimeOriginal 0x9003); PNG (ISO/IEC 15948)
§11.2.2 IHDR, §11.3.3.6 eXIf; DICOM PS3.5 §8.2.1 (JPEG Baseline, YBR_FULL_422), PS3.3
§A.32.4 (VL Photographic Image).
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from datetime import datetime

from PIL import Image

__all__ = [
    "EXPLICIT_VR_LITTLE_ENDIAN",
    "JPEG_BASELINE",
    "InvalidPhoto",
    "Photo",
    "PhotoError",
    "PhotoLimits",
    "PhotoTooLarge",
    "UnsupportedPhoto",
    "read_photo",
]

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_KEEP_APP = {0xE0: b"JFIF\x00", 0xEE: b"Adobe", 0xE2: b"ICC_PROFILE\x00"}
_TABLES = {0xC4, 0xCC, 0xDB, 0xDC, 0xDD}  # DHT, DAC, DQT, DNL, DRI
#: What must never survive into the stored header, whatever a mutated file pretends to be.
_METADATA_SIGNATURES = (b"Exif\x00", b"http://ns.adobe.com/xap", b"<x:xmpmeta", b"MPF\x00")
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class PhotoError(ValueError):
    """A photo the archive does not store."""


class InvalidPhoto(PhotoError):
    """Not the format it claims, truncated or undecodable (FailureReason C000)."""


class UnsupportedPhoto(PhotoError):
    """A well-formed image of a kind the archive does not take (FailureReason 0122)."""


class PhotoTooLarge(PhotoError):
    """Over the configured bytes, pixels or side (FailureReason A700)."""


@dataclass(frozen=True, slots=True)
class PhotoLimits:
    """The largest photo taken: bytes of the part, pixels, and pixels on a side."""

    max_bytes: int = 64 * 1024 * 1024
    max_pixels: int = 64_000_000
    max_side: int = 16_384


@dataclass(frozen=True, slots=True)
class Photo:
    """A checked photo as DICOM pixel data and the Image Pixel attributes that describe it."""

    pixel_data: bytes  # a JPEG baseline stream (encapsulated later) or native pixels
    transfer_syntax: str
    width: int
    height: int
    samples_per_pixel: int
    photometric: str
    bits_allocated: int
    lossy: bool
    reencoded: bool
    acquired: datetime | None  # EXIF DateTimeOriginal, read before it was dropped


def read_photo(data: bytes, media_type: str, limits: PhotoLimits = PhotoLimits()) -> Photo:  # noqa: B008
    """Check and clean a JPEG or PNG photo (see the module docstring), or raise PhotoError."""
    if len(data) > limits.max_bytes:
        raise PhotoTooLarge(f"a photo is at most {limits.max_bytes} bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if media_type == "image/jpeg":
                return _jpeg(data, limits)
            if media_type == "image/png":
                return _png(data, limits)
    except PhotoError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotoTooLarge("the image decompresses to too many pixels") from None
    except Exception as exc:  # noqa: BLE001 - Pillow on hostile bytes raises many kinds
        raise InvalidPhoto(f"the image cannot be decoded ({type(exc).__name__})") from None
    raise UnsupportedPhoto(f"{media_type[:64]} is not a photo type taken")


def _check_size(width: int, height: int, limits: PhotoLimits) -> None:
    if not width or not height:
        raise InvalidPhoto("the image has no width or height")
    if width > limits.max_side or height > limits.max_side:
        raise PhotoTooLarge(f"a photo is at most {limits.max_side} pixels on a side")
    if width * height > limits.max_pixels:
        raise PhotoTooLarge(f"a photo is at most {limits.max_pixels} pixels")


# --- JPEG ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Jpeg:
    kept: bytes  # the JPEG without the dropped segments
    sof: int
    width: int
    height: int
    components: int
    precision: int
    subsampled: bool
    adobe_transform: int | None
    exif: bytes | None


def _segments(data: bytes) -> _Jpeg:
    """Walk the markers (T.81 B.1.1), keeping what decoding needs; InvalidPhoto if broken."""
    if not data.startswith(b"\xff\xd8\xff"):
        raise InvalidPhoto("not a JPEG (no SOI marker)")
    out = bytearray(b"\xff\xd8")
    pos = 2
    sof = width = height = components = precision = 0
    subsampled = False
    adobe: int | None = None
    exif: bytes | None = None
    scans = 0
    while True:
        while data[pos : pos + 2] == b"\xff\xff":
            pos += 1  # fill bytes (B.1.1.2)
        if pos + 2 > len(data) or data[pos] != 0xFF:
            raise InvalidPhoto("JPEG: a marker was expected")
        marker = data[pos + 1]
        if marker == 0xD9:
            if not scans:
                raise InvalidPhoto("JPEG: EOI before any scan")
            out += b"\xff\xd9"
            break  # anything after EOI (previews, trailers) is dropped
        if 0xD0 <= marker <= 0xD7 or marker in (0x01, 0xD8):
            raise InvalidPhoto("JPEG: a marker out of place")
        if pos + 4 > len(data):
            raise InvalidPhoto("JPEG: truncated")
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        end = pos + 2 + length
        if length < 2 or end > len(data):
            raise InvalidPhoto("JPEG: a segment runs past the end")
        body = data[pos + 4 : end]
        segment = data[pos:end]
        if marker in _SOF:
            if sof:
                raise InvalidPhoto("JPEG: two frame headers")
            if len(body) < 6:
                raise InvalidPhoto("JPEG: frame header too short")
            precision, height, width, components = struct.unpack(">BHHB", body[:6])
            if len(body) < 6 + 3 * components or components not in (1, 3, 4):
                raise InvalidPhoto("JPEG: frame header does not match its components")
            factors = {body[7 + 3 * i] for i in range(components)}
            subsampled = len(factors) > 1
            sof = marker
            out += segment
        elif 0xE0 <= marker <= 0xEF:
            if marker == 0xE1 and body.startswith(b"Exif\x00\x00") and exif is None:
                exif = bytes(body)
            keep = _KEEP_APP.get(marker)
            if keep is not None and body.startswith(keep):
                if marker == 0xE0:
                    segment = _jfif_without_thumbnail(segment)
                if marker == 0xEE and len(body) >= 12:
                    adobe = body[11]
                out += segment
        elif marker == 0xFE:
            pass  # a comment: free text, dropped
        elif marker == 0xDA:
            if not sof:
                raise InvalidPhoto("JPEG: a scan before the frame header")
            scans += 1
            scan_end = _entropy_end(data, end)
            out += data[pos:scan_end]
            pos = scan_end
            continue
        elif marker in _TABLES:
            out += segment  # needed to decode
        else:
            raise InvalidPhoto(f"JPEG: marker {marker:02X} is not taken")
        pos = end
    if not sof:
        raise InvalidPhoto("JPEG: no frame header")
    header = bytes(out[: out.find(b"\xff\xda")])
    if any(signature in header for signature in _METADATA_SIGNATURES):
        raise InvalidPhoto("JPEG: camera metadata outside its segments")
    return _Jpeg(bytes(out), sof, width, height, components, precision, subsampled, adobe, exif)


def _jfif_without_thumbnail(segment: bytes) -> bytes:
    """APP0 JFIF with its thumbnail (Xthumbnail × Ythumbnail RGB) cut off."""
    if len(segment) < 18:
        return segment
    return segment[:2] + struct.pack(">H", 16) + segment[4:16] + b"\x00\x00"


def _entropy_end(data: bytes, pos: int) -> int:
    """Where the entropy-coded data starting at `pos` ends: the next marker (not RST, not 00)."""
    while True:
        at = data.find(b"\xff", pos)
        if at < 0 or at + 1 >= len(data):
            raise InvalidPhoto("JPEG: the scan runs to the end without EOI")
        following = data[at + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
            pos = at + 1 if following == 0xFF else at + 2
            continue
        return at


def _exif_facts(exif: bytes | None) -> tuple[int, datetime | None]:
    """The EXIF orientation (1 when absent or unreadable) and DateTimeOriginal."""
    if exif is None:
        return 1, None
    try:
        parsed = Image.Exif()
        parsed.load(exif[6:])
        orientation = int(parsed.get(0x0112, 1))
        stamp = parsed.get_ifd(0x8769).get(0x9003) or parsed.get(0x0132)
    except Exception:  # noqa: BLE001 - hostile EXIF: treated as absent (it is dropped anyway)
        return 1, None
    return (orientation if 1 <= orientation <= 8 else 1), _exif_time(stamp)


def _exif_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value.strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None


def _jpeg(data: bytes, limits: PhotoLimits) -> Photo:
    jpeg = _segments(data)
    _check_size(jpeg.width, jpeg.height, limits)
    if jpeg.precision != 8:
        raise UnsupportedPhoto(f"a {jpeg.precision}-bit JPEG is not taken (8-bit baseline)")
    orientation, acquired = _exif_facts(jpeg.exif)
    baseline = jpeg.sof == 0xC0 and jpeg.components in (1, 3)
    with Image.open(io.BytesIO(jpeg.kept)) as image:
        if image.size != (jpeg.width, jpeg.height):
            raise InvalidPhoto("JPEG: the decoder sees another size than the header")
        if baseline and orientation == 1:
            image.draft(image.mode, (max(1, jpeg.width // 8), max(1, jpeg.height // 8)))
            image.load()  # decodes every scan (at 1/8 scale): a broken stream fails here
            grey = jpeg.components == 1
            photometric = "MONOCHROME2" if grey else _colour(jpeg)
            return Photo(
                jpeg.kept,
                JPEG_BASELINE,
                jpeg.width,
                jpeg.height,
                1 if grey else 3,
                photometric,
                8,
                lossy=True,
                reencoded=False,
                acquired=acquired,
            )
        image.load()
        upright = _oriented(image, orientation)
    grey = upright.mode in ("L", "1", "I", "I;16")
    upright = upright.convert("L" if grey else "RGB")
    out = io.BytesIO()
    upright.save(out, format="JPEG", quality=95, subsampling=1, optimize=False)
    return Photo(
        out.getvalue(),
        JPEG_BASELINE,
        upright.width,
        upright.height,
        1 if grey else 3,
        "MONOCHROME2" if grey else "YBR_FULL_422",
        8,
        lossy=True,
        reencoded=True,
        acquired=acquired,
    )


def _colour(jpeg: _Jpeg) -> str:
    """The PhotometricInterpretation of a colour JPEG baseline stream (PS3.5 §8.2.1)."""
    if jpeg.adobe_transform == 0:
        return "RGB"  # Adobe APP14 transform 0: the components are R, G, B
    return "YBR_FULL_422" if jpeg.subsampled else "YBR_FULL"


def _oriented(image: Image.Image, orientation: int) -> Image.Image:
    """The image turned upright by an EXIF orientation (CIPA DC-008 0x0112)."""
    method = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }.get(orientation)
    return image if method is None else image.transpose(method)


# --- PNG -----------------------------------------------------------------------------------


def _png(data: bytes, limits: PhotoLimits) -> Photo:
    if not data.startswith(_PNG_MAGIC):
        raise InvalidPhoto("not a PNG (no signature)")
    if len(data) < 33 or data[12:16] != b"IHDR" or struct.unpack(">I", data[8:12])[0] != 13:
        raise InvalidPhoto("PNG: IHDR is not the first chunk")
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    _check_size(width, height, limits)
    if colour not in (0, 2, 3, 4, 6) or depth not in (1, 2, 4, 8, 16):
        raise InvalidPhoto("PNG: an impossible colour type or bit depth")
    if depth == 16 and colour != 0:
        raise UnsupportedPhoto("a 16-bit colour PNG is not taken (8-bit would lose precision)")
    with Image.open(io.BytesIO(data)) as image:
        if image.format != "PNG" or image.size != (width, height):
            raise InvalidPhoto("PNG: the decoder sees another image than the header")
        image.load()
        orientation = int(image.getexif().get(0x0112, 1) or 1)
        upright = _oriented(image, orientation if 1 <= orientation <= 8 else 1)
        if depth == 16:
            grey16 = upright.convert("I;16")
            pixels = grey16.tobytes("raw", "I;16")  # little endian, as the syntax wants
            return Photo(
                pixels,
                EXPLICIT_VR_LITTLE_ENDIAN,
                grey16.width,
                grey16.height,
                1,
                "MONOCHROME2",
                16,
                lossy=False,
                reencoded=False,
                acquired=None,
            )
        flat = _flatten(upright)
    return Photo(
        flat.tobytes(),
        EXPLICIT_VR_LITTLE_ENDIAN,
        flat.width,
        flat.height,
        1 if flat.mode == "L" else 3,
        "MONOCHROME2" if flat.mode == "L" else "RGB",
        8,
        lossy=False,
        reencoded=False,
        acquired=None,
    )


def _flatten(image: Image.Image) -> Image.Image:
    """8-bit grey or RGB, any transparency composited on white."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("1", "L"):
        return image.convert("L")
    if image.mode == "LA":
        white = Image.new("LA", image.size, (255, 255))
        return Image.alpha_composite(white.convert("RGBA"), image.convert("RGBA")).convert("L")
    if image.mode == "RGBA":
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, image).convert("RGB")
    return image.convert("RGB")
