"""Every parser of the dialogue wire raises only BadInput, whatever JSON comes in (hypothesis)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onerecord.dialogue import BadInput
from onerecord.dialogue.fhir import (
    CATEGORY_SYSTEM,
    FEE_EXTENSION,
    FNR_SYSTEM,
    check_id,
    encode_cursor,
    parse_absence,
    parse_appointment,
    parse_body,
    parse_communication,
    parse_confirm_bookings,
    parse_handling,
    parse_inbox_query,
    parse_information,
    parse_move,
    parse_orgnr,
    parse_patient,
    parse_renewal,
    parse_service_switch,
    parse_slot,
)

_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
_KEYS = st.sampled_from(
    [
        "resourceType",
        "subject",
        "identifier",
        "value",
        "system",
        "category",
        "coding",
        "code",
        "payload",
        "contentString",
        "inResponseTo",
        "reference",
        "extension",
        "url",
        "valueBoolean",
        "priority",
        "for",
        "focus",
        "note",
        "text",
        "parameter",
        "name",
        "valueCode",
        "valueString",
        "valueDateTime",
        "schedule",
        "start",
        "end",
        "serviceType",
        "slot",
        "participant",
        "actor",
        "comment",
    ]
) | st.text(max_size=8)
_JSON = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_KEYS, children, max_size=6),
    max_leaves=25,
)

_PARSERS: list[Callable[[Mapping[str, Any]], object]] = [
    parse_communication,
    parse_renewal,
    parse_handling,
    parse_service_switch,
    parse_confirm_bookings,
    parse_information,
    parse_absence,
    parse_slot,
    parse_appointment,
]


def _only_bad_input(parser: Callable[[Mapping[str, Any]], object], value: Any) -> None:
    if not isinstance(value, dict):
        return
    try:
        parser(value)
    except BadInput:
        pass


@pytest.mark.parametrize("parser", _PARSERS, ids=lambda p: p.__name__)
@settings(max_examples=300, deadline=None)
@given(value=_JSON)
def test_any_json_gives_a_command_or_bad_input(
    parser: Callable[[Mapping[str, Any]], object], value: Any
) -> None:
    _only_bad_input(parser, value)


# Near-valid bodies reach the deeper checks (identifiers, dates, codes).
_NEAR = st.fixed_dictionaries(
    {
        "resourceType": st.just("Communication"),
        "subject": st.fixed_dictionaries(
            {
                "identifier": st.fixed_dictionaries(
                    {"system": st.just(FNR_SYSTEM), "value": _SCALARS}
                )
            }
        ),
        "category": st.just([{"coding": [{"system": CATEGORY_SYSTEM}]}]).map(lambda c: c),
        "payload": st.lists(st.fixed_dictionaries({"contentString": _SCALARS}), max_size=2),
        "extension": st.lists(
            st.fixed_dictionaries({"url": st.just(FEE_EXTENSION), "valueBoolean": _SCALARS}),
            max_size=2,
        ),
        "priority": _SCALARS,
    }
)


@settings(max_examples=300, deadline=None)
@given(value=_NEAR)
def test_near_valid_communications(value: dict[str, Any]) -> None:
    _only_bad_input(parse_communication, value)


@settings(max_examples=300, deadline=None)
@given(
    start=_SCALARS | st.from_regex(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", fullmatch=True),
    end=_SCALARS
    | st.from_regex(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?([+-]\d{2}:\d{2}|Z)", fullmatch=True),
    code=_SCALARS | st.sampled_from(["in-person", "video", "e-consultation"]),
)
def test_near_valid_dates_and_codes(start: Any, end: Any, code: Any) -> None:
    params = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "start", "valueDateTime": start},
            {"name": "end", "valueDateTime": end},
            {"name": "service", "valueCode": code},
        ],
    }
    _only_bad_input(parse_absence, params)
    slot = {
        "resourceType": "Slot",
        "schedule": {"reference": "Schedule/974600013"},
        "start": end,
        "end": end,
        "serviceType": [
            {"coding": [{"system": "urn:onerecord:dialogue:visit-mode", "code": code}]}
        ],
    }
    _only_bad_input(parse_slot, slot)


@settings(max_examples=300, deadline=None)
@given(value=st.text(max_size=80) | st.from_regex(r"[0-9]{11}", fullmatch=True))
def test_query_values(value: str) -> None:
    for parse in (parse_patient, parse_orgnr, check_id):
        try:
            parse(value)
        except BadInput:
            pass


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=200) | _JSON.map(lambda v: json.dumps(v).encode()))
def test_any_body_bytes(raw: bytes) -> None:
    try:
        parse_body(raw, "Communication")
    except BadInput:
        pass


_PARAM_VALUES = (
    st.text(max_size=40)
    | st.from_regex(r"[0-9]{1,25}_[A-Za-z0-9.\-]{0,70}", fullmatch=True)
    | st.sampled_from(["requested", "completed,rejected", "e-consultation,contact-office", "0"])
    | st.integers(-5, 500).map(str)
)


@settings(max_examples=400, deadline=None)
@given(
    params=st.dictionaries(
        st.sampled_from(["code", "status", "_count", "_cursor"]), _PARAM_VALUES, max_size=4
    )
)
def test_inbox_query(params: dict[str, str]) -> None:
    """The work list's search parameters: a query or BadInput, and a cursor round-trips."""
    try:
        query = parse_inbox_query(params, max_count=100)
    except BadInput:
        return
    assert 1 <= query.count <= 100
    if query.after is not None:
        again = parse_inbox_query({"_cursor": encode_cursor(query.after)}, max_count=100)
        assert again.after == query.after


@settings(max_examples=300, deadline=None)
@given(value=_JSON)
def test_move_parameters(value: Any) -> None:
    _only_bad_input(parse_move, value)
    _only_bad_input(
        parse_move,
        {"resourceType": "Parameters", "parameter": [{"name": "slot", "valueReference": value}]},
    )


@settings(max_examples=300)
@given(st.one_of(st.none(), st.text(max_size=80)))
def test_idempotency_key_is_a_key_none_or_bad_input(value: str | None) -> None:
    from onerecord.dialogue.fhir import parse_idempotency_key

    try:
        key = parse_idempotency_key(value)
    except BadInput:
        return
    assert (key is None) == (value is None)
    if key is not None:
        assert 8 <= len(key) <= 64 and key.isascii() and '"' not in key


@settings(max_examples=300)
@given(
    st.one_of(
        st.binary(max_size=60),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=16), inner, max_size=3)
            ),
            max_leaves=6,
        ).map(lambda v: json.dumps({"offset_seconds": v}).encode()),
    )
)
def test_dev_clock_offset_is_in_range_or_bad_input(raw: bytes) -> None:
    from onerecord.dialogue.devclock import MAX_OFFSET, parse_clock_offset

    try:
        offset = parse_clock_offset(raw)
    except BadInput:
        return
    assert offset.total_seconds() >= 0 and offset <= MAX_OFFSET


@settings(max_examples=200)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=12),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(["01528012345", "email", "mobile", "language", "x"]),
                inner,
                max_size=4,
            )
        ),
        max_leaves=8,
    )
)
def test_a_contact_extract_is_read_or_refused_with_value_error(value: Any) -> None:
    import tempfile
    from pathlib import Path

    from onerecord.dialogue.contacts import load_contacts

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "contacts.json"
        path.write_text(json.dumps(value), "utf-8")
        try:
            register = load_contacts(path)
        except ValueError:
            return
        for entry in register.entries.values():
            assert entry.language in ("nb", "nn", "en")
