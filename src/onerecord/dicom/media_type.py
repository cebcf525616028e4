"""Media types of Content-Type and Accept headers, parsed strictly (RFC 9110 §8.3.1, §12.5.1).

Type, subtype and parameter names are case-insensitive and returned in lower case; parameter
values are tokens or quoted strings (RFC 9110 §5.6.6); `q` in an Accept range becomes its weight
(0 to 1, three decimals). An unquoted parameter value may hold '/' (`type=application/dicom`,
which clients send though RFC 9110 wants it quoted). Anything else is a 400 naming the header.

References: RFC 9110 §5.6.2 (tokens), §5.6.4 (quoted strings), §8.3.1 (media type), §12.4.2
(quality values), §12.5.1 (Accept); DICOM PS3.18 §8.7.3 (media types in DICOMweb).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from onerecord.dicom.errors import InvalidRequest

__all__ = ["AcceptRange", "MediaType", "parse_accept", "parse_media_type"]

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\t\x20-\x7e\x80-\xff])*"'
_OWS = r"[ \t]*"
_RANGE = re.compile(rf"{_OWS}({_TOKEN})/({_TOKEN}){_OWS}")
# Unquoted values may hold '/' (`type=application/dicom`): not a token, but clients send it.
_VALUE = r"[!#$%&'*+\-.^_`|~0-9A-Za-z/]+"
_PARAM = re.compile(rf";{_OWS}({_TOKEN})=({_VALUE}|{_QUOTED}){_OWS}")
_EMPTY_PARAM = re.compile(rf";{_OWS}")
_QVALUE = re.compile(r"(0(\.[0-9]{0,3})?|1(\.0{0,3})?)")
_MAX_HEADER = 4096
_MAX_RANGES = 64


@dataclass(frozen=True, slots=True)
class MediaType:
    """A media type with its parameters (names lower-case, values unquoted)."""

    type: str
    subtype: str
    params: tuple[tuple[str, str], ...] = ()

    @property
    def essence(self) -> str:
        """`type/subtype`, without parameters."""
        return f"{self.type}/{self.subtype}"

    def param(self, name: str) -> str | None:
        """The value of parameter `name` (lower case), or None."""
        for key, value in self.params:
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class AcceptRange:
    """One media range of an Accept header and its weight."""

    media_type: MediaType
    q: float


def parse_media_type(text: str, *, header: str = "Content-Type") -> MediaType:
    """Parse one media type with parameters, or raise 400."""
    if len(text) > _MAX_HEADER:
        raise InvalidRequest(f"{header}: too long")
    media_type, end = _parse_one(text, 0, header)
    if end != len(text):
        raise InvalidRequest(f"{header}: not a media type")
    return media_type


def parse_accept(text: str, *, header: str = "Accept") -> list[AcceptRange]:
    """Parse an Accept header into its ranges with weights (q=0 ranges kept), or raise 400."""
    if len(text) > _MAX_HEADER:
        raise InvalidRequest(f"{header}: too long")
    ranges: list[AcceptRange] = []
    pos = 0
    while pos < len(text):
        if text[pos] in ", \t":
            pos += 1
            continue
        media_type, pos = _parse_one(text, pos, header)
        if pos < len(text) and text[pos] != ",":
            raise InvalidRequest(f"{header}: ranges are separated by commas")
        q = 1.0
        kept = []
        for key, value in media_type.params:
            if key == "q":
                if not _QVALUE.fullmatch(value):
                    raise InvalidRequest(f"{header}: q is a number from 0 to 1")
                q = float(value)
            else:
                kept.append((key, value))
        ranges.append(AcceptRange(MediaType(media_type.type, media_type.subtype, tuple(kept)), q))
        if len(ranges) > _MAX_RANGES:
            raise InvalidRequest(f"{header}: more than {_MAX_RANGES} media ranges")
    return ranges


def _parse_one(text: str, pos: int, header: str) -> tuple[MediaType, int]:
    m = _RANGE.match(text, pos)
    if m is None:
        raise InvalidRequest(f"{header}: not a media type")
    type_, subtype = m.group(1).lower(), m.group(2).lower()
    pos = m.end()
    params: list[tuple[str, str]] = []
    while pos < len(text) and text[pos] == ";":
        p = _PARAM.match(text, pos)
        if p is None:
            empty = _EMPTY_PARAM.match(text, pos)
            if empty is not None and (empty.end() == len(text) or text[empty.end()] == ","):
                pos = empty.end()  # a trailing ';' is tolerated
                continue
            raise InvalidRequest(f"{header}: malformed parameter")
        value = p.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params.append((p.group(1).lower(), value))
        pos = p.end()
    return MediaType(type_, subtype, tuple(params)), pos
