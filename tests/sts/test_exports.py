"""The token service's public face, and its place in the layout (docs/architecture.md)."""

from __future__ import annotations

import onerecord.sts as sts
from tests.support.layout import assert_all_sorted_and_complete, assert_imports_none_of

FORBIDDEN = (
    "onerecord.hub",
    "onerecord.source",
    "onerecord.media",
    "onerecord.dialogue",
    "onerecord.portals",
)


def test_all_is_sorted_and_complete() -> None:
    assert_all_sorted_and_complete(sts)


def test_sts_imports_no_service() -> None:
    # The patient lookup's audit comes from the audit package, not from the hub it once shared.
    assert_imports_none_of(sts, FORBIDDEN)
