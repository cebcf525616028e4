"""The trust package's public face, and its place in the layout (docs/architecture.md)."""

from __future__ import annotations

import onerecord.trust as trust
from tests.support.layout import assert_all_sorted_and_complete, assert_imports_none_of

FORBIDDEN = (
    "onerecord.audit",
    "onerecord.hub",
    "onerecord.source",
    "onerecord.media",
    "onerecord.dialogue",
    "onerecord.portals",
    "onerecord.sts",
    "onerecord.xca",
    "onerecord.mhd",
)


def test_all_is_sorted_and_complete() -> None:
    assert_all_sorted_and_complete(trust)


def test_trust_imports_only_domain() -> None:
    # The resource servers' shared trust path (resource_server.py) lives here: it must not
    # reach back into a service, nor into a wire (a source's SAML relay is the source's own).
    assert_imports_none_of(trust, FORBIDDEN)
