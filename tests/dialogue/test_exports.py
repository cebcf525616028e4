"""The dialogue package's public face, and its place in the layout (docs/architecture.md)."""

from __future__ import annotations

from typer.testing import CliRunner

import onerecord.dialogue as dialogue
from onerecord.cli import app
from tests.support.layout import assert_all_sorted_and_complete, assert_imports_none_of

FORBIDDEN = (
    "onerecord.source",
    "onerecord.hub",
    "onerecord.media",
    "onerecord.portals",
    "onerecord.sts",
    "onerecord.synth",
    "onerecord.mhd",
    "onerecord.xca",
)


def test_all_is_sorted_and_complete() -> None:
    assert_all_sorted_and_complete(dialogue)


def test_dialogue_imports_only_domain_trust_and_audit() -> None:
    assert_imports_none_of(dialogue, FORBIDDEN)


def test_serve_command_is_registered() -> None:
    result = CliRunner().invoke(app, ["dialogue", "serve", "--help"])
    assert result.exit_code == 0
    assert "--issuer" in result.output
