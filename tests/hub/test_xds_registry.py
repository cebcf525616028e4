"""The hub's consolidated XDS.b answer, piece by piece: a failed region's RegistryError and the
obfuscated entry of a blocked document (the network tests run the whole: test_xds_hub.py)."""

from __future__ import annotations

import pytest
from lxml import etree

from onerecord.domain import HomeCommunityId, NationalIdentityNumber
from onerecord.hub.directory import Region
from onerecord.hub.merge import Placed
from onerecord.hub.results import RegionResult, RegionStatus
from onerecord.hub.xds_registry import masked_entry, region_error, region_warning
from onerecord.xca.ebrim import MASK, MASKED_TITLE, ZERO_UUID, QueryResponse, render_query_response
from onerecord.xca.response import ERROR_SEVERITY
from tests.source.xca_support import response_schema

HCID = "urn:oid:2.16.578.1.12.4.5.100.2"
VEST = Region("Helse Vest", HomeCommunityId.parse(HCID), "http://vest/fhir")
PATIENT = NationalIdentityNumber("23828611216")


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (RegionStatus.UNAVAILABLE, "XDSUnavailableCommunity"),
        (RegionStatus.TIMEOUT, "XDSUnavailableCommunity"),
        (RegionStatus.DENIED, "XDSRegistryError"),
        (RegionStatus.REJECTED, "XDSRegistryError"),
        (RegionStatus.INVALID_RESPONSE, "XDSRegistryError"),
        (RegionStatus.TOO_LARGE, "XDSRegistryError"),
        (RegionStatus.ERROR, "XDSRegistryError"),
    ],
)
def test_every_failed_region_is_one_located_registry_error(status: RegionStatus, code: str) -> None:
    error = region_error(RegionResult(VEST, status, 1.0, reason="practitioner-blocked"))
    assert error is not None
    assert (error.error_code, error.location, error.severity) == (code, HCID, ERROR_SEVERITY)
    assert "Helse Vest" in error.code_context
    if status is RegionStatus.DENIED:
        assert error.code_context.endswith("practitioner-blocked")


def test_a_region_that_answered_has_no_error() -> None:
    assert region_error(RegionResult(VEST, RegionStatus.OK, 1.0)) is None


def test_a_blocked_entry_is_obfuscated_as_the_regions_do_and_valid() -> None:
    placeholder = {
        "resourceType": "DocumentReference",
        "status": "superseded",
        "date": "2024-03-12T10:30:00+00:00",
        "description": "Sperret",
        "securityLabel": [{"coding": [{"code": "NORS"}]}],
    }
    entry = masked_entry(Placed(HCID, placeholder), PATIENT)
    assert (entry.id, entry.lid, entry.title, entry.home) == (
        ZERO_UUID,
        ZERO_UUID,
        MASKED_TITLE,
        HCID,
    )
    assert entry.blocked and entry.status.endswith("Deprecated")
    assert entry.slot("creationTime") == ("20240312103000",)
    codes = {c.scheme: c.node_representation for c in entry.classifications}
    assert list(codes.values()).count(MASK) == 2  # class and type
    assert entry.external("urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab") == "^-1"
    body = render_query_response(
        QueryResponse(
            status="urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success", entries=(entry,)
        )
    )
    response_schema().assertValid(etree.fromstring(etree.tostring(body)))


def test_a_regions_notice_is_a_located_warning() -> None:
    result = RegionResult(VEST, RegionStatus.OK, 1.0)
    xca = region_warning(result, {"diagnostics": "XDSRepositoryError: one part missing"})
    assert (xca.error_code, xca.code_context, xca.location) == (
        "XDSRepositoryError",
        "one part missing",
        HCID,
    )
    notice = region_warning(result, {"code": "informational", "details": {"text": "reserved"}})
    assert (notice.error_code, notice.code_context) == ("XDSRegistryError", "reserved")
    assert notice.severity.endswith("Warning")
    body = render_query_response(
        QueryResponse(
            status="urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success", errors=(notice,)
        )
    )
    assert body[0].get("highestSeverity").endswith("Warning")
