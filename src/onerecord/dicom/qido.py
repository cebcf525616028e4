"""QIDO-RS query parameters as a typed `QidoQuery` a SQL store can translate.

A query names its level (study, series, instance) by its path; the parameters are attribute
matches by keyword or tag, `includefield`, `fuzzymatching`, `limit` and `offset` (and `accept`,
`charset`, left to the edge). Matching follows PS3.4 §C.2.2.2 as PS3.18 uses it: single value,
list of values (UIDs, and the code strings Modality, ModalitiesInStudy, PatientSex; `\\` or `,`
between them), wildcard (`*`, `?`) for the text VRs, range (`a-b`, `-b`, `a-`) for DA and TM,
universal (an empty value: return the attribute, match anything). Only the matching keys of
`MATCHING_KEYS` are searched; any other attribute, parameter or malformed value is a 400 that
names the parameter. `limit` above the archive's maximum is lowered to it and flagged, so the
edge can add the `Warning: 299` header PS3.18 asks for.

References: DICOM PS3.18 §8.3.4 (query parameters: §8.3.4.1 attribute matching, §8.3.4.2
fuzzy matching, §8.3.4.3 includefield, §8.3.4.4 paging), §10.6.1 (SearchForStudies/Series/
Instances resources), §10.6.3.3 (response attributes, Tables 10.6.3-3, -4, -5); PS3.4
§C.2.2.2 (matching), §C.6.1.1 (the query keys of the Study Root information model).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from onerecord.dicom.attributes import (
    Attribute,
    is_uid,
    parse_attribute,
    parse_date,
    parse_time,
    safe_label,
)
from onerecord.dicom.errors import InvalidRequest

__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_RETURN_KEYWORDS",
    "MATCHING_KEYS",
    "MAX_LIMIT",
    "ListMatch",
    "Predicate",
    "QidoLevel",
    "QidoQuery",
    "RangeMatch",
    "SingleValueMatch",
    "WildcardMatch",
    "default_return_tags",
    "parse_qido_query",
]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_MAX_VALUE = 256
_MAX_LIST = 200
_MAX_PARAMETERS = 100


class QidoLevel(StrEnum):
    """The level a QIDO-RS search answers at (PS3.18 §10.6.1)."""

    STUDY = "study"
    SERIES = "series"
    INSTANCE = "instance"


#: The attributes each level can be searched by: PS3.18's required keys (§10.6.1.2;
#: PS3.4 §C.6.1.1.2-4 unique and required keys) and a few optional ones we index.
MATCHING_KEYS: Mapping[QidoLevel, tuple[str, ...]] = {
    QidoLevel.STUDY: (
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "ModalitiesInStudy",
        "ReferringPhysicianName",
        "PatientName",
        "PatientID",
        "StudyInstanceUID",
        "StudyID",
        "PatientBirthDate",
        "PatientSex",
        "StudyDescription",
    ),
    QidoLevel.SERIES: (
        "Modality",
        "SeriesInstanceUID",
        "SeriesNumber",
        "PerformedProcedureStepStartDate",
        "PerformedProcedureStepStartTime",
        "SeriesDescription",
        "BodyPartExamined",
    ),
    QidoLevel.INSTANCE: ("SOPClassUID", "SOPInstanceUID", "InstanceNumber"),
}

#: The attributes each level returns without `includefield` (PS3.18 Tables 10.6.3-3, 10.6.3-4,
#: 10.6.3-5). RequestAttributeSequence is left out of the series level: the archive keeps no
#: requested procedure.
DEFAULT_RETURN_KEYWORDS: Mapping[QidoLevel, tuple[str, ...]] = {
    QidoLevel.STUDY: (
        "SpecificCharacterSet",
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "InstanceAvailability",
        "ModalitiesInStudy",
        "ReferringPhysicianName",
        "TimezoneOffsetFromUTC",
        "RetrieveURL",
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyInstanceUID",
        "StudyID",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
    ),
    QidoLevel.SERIES: (
        "SpecificCharacterSet",
        "Modality",
        "TimezoneOffsetFromUTC",
        "SeriesDescription",
        "RetrieveURL",
        "SeriesInstanceUID",
        "SeriesNumber",
        "NumberOfSeriesRelatedInstances",
        "PerformedProcedureStepStartDate",
        "PerformedProcedureStepStartTime",
    ),
    QidoLevel.INSTANCE: (
        "SpecificCharacterSet",
        "SOPClassUID",
        "SOPInstanceUID",
        "InstanceAvailability",
        "TimezoneOffsetFromUTC",
        "RetrieveURL",
        "InstanceNumber",
        "Rows",
        "Columns",
        "BitsAllocated",
        "NumberOfFrames",
    ),
}

_LEVEL_ORDER = (QidoLevel.STUDY, QidoLevel.SERIES, QidoLevel.INSTANCE)
_WILDCARD_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
_LIST_KEYWORDS = frozenset({"Modality", "ModalitiesInStudy", "PatientSex"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DIGITS = re.compile(r"[0-9]{1,9}")
_LIST_SPLIT = re.compile(r"[\\,]")


@dataclass(frozen=True, slots=True)
class SingleValueMatch:
    """The attribute equals `value` (PS3.4 §C.2.2.2.1); for PN, `fuzzy` allows a looser match."""

    attribute: Attribute
    value: str
    fuzzy: bool = False

    def matches(self, candidate: str | None) -> bool:
        """Tell whether a stored value matches (a reference for stores and tests)."""
        if candidate is None:
            return False
        if self.fuzzy:
            return _fuzzy(candidate).startswith(_fuzzy(self.value))
        return candidate == self.value


@dataclass(frozen=True, slots=True)
class WildcardMatch:
    """The attribute matches a pattern of `*` (any run) and `?` (one character) (§C.2.2.2.4)."""

    attribute: Attribute
    pattern: str
    fuzzy: bool = False

    def like_pattern(self, escape: str = "\\") -> str:
        """The pattern for SQL `LIKE … ESCAPE escape`: `*` → `%`, `?` → `_`, the rest literal."""
        out = []
        for ch in self.pattern:
            if ch == "*":
                out.append("%")
            elif ch == "?":
                out.append("_")
            elif ch in ("%", "_", escape):
                out.append(escape + ch)
            else:
                out.append(ch)
        return "".join(out)

    def matches(self, candidate: str | None) -> bool:
        """Tell whether a stored value matches (a reference for stores and tests)."""
        if candidate is None:
            return False
        parts = (re.escape(p) for p in re.split(r"([*?])", self.pattern))
        regex = "".join(".*" if p == r"\*" else "." if p == r"\?" else p for p in parts)
        if self.fuzzy:
            return re.fullmatch(regex, _fuzzy(candidate), re.DOTALL | re.IGNORECASE) is not None
        return re.fullmatch(regex, candidate, re.DOTALL) is not None


@dataclass(frozen=True, slots=True)
class RangeMatch:
    """A DA or TM attribute lies within [low, high]; either end may be open (§C.2.2.2.5).

    Dates are `YYYYMMDD`; times are padded to `HHMMSS.FFFFFF` (a partial upper bound to the end
    of its span), so a store compares stored values padded the same way as strings.
    """

    attribute: Attribute
    low: str | None
    high: str | None

    def matches(self, candidate: str | None) -> bool:
        """Tell whether a stored (padded) value matches."""
        if candidate is None:
            return False
        return (self.low is None or candidate >= self.low) and (
            self.high is None or candidate <= self.high
        )


@dataclass(frozen=True, slots=True)
class ListMatch:
    """The attribute equals any of `values` (UID list matching, §C.2.2.2.2; CS lists).

    For ModalitiesInStudy a study matches when any of its series' modalities is in the list.
    """

    attribute: Attribute
    values: tuple[str, ...]

    def matches(self, candidate: str | None) -> bool:
        """Tell whether a stored value matches."""
        return candidate in self.values


Predicate = SingleValueMatch | WildcardMatch | RangeMatch | ListMatch


@dataclass(frozen=True, slots=True)
class QidoQuery:
    """A parsed QIDO-RS search: what to match, what to return, which page.

    `universal`: attributes asked for with an empty value (returned, not matched);
    `limit_lowered`: the caller asked for more than the maximum (answer with `Warning: 299`);
    `accept`: the `accept` query parameter, which overrides the Accept header (§8.3.3.1).
    """

    level: QidoLevel
    study_uid: str | None
    series_uid: str | None
    matches: tuple[Predicate, ...]
    includefields: tuple[Attribute, ...]
    include_all: bool
    fuzzymatching: bool
    limit: int
    offset: int
    limit_lowered: bool = False
    universal: tuple[Attribute, ...] = field(default=())
    accept: str | None = None

    def return_tags(self) -> tuple[int, ...]:
        """The tags to answer with: the level's defaults, includefields, the matched keys."""
        tags = list(default_return_tags(self.level, self.study_uid, self.series_uid))
        extra = [*self.includefields, *self.universal, *(p.attribute for p in self.matches)]
        for attribute in extra:
            if attribute.tag not in tags:
                tags.append(attribute.tag)
        return tuple(tags)


