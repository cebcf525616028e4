"""Factories for hub tests: regions, DocumentReference dicts, region results, a manual clock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from onerecord.domain import HomeCommunityId, NationalIdentityNumber
from onerecord.hub.directory import Region
from onerecord.hub.results import RegionResult, RegionStatus
from tests.factories import SYNTHETIC_FNR

HCID_HSO = "urn:oid:2.16.578.1.12.4.5.100.1"
HCID_VEST = "urn:oid:2.16.578.1.12.4.5.100.2"
HCID_MIDT = "urn:oid:2.16.578.1.12.4.5.100.3"
HCID_NORD = "urn:oid:2.16.578.1.12.4.5.100.4"


@dataclass
class ManualClock:
    """A clock tests move by hand."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_region(
    hcid: str = HCID_HSO,
    *,
    name: str | None = None,
    base_url: str | None = None,
    timeout_s: float | None = None,
    enabled: bool = True,
) -> Region:
    number = hcid.rsplit(".", 1)[1]
    return Region(
        name=name or f"Region {number}",
        home_community_id=HomeCommunityId.parse(hcid),
        base_url=base_url or f"http://region{number}.test/fhir",
        timeout_s=timeout_s,
        enabled=enabled,
    )


def make_docref(
    unique_id: str,
    *,
    date: str = "2024-03-15T10:30:00+00:00",
    status: str = "current",
    title: str = "Epikrise",
    period_start: str | None = None,
    hcid: str | None = None,
    base_url: str = "http://region1.test/fhir",
    patient: str | None = SYNTHETIC_FNR,
) -> dict[str, Any]:
    """A DocumentReference as a source renders it, about `patient` (None: no subject)."""
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "id": unique_id.rsplit(".", 1)[-1],
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:oid:{unique_id}"},
        "status": status,
        "date": date,
        "content": [
            {
                "attachment": {
                    "url": f"{base_url}/Binary/2.16.578.1~2.16.578.1.2~{unique_id}",
                    "title": title,
                    "creation": date,
                }
            }
        ],
    }
    if patient is not None:
        system = NationalIdentityNumber(patient).system
        resource["subject"] = {"identifier": {"system": f"urn:oid:{system}", "value": patient}}
    if period_start is not None:
        resource["context"] = {"period": {"start": period_start}}
    if hcid is not None:
        resource["extension"] = [
            {
                "url": "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-HomeCommunityId",
                "valueIdentifier": {"system": "urn:ietf:rfc:3986", "value": hcid},
            }
        ]
    return resource


def ok_result(
    region: Region, *resources: dict[str, Any], masked: int = 0, latency_ms: float = 12.0
) -> RegionResult:
    return RegionResult(
        region, RegionStatus.OK, latency_ms, resources=tuple(resources), masked_count=masked
    )


def failed_result(
    region: Region, status: RegionStatus, latency_ms: float = 4000.0, detail: str = ""
) -> RegionResult:
    return RegionResult(region, status, latency_ms, detail=detail)


def patient_asked(url: str) -> str:
    """The national identity number in a region request's `patient.identifier`."""
    query = dict(parse_qsl(urlsplit(url).query))
    return query["patient.identifier"].rpartition("|")[2]
