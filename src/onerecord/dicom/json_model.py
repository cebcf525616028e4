"""The DICOM JSON Model: a pydicom Dataset to and from DICOM JSON.

Writing follows PS3.18 Annex F: each attribute keyed by its tag as eight upper-case hex digits,
with `vr` and at most one of `Value`, `InlineBinary` (base64) or `BulkDataURI`; PN values as
objects with `Alphabetic`, `Ideographic` and `Phonetic` groups; AT values as tag strings; IS,
DS and the binary-number VRs as JSON numbers (SV/UV beyond ±2^53 as strings, so no reader
loses digits); an empty value of a multi-valued attribute as `null`; sequence items as nested
objects. Binary values longer than `bulkdata_threshold` become a `BulkDataURI` named by the
caller's `bulkdata_uri(path)`; `path` is the attribute's place: `(tag,)` at the top, `(sequence
tag, item index, tag)` one level down, and so on. `metadata_json` is the WADO-RS metadata form
for the database: pixel data and large binary values as BulkDataURIs, or left out.

Reading is strict: outside JSON of any shape becomes a Dataset or an `InvalidRequest` (400):
keys, VRs, value types and ranges, base64, value lengths of the binary VRs, nesting depth and
attribute count are all checked before pydicom sees a value. File meta attributes (group 0002,
e.g. the TransferSyntaxUID of STOW-RS bulk data) go to `Dataset.file_meta`.

References: DICOM PS3.18 Annex F (§F.2 the model, §F.2.2 attribute objects, §F.2.3 VR
encodings (Table F.2.3-1), §F.2.5 PN, §F.2.6 BulkDataURI, §F.2.7 InlineBinary); PS3.5 §6.2
(value ranges of the VRs).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from pydicom import config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.valuerep import PersonName

from onerecord.dicom.attributes import tag_hex
from onerecord.dicom.errors import DicomWireError, InvalidRequest, PayloadTooLarge

__all__ = [
    "BINARY_VRS",
    "PIXEL_DATA_TAGS",
    "AttributePath",
    "BulkDataResolver",
    "BulkDataUri",
    "JsonLimits",
    "dataset_from_json",
    "dataset_to_json",
    "metadata_json",
    "parse_dicom_json",
    "render_dicom_json",
]

AttributePath = tuple[int, ...]
BulkDataUri = Callable[[AttributePath], str]
BulkDataResolver = Callable[[str], bytes | None]

BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
#: Pixel Data, Float Pixel Data, Double Float Pixel Data: always bulk data in metadata.
PIXEL_DATA_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})

_INT_RANGES: Mapping[str, tuple[int, int]] = {
    "US": (0, 2**16 - 1),
    "SS": (-(2**15), 2**15 - 1),
    "UL": (0, 2**32 - 1),
    "SL": (-(2**31), 2**31 - 1),
    "UV": (0, 2**64 - 1),
    "SV": (-(2**63), 2**63 - 1),
    "IS": (-(2**31), 2**31 - 1),
}
_FLOAT_VRS = frozenset({"FL", "FD"})
_FL_MAX = 3.4028234663852886e38
_STRING_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DT", "LO", "LT", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
)
_SINGLE_VALUED = frozenset({"LT", "ST", "UR", "UT"})
_KNOWN_VRS = BINARY_VRS | _FLOAT_VRS | _STRING_VRS | set(_INT_RANGES) | {"DS", "PN", "AT", "SQ"}
_BINARY_UNIT = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
_SAFE_INT = 2**53 - 1
_KEY = re.compile(r"[0-9A-Fa-f]{8}")
_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"[+-]?[0-9]{1,20}")


@dataclass(frozen=True, slots=True)
class JsonLimits:
    """Bounds on outside DICOM JSON: body bytes, datasets, attributes in all, nesting depth."""

    max_bytes: int = 16 * 1024 * 1024
    max_datasets: int = 10_000
    max_attributes: int = 200_000
    max_depth: int = 12
    max_value_chars: int = 1024 * 1024


# --- writing -------------------------------------------------------------------------------


def dataset_to_json(
    ds: Dataset,
    *,
    bulkdata_uri: BulkDataUri | None = None,
    bulkdata_threshold: int = 1024,
) -> dict[str, Any]:
    """Render `ds` as a DICOM JSON object (PS3.18 §F.2).

    A binary value longer than `bulkdata_threshold` bytes becomes a BulkDataURI when
    `bulkdata_uri` is given, and InlineBinary otherwise. A dataset whose stored values pydicom
    cannot decode is refused with 400.
    """
    return _render(ds, (), bulkdata_uri, bulkdata_threshold, omit_bulk=False)


def metadata_json(
    ds: Dataset,
    *,
    bulkdata_uri: BulkDataUri | None = None,
    bulkdata_threshold: int = 1024,
) -> dict[str, Any]:
    """Render the WADO-RS metadata of `ds`: no pixel data, no large binary values inline.

    Pixel data and any binary value over `bulkdata_threshold` bytes become BulkDataURIs from
    `bulkdata_uri`, or are left out when it is None (PS3.18 §10.4, the metadata resources).
    """
    return _render(ds, (), bulkdata_uri, bulkdata_threshold, omit_bulk=True)


def render_dicom_json(objects: list[dict[str, Any]] | dict[str, Any]) -> bytes:
    """Encode DICOM JSON as `application/dicom+json` bytes."""
    return orjson.dumps(objects)


def _render(
    ds: Dataset,
    path: AttributePath,
    uri: BulkDataUri | None,
    threshold: int,
    *,
    omit_bulk: bool,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for elem in _elements(ds):
        here = (*path, int(elem.tag))
        vr = _definite_vr(elem.VR)
        if vr in BINARY_VRS:
            rendered = _render_binary(elem, vr, here, uri, threshold, omit_bulk=omit_bulk)
            if rendered is not None:
                out[tag_hex(elem.tag)] = rendered
            continue
        obj: dict[str, Any] = {"vr": vr}
        if vr == "SQ":
            items = [
                _render(item, (*here, i), uri, threshold, omit_bulk=omit_bulk)
                for i, item in enumerate(elem.value or ())
            ]
            if items:
                obj["Value"] = items
        else:
            values = _values(elem.value)
            if values:
                try:
                    obj["Value"] = [_render_value(vr, v, elem.tag) for v in values]
                except (ValueError, TypeError, OverflowError) as exc:
                    raise InvalidRequest(
                        f"attribute {tag_hex(elem.tag)}: not a {vr} value"
                    ) from exc
        out[tag_hex(elem.tag)] = obj
    return out


def _elements(ds: Dataset) -> Iterator[DataElement]:
    # Tags sorted as plain ints (BaseTag compares in Python); an element still raw from a file
    # is converted by pydicom, its warnings silenced and its failures a 400.
    for tag in sorted(map(int, ds.keys())):
        elem = ds.get_item(tag)
        if not isinstance(elem, DataElement):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    elem = ds[tag]
                except Exception as exc:  # pydicom raises many kinds on undecodable bytes
                    raise InvalidRequest(f"attribute {tag_hex(tag)}: cannot be decoded") from exc
        yield elem


def _definite_vr(vr: str) -> str:
    # An ambiguous dictionary VR ("OB or OW", "US or SS") left unresolved: take the first.
    return vr.split(" or ")[0]


def _values(value: object) -> list[Any]:
    if value is None or value == "" or value == b"":
        return []
    if isinstance(value, MultiValue | list | tuple):
        return list(value)
    return [value]


def _render_binary(
    elem: DataElement,
    vr: str,
    path: AttributePath,
    uri: BulkDataUri | None,
    threshold: int,
    *,
    omit_bulk: bool,
) -> dict[str, Any] | None:
    value = elem.value
    if value is None or value == b"":
        return {"vr": vr}
    if not isinstance(value, bytes | bytearray):
        raise InvalidRequest(f"attribute {tag_hex(elem.tag)}: binary value of the wrong type")
    bulk = len(value) > threshold or (omit_bulk and int(elem.tag) in PIXEL_DATA_TAGS)
    if bulk and uri is not None:
        return {"vr": vr, "BulkDataURI": uri(path)}
    if bulk and omit_bulk:
        return None
    return {"vr": vr, "InlineBinary": base64.b64encode(bytes(value)).decode("ascii")}


def _render_value(vr: str, value: Any, tag: int) -> Any:
    if value is None or value == "":
        return None  # an empty value among several (PS3.18 §F.2.5)
    if vr == "PN":
        return _render_pn(value)
    if vr == "AT":
        return tag_hex(int(value))
    if vr in ("IS", "US", "SS", "UL", "SL"):
        return int(value)
    if vr in ("SV", "UV"):
        number = int(value)
        return number if abs(number) <= _SAFE_INT else str(number)
    if vr in ("DS", "FL", "FD"):
        real = float(value)
        if not math.isfinite(real):
            raise InvalidRequest(f"attribute {tag_hex(tag)}: a value JSON cannot hold")
        return int(real) if vr == "DS" and real.is_integer() and abs(real) < 1e15 else real
    text = str(value)
    return text if text != "" else None


def _render_pn(value: Any) -> dict[str, str] | None:
    name = value if isinstance(value, PersonName) else PersonName(str(value))
    groups = {k: g for k, g in zip(_PN_GROUPS, name.components, strict=False) if g}
    return groups or None


# --- reading -------------------------------------------------------------------------------


def parse_dicom_json(
    body: bytes,
    *,
    bulkdata: BulkDataResolver | None = None,
    limits: JsonLimits = JsonLimits(),  # noqa: B008 - frozen, shared safely
) -> list[Dataset]:
    """Parse an `application/dicom+json` body: an array of datasets (PS3.18 §F.2)."""
    if len(body) > limits.max_bytes:
        raise PayloadTooLarge(f"DICOM JSON over {limits.max_bytes} bytes")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest("DICOM JSON: not valid JSON") from None
    if isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list) or not doc:
        raise InvalidRequest("DICOM JSON: expected an array of one or more datasets")
    if len(doc) > limits.max_datasets:
        raise PayloadTooLarge(f"DICOM JSON: more than {limits.max_datasets} datasets")
    budget = _Budget(limits)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [_read_dataset(item, (), bulkdata, budget, top=True) for item in doc]


def dataset_from_json(
    obj: object,
    *,
    bulkdata: BulkDataResolver | None = None,
    limits: JsonLimits = JsonLimits(),  # noqa: B008 - frozen, shared safely
) -> Dataset:
    """Turn one DICOM JSON object into a Dataset, or raise 400 (PS3.18 §F.2).

    `bulkdata` resolves a BulkDataURI to its bytes (the STOW-RS bulk data parts, by
    Content-Location); a URI it does not know, or any URI without it, is refused.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's value warnings: we checked what matters
        return _read_dataset(obj, (), bulkdata, _Budget(limits), top=True)


