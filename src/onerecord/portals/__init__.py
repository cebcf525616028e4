"""The portals: server-rendered pages for health personnel (citizen portal to come).

Ordinary hub clients: they get tokens from the STS and call the hub over HTTP; tokens and DPoP
keys stay in the server-side session. See docs/portals.md.
"""

from __future__ import annotations

from onerecord.portals.app import create_portal_app
from onerecord.portals.basis import AccessRequest, build_attestation, parse_access_request
from onerecord.portals.overview import DocumentRow, Overview, RegionNotice, build_overview
from onerecord.portals.settings import PortalSettings

__all__ = [
    "AccessRequest",
    "DocumentRow",
    "Overview",
    "PortalSettings",
    "RegionNotice",
    "build_attestation",
    "build_overview",
    "create_portal_app",
    "parse_access_request",
]
