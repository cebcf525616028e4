"""C-FIND identifiers as the archive matches them: levels, keys, and the kinds of matching.

`parse_find` turns a C-FIND request identifier into a `FindQuery`: the level, the conditions
(one per non-empty key the archive supports) and the keys to return. Matching follows PS3.4
C.2.2.2: single value, universal (empty: return only), wildcard (`*`, `?`) on strings and person
names, list of UIDs (backslash-separated), and range on dates and times (`A-B`, `-B`, `A-`).
Person names match case-insensitively (C.2.2.2.1 leaves it to the SCP); everything else exactly.
Keys of a lower level than the query's are ignored; keys of the same or higher levels filter
(the archive is lenient about the strict hierarchy of C.4.1.2.1, as most archives are).

References: DICOM PS3.4 C.2.2.2 (attribute matching), C.3 (Patient Root and Study Root
information models), C.6.1.1 and C.6.2.1 (the keys of each level), C.4.1.1.3 (responses).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from enum import IntEnum, StrEnum

from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from onerecord.media.errors import InvalidQuery
from onerecord.media.instance import is_uid

__all__ = [
    "KEYS",
    "Condition",
    "FindQuery",
    "KeyKind",
    "Level",
    "QueryKey",
    "QueryRoot",
    "parse_find",
]


class Level(IntEnum):
    """The query/retrieve levels, in order from the top (PS3.4 C.3)."""

    PATIENT = 0
    STUDY = 1
    SERIES = 2
    IMAGE = 3


class QueryRoot(StrEnum):
    """The information model the request came under."""

    PATIENT = "patient"
    STUDY = "study"


class KeyKind(StrEnum):
    """How a key's value is matched."""

    UID = "uid"  # single or list of UIDs
    STRING = "string"  # single value or wildcard, case-sensitive
    PERSON_NAME = "pn"  # single value or wildcard, case-insensitive
    DATE = "date"  # single value or range
    TIME = "time"  # single value or range
    INTEGER = "int"  # single value
    MODALITIES = "modalities"  # any of the values among the study's series
    COUNT = "count"  # returned only (Number of … Related …)


@dataclass(frozen=True, slots=True)
class QueryKey:
    """A key the archive supports: its level, column and kind of matching."""

    keyword: str
    level: Level
    column: str
    kind: KeyKind


def _k(keyword: str, level: Level, column: str, kind: KeyKind) -> QueryKey:
    return QueryKey(keyword, level, column, kind)


_P, _ST, _SE, _IM = Level.PATIENT, Level.STUDY, Level.SERIES, Level.IMAGE
KEYS: dict[str, QueryKey] = {
    k.keyword: k
    for k in (
        _k("PatientID", _P, "patient_id", KeyKind.STRING),
        _k("IssuerOfPatientID", _P, "issuer_of_patient_id", KeyKind.STRING),
        _k("PatientName", _P, "patient_name", KeyKind.PERSON_NAME),
        _k("PatientBirthDate", _P, "patient_birth_date", KeyKind.DATE),
        _k("PatientSex", _P, "patient_sex", KeyKind.STRING),
        _k("NumberOfPatientRelatedStudies", _P, "n_patient_studies", KeyKind.COUNT),
        _k("NumberOfPatientRelatedSeries", _P, "n_patient_series", KeyKind.COUNT),
        _k("NumberOfPatientRelatedInstances", _P, "n_patient_instances", KeyKind.COUNT),
        _k("StudyInstanceUID", _ST, "study_instance_uid", KeyKind.UID),
        _k("StudyDate", _ST, "study_date", KeyKind.DATE),
        _k("StudyTime", _ST, "study_time", KeyKind.TIME),
        _k("AccessionNumber", _ST, "accession_number", KeyKind.STRING),
        _k("StudyID", _ST, "study_id", KeyKind.STRING),
        _k("StudyDescription", _ST, "study_description", KeyKind.STRING),
        _k("ReferringPhysicianName", _ST, "referring_physician_name", KeyKind.PERSON_NAME),
        _k("ModalitiesInStudy", _ST, "modalities_in_study", KeyKind.MODALITIES),
        _k("NumberOfStudyRelatedSeries", _ST, "n_study_series", KeyKind.COUNT),
        _k("NumberOfStudyRelatedInstances", _ST, "n_study_instances", KeyKind.COUNT),
        _k("SeriesInstanceUID", _SE, "series_instance_uid", KeyKind.UID),
        _k("Modality", _SE, "modality", KeyKind.STRING),
        _k("SeriesNumber", _SE, "series_number", KeyKind.INTEGER),
        _k("SeriesDescription", _SE, "series_description", KeyKind.STRING),
        _k("BodyPartExamined", _SE, "body_part_examined", KeyKind.STRING),
        _k("NumberOfSeriesRelatedInstances", _SE, "n_series_instances", KeyKind.COUNT),
        _k("SOPInstanceUID", _IM, "sop_instance_uid", KeyKind.UID),
        _k("SOPClassUID", _IM, "sop_class_uid", KeyKind.UID),
        _k("InstanceNumber", _IM, "instance_number", KeyKind.INTEGER),
        _k("AvailableTransferSyntaxUID", _IM, "transfer_syntax_uid", KeyKind.UID),
    )
}

