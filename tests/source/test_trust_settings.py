"""The source refuses to start without a trusted issuer unless in development open access."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from onerecord.source.settings import SourceSettings
from onerecord.trust.principal import PurposeOfUse


def _settings(tmp_path: Path, **values: object) -> SourceSettings:
    return SourceSettings(
        db_url=f"sqlite:///{tmp_path / 'r.db'}",
        content_dir=tmp_path / "c",
        **values,  # type: ignore[arg-type]
    )


def test_neither_issuer_nor_open_access_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="trusted token issuer"):
        _settings(tmp_path)


def test_open_access_needs_dev_mode(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="dev_mode"):
        _settings(tmp_path, dev_open_access=True)
    assert _settings(tmp_path, dev_open_access=True, dev_mode=True).dev_open_access


def test_hub_needs_issuer_and_jwks(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="hub"):
        _settings(tmp_path, issuer="http://sts", jwks_url="http://sts/jwks", hub_issuer="h")


def test_audience_defaults_to_home_community_id_and_policy_is_configurable(
    tmp_path: Path,
) -> None:
    s = _settings(
        tmp_path,
        issuer="http://sts",
        jwks_url="http://sts/jwks",
        allowed_roles=("LE", "SP", "PS"),
        allowed_purposes=(PurposeOfUse.TREAT,),
    )
    assert s.token_audience == s.home_community_id
    assert s.region_policy.allowed_roles == frozenset({"LE", "SP", "PS"})
    assert s.region_policy.allowed_purposes == frozenset({PurposeOfUse.TREAT})
