"""WADO-RS content negotiation and frame lists.

The archive says what it can produce for a resource (`offers_for`: the media types and transfer
syntaxes, in its order of preference, given how the instance is stored and whether it can
decode it); `negotiate` picks the representation the client's Accept header (or the `accept`
query parameter, which overrides it) likes best, or raises 406 naming what is offered. Ranges
are taken by weight, then in the order given; a range with q=0 refuses the offers it names
(wildcards with q=0 refuse nothing more than not listing them would). Without a
`transfer-syntax` parameter, application/dicom and application/octet-stream mean Explicit VR
Little Endian when the archive can produce it, else the stored syntax; `transfer-syntax=*`
means the archive's first choice (the stored syntax, no transcoding). QIDO-RS answers and
metadata are `application/dicom+json` (`application/json` is taken as the same).

References: DICOM PS3.18 §8.3.3.1 (the `accept` query parameter), §8.7.3 (acceptable media
types, the transfer-syntax parameter, the media type of each transfer syntax, the defaults
per resource category), §10.4 (Retrieve transaction: instances, metadata, frames, bulkdata,
rendered, thumbnail; the frames resource's 1-based frame list).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from onerecord.dicom.attributes import is_uid
from onerecord.dicom.errors import InvalidRequest, NotAcceptable, NotFound
from onerecord.dicom.media_type import AcceptRange, MediaType, parse_accept

__all__ = [
    "EXPLICIT_VR_LITTLE_ENDIAN",
    "MAX_FRAMES",
    "TRANSFER_SYNTAX_MEDIA_TYPES",
    "Representation",
    "WadoResource",
    "check_frames",
    "negotiate",
    "offers_for",
    "parse_frame_list",
]

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
MAX_FRAMES = 1000
_UNCOMPRESSED = frozenset({"1.2.840.10008.1.2", EXPLICIT_VR_LITTLE_ENDIAN, "1.2.840.10008.1.2.2"})

#: The media type of pixel data (frames, bulk data) in each compressed transfer syntax
#: (PS3.18 §8.7.3); uncompressed pixel data is application/octet-stream.
TRANSFER_SYNTAX_MEDIA_TYPES: Mapping[str, str] = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
    "1.2.840.10008.1.2.4.100": "video/mpeg2",
    "1.2.840.10008.1.2.4.101": "video/mpeg2",
    "1.2.840.10008.1.2.4.102": "video/mp4",
    "1.2.840.10008.1.2.4.103": "video/mp4",
    "1.2.840.10008.1.2.4.104": "video/mp4",
    "1.2.840.10008.1.2.4.105": "video/mp4",
    "1.2.840.10008.1.2.4.106": "video/mp4",
    "1.2.840.10008.1.2.4.107": "video/H265",
    "1.2.840.10008.1.2.4.108": "video/H265",
}

_FRAME_LIST = re.compile(r"[1-9][0-9]{0,8}(,[1-9][0-9]{0,8})*")
_DICOM_JSON = "application/dicom+json"


class WadoResource(StrEnum):
    """What a DICOMweb request retrieves (PS3.18 §10.4.1, and QIDO-RS §10.6)."""

    INSTANCES = "instances"
    METADATA = "metadata"
    FRAMES = "frames"
    BULKDATA = "bulkdata"
    RENDERED = "rendered"
    THUMBNAIL = "thumbnail"
    SEARCH = "search"


@dataclass(frozen=True, slots=True)
class Representation:
    """One way to answer: a media type, its transfer syntax if any, multipart or a single body."""

    media_type: str
    transfer_syntax: str | None = None
    multipart: bool = False

    def part_content_type(self) -> str:
        """The Content-Type of each part (or of the single body)."""
        if self.transfer_syntax is None:
            return self.media_type
        return f"{self.media_type}; transfer-syntax={self.transfer_syntax}"


def offers_for(
    resource: WadoResource,
    *,
    stored_transfer_syntax: str | None = None,
    can_decode: bool = True,
    is_video: bool = False,
) -> tuple[Representation, ...]:
    """What the archive can produce for `resource`, most preferred first.

    `stored_transfer_syntax`: how the instance is stored (None: uncompressed or unknown);
    `can_decode`: whether the archive can decompress it (to Explicit VR Little Endian).
    """
    stored = stored_transfer_syntax
    native = stored is None or stored in _UNCOMPRESSED
    if resource in (WadoResource.METADATA, WadoResource.SEARCH):
        return (Representation(_DICOM_JSON),)
    if resource is WadoResource.INSTANCES:
        offers = []
        if stored is not None:
            offers.append(Representation("application/dicom", stored, multipart=True))
        if native or can_decode:
            offers.append(Representation("application/dicom", EXPLICIT_VR_LITTLE_ENDIAN, True))
        return _unique(offers)
    if resource in (WadoResource.FRAMES, WadoResource.BULKDATA):
        offers = []
        if not native and stored is not None and stored in TRANSFER_SYNTAX_MEDIA_TYPES:
            media = TRANSFER_SYNTAX_MEDIA_TYPES[stored]
            offers.append(Representation(media, stored, multipart=True))
        if native or can_decode:
            offers.append(
                Representation("application/octet-stream", EXPLICIT_VR_LITTLE_ENDIAN, True)
            )
        return tuple(offers)
    if resource is WadoResource.RENDERED and is_video:
        return (Representation("video/mp4"),)
    return (Representation("image/jpeg"), Representation("image/png"))


def _unique(offers: list[Representation]) -> tuple[Representation, ...]:
    out: list[Representation] = []
    for offer in offers:
        if offer not in out:
            out.append(offer)
    return tuple(out)


def negotiate(
    offers: Sequence[Representation],
    accept: str | None,
    *,
    query_accept: str | None = None,
) -> Representation:
    """Choose what to answer with from `offers`, or raise 406 (400 for a malformed header)."""
    if not offers:
        raise NotAcceptable("nothing can be produced for this resource")
    text = query_accept if query_accept is not None else accept
    if text is None or not text.strip():
        return _default(offers, None)
    header = "accept" if query_accept is not None else "Accept"
    ranges = parse_accept(text, header=header)
    for r in ranges:
        syntax = r.media_type.param("transfer-syntax")
        if syntax is not None and syntax != "*" and not is_uid(syntax):
            raise InvalidRequest(f"{header}: transfer-syntax is a UID or *")
    refused = {o for r in ranges if r.q == 0 and not _wild(r) for o in _matching(r, offers)}
    allowed = [o for o in offers if o not in refused]
    ordered = sorted((r for r in ranges if r.q > 0), key=lambda r: -r.q)
    for r in ordered:
        found = _matching(r, allowed)
        if found:
            return _default(found, r.media_type.param("transfer-syntax"))
    produced = ", ".join(sorted({_describe(o) for o in offers}))
    raise NotAcceptable(f"{header}: none of the acceptable types is produced here ({produced})")


def _describe(offer: Representation) -> str:
    if offer.multipart:
        return f'multipart/related; type="{offer.media_type}"'
    return offer.media_type


def _wild(r: AcceptRange) -> bool:
    return r.media_type.subtype == "*"


def _default(found: Sequence[Representation], syntax: str | None) -> Representation:
    if syntax is None:
        for offer in found:
            if offer.transfer_syntax == EXPLICIT_VR_LITTLE_ENDIAN:
                return offer
    return found[0]


def _matching(r: AcceptRange, offers: Sequence[Representation]) -> list[Representation]:
    mt = r.media_type
    syntax = mt.param("transfer-syntax")
    if mt.essence == "multipart/related":
        root = mt.param("type")
        inner = None if root is None else _root(root)
        if inner is not None:
            syntax = syntax or inner.param("transfer-syntax")
        found = [
            o
            for o in offers
            if o.multipart and (inner is None or _type_matches(inner, o.media_type))
        ]
    elif mt.essence == "*/*":
        found = list(offers)
    else:
        found = [o for o in offers if not o.multipart and _type_matches(mt, o.media_type)]
    if syntax is not None and syntax != "*":
        found = [o for o in found if o.transfer_syntax == syntax]
    return found


def _root(text: str) -> MediaType | None:
    try:
        return parse_accept(text, header="type")[0].media_type
    except (InvalidRequest, IndexError):
        raise InvalidRequest("Accept: the type parameter is not a media type") from None


def _type_matches(mt: MediaType, offered: str) -> bool:
    if mt.essence in ("*/*", offered.lower()):
        return True
    if mt.subtype == "*":
        return offered.lower().startswith(mt.type + "/")
    return mt.essence == "application/json" and offered == _DICOM_JSON


def parse_frame_list(text: str, *, max_frames: int = MAX_FRAMES) -> tuple[int, ...]:
    """Parse a frame list `1,3,5` (1-based, no repeats, at most `max_frames`), or raise 400."""
    if len(text) > max_frames * 10 or not _FRAME_LIST.fullmatch(text):
        raise InvalidRequest("frames: a comma-separated list of frame numbers from 1")
    frames = tuple(int(f) for f in text.split(","))
    if len(frames) > max_frames:
        raise InvalidRequest(f"frames: more than {max_frames} frames")
    if len(set(frames)) != len(frames):
        raise InvalidRequest("frames: a frame is named twice")
    return frames


def check_frames(frames: Sequence[int], number_of_frames: int) -> None:
    """Raise 404 when a frame number is beyond the instance's last frame."""
    if any(f > number_of_frames for f in frames):
        raise NotFound(f"frames: the instance has {number_of_frames} frame(s)")
