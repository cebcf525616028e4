"""The media package's public face, and its place in the layout (docs/architecture.md)."""

from __future__ import annotations

import onerecord.media as media
from tests.support.layout import assert_all_sorted_and_complete, assert_imports_none_of

FORBIDDEN = ("onerecord.source", "onerecord.hub", "onerecord.portals", "onerecord.dialogue")


def test_all_is_sorted_and_complete() -> None:
    assert_all_sorted_and_complete(media)


def test_media_imports_no_other_service() -> None:
    assert_imports_none_of(media, FORBIDDEN)
