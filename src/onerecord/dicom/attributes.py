"""Attributes named by keyword or tag, UIDs, and the date and time values of queries.

An attribute in a DICOMweb URL is a keyword of the data dictionary (`PatientID`) or its tag as
eight hexadecimal digits (`00100020`); private and unknown attributes are refused here, once,
for QIDO-RS matching and `includefield` alike.

References: DICOM PS3.18 §8.3.4.1 ({attributeID}: keyword or tag); PS3.5 §6.2 (VRs: DA, TM,
UI), §9.1 (UID encoding: at most 64 characters, digits and dots, no leading zero in a
component); PS3.6 §6 (the data dictionary).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from onerecord.dicom.errors import InvalidRequest

__all__ = [
    "Attribute",
    "is_uid",
    "parse_attribute",
    "parse_date",
    "parse_time",
    "safe_label",
    "tag_hex",
]

_HEX_TAG = re.compile(r"[0-9A-Fa-f]{8}")
_KEYWORD = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}")
_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
_LABEL = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}|[0-9A-Fa-f]{8}")
_LONG_NUMBER = re.compile(r"[0-9]{6,}")
_DATE = re.compile(r"[0-9]{8}")
_TIME = re.compile(r"([0-9]{2})(?:([0-9]{2})(?:([0-9]{2})(?:\.([0-9]{1,6}))?)?)?")


@dataclass(frozen=True, slots=True)
class Attribute:
    """A public data-dictionary attribute: its tag, keyword and VR."""

    tag: int
    keyword: str
    vr: str

    @property
    def hex(self) -> str:
        """The tag as DICOM JSON writes it: eight upper-case hexadecimal digits."""
        return tag_hex(self.tag)


def tag_hex(tag: int) -> str:
    """Return `tag` as eight upper-case hexadecimal digits (PS3.18 §F.2.1.1)."""
    return f"{tag:08X}"


def safe_label(text: str) -> str:
    """A parameter name fit for an error message and a log: shown only when it cannot hold a
    value (a keyword or a tag; no run of six digits, which an identity number would need)."""
    if _LABEL.fullmatch(text) and (_HEX_TAG.fullmatch(text) or not _LONG_NUMBER.search(text)):
        return text
    return "(a parameter)"


def parse_attribute(text: str, *, parameter: str = "attribute") -> Attribute:
    """Resolve a keyword or an eight-digit tag to a public dictionary attribute, or raise 400."""
    tag: int | None
    if _HEX_TAG.fullmatch(text):
        tag = int(text, 16)
    elif _KEYWORD.fullmatch(text):
        tag = tag_for_keyword(text)
    else:
        raise InvalidRequest(f"{parameter}: not a DICOM keyword or tag")
    if tag is None:
        raise InvalidRequest(f"{parameter}: unknown DICOM keyword {safe_label(text)!r}")
    if (tag >> 16) % 2 == 1:
        raise InvalidRequest(f"{parameter}: private attributes are not supported")
    try:
        vr = dictionary_VR(tag)
        keyword = keyword_for_tag(tag)
    except KeyError:
        raise InvalidRequest(f"{parameter}: tag {tag:08X} is not in the data dictionary") from None
    if not keyword:
        raise InvalidRequest(f"{parameter}: tag {tag:08X} is not in the data dictionary")
    return Attribute(tag=tag, keyword=keyword, vr=vr)


def is_uid(text: str) -> bool:
    """Tell whether `text` is a valid UID (PS3.5 §9.1)."""
    return 0 < len(text) <= 64 and _UID.fullmatch(text) is not None


def parse_date(text: str, *, parameter: str) -> str:
    """Check a DA value `YYYYMMDD` names a real date; return it (PS3.5 §6.2 DA)."""
    if not _DATE.fullmatch(text):
        raise InvalidRequest(f"{parameter}: a date is YYYYMMDD")
    try:
        dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise InvalidRequest(f"{parameter}: no such date") from None
    return text


def parse_time(text: str, *, parameter: str, upper: bool = False) -> str:
    """Check a TM value and return it padded to `HHMMSS.FFFFFF` (PS3.5 §6.2 TM).

    A partial time names a span: as a lower bound it is padded with zeros, as an upper bound
    (`upper=True`) with the span's last instant, so `10` covers 10:00:00 to 10:59:59.999999 and
    padded values compare correctly as strings.
    """
    m = _TIME.fullmatch(text)
    if m is None:
        raise InvalidRequest(f"{parameter}: a time is HH, HHMM, HHMMSS or HHMMSS.FFFFFF")
    hh, mm, ss, frac = m.groups()
    if int(hh) > 23 or (mm is not None and int(mm) > 59) or (ss is not None and int(ss) > 60):
        raise InvalidRequest(f"{parameter}: no such time")
    fill_mm, fill_ss, fill_frac = ("59", "59", "9") if upper else ("00", "00", "0")
    if frac is None:
        frac = fill_frac * 6
    else:
        frac = frac.ljust(6, fill_frac)
    return f"{hh}{mm or fill_mm}{ss or fill_ss}.{frac}"