def default_return_tags(
    level: QidoLevel, study_uid: str | None = None, series_uid: str | None = None
) -> tuple[int, ...]:
    """The level's default attributes, with those of the levels above it not fixed by the path.

    A search for series across all studies also returns the study attributes, one for
    instances the series and study attributes (PS3.18 §10.6.3.3).
    """
    levels = [level]
    if level is QidoLevel.INSTANCE and series_uid is None:
        levels.append(QidoLevel.SERIES)
    if level is not QidoLevel.STUDY and study_uid is None:
        levels.append(QidoLevel.STUDY)
    tags: list[int] = []
    for each in levels:
        for keyword in DEFAULT_RETURN_KEYWORDS[each]:
            tag = parse_attribute(keyword).tag
            if tag not in tags:
                tags.append(tag)
    return tuple(tags)


def parse_qido_query(
    params: Iterable[tuple[str, str]],
    *,
    level: QidoLevel,
    study_uid: str | None = None,
    series_uid: str | None = None,
    default_limit: int = DEFAULT_LIMIT,
    max_limit: int = MAX_LIMIT,
) -> QidoQuery:
    """Parse a QIDO-RS query string (as decoded pairs) at `level`, or raise 400."""
    for name, uid in (("StudyInstanceUID", study_uid), ("SeriesInstanceUID", series_uid)):
        if uid is not None and not is_uid(uid):
            raise InvalidRequest(f"path: {name} is not a valid UID")
    if series_uid is not None and (study_uid is None or level is not QidoLevel.INSTANCE):
        raise InvalidRequest("path: a series is named only under its study, for instances")
    searchable = _searchable(level)
    matches: list[Predicate] = []
    universal: list[Attribute] = []
    includefields: list[Attribute] = []
    include_all = False
    seen: set[str] = set()
    fuzzy = False
    limit: int | None = None
    offset = 0
    accept: str | None = None
    pairs = list(params)
    if len(pairs) > _MAX_PARAMETERS:
        raise InvalidRequest(f"query: more than {_MAX_PARAMETERS} parameters")
    match_texts: list[tuple[Attribute, str, str]] = []
    for name, value in pairs:
        label = safe_label(name)
        if len(value) > _MAX_VALUE * 8 or _CONTROL.search(value):
            raise InvalidRequest(f"{label}: value too long or holds control characters")
        if name == "includefield":
            for item in value.split(","):
                if item == "all":
                    include_all = True
                    continue
                attribute = parse_attribute(item, parameter="includefield")
                if attribute not in includefields:
                    includefields.append(attribute)
            continue
        if name in ("limit", "offset", "fuzzymatching", "accept", "charset"):
            if name in seen:
                raise InvalidRequest(f"{name}: given more than once")
            seen.add(name)
            if name == "limit":
                limit = _count(name, value)
            elif name == "offset":
                offset = _count(name, value)
            elif name == "fuzzymatching":
                if value not in ("true", "false"):
                    raise InvalidRequest("fuzzymatching: true or false")
                fuzzy = value == "true"
            elif name == "accept":
                accept = value
            continue
        if "." in name:
            raise InvalidRequest("matching inside sequences is not supported")
        attribute = parse_attribute(name, parameter=label)
        if attribute.keyword in seen:
            raise InvalidRequest(f"{attribute.keyword}: given more than once")
        seen.add(attribute.keyword)
        if attribute.keyword not in searchable:
            raise InvalidRequest(
                f"{attribute.keyword}: not a matching key at the {level.value} level"
            )
        match_texts.append((attribute, attribute.keyword, value))
    for attribute, name, value in match_texts:
        predicate = _predicate(attribute, name, value, fuzzy=fuzzy)
        if predicate is None:
            universal.append(attribute)
        else:
            matches.append(predicate)
    chosen = default_limit if limit is None else limit
    return QidoQuery(
        level=level,
        study_uid=study_uid,
        series_uid=series_uid,
        matches=tuple(matches),
        includefields=tuple(includefields),
        include_all=include_all,
        fuzzymatching=fuzzy,
        limit=min(chosen, max_limit),
        offset=offset,
        limit_lowered=chosen > max_limit,
        universal=tuple(universal),
        accept=accept,
    )