class _Budget:
    def __init__(self, limits: JsonLimits) -> None:
        self.limits = limits
        self.left = limits.max_attributes

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise PayloadTooLarge(f"DICOM JSON: more than {self.limits.max_attributes} attributes")


def _read_dataset(
    obj: object,
    path: AttributePath,
    bulkdata: BulkDataResolver | None,
    budget: _Budget,
    *,
    top: bool,
) -> Dataset:
    if not isinstance(obj, dict):
        raise InvalidRequest(f"{_where(path)}: a dataset is a JSON object")
    if len(path) // 2 >= budget.limits.max_depth:
        raise InvalidRequest(f"{_where(path)}: sequences nested too deep")
    ds = Dataset()
    meta: FileMetaDataset | None = None
    for key, member in obj.items():
        budget.spend()
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise InvalidRequest(f"{_where(path)}: attribute keys are eight hex digits")
        tag = int(key, 16)
        here = (*path, tag)
        elem = _read_element(member, here, bulkdata, budget)
        try:
            if tag >> 16 == 0x0002:
                if not top:
                    raise InvalidRequest(f"{_where(here)}: file meta inside a sequence")
                meta = meta if meta is not None else FileMetaDataset()
                meta.add(elem)
            else:
                ds.add(elem)
        except DicomWireError:
            raise
        except Exception as exc:  # pydicom refusing a value we let through is still 400
            raise InvalidRequest(f"{_where(here)}: value not accepted") from exc
    if meta is not None:
        ds.file_meta = meta
    return ds


