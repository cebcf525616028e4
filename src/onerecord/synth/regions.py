"""The four health regions of the demo network and their (synthetic) identifiers.

Every OID here lies under 2.16.578.1.12.4.5.100, an arc this project uses for demonstration
only: the numbers are synthetic and identify nothing outside a onerecord test network.
Within a region's arc ``2.16.578.1.12.4.5.100.<n>``: ``.2`` is the repository, ``.3`` the root of
document uniqueIds, ``.8`` the root of submission set uniqueIds and ``.9`` the source id.

References: IHE ITI TF-3 4.2.3.2.6 (homeCommunityId), 4.2.3.2.18 (repositoryUniqueId).
"""

from __future__ import annotations

from dataclasses import dataclass

from onerecord.domain import HomeCommunityId, Oid, RepositoryUniqueId

__all__ = ["DEFAULT_REGIONS", "SYNTHETIC_ARC", "RegionInfo", "UnknownRegion", "region"]

SYNTHETIC_ARC = "2.16.578.1.12.4.5.100"


class UnknownRegion(KeyError):
    """No region of the demo network has this slug."""


@dataclass(frozen=True, slots=True)
class RegionInfo:
    """One regional health authority (regionalt helseforetak) acting as an XCA community."""

    slug: str
    name: str
    home_community_id: HomeCommunityId
    repository_unique_id: RepositoryUniqueId
    document_oid_root: Oid

    @property
    def source_id(self) -> str:
        """The ITI-65 submission set sourceId of this region's importer ("urn:oid:…")."""
        return f"{self.home_community_id.urn}.9"

    def submission_set_unique_id(self, *parts: int) -> str:
        """Return a submission set uniqueId under the region's ``.8`` arc."""
        suffix = ".".join(str(p) for p in parts)
        return f"{self.home_community_id.oid.value}.8.{suffix}"


def _region(number: int, slug: str, name: str) -> RegionInfo:
    arc = f"{SYNTHETIC_ARC}.{number}"
    return RegionInfo(
        slug=slug,
        name=name,
        home_community_id=HomeCommunityId(Oid(arc)),
        repository_unique_id=RepositoryUniqueId(Oid(f"{arc}.2")),
        document_oid_root=Oid(f"{arc}.3"),
    )


DEFAULT_REGIONS: tuple[RegionInfo, ...] = (
    _region(1, "hso", "Helse Sør-Øst"),
    _region(2, "vest", "Helse Vest"),
    _region(3, "midt", "Helse Midt-Norge"),
    _region(4, "nord", "Helse Nord"),
)


def region(slug: str) -> RegionInfo:
    """Return the demo region with this slug (hso, vest, midt, nord)."""
    for info in DEFAULT_REGIONS:
        if info.slug == slug:
            return info
    known = ", ".join(r.slug for r in DEFAULT_REGIONS)
    raise UnknownRegion(f"no region {slug!r}; known regions: {known}")
