"""Region directory: parsing, validation, reload on change, last good version kept."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from onerecord.hub.directory import RegionDirectory, parse_directory
from onerecord.hub.errors import DirectoryError
from tests.hub.conftest import HCID_HSO, HCID_VEST, ManualClock


def region_json(*hcids: str, enabled: bool = True) -> bytes:
    return orjson.dumps(
        {
            "regions": [
                {
                    "name": f"R{i}",
                    "home_community_id": h,
                    "base_url": f"http://127.0.0.1:{9000 + i}/fhir/",
                    "timeout_s": 2.5,
                    "enabled": enabled,
                }
                for i, h in enumerate(hcids)
            ]
        }
    )


def bump(path: Path, data: bytes) -> None:
    """Write and force a different mtime (file systems with coarse timestamps)."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_bytes(data)
    os.utime(path, ns=(before + 10**9, before + 10**9))


def test_parse_json_strips_trailing_slash() -> None:
    (region,) = parse_directory(region_json(HCID_HSO))
    assert region.base_url == "http://127.0.0.1:9000/fhir"
    assert region.hcid == HCID_HSO and region.timeout_s == 2.5 and region.enabled


def test_parse_toml() -> None:
    data = (
        b'[[regions]]\nname = "Helse Vest"\nhome_community_id = "' + HCID_VEST.encode() + b'"\n'
        b'base_url = "http://127.0.0.1:9001/fhir"\nenabled = false\n'
    )
    (region,) = parse_directory(data, suffix=".toml")
    assert region.name == "Helse Vest" and not region.enabled and region.timeout_s is None


@pytest.mark.parametrize(
    "data",
    [
        b"{not json",
        b'{"regions": {}}',
        b'{"regions": [{"name": "x"}]}',
        b'{"regions": [{"name": "x", "home_community_id": "1.2.3", "base_url": "http://a"}]}',
        b'{"regions": [{"name": "x", "home_community_id": "urn:oid:1.2", "base_url": "ftp://a"}]}',
    ],
)
def test_invalid_files_are_refused(data: bytes) -> None:
    with pytest.raises(DirectoryError):
        parse_directory(data)


def test_duplicate_hcid_is_refused() -> None:
    with pytest.raises(DirectoryError, match="twice"):
        parse_directory(region_json(HCID_HSO, HCID_HSO))


def test_reloads_on_change_at_most_once_per_interval(tmp_path: Path) -> None:
    path = tmp_path / "regions.json"
    bump(path, region_json(HCID_HSO))
    clock = ManualClock()
    directory = RegionDirectory(path, clock=clock)
    assert [r.hcid for r in directory.regions] == [HCID_HSO]
    bump(path, region_json(HCID_HSO, HCID_VEST))
    clock.advance(1.0)
    assert len(directory.regions) == 2
    bump(path, region_json(HCID_VEST))
    clock.advance(0.5)
    assert len(directory.regions) == 2  # within the interval: not re-read
    clock.advance(0.6)
    assert [r.hcid for r in directory.regions] == [HCID_VEST]
    assert directory.by_hcid(HCID_HSO) is None


def test_broken_file_keeps_last_good_version(tmp_path: Path) -> None:
    path = tmp_path / "regions.json"
    bump(path, region_json(HCID_HSO))
    clock = ManualClock()
    directory = RegionDirectory(path, clock=clock)
    directory.regions  # noqa: B018
    bump(path, b"{broken")
    clock.advance(2)
    assert [r.hcid for r in directory.regions] == [HCID_HSO]


def test_request_reload_ignores_interval(tmp_path: Path) -> None:
    path = tmp_path / "regions.json"
    bump(path, region_json(HCID_HSO))
    directory = RegionDirectory(path, clock=ManualClock())
    directory.regions  # noqa: B018
    bump(path, region_json(HCID_HSO, enabled=False))
    directory.request_reload()
    assert directory.enabled() == ()


def test_missing_file_at_start_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DirectoryError):
        RegionDirectory(tmp_path / "absent.json")