class _Where:
    """An attribute's place for an error message, spelled out only when one is raised."""

    __slots__ = ("path",)

    def __init__(self, path: AttributePath) -> None:
        self.path = path

    def __format__(self, spec: str) -> str:
        return _where(self.path)


def _where(path: AttributePath) -> str:
    if not path:
        return "dataset"
    parts = [tag_hex(p) if i % 2 == 0 else f"[{p}]" for i, p in enumerate(path)]
    return "attribute " + ".".join(parts).replace(".[", "[")


def _read_element(
    member: object,
    path: AttributePath,
    bulkdata: BulkDataResolver | None,
    budget: _Budget,
) -> DataElement:
    where = _Where(path)
    if not isinstance(member, dict):
        raise InvalidRequest(f"{where}: an attribute is a JSON object")
    vr = member.get("vr")
    if not isinstance(vr, str) or vr not in _KNOWN_VRS:
        raise InvalidRequest(f"{where}: missing or unknown vr")
    extra = set(member) - {"vr", "Value", "InlineBinary", "BulkDataURI"}
    if extra:
        raise InvalidRequest(f"{where}: unexpected member")
    present = [k for k in ("Value", "InlineBinary", "BulkDataURI") if k in member]
    if len(present) > 1:
        raise InvalidRequest(f"{where}: at most one of Value, InlineBinary, BulkDataURI")
    tag = path[-1]
    if not present:
        return _element(tag, vr, b"" if vr in BINARY_VRS else None)
    kind = present[0]
    raw = member[kind]
    if vr in BINARY_VRS:
        return _element(tag, vr, _read_binary(kind, raw, vr, where, bulkdata))
    if kind != "Value":
        raise InvalidRequest(f"{where}: {kind} only for the binary VRs")
    if not isinstance(raw, list):
        raise InvalidRequest(f"{where}: Value is an array")
    if vr == "SQ":
        items = Sequence(
            [
                _read_dataset(item, (*path, i), bulkdata, budget, top=False)
                for i, item in enumerate(raw)
            ]
        )
        return _element(tag, vr, items)
    values = [_read_value(vr, v, where, budget) for v in raw]
    if vr in _SINGLE_VALUED and len(values) > 1:
        raise InvalidRequest(f"{where}: {vr} holds one value")
    if not values:
        return _element(tag, vr, None)
    return _element(tag, vr, values[0] if len(values) == 1 else values)


