"""Photos attached to a message: checked for type and size, and written anew without metadata.

A photo is a JPEG or PNG of at most `MAX_PHOTO_BYTES` and `MAX_PIXELS`; the declared type must
be what the bytes are (by their signature and by decoding them). It is decoded, turned upright
by its EXIF orientation, scaled down to `MAX_EDGE` pixels on the long side and encoded again,
so nothing of the original file's metadata — EXIF (camera, time, GPS position), XMP, IPTC, ICC
names, comments, PNG text chunks — is kept, and nothing but pixels reaches the office. The
same function runs in the portal (before the photo leaves the citizen's browser session) and
in the service (which trusts no client to have done it).

References: issue 15 (type- and size-checked, EXIF stripped); CIPA DC-008 (Exif 2.3, tag 274
Orientation); PNG 1.2 §4.2 (ancillary chunks).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from onerecord.dialogue.errors import BadInput

__all__ = [
    "MAX_EDGE",
    "MAX_PHOTOS",
    "MAX_PHOTO_BYTES",
    "MAX_PIXELS",
    "PHOTO_TYPES",
    "CleanPhoto",
    "PhotoRefused",
    "clean_photo",
]

PHOTO_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG"}
MAX_PHOTO_BYTES = 8 * 1024 * 1024
"""The largest photo file accepted (a phone's camera JPEG is 2–6 MB)."""
MAX_PIXELS = 50_000_000
"""Refused before decoding beyond this (a decompression bomb)."""
MAX_EDGE = 1600
"""The long side of the photo as stored; enough for a GP to see a rash or a wound."""
MAX_PHOTOS = 3
_SIGNATURES = {"image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG\r\n\x1a\n"}


class PhotoRefused(BadInput):
    """A photo that is not one: `reason` is type, size or unreadable."""


@dataclass(frozen=True, slots=True)
class CleanPhoto:
    content_type: str
    data: bytes
    width: int
    height: int


def clean_photo(data: bytes, content_type: str) -> CleanPhoto:
    """Check a photo and return it encoded anew without metadata; raise PhotoRefused."""
    kind = content_type.split(";")[0].strip().lower()
    if kind not in PHOTO_TYPES:
        raise PhotoRefused("a photo is a JPEG or PNG image", reason="type")
    if not data or len(data) > MAX_PHOTO_BYTES:
        raise PhotoRefused(f"a photo is at most {MAX_PHOTO_BYTES} bytes", reason="size")
    if not data.startswith(_SIGNATURES[kind]):
        raise PhotoRefused("the file is not the image type it says", reason="type")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[PHOTO_TYPES[kind]]) as opened:
                if opened.width * opened.height > MAX_PIXELS:
                    raise PhotoRefused("the photo has too many pixels", reason="size")
                opened.load()
                upright = ImageOps.exif_transpose(opened)
    except PhotoRefused:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise PhotoRefused("the photo cannot be read", reason="unreadable") from exc
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise PhotoRefused("the photo has too many pixels", reason="size") from None
    # Pixels only: a new image without the source's info (EXIF, XMP, ICC, text chunks).
    mode = "RGB" if kind == "image/jpeg" or upright.mode not in ("RGBA", "LA", "L") else "RGBA"
    pixels = upright.convert(mode)
    pixels.thumbnail((MAX_EDGE, MAX_EDGE))
    bare = Image.new(pixels.mode, pixels.size)
    bare.paste(pixels)
    out = io.BytesIO()
    if kind == "image/jpeg":
        bare.save(out, format="JPEG", quality=85, optimize=True)
    else:
        bare.save(out, format="PNG", optimize=True)
    return CleanPhoto(kind, out.getvalue(), bare.width, bare.height)
