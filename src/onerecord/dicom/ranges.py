"""HTTP Range requests of one byte range, for video served as `video/mp4`.

`parse_range(header, size)` reads a `Range` header of the `bytes` unit: no header, another
unit, several ranges, or syntax it does not know give None (the whole body, 200, as RFC 9110
§14.2 lets a server ignore what it does not take); one satisfiable range gives the first and
last byte (`bytes=a-b`, `bytes=a-`, `bytes=-n`), clipped to the body; a range that starts at
or past the end is `RangeNotSatisfiable` (416, with `Content-Range: bytes */size`).

References: RFC 9110 §14.1.2 (byte ranges), §14.2 (Range), §14.4 (Content-Range), §15.3.7
(206), §15.5.17 (416).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from onerecord.dicom.errors import DicomWireError

__all__ = ["ByteRange", "RangeNotSatisfiable", "parse_range"]

_SPEC = re.compile(r"bytes[ \t]*=[ \t]*(\d{0,18})[ \t]*-[ \t]*(\d{0,18})[ \t]*")


class RangeNotSatisfiable(DicomWireError):
    """No byte of the range is in the body (416)."""

    status = 416

    def __init__(self, message: str, *, size: int) -> None:
        super().__init__(message)
        self.size = size


@dataclass(frozen=True, slots=True)
class ByteRange:
    """The first and last byte of a satisfiable range (inclusive), and the body's size."""

    first: int
    last: int
    size: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1

    @property
    def content_range(self) -> str:
        return f"bytes {self.first}-{self.last}/{self.size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """One byte range of a body of `size` bytes, None for the whole body, or 416."""
    if header is None:
        return None
    m = _SPEC.fullmatch(header.strip())
    if m is None:
        return None  # another unit, several ranges, or garbage: the whole body
    first_text, last_text = m.group(1), m.group(2)
    if not first_text and not last_text:
        return None
    if not first_text:
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable("the range selects no byte", size=size)
        return ByteRange(max(0, size - suffix), size - 1, size)
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None  # an invalid range-spec is ignored (RFC 9110 §14.1.1)
    last = int(last_text) if last_text else size - 1
    if first >= size:
        raise RangeNotSatisfiable("the range starts past the end", size=size)
    return ByteRange(first, min(last, size - 1), size)
