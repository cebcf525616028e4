"""The pure hash chain: built by link_hash, checked by verify_chain."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from onerecord.audit import (
    GENESIS_HASH,
    ChainHead,
    ChainRow,
    canonical,
    link_hash,
    verify_chain,
)


def build(n: int) -> tuple[list[ChainRow], ChainHead]:
    rows = []
    prev = GENESIS_HASH
    for seq in range(1, n + 1):
        fields = {
            "seq": seq,
            "recorded": f"2025-06-15T10:00:{seq % 60:02d}.000000+00:00",
            "patient_id": "15838500123",
            "action": "search",
            "outcome": "success",
            "event": {"n": seq, "documents": [f"1.2.{seq}"]},
        }
        digest = link_hash(prev, canonical(**fields))  # type: ignore[arg-type]
        rows.append(ChainRow(**fields, prev_hash=prev, hash=digest))  # type: ignore[arg-type]
        prev = digest
    return rows, ChainHead(n, prev)


def test_intact_chain_verifies() -> None:
    rows, head = build(5)
    result = verify_chain(rows, head=head)
    assert result.ok and result.checked == 5 and result.first_bad_seq is None
    assert verify_chain([], head=None).ok


def test_canonical_form_ignores_key_order() -> None:
    a = canonical(
        seq=1, recorded="t", patient_id=None, action="a", outcome="o", event={"x": 1, "y": 2}
    )
    b = canonical(
        seq=1, recorded="t", patient_id=None, action="a", outcome="o", event={"y": 2, "x": 1}
    )
    assert a == b


@given(st.integers(1, 8), st.data())
def test_any_edit_is_found_at_its_row(n: int, data: st.DataObject) -> None:
    rows, head = build(n)
    i = data.draw(st.integers(0, n - 1))
    field = data.draw(st.sampled_from(["recorded", "patient_id", "action", "outcome", "event"]))
    edited = {
        "recorded": "2020-01-01T00:00:00.000000+00:00",
        "patient_id": "01010112345",
        "action": "retrieve",
        "outcome": "denied",
        "event": {"n": -1},
    }[field]
    rows[i] = replace(rows[i], **{field: edited})
    result = verify_chain(rows, head=head)
    assert not result.ok and result.first_bad_seq == i + 1


def test_deleted_middle_row_is_found() -> None:
    rows, head = build(5)
    del rows[2]
    result = verify_chain(rows, head=head)
    assert not result.ok and result.first_bad_seq == 3


def test_deleted_last_rows_are_found_through_the_head() -> None:
    rows, head = build(5)
    result = verify_chain(rows[:3], head=head)
    assert not result.ok and result.first_bad_seq == 4
    assert not verify_chain(rows, head=None).ok


def test_reordered_rows_are_found() -> None:
    rows, head = build(5)
    swapped = [rows[0], rows[2], rows[1], rows[3], rows[4]]
    assert verify_chain(swapped, head=head).first_bad_seq == 2
    # Renumbering to hide the swap breaks the hashes instead.
    renumbered = [replace(r, seq=i + 1) for i, r in enumerate(swapped)]
    assert verify_chain(renumbered, head=head).first_bad_seq == 2


def test_rehashed_row_still_breaks_the_next_link() -> None:
    rows, head = build(4)
    forged = replace(rows[1], event={"n": 99})
    body = canonical(
        seq=forged.seq,
        recorded=forged.recorded,
        patient_id=forged.patient_id,
        action=forged.action,
        outcome=forged.outcome,
        event=forged.event,
    )
    rows[1] = replace(forged, hash=link_hash(forged.prev_hash, body))
    result = verify_chain(rows, head=head)
    assert not result.ok and result.first_bad_seq == 3