_LEVEL_NAMES = {"PATIENT": _P, "STUDY": _ST, "SERIES": _SE, "IMAGE": _IM}
_DATE = re.compile(r"^\d{8}$")
_TIME = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")
_MAX_VALUES = 1000


@dataclass(frozen=True, slots=True)
class Condition:
    """One key's matching: exactly one of `values` (single or list), `pattern`, or a range."""

    key: QueryKey
    values: tuple[str, ...] = ()
    pattern: str | None = None  # wildcard, * and ? as in the request
    low: str | None = None
    high: str | None = None


@dataclass(frozen=True, slots=True)
class FindQuery:
    """A parsed C-FIND request."""

    root: QueryRoot
    level: Level
    conditions: tuple[Condition, ...]
    return_keys: tuple[QueryKey, ...]


def _range(key: QueryKey, text: str, shape: re.Pattern[str]) -> Condition:
    if "-" in text:
        low, _, high = text.partition("-")
        low, high = low.strip(), high.strip()
        if (low and not shape.match(low)) or (high and not shape.match(high)) or not low + high:
            raise InvalidQuery(f"{key.keyword}: not a {key.kind.value} range")
        return Condition(key, low=low or None, high=high or None)
    if not shape.match(text):
        raise InvalidQuery(f"{key.keyword}: not a {key.kind.value}")
    return Condition(key, values=(text,))


def _condition(key: QueryKey, text: str) -> Condition | None:
    """The condition for one key's value, or None for universal matching (C.2.2.2.3)."""
    text = text.strip()
    if not text or text == "*" or key.kind is KeyKind.COUNT:
        return None
    if key.kind is KeyKind.UID:
        values = tuple(v.strip() for v in text.split("\\"))
        if len(values) > _MAX_VALUES or not all(is_uid(v) for v in values):
            raise InvalidQuery(f"{key.keyword}: not a UID or list of UIDs")
        return Condition(key, values=values)
    if key.kind is KeyKind.DATE:
        return _range(key, text, _DATE)
    if key.kind is KeyKind.TIME:
        return _range(key, text, _TIME)
    if key.kind is KeyKind.INTEGER:
        try:
            return Condition(key, values=(str(int(text)),))
        except ValueError:
            raise InvalidQuery(f"{key.keyword}: not an integer") from None
    if key.kind is KeyKind.MODALITIES:
        values = tuple(v.strip() for v in text.split("\\") if v.strip())
        if len(values) > _MAX_VALUES:
            raise InvalidQuery(f"{key.keyword}: too many values")
        return Condition(key, values=values) if values else None
    if "*" in text or "?" in text:
        return Condition(key, pattern=text)
    return Condition(key, values=(text,))


def parse_find(identifier: Dataset, *, root: QueryRoot) -> FindQuery:
    """Read a C-FIND identifier (PS3.4 C.4.1.1.3); InvalidQuery if it cannot be matched."""
    try:
        level_name = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
    except Exception:  # noqa: BLE001 - as below
        raise InvalidQuery("QueryRetrieveLevel cannot be read") from None
    if level_name not in _LEVEL_NAMES:
        raise InvalidQuery("QueryRetrieveLevel must be PATIENT, STUDY, SERIES or IMAGE")
    level = _LEVEL_NAMES[level_name]
    if root is QueryRoot.STUDY and level is Level.PATIENT:
        raise InvalidQuery("the Study Root model has no PATIENT level")
    conditions: list[Condition] = []
    returns: list[QueryKey] = []
    for tag in list(identifier.keys()):
        key = KEYS.get(keyword_for_tag(tag))
        if key is None or key.level > level:
            continue
        returns.append(key)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pydicom warns of values outside their VR
                value = identifier[tag].value  # decoded here, from the peer's bytes
        except Exception:  # noqa: BLE001 - pydicom's value classes raise many kinds
            raise InvalidQuery(f"{key.keyword}: a value that cannot be read") from None
        if isinstance(value, MultiValue | list | tuple):  # several values: DICOM's own form
            text = "\\".join(str(v) for v in value)
        else:
            text = "" if value is None else str(value)
        condition = _condition(key, text)
        if condition is not None:
            conditions.append(condition)
    return FindQuery(root, level, tuple(conditions), tuple(returns))
