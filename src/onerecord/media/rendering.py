"""Pixel data for WADO-RS: frames as stored, and rendered JPEG/PNG images and thumbnails.

`frames_of` splits a stored instance's pixel data into frames: native (uncompressed) pixel data
by the frame size Rows × Columns × SamplesPerPixel × BitsAllocated / 8, encapsulated pixel data
into its compressed frames as stored (PS3.5 §A.4). `render` draws one frame with Pillow: a
single-frame or multi-frame grayscale (MONOCHROME1/2, Modality LUT by RescaleSlope/Intercept,
then a linear VOI window: the request's `window`, else the instance's first WindowCenter/Width,
else the frame's range) or RGB/YBR image; a JPEG baseline frame asked for as JPEG with nothing
to change is sent as stored. Compressed syntaxes other than those Pillow decodes are not
rendered (406): no GPL codec is a dependency.

Everything here runs on the archive's own checked bytes; a rendering that fails is the
caller's 406 or 400, never a 500.

References: DICOM PS3.18 §8.3.5.1 (rendered resources: `window`, `viewport`), §10.4.1.1.3
(thumbnail); PS3.3 §C.11.2 (VOI LUT, linear function), §C.7.6.3.1.2 (photometric
interpretation); PS3.5 §8.2 (native and encapsulated pixel data).
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pydicom
from PIL import Image
from pydicom.encaps import generate_frames

from onerecord.dicom import (
    BINARY_VRS,
    PIXEL_DATA_TAGS,
    AttributePath,
    DicomWireError,
    InvalidRequest,
    NotAcceptable,
    NotFound,
)

__all__ = [
    "THUMBNAIL_SIZE",
    "RenderRequest",
    "bulk_value",
    "frames_of",
    "parse_render_params",
    "render",
]

THUMBNAIL_SIZE = 128
_MAX_VIEWPORT = 4096
_JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
_NUMBER = r"[+-]?(\d+(\.\d*)?|\.\d+)"
_WINDOW = re.compile(rf"({_NUMBER}),({_NUMBER})(,(linear|linear-exact|sigmoid))?")
_VIEWPORT = re.compile(r"(\d{1,5}),(\d{1,5})")


@dataclass(frozen=True, slots=True)
class RenderRequest:
    """What to draw: which frame, the VOI window, the largest size, thumbnail or not."""

    frame: int = 1
    window: tuple[float, float] | None = None
    viewport: tuple[int, int] | None = None
    thumbnail: bool = False


def parse_render_params(
    params: Mapping[str, str], *, frame: int = 1, thumbnail: bool = False
) -> RenderRequest:
    """Read `window=center,width[,function]` and `viewport=vw,vh` (PS3.18 §8.3.5.1), or 400."""
    window = None
    text = params.get("window")
    if text is not None:
        m = _WINDOW.fullmatch(text)
        if m is None:
            raise InvalidRequest("window: center,width[,linear|linear-exact|sigmoid]")
        center, width = float(m.group(1)), float(m.group(4))
        if width < 1:
            raise InvalidRequest("window: the width is at least 1")
        window = (center, width)
    viewport = None
    text = params.get("viewport")
    if text is not None:
        m = _VIEWPORT.fullmatch(text)
        if m is None:
            raise InvalidRequest("viewport: vw,vh")
        vw, vh = int(m.group(1)), int(m.group(2))
        if not (1 <= vw <= _MAX_VIEWPORT and 1 <= vh <= _MAX_VIEWPORT):
            raise InvalidRequest(f"viewport: 1 to {_MAX_VIEWPORT} pixels each way")
        viewport = (vw, vh)
    return RenderRequest(frame=frame, window=window, viewport=viewport, thumbnail=thumbnail)


def _read(data: bytes) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(data))


def _frame_count(ds: pydicom.Dataset) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames") or 1))
    except (TypeError, ValueError):
        return 1


def frames_of(data: bytes) -> list[bytes]:
    """The frames of a stored instance's pixel data, as stored (native or compressed).

    Pixel data that cannot be split so (a video stream in one fragment, a broken offset table)
    is 406, never an error of the archive's.
    """
    try:
        return _frames_of(data)
    except DicomWireError:
        raise
    except Exception:  # noqa: BLE001 - pydicom's frame splitting raises many kinds
        raise NotAcceptable("the pixel data cannot be split into frames here") from None


def _frames_of(data: bytes) -> list[bytes]:
    ds = _read(data)
    if "PixelData" not in ds:
        raise NotAcceptable("the instance has no pixel data")
    count = _frame_count(ds)
    pixels = ds.PixelData
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        return list(generate_frames(pixels, number_of_frames=count))
    size = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1))
    bits = int(ds.BitsAllocated)
    if bits == 1:
        raise NotAcceptable("single-bit pixel data is not split into frames here")
    frame_bytes = size * bits // 8
    return [pixels[i * frame_bytes : (i + 1) * frame_bytes] for i in range(count)]


def bulk_value(data: bytes, path: AttributePath) -> list[bytes]:
    """The bytes a BulkDataURI names: a binary value, or pixel data (frames if compressed).

    `path` is (tag,) at the top, (sequence tag, item index, tag, …) deeper (`dicom.paths`).
    A path that names nothing, or no binary value, is 404.
    """
    ds = _read(data)
    node: pydicom.Dataset = ds
    for depth in range(0, len(path) - 1, 2):
        tag, index = path[depth], path[depth + 1]
        element = node.get(tag)
        if element is None or element.VR != "SQ" or index >= len(element.value):
            raise NotFound("bulk data: no such attribute")
        node = element.value[index]
    element = node.get(path[-1])
    if element is None or element.VR not in BINARY_VRS | {"OB or OW", "US or OW"}:
        raise NotFound("bulk data: no binary value at this path")
    if (
        len(path) == 1
        and path[0] in PIXEL_DATA_TAGS
        and ds.file_meta.TransferSyntaxUID.is_compressed
    ):
        return frames_of(data)
    return [bytes(element.value)]


def render(data: bytes, request: RenderRequest, media_type: str) -> bytes:
    """One frame of a stored instance as `image/jpeg` or `image/png` bytes (406 if it cannot)."""
    try:
        return _render(data, request, media_type)
    except DicomWireError:
        raise
    except Exception:  # noqa: BLE001 - pydicom, numpy and Pillow raise many kinds
        raise NotAcceptable("this instance cannot be rendered here") from None


def _render(data: bytes, request: RenderRequest, media_type: str) -> bytes:
    ds = _read(data)
    if "PixelData" not in ds:
        raise NotAcceptable("the instance has no pixel data to render")
    count = _frame_count(ds)
    if request.frame > count:
        raise InvalidRequest(f"frame: the instance has {count} frame(s)")
    syntax = str(ds.file_meta.TransferSyntaxUID)
    if (
        syntax == _JPEG_BASELINE
        and media_type == "image/jpeg"
        and request.window is None
        and request.viewport is None
        and not request.thumbnail
    ):
        return list(generate_frames(ds.PixelData, number_of_frames=count))[request.frame - 1]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            array = ds.pixel_array
    except Exception:  # noqa: BLE001 - no decoder for this transfer syntax, or broken data
        raise NotAcceptable("this instance cannot be rendered here") from None
    if count > 1:
        array = array[request.frame - 1]
    image = _image(ds, array, request.window)
    limit = request.viewport or ((THUMBNAIL_SIZE, THUMBNAIL_SIZE) if request.thumbnail else None)
    if limit is not None:
        image.thumbnail(limit)
    out = io.BytesIO()
    image.save(out, format="JPEG" if media_type == "image/jpeg" else "PNG")
    return out.getvalue()


def _image(
    ds: pydicom.Dataset, array: np.ndarray, window: tuple[float, float] | None
) -> Image.Image:
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if array.ndim == 3:
        if photometric.startswith("YBR"):
            from pydicom.pixels.processing import convert_color_space

            array = convert_color_space(array, photometric, "RGB")
        return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8), "RGB")
    if array.ndim != 2:
        raise NotAcceptable("this instance cannot be rendered here")
    values = array.astype(np.float64)
    values = values * float(ds.get("RescaleSlope", 1) or 1) + float(
        ds.get("RescaleIntercept", 0) or 0
    )
    if window is None:
        window = _stored_window(ds)
    if window is None:
        low, high = float(values.min()), float(values.max())
    else:
        center, width = window
        # PS3.3 §C.11.2.1.2.1: the linear function's edges.
        low, high = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    span = max(high - low, 1e-9)
    scaled = np.clip((values - low) / span, 0.0, 1.0) * 255.0
    if photometric == "MONOCHROME1":
        scaled = 255.0 - scaled
    return Image.fromarray(scaled.round().astype(np.uint8), "L")


def _stored_window(ds: pydicom.Dataset) -> tuple[float, float] | None:
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is None or width is None:
        return None
    try:
        c = float(center[0] if isinstance(center, pydicom.multival.MultiValue) else center)
        w = float(width[0] if isinstance(width, pydicom.multival.MultiValue) else width)
    except (TypeError, ValueError, IndexError):
        return None
    return (c, w) if w >= 1 else None
