"""The national hub: region directory, fan-out, merge and paging, retrieve routing, FHIR API,
DICOMweb routing to the regions' media archives."""

from __future__ import annotations

from onerecord.hub.app import AuthFactory, create_hub_app
from onerecord.hub.breaker import BreakerBoard, BreakerState, CircuitBreaker
from onerecord.hub.client import (
    AiohttpRegionClient,
    FakeRegionClient,
    RegionClient,
    RegionConnectError,
    RegionResponse,
    RegionStream,
    RegionTransportError,
    ResponseTooLarge,
)
from onerecord.hub.dicomweb import DicomWebRelay, StudyPath, parse_study_path
from onerecord.hub.directory import Region, RegionDirectory, RegionProtocol, parse_directory
from onerecord.hub.errors import (
    DirectoryError,
    HubError,
    SnapshotExpired,
    SnapshotNotFound,
    UnknownCommunity,
)
from onerecord.hub.fanout import (
    MASKED_COUNT_HEADER,
    Deadlines,
    FindRequest,
    PassThroughAuth,
    RegionAuth,
    RegionCallFailed,
    RequestBudget,
    fan_out,
    forward_headers,
    gather_regions,
)
from onerecord.hub.locator import AskReason, LocatorIndex, LocatorPlan
from onerecord.hub.locator_feed import Locator
from onerecord.hub.merge import HubStatus, MergedResult, consolidate, merge
from onerecord.hub.redis_snapshot import RedisSnapshotStore
from onerecord.hub.request_checks import check_find_request, check_forwarded_headers
from onerecord.hub.results import RegionResult, RegionStatus
from onerecord.hub.security import (
    HubAssertionAuth,
    HubSecurity,
    RelayedXuaAuth,
    check_patient,
    load_hub_key,
)
from onerecord.hub.self_service import CitizenServices, ControlChange, ControlKind
from onerecord.hub.settings import HubSettings
from onerecord.hub.snapshot import InMemorySnapshotStore, Snapshot, SnapshotStore
from onerecord.hub.xds_registry import XdsRegistry, region_error

__all__ = [
    "MASKED_COUNT_HEADER",
    "AiohttpRegionClient",
    "AskReason",
    "AuthFactory",
    "BreakerBoard",
    "BreakerState",
    "CircuitBreaker",
    "CitizenServices",
    "ControlChange",
    "ControlKind",
    "Deadlines",
    "DicomWebRelay",
    "DirectoryError",
    "FakeRegionClient",
    "FindRequest",
    "HubAssertionAuth",
    "HubError",
    "HubSecurity",
    "HubSettings",
    "HubStatus",
    "InMemorySnapshotStore",
    "Locator",
    "LocatorIndex",
    "LocatorPlan",
    "MergedResult",
    "PassThroughAuth",
    "RedisSnapshotStore",
    "Region",
    "RegionProtocol",
    "RegionAuth",
    "RegionCallFailed",
    "RegionClient",
    "RegionConnectError",
    "RegionDirectory",
    "RegionResponse",
    "RegionResult",
    "RegionStatus",
    "RegionStream",
    "RegionTransportError",
    "RelayedXuaAuth",
    "RequestBudget",
    "ResponseTooLarge",
    "Snapshot",
    "SnapshotExpired",
    "SnapshotNotFound",
    "SnapshotStore",
    "StudyPath",
    "UnknownCommunity",
    "XdsRegistry",
    "check_find_request",
    "check_forwarded_headers",
    "check_patient",
    "consolidate",
    "create_hub_app",
    "fan_out",
    "forward_headers",
    "gather_regions",
    "load_hub_key",
    "merge",
    "parse_directory",
    "parse_study_path",
    "region_error",
]
