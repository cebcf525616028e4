"""The region directory: which communities the hub fans out to, reloaded when its file changes.

The file is JSON (`.json`) or TOML (`.toml`) with a list of regions:

    {"regions": [{"name": "Helse Vest", "home_community_id": "urn:oid:…",
                  "base_url": "http://…/fhir", "timeout_s": 4.0, "enabled": true,
                  "audience": "urn:oid:…"}]}

`audience` is the `aud` the region expects in the hub's assertion (default: its
homeCommunityId).

`media_url` (optional) is the DICOMweb base of the region's media archive (its `/dicomweb`, e.g.
`"https://media.helse-vest.example/dicomweb"`): the hub routes `GET /dicomweb/{oid}/studies/…`
there with a hub assertion, as it routes ITI-68 to `base_url` (hub/dicomweb.py,
docs/media.md "Through the hub"). A region without it has no images at the hub (404).

`protocol` says how the hub asks the region: `mhd` (default: ITI-67/68 at `base_url`) or `xca`
(ITI-38 Cross Gateway Query at `iti38_url`, ITI-39 Cross Gateway Retrieve at `iti39_url`, with a
SAML assertion signed by the hub; docs/xca.md "Initiating gateway"). An `xca` region's
`base_url` is optional: when given, reads of one DocumentReference and the citizen's
self-service calls still go there over FHIR.

References: IHE ITI TF-1 18.2.3 (XCA: the initiating gateway knows its responding gateways and
their homeCommunityIds); MHD Target Communities option (homeCommunityId per community).
"""

from __future__ import annotations

import signal
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson
import structlog

from onerecord.domain import DomainError, HomeCommunityId
from onerecord.hub.errors import DirectoryError

__all__ = ["Region", "RegionDirectory", "RegionProtocol", "parse_directory"]

log = structlog.get_logger("onerecord.hub.directory")


class RegionProtocol(StrEnum):
    """The wire the hub speaks to a region."""

    MHD = "mhd"
    XCA = "xca"


def _http_url(region: str, field: str, value: str) -> str:
    if not value.startswith(("http://", "https://")) or len(value) > 2048:
        raise DirectoryError(f"region {region!r}: {field} must be an http(s) URL")
    return value.rstrip("/")


@dataclass(frozen=True, slots=True)
class Region:
    """One responding community: its name, homeCommunityId, FHIR base URL or XCA endpoints."""

    name: str
    home_community_id: HomeCommunityId
    base_url: str
    timeout_s: float | None = None
    enabled: bool = True
    audience_id: str | None = None
    protocol: RegionProtocol = RegionProtocol.MHD
    iti38_url: str | None = None
    iti39_url: str | None = None
    media_url: str | None = None
    """The region's media archive's DICOMweb base (`…/dicomweb`); None: no images."""

    def __post_init__(self) -> None:
        if self.protocol is RegionProtocol.XCA:
            for field in ("iti38_url", "iti39_url"):
                value = getattr(self, field)
                if value is None:
                    raise DirectoryError(f"region {self.name!r}: protocol xca needs {field}")
                object.__setattr__(self, field, _http_url(self.name, field, value))
        elif self.iti38_url is not None or self.iti39_url is not None:
            raise DirectoryError(
                f"region {self.name!r}: iti38_url and iti39_url belong to protocol xca"
            )
        object.__setattr__(self, "base_url", _http_url(self.name, "base_url", self.base_url))
        if self.media_url is not None:
            media = _http_url(self.name, "media_url", self.media_url)
            if "?" in media or "#" in media:
                raise DirectoryError(f"region {self.name!r}: media_url takes no query or fragment")
            object.__setattr__(self, "media_url", media)
        if self.timeout_s is not None and not self.timeout_s > 0:
            raise DirectoryError(f"region {self.name!r}: timeout_s must be positive")

    @property
    def xca(self) -> bool:
        """True when the hub asks this region over XCA (ITI-38/39)."""
        return self.protocol is RegionProtocol.XCA

    @property
    def hcid(self) -> str:
        return self.home_community_id.urn

    @property
    def audience(self) -> str:
        """The `aud` the region expects in a hub assertion (default: its homeCommunityId)."""
        return self.audience_id or self.hcid


def _protocol(raw: Mapping[str, Any]) -> RegionProtocol:
    value = raw.get("protocol", RegionProtocol.MHD.value)
    try:
        return RegionProtocol(value)
    except ValueError:
        shown = repr(value)[:40]
        raise DirectoryError(
            f"region {raw.get('name')!r}: protocol must be 'mhd' or 'xca', not {shown}"
        ) from None