def _searchable(level: QidoLevel) -> frozenset[str]:
    # A level is searched by its own keys and those of every level above it (PS3.18 §10.6.1.2).
    upto = _LEVEL_ORDER[: _LEVEL_ORDER.index(level) + 1]
    return frozenset(k for each in upto for k in MATCHING_KEYS[each])


def _count(name: str, value: str) -> int:
    if not _DIGITS.fullmatch(value):
        raise InvalidRequest(f"{name}: a non-negative integer")
    return int(value)


def _predicate(attribute: Attribute, name: str, value: str, *, fuzzy: bool) -> Predicate | None:
    if value == "" or (value == "*" and attribute.vr in _WILDCARD_VRS):
        return None  # universal matching (PS3.4 §C.2.2.2.3)
    if len(value) > _MAX_VALUE and attribute.vr != "UI":
        raise InvalidRequest(f"{name}: value longer than {_MAX_VALUE} characters")
    vr = attribute.vr
    if vr in ("DA", "TM"):
        return _range(attribute, name, value)
    if vr == "UI":
        uids = tuple(_LIST_SPLIT.split(value))
        if len(uids) > _MAX_LIST:
            raise InvalidRequest(f"{name}: more than {_MAX_LIST} UIDs")
        if not all(is_uid(u) for u in uids):
            raise InvalidRequest(f"{name}: not a UID or a list of UIDs")
        return ListMatch(attribute, uids) if len(uids) > 1 else SingleValueMatch(attribute, uids[0])
    if vr == "IS":
        if not re.fullmatch(r"[+-]?[0-9]{1,10}", value):
            raise InvalidRequest(f"{name}: an integer")
        return SingleValueMatch(attribute, str(int(value)))
    if attribute.keyword in _LIST_KEYWORDS and _LIST_SPLIT.search(value):
        codes = tuple(_LIST_SPLIT.split(value))
        if len(codes) > _MAX_LIST or not all(re.fullmatch(r"[A-Z0-9_ ]{1,16}", c) for c in codes):
            raise InvalidRequest(f"{name}: a list of code strings")
        return ListMatch(attribute, codes)
    if "\\" in value:
        raise InvalidRequest(f"{name}: one value only")
    fuzzy_pn = fuzzy and vr == "PN"
    if vr in _WILDCARD_VRS and ("*" in value or "?" in value):
        return WildcardMatch(attribute, value, fuzzy=fuzzy_pn)
    return SingleValueMatch(attribute, value, fuzzy=fuzzy_pn)


def _range(attribute: Attribute, name: str, value: str) -> RangeMatch:
    if value.count("-") > 1 or value == "-":
        raise InvalidRequest(f"{name}: a value or a range low-high, -high or low-")
    low_text, dash, high_text = value.partition("-")
    if attribute.vr == "DA":
        low = parse_date(low_text, parameter=name) if low_text else None
        high = parse_date(high_text, parameter=name) if high_text else None
        if not dash:
            high = low
    else:
        low = parse_time(low_text, parameter=name) if low_text else None
        upper = high_text if dash else low_text
        high = parse_time(upper, parameter=name, upper=True) if upper else None
    if low is not None and high is not None and low > high:
        raise InvalidRequest(f"{name}: the range ends before it starts")
    return RangeMatch(attribute, low, high)


def _fuzzy(text: str) -> str:
    # A simple, documented fuzziness: case-insensitive, '^' and spaces alike.
    return " ".join(text.replace("^", " ").casefold().split())
