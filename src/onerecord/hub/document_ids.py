"""Ids of DocumentReferences at the hub: which region holds the entry, and its id there.

A region's DocumentReference id is its entryUUID, which only that region can read. The hub
gives each entry it passes on the id `<homeCommunityId OID>-<entryUUID as 32 hex digits>` and
the fullUrl `<hub>/fhir/DocumentReference/<that id>`, so a caller can follow the fullUrl
(or fhirpy's `reference`) and the hub routes the read to the owning region, with the caller's
identity, as it routes a retrieve. An entry whose region id is not an entryUUID (a masked
placeholder of a blocked entry) gets a `urn:uuid:` fullUrl: it has nothing to read.

References: FHIR R4 §2.1.0.1 (id: [A-Za-z0-9\\-\\.]{1,64}), §3.1.1.1 / bundle.html#fullUrl
(fullUrl is the absolute URL of the resource on the server that serves it); IHE ITI TF-2
3.39.4.1.3 (route by homeCommunityId).
"""

from __future__ import annotations

import functools
import re
import uuid
from dataclasses import dataclass
from typing import Any

from onerecord.domain import DomainError, HomeCommunityId
from onerecord.mhd import NotFound

__all__ = ["HubDocumentId", "hub_document_id", "route_entry"]

_ID = re.compile(r"^(?P<oid>[0-2](?:\.(?:0|[1-9][0-9]*))+)-(?P<uuid>[0-9a-f]{32})$")
_MAX_ID = 64


@dataclass(frozen=True, slots=True)
class HubDocumentId:
    """A hub DocumentReference id: the region's homeCommunityId and the entryUUID there."""

    home_community_id: HomeCommunityId
    entry_uuid: uuid.UUID

    @classmethod
    def parse(cls, value: str) -> HubDocumentId:
        """Read a hub id; anything else is a DocumentReference this hub does not have (404)."""
        match = _ID.match(value) if len(value) <= _MAX_ID else None
        if match is None:
            raise NotFound(
                f"no DocumentReference with id {value[:_MAX_ID]!r} at the hub",
                expression="DocumentReference.id",
            )
        try:
            home = HomeCommunityId.parse(f"urn:oid:{match['oid']}")
        except DomainError:
            raise NotFound(
                f"no DocumentReference with id {value!r} at the hub",
                expression="DocumentReference.id",
            ) from None
        return cls(home, uuid.UUID(hex=match["uuid"]))

    def __str__(self) -> str:
        return f"{self.home_community_id.oid.value}-{self.entry_uuid.hex}"


def hub_document_id(hcid: str, region_id: object) -> HubDocumentId | None:
    """Return the hub id of a region's entry, or None when its id is not an entryUUID."""
    if not isinstance(region_id, str):
        return None
    try:
        entry_uuid = uuid.UUID(region_id)
        home = HomeCommunityId.parse(hcid)
    except (ValueError, DomainError):
        return None
    routed = HubDocumentId(home, entry_uuid)
    return routed if len(str(routed)) <= _MAX_ID else None


@functools.lru_cache(maxsize=256)
def _community_oid(hcid: str) -> str | None:
    """The OID of a homeCommunityId URN, read once per community (None when it is not one)."""
    try:
        return HomeCommunityId.parse(hcid).oid.value
    except DomainError:
        return None


def route_entry(resource: dict[str, Any], hcid: str, hub_fhir_base: str) -> str:
    """Give a region's DocumentReference its hub id and return the fullUrl to read it by.

    Mutates `resource` (its id) and returns the fullUrl for the searchset entry. The same id as
    `hub_document_id` gives, without building one object per entry (every entry of every
    search passes here).
    """
    oid = _community_oid(hcid)
    region_id = resource.get("id")
    routed: str | None = None
    if oid is not None and isinstance(region_id, str):
        try:
            routed = f"{oid}-{uuid.UUID(region_id).hex}"
        except ValueError:
            routed = None
    if routed is None or len(routed) > _MAX_ID:
        return f"urn:uuid:{uuid.uuid4()}"
    resource["id"] = routed
    return f"{hub_fhir_base}/DocumentReference/{routed}"