def _optional_text(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise DirectoryError(f"region {raw.get('name')!r}: {key} must be a string")
    return value


def _region(raw: Mapping[str, Any]) -> Region:
    protocol = _protocol(raw)
    iti38 = _optional_text(raw, "iti38_url")
    if protocol is RegionProtocol.XCA and iti38 is None:
        raise DirectoryError(f"region {raw.get('name')!r}: protocol xca needs iti38_url")
    try:
        timeout = raw.get("timeout_s")
        # An XCA-only region needs no FHIR base; its query endpoint stands in for it (logs).
        base = raw["base_url"] if protocol is RegionProtocol.MHD or "base_url" in raw else iti38
        return Region(
            name=str(raw["name"]),
            home_community_id=HomeCommunityId.parse(str(raw["home_community_id"])),
            base_url=str(base),
            timeout_s=float(timeout) if timeout is not None else None,
            enabled=bool(raw.get("enabled", True)),
            audience_id=str(raw["audience"]) if raw.get("audience") else None,
            protocol=protocol,
            iti38_url=iti38,
            iti39_url=_optional_text(raw, "iti39_url"),
            media_url=_optional_text(raw, "media_url"),
        )
    except KeyError as exc:
        raise DirectoryError(f"a region lacks the field {exc.args[0]!r}") from exc
    except (DomainError, TypeError, ValueError) as exc:
        raise DirectoryError(f"invalid region {raw.get('name')!r}: {exc}") from exc


def parse_directory(data: bytes, *, suffix: str = ".json") -> tuple[Region, ...]:
    """Parse a directory file's bytes into regions; refuse duplicates and malformed entries."""
    try:
        doc: Any = tomllib.loads(data.decode("utf-8")) if suffix == ".toml" else orjson.loads(data)
    except (orjson.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DirectoryError(f"the directory file is not valid {suffix[1:].upper()}") from exc
    items = doc.get("regions") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise DirectoryError("the directory must hold a list 'regions' of objects")
    regions = tuple(_region(item) for item in items)
    seen: set[str] = set()
    for region in regions:
        if region.hcid in seen:
            raise DirectoryError(f"homeCommunityId {region.hcid} is listed twice")
        seen.add(region.hcid)
    return regions


class RegionDirectory:
    """The regions the hub knows, from a file checked for changes at most once a second.

    A broken file is logged and ignored: the last good version stays in force.
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        regions: tuple[Region, ...] = (),
        check_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._regions = regions
        self._by_hcid = {r.hcid: r for r in regions}
        self._interval = check_interval_s
        self._clock = clock
        self._checked_at = float("-inf")
        self._mtime_ns: int | None = None
        self._force = False
        if path is not None:
            self._load(initial=True)

    @classmethod
    def from_regions(cls, regions: tuple[Region, ...] | list[Region]) -> RegionDirectory:
        return cls(None, regions=tuple(regions))

    def _load(self, *, initial: bool = False) -> None:
        assert self.path is not None
        try:
            stat = self.path.stat()
            regions = parse_directory(self.path.read_bytes(), suffix=self.path.suffix.lower())
        except (OSError, DirectoryError) as exc:
            if initial:
                raise DirectoryError(f"cannot load region directory {self.path}: {exc}") from exc
            log.error("hub.directory.reload_failed", path=str(self.path), error=str(exc))
            # Remember the broken version so it is not re-parsed every second.
            self._mtime_ns = self._stat_mtime()
            return
        self._mtime_ns = stat.st_mtime_ns
        self._regions = regions
        self._by_hcid = {r.hcid: r for r in regions}
        if not initial:
            log.info("hub.directory.reloaded", path=str(self.path), regions=len(regions))

    def _stat_mtime(self) -> int | None:
        assert self.path is not None
        try:
            return self.path.stat().st_mtime_ns
        except OSError:
            return None

    def refresh(self) -> None:
        """Reload the file if it changed; check at most once per interval unless forced."""
        if self.path is None:
            return
        now = self._clock()
        if not self._force and now - self._checked_at < self._interval:
            return
        self._checked_at = now
        forced, self._force = self._force, False
        if forced or self._stat_mtime() != self._mtime_ns:
            self._load()

    def request_reload(self) -> None:
        """Reload on the next access regardless of mtime (the SIGHUP path)."""
        self._force = True

    def install_sighup(self) -> None:
        """Reload on SIGHUP (POSIX only, main thread only)."""
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, lambda _signo, _frame: self.request_reload())

    @property
    def regions(self) -> tuple[Region, ...]:
        self.refresh()
        return self._regions

    def enabled(self) -> tuple[Region, ...]:
        return tuple(r for r in self.regions if r.enabled)

    def by_hcid(self, hcid: str) -> Region | None:
        self.refresh()
        return self._by_hcid.get(hcid)

    def __iter__(self) -> Iterator[Region]:
        return iter(self.regions)

    def __len__(self) -> int:
        return len(self.regions)
