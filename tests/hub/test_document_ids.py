"""Hub ids of DocumentReferences: the region and the entryUUID, routable and readable (G)."""

from __future__ import annotations

import uuid

import pytest

from onerecord.hub.document_ids import HubDocumentId, hub_document_id, route_entry
from onerecord.mhd import NotFound

HCID = "urn:oid:2.16.578.1.12.4.5.100.1"
ENTRY = uuid.UUID("3f2c9a3e-7d5e-4b6a-9c1f-0a1b2c3d4e5f")


def test_route_entry_gives_a_hub_id_and_a_full_url_at_the_hub() -> None:
    resource = {"resourceType": "DocumentReference", "id": str(ENTRY)}
    full_url = route_entry(resource, HCID, "https://hub.example/fhir")
    assert resource["id"] == "2.16.578.1.12.4.5.100.1-3f2c9a3e7d5e4b6a9c1f0a1b2c3d4e5f"
    assert full_url == f"https://hub.example/fhir/DocumentReference/{resource['id']}"
    routed = HubDocumentId.parse(resource["id"])
    assert routed.home_community_id.urn == HCID and routed.entry_uuid == ENTRY
    assert len(resource["id"]) <= 64


def test_a_masked_entry_gets_a_urn_uuid_full_url_and_keeps_its_id() -> None:
    resource = {"resourceType": "DocumentReference", "id": "masked-0a1b2c"}
    assert route_entry(resource, HCID, "https://hub.example/fhir").startswith("urn:uuid:")
    assert resource["id"] == "masked-0a1b2c"


def test_an_oid_too_long_for_a_fhir_id_is_not_routed() -> None:
    long_hcid = "urn:oid:2.16.578.1.12.4.5.100.1.2.3.4.5.6.7.8.9.10.11.12"
    assert hub_document_id(long_hcid, str(ENTRY)) is None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "not-a-hub-id",
        str(ENTRY),
        f"2.16.578-{ENTRY}",  # dashed uuid
        "2.16.578.1-" + "0" * 31,
        "01.2-" + "0" * 32,
        "2.16.578.1-" + "0" * 32 + "0",
        "9" * 70 + "-" + "0" * 32,
    ],
)
def test_anything_else_is_not_found(value: str) -> None:
    with pytest.raises(NotFound):
        HubDocumentId.parse(value)


@pytest.mark.parametrize(
    ("hcid", "region_id"),
    [
        (HCID, str(ENTRY)),
        (HCID, ENTRY.hex),
        (HCID, "{" + str(ENTRY) + "}"),
        (HCID, f"urn:uuid:{ENTRY}"),
        (HCID, "masked-0a1b2c"),
        (HCID, ""),
        (HCID, 5),
        (HCID, None),
        ("urn:oid:2.16.578.1.12.4.5.100.1.2.3.4.5.6.7.8.9.10.11.12", str(ENTRY)),
        ("not-a-urn", str(ENTRY)),
    ],
)
def test_route_entry_gives_the_id_hub_document_id_gives(hcid: str, region_id: object) -> None:
    """route_entry builds the id without per-entry objects: it must be the very same id."""
    resource: dict[str, object] = {"resourceType": "DocumentReference", "id": region_id}
    full_url = route_entry(resource, hcid, "https://hub.example/fhir")
    expected = hub_document_id(hcid, region_id)
    if expected is None:
        assert full_url.startswith("urn:uuid:") and resource["id"] == region_id
    else:
        assert resource["id"] == str(expected)
        assert full_url == f"https://hub.example/fhir/DocumentReference/{expected}"
