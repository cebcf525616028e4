"""Hypothesis strategies for pydicom datasets of random VRs and valid values."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import strategies as st
from pydicom import config
from pydicom.datadict import DicomDictionary
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence


def _pool() -> dict[str, list[tuple[int, bool]]]:
    """Public dictionary tags by VR, with whether the attribute is multi-valued."""
    pool: dict[str, list[tuple[int, bool]]] = {}
    for tag, (vr, vm, _name, retired, _kw) in DicomDictionary.items():
        if tag >> 16 in (0x0002, 0xFFFE) or retired or " or " in vr or tag & 0xFFFF == 0:
            continue
        pool.setdefault(vr, []).append((tag, vm != "1"))
    return {vr: sorted(tags)[:40] for vr, tags in pool.items()}


POOL = _pool()
_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\\=^", exclude_categories=("Cs",)),
    max_size=12,
)
_word = st.from_regex(r"[A-Z0-9 _]{0,16}", fullmatch=True).map(str.rstrip)
_uid = st.lists(st.integers(0, 10**6), min_size=2, max_size=6).map(lambda c: ".".join(map(str, c)))
_ds = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.floats(-1e6, 1e6, allow_nan=False)
    .map(lambda f: repr(round(f, 4)))
    .filter(lambda t: len(t) <= 16),
)


def _scalar(vr: str) -> st.SearchStrategy[Any]:
    ints = {
        "US": (0, 65535),
        "SS": (-32768, 32767),
        "UL": (0, 2**32 - 1),
        "SL": (-(2**31), 2**31 - 1),
        "UV": (0, 2**64 - 1),
        "SV": (-(2**63), 2**63 - 1),
        "IS": (-(2**31), 2**31 - 1),
    }
    if vr in ints:
        low, high = ints[vr]
        strat = st.integers(low, high)
        return (strat.map(str) | st.just("")) if vr == "IS" else strat
    if vr == "FD":
        return st.floats(allow_nan=False, allow_infinity=False)
    if vr == "FL":
        return st.floats(width=32, allow_nan=False, allow_infinity=False)
    if vr == "DS":
        return _ds | st.just("")
    if vr == "UI":
        return _uid
    if vr == "DA":
        return st.dates(dt.date(1900, 1, 1), dt.date(2100, 1, 1)).map(
            lambda d: d.strftime("%Y%m%d")
        )
    if vr == "TM":
        return st.times().map(lambda t: t.strftime("%H%M%S"))
    if vr == "AT":
        return st.sampled_from([0x00100020, 0x0020000D, 0x7FE00010])
    if vr == "PN":
        return st.tuples(_text, _text, _text).map(lambda g: "=".join(g).rstrip("="))
    if vr in ("CS", "AE", "AS", "SH"):
        return _word
    return _text


def _binary(vr: str) -> st.SearchStrategy[bytes]:
    unit = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}.get(vr, 1)
    return st.binary(max_size=64).map(lambda b: b[: len(b) - len(b) % unit])


@st.composite
def datasets(draw: st.DrawFn, depth: int = 0) -> Dataset:
    """A dataset of up to eight attributes of random VRs, with sequences two levels deep."""
    ds = Dataset()
    vrs = sorted(POOL)
    for _ in range(draw(st.integers(0, 8))):
        vr = draw(st.sampled_from(vrs))
        if vr == "SQ" and depth >= 2:
            continue
        tag, multi = draw(st.sampled_from(POOL[vr]))
        value: Any
        if vr == "SQ":
            value = Sequence(draw(st.lists(datasets(depth + 1), max_size=2)))
        elif vr in ("OB", "OD", "OF", "OL", "OV", "OW", "UN"):
            value = draw(_binary(vr))
        elif multi and vr not in ("LT", "ST", "UT", "UR"):
            values = draw(st.lists(_scalar(vr), min_size=1, max_size=3))
            value = values[0] if len(values) == 1 else values
        else:
            value = draw(_scalar(vr))
        ds.add(DataElement(tag, vr, value, validation_mode=config.IGNORE))
    return ds
