"""The hub's XCA side without a network: its SAML key, and a region's Failure as its outcome.

The whole exchange against a real region runs in tests/network/test_xca_hub.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from onerecord.hub.fanout import RegionCallFailed
from onerecord.hub.results import RegionStatus
from onerecord.hub.xca_initiating import load_hub_saml_issuer, read_answer
from onerecord.xca.ebrim import EbRegistryError, QueryResponse, render_query_response
from onerecord.xca.response import RegistryErrorCode, ResponseStatus


def test_the_development_saml_key_is_made_in_dev_mode_and_refused_outside(tmp_path: Path) -> None:
    issuer = load_hub_saml_issuer(
        name="https://hub.test",
        key_file=None,
        certificate_file=None,
        key_dir=tmp_path,
        dev_mode=True,
    )
    assert issuer.name == "https://hub.test"
    with pytest.raises(ValueError, match="outside dev"):
        load_hub_saml_issuer(
            name="https://hub.test",
            key_file=None,
            certificate_file=None,
            key_dir=tmp_path,
            dev_mode=False,
        )
    with pytest.raises(ValueError, match="development SAML certificate outside dev mode"):
        load_hub_saml_issuer(
            name="https://hub.test",
            key_file=tmp_path / "dev-hub-saml.key",
            certificate_file=tmp_path / "dev-hub-saml.crt",
            key_dir=tmp_path,
            dev_mode=False,
        )


@pytest.mark.parametrize(
    ("code", "context", "status", "reason"),
    [
        (RegistryErrorCode.UNAVAILABLE_COMMUNITY, "down", RegionStatus.UNAVAILABLE, None),
        (
            RegistryErrorCode.REGISTRY_ERROR,
            "access denied by policy: practitioner-blocked",
            RegionStatus.DENIED,
            "practitioner-blocked",
        ),
        (RegistryErrorCode.REGISTRY_ERROR, "the assertion has expired", RegionStatus.DENIED, None),
        (RegistryErrorCode.TOO_MANY_RESULTS, "narrow it", RegionStatus.REJECTED, None),
        (RegistryErrorCode.REPOSITORY_ERROR, "disk", RegionStatus.ERROR, None),
    ],
)
def test_a_failure_becomes_the_outcome_mhd_would_give(
    code: str, context: str, status: RegionStatus, reason: str | None
) -> None:
    error = EbRegistryError(code, context, "urn:oid:2.16.578.1.12.4.5.100.1")
    answer = render_query_response(
        QueryResponse(status=ResponseStatus.FAILURE.value, errors=(error,))
    )
    with pytest.raises(RegionCallFailed) as caught:
        read_answer(answer)
    assert caught.value.status is status
    assert caught.value.reason == reason


def test_a_partial_success_is_read_as_an_answer() -> None:
    error = EbRegistryError(RegistryErrorCode.REGISTRY_ERROR, "one part", None)
    answer = read_answer(
        render_query_response(
            QueryResponse(status=ResponseStatus.PARTIAL_SUCCESS.value, errors=(error,))
        )
    )
    assert answer.errors == (error,)
