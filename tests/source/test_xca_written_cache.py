"""The ITI-38 gateway's cache of written ExtrinsicObjects: keyed by the row and its status."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from onerecord.domain import DocumentStatus, HomeCommunityId, RepositoryUniqueId
from onerecord.source.store import FoundEntry, entry_to_json
from onerecord.source.xca_gateway import RespondingGateway
from onerecord.xca.ebrim import STATUS_DEPRECATED
from onerecord.xca.writer import document_entry_xml
from tests.factories import make_entry


def _gateway(size: int) -> RespondingGateway:
    unused: Any = None
    return RespondingGateway(
        home_community_id=HomeCommunityId.parse("urn:oid:2.16.578.1.12.4.5.100.1"),
        repository_unique_id=RepositoryUniqueId.parse("2.16.578.1.12.4.5.100.1.2"),
        store=unused,
        content=unused,
        guard=unused,
        recorder=unused,
        xua=None,
        written_entries=size,
    )


def _found(seq: int, status: DocumentStatus = DocumentStatus.CURRENT, **kw: Any) -> FoundEntry:
    entry = replace(make_entry(**kw), status=status)
    return FoundEntry(
        seq,
        entry.unique_id.value,
        str(entry.entry_uuid),
        status.value,
        entry.class_code.system,
        entry.class_code.code,
        entry.creation_time,
        entry.service_start_time,
        entry.citizen_release_time,
        None,
        None,
        entry_to_json(entry),
    )


def test_a_written_entry_is_the_same_text_from_the_cache_or_not() -> None:
    gateway, uncached = _gateway(8), _gateway(0)
    found = _found(1)
    first = gateway._write(found)
    assert first == uncached._write(found) == document_entry_xml(found.entry)
    assert gateway._write(found) is first
    assert len(uncached._written) == 0


def test_a_status_change_is_written_anew() -> None:
    gateway = _gateway(8)
    current = _found(1)
    gateway._write(current)
    superseded = FoundEntry(
        1,
        current.unique_id.value,
        current.entry_uuid,
        DocumentStatus.SUPERSEDED.value,
        current.class_code.system,
        current.class_code.code,
        current.creation_time,
        current.service_start_time,
        current.citizen_release_time,
        None,
        None,
        entry_to_json(current.entry),
    )
    text = gateway._write(superseded)
    assert f'status="{STATUS_DEPRECATED}"' in text
    assert text == document_entry_xml(superseded.entry)


def test_a_reused_seq_with_another_entry_is_not_confused() -> None:
    gateway = _gateway(8)
    one, other = _found(7, title="en"), _found(7, title="to")
    assert gateway._write(one) != gateway._write(other)
    assert gateway._write(other) == document_entry_xml(other.entry)


def test_the_cache_keeps_at_most_its_size() -> None:
    gateway = _gateway(3)
    rows = [_found(seq) for seq in range(10)]
    for row in rows:
        gateway._write(row)
    assert len(gateway._written) == 3
    assert [key[0] for key in gateway._written] == [7, 8, 9]