def _element(tag: int, vr: str, value: Any) -> DataElement:
    return DataElement(tag, vr, value, validation_mode=config.IGNORE)


def _read_binary(
    kind: str, raw: object, vr: str, where: _Where, bulkdata: BulkDataResolver | None
) -> bytes:
    if kind == "Value":
        raise InvalidRequest(f"{where}: {vr} values are InlineBinary or BulkDataURI")
    if not isinstance(raw, str):
        raise InvalidRequest(f"{where}: {kind} is a string")
    if kind == "BulkDataURI":
        data = bulkdata(raw) if bulkdata is not None else None
        if data is None:
            raise InvalidRequest(f"{where}: BulkDataURI names no part of this request")
    else:
        try:
            data = base64.b64decode(raw.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise InvalidRequest(f"{where}: InlineBinary is not base64") from None
    unit = _BINARY_UNIT.get(vr, 1)
    if len(data) % unit:
        raise InvalidRequest(f"{where}: {vr} length is a multiple of {unit}")
    return data


def _read_value(vr: str, raw: object, where: _Where, budget: _Budget) -> Any:
    if vr == "PN":
        return _read_pn(raw, where, budget)
    if vr == "AT":
        if not isinstance(raw, str) or not _KEY.fullmatch(raw):
            raise InvalidRequest(f"{where}: an AT value is eight hex digits")
        return int(raw, 16)
    if raw is None and vr in ("IS", "DS"):
        return ""  # an empty value among several; the binary numbers have none
    if vr in _INT_RANGES:
        return _read_int(vr, raw, where)
    if vr in _FLOAT_VRS or vr == "DS":
        return _read_float(vr, raw, where)
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise InvalidRequest(f"{where}: a {vr} value is a string")
    if len(raw) > budget.limits.max_value_chars:
        raise PayloadTooLarge(f"{where}: value too long")
    if vr not in _SINGLE_VALUED and "\\" in raw:
        raise InvalidRequest(f"{where}: a value holds no backslash")
    return raw


def _read_pn(raw: object, where: _Where, budget: _Budget) -> str:
    if raw is None:
        return ""
    if not isinstance(raw, dict) or set(raw) - set(_PN_GROUPS):
        raise InvalidRequest(f"{where}: a PN value is an object of Alphabetic/Ideographic/Phonetic")
    groups: list[str] = []
    for name in _PN_GROUPS:
        group = raw.get(name, "")
        if group is None:
            group = ""
        if not isinstance(group, str) or "=" in group or "\\" in group:
            raise InvalidRequest(f"{where}: a PN group is a string without '=' or '\\'")
        if len(group) > budget.limits.max_value_chars:
            raise PayloadTooLarge(f"{where}: value too long")
        groups.append(group)
    while groups and not groups[-1]:
        groups.pop()
    return "=".join(groups)


def _read_int(vr: str, raw: object, where: _Where) -> int:
    if isinstance(raw, bool):
        raise InvalidRequest(f"{where}: a {vr} value is an integer")
    if isinstance(raw, float) and raw.is_integer() and vr == "IS":
        raw = int(raw)
    if isinstance(raw, str) and _INTEGER.fullmatch(raw.strip()):
        raw = int(raw.strip())
    if not isinstance(raw, int):
        raise InvalidRequest(f"{where}: a {vr} value is an integer")
    low, high = _INT_RANGES[vr]
    if not low <= raw <= high:
        raise InvalidRequest(f"{where}: {vr} value out of range")
    return raw


def _read_float(vr: str, raw: object, where: _Where) -> float | str:
    if isinstance(raw, bool):
        raise InvalidRequest(f"{where}: a {vr} value is a number")
    if vr == "DS" and isinstance(raw, str):
        if not _DECIMAL.fullmatch(raw.strip()) or len(raw.strip()) > 16:
            raise InvalidRequest(f"{where}: a DS value is a decimal number")
        raw = raw.strip()
    elif not isinstance(raw, int | float):
        raise InvalidRequest(f"{where}: a {vr} value is a number")
    try:
        number = float(raw)
    except OverflowError:
        raise InvalidRequest(f"{where}: {vr} value out of range") from None
    if not math.isfinite(number) or (vr == "FL" and abs(number) > _FL_MAX):
        raise InvalidRequest(f"{where}: {vr} value out of range")
    if vr == "DS":
        return _ds_string(number, where)
    return number


def _ds_string(number: float, where: _Where) -> str:
    # DS holds at most 16 characters (PS3.5 §6.2): the shortest repr that fits, else refused.
    if number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    text = repr(number)
    if len(text) > 16:
        text = f"{number:.10g}"
        if len(text) > 16 or float(text) != number:
            text = _shortest_fit(number, where)
    return text


def _shortest_fit(number: float, where: _Where) -> str:
    for digits in range(16, 0, -1):
        text = f"{number:.{digits}g}"
        if len(text) <= 16:
            return text
    raise InvalidRequest(f"{where}: DS value does not fit 16 characters")
