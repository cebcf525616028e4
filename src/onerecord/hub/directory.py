"""The region directory: which communities the hub fans out to, reloaded when its file changes.

The file is JSON (`.json`) or TOML (`.toml`) with a list of regions:

    {"regions": [{"name": "Helse Vest", "home_community_id": "urn:oid:…",
                  "base_url": "http://…/fhir", "timeout_s": 4.0, "enabled": true,
                  "audience": "urn:oid:…"}]}

`audience` is the `aud` the region expects in the hub's assertion (default: its
homeCommunityId).

References: IHE ITI TF-1 18.2.3 (XCA: the initiating gateway knows its responding gateways and
their homeCommunityIds); MHD Target Communities option (homeCommunityId per community).
"""

from __future__ import annotations

import signal
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import structlog

from onerecord.domain import DomainError, HomeCommunityId
from onerecord.hub.errors import DirectoryError

__all__ = ["Region", "RegionDirectory", "parse_directory"]

log = structlog.get_logger("onerecord.hub.directory")


@dataclass(frozen=True, slots=True)
class Region:
    """One responding community: its name, homeCommunityId and FHIR base URL."""

    name: str
    home_community_id: HomeCommunityId
    base_url: str
    timeout_s: float | None = None
    enabled: bool = True
    audience_id: str | None = None

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise DirectoryError(f"region {self.name!r}: base_url must be an http(s) URL")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        if self.timeout_s is not None and not self.timeout_s > 0:
            raise DirectoryError(f"region {self.name!r}: timeout_s must be positive")

    @property
    def hcid(self) -> str:
        return self.home_community_id.urn

    @property
    def audience(self) -> str:
        """The `aud` the region expects in a hub assertion (default: its homeCommunityId)."""
        return self.audience_id or self.hcid


def _region(raw: Mapping[str, Any]) -> Region:
    try:
        timeout = raw.get("timeout_s")
        return Region(
            name=str(raw["name"]),
            home_community_id=HomeCommunityId.parse(str(raw["home_community_id"])),
            base_url=str(raw["base_url"]),
            timeout_s=float(timeout) if timeout is not None else None,
            enabled=bool(raw.get("enabled", True)),
            audience_id=str(raw["audience"]) if raw.get("audience") else None,
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
