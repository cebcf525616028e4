"""Check that document bytes are of the MIME type the submitter declared (magic numbers).

A declared type this module has no signature for (application/octet-stream, application/msword,
…) is accepted as is: it can be neither confirmed nor refuted from the bytes.

References: IHE MHD ITI-65 §2:3.65.4.1.3 (the Document Recipient validates the content it
receives); signatures from each format's specification (PDF ISO 32000-1 §7.5.2, PNG ISO/IEC 15948
§5.2, JPEG/JFIF, GIF89a, TIFF 6.0, DICOM PS3.10 §7.1, ISO/IEC 14496-12 'ftyp', XML 1.0 §2.8,
RFC 8259, RTF 1.9).
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from onerecord.mhd.errors import UnsupportedMediaType

__all__ = ["check_mime_type", "matches_mime_type", "sniff_mime_type"]

_BOM = b"\xef\xbb\xbf"


def _is_pdf(data: bytes) -> bool:
    # ISO 32000 lets the header sit within the first 1024 bytes.
    return b"%PDF-" in data[:1024]


def _is_png(data: bytes) -> bool:
    return data.startswith(b"\x89PNG\r\n\x1a\n")


def _is_jpeg(data: bytes) -> bool:
    return data.startswith(b"\xff\xd8\xff")


def _is_gif(data: bytes) -> bool:
    return data.startswith((b"GIF87a", b"GIF89a"))


def _is_tiff(data: bytes) -> bool:
    return data.startswith((b"II*\x00", b"MM\x00*"))


def _is_dicom(data: bytes) -> bool:
    return len(data) >= 132 and data[128:132] == b"DICM"


def _is_mp4(data: bytes) -> bool:
    return len(data) >= 12 and data[4:8] == b"ftyp"


def _is_rtf(data: bytes) -> bool:
    return data.startswith(b"{\\rtf")


def _text(data: bytes) -> str | None:
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _is_xml(data: bytes) -> bool:
    body = data[len(_BOM) :] if data.startswith(_BOM) else data
    body = body.lstrip(b" \t\r\n")
    return body.startswith(b"<") and _text(body[:4096]) is not None


def _is_json(data: bytes) -> bool:
    body = data[len(_BOM) :] if data.startswith(_BOM) else data
    if body.lstrip(b" \t\r\n")[:1] not in (b"{", b"["):
        return False
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return True


def _is_text(data: bytes) -> bool:
    return _text(data) is not None


# Sniffing order: binary signatures first, then the text formats from most to least specific.
_SIGNATURES: tuple[tuple[str, Callable[[bytes], bool]], ...] = (
    ("application/pdf", _is_pdf),
    ("image/png", _is_png),
    ("image/jpeg", _is_jpeg),
    ("image/gif", _is_gif),
    ("image/tiff", _is_tiff),
    ("application/dicom", _is_dicom),
    ("video/mp4", _is_mp4),
    ("application/rtf", _is_rtf),
    ("application/json", _is_json),
    ("application/xml", _is_xml),
    ("text/plain", _is_text),
)

_CHECKS: dict[str, Callable[[bytes], bool]] = {
    "application/pdf": _is_pdf,
    "image/png": _is_png,
    "image/jpeg": _is_jpeg,
    "image/gif": _is_gif,
    "image/tiff": _is_tiff,
    "application/dicom": _is_dicom,
    "video/mp4": _is_mp4,
    "audio/mp4": _is_mp4,
    "application/rtf": _is_rtf,
    "text/rtf": _is_rtf,
    "application/json": _is_json,
    "application/fhir+json": _is_json,
    "application/xml": _is_xml,
    "text/xml": _is_xml,
    "application/fhir+xml": _is_xml,
    "text/plain": _is_text,
}


def _check_for(declared: str) -> Callable[[bytes], bool] | None:
    media = declared.split(";", 1)[0].strip().lower()
    check = _CHECKS.get(media)
    if check is None and media.endswith("+xml"):
        return _is_xml
    if check is None and media.endswith("+json"):
        return _is_json
    return check


def sniff_mime_type(data: bytes) -> str | None:
    """Return the MIME type the bytes look like, or None when nothing matches."""
    return next((name for name, test in _SIGNATURES if test(data)), None)


def matches_mime_type(declared: str, data: bytes) -> bool:
    """True when the bytes fit the declared type, or the type has no known signature."""
    check = _check_for(declared)
    return check is None or check(data)


def check_mime_type(declared: str, data: bytes, *, expression: str | None = None) -> None:
    """Raise UnsupportedMediaType (415) naming declared and detected type on a mismatch."""
    if matches_mime_type(declared, data):
        return
    detected = sniff_mime_type(data) or "unrecognised binary data"
    raise UnsupportedMediaType(
        f"attachment.contentType is {declared} but the content looks like {detected}",
        expression=expression,
    )
