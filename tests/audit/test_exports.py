"""The audit package's public face, and its place in the layout (docs/architecture.md)."""

from __future__ import annotations

import onerecord.audit as audit
from tests.support.layout import assert_all_sorted_and_complete, assert_imports_none_of

FORBIDDEN = (
    "onerecord.hub",
    "onerecord.source",
    "onerecord.media",
    "onerecord.dialogue",
    "onerecord.portals",
    "onerecord.sts",
)


def test_all_is_sorted_and_complete() -> None:
    assert_all_sorted_and_complete(audit)


def test_audit_imports_no_service() -> None:
    # Every service writes audit records; the audit package serves them all and uses none.
    assert_imports_none_of(audit, FORBIDDEN)
