"""Region directory: parsing, validation, reload on change, last good version kept."""

from __future__ import annotations

import os
import re
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onerecord.hub.directory import RegionDirectory, RegionProtocol, parse_directory
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


# --- protocol: mhd or xca (docs/xca.md "Initiating gateway") -----------------------------------


def _one(**fields: object) -> bytes:
    entry = {"name": "R", "home_community_id": HCID_VEST, **fields}
    return orjson.dumps({"regions": [entry]})


def test_a_region_is_mhd_unless_it_says_xca() -> None:
    (mhd,) = parse_directory(_one(base_url="http://127.0.0.1:9000/fhir"))
    assert mhd.protocol is RegionProtocol.MHD and not mhd.xca
    (xca,) = parse_directory(
        _one(
            protocol="xca",
            iti38_url="http://127.0.0.1:9000/xca/iti38/",
            iti39_url="http://127.0.0.1:9000/xca/iti39",
        )
    )
    assert xca.xca and xca.iti38_url == "http://127.0.0.1:9000/xca/iti38"
    assert xca.iti39_url == "http://127.0.0.1:9000/xca/iti39"
    assert xca.base_url == xca.iti38_url  # an XCA-only region needs no FHIR base


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"protocol": "soap", "base_url": "http://x/fhir"}, "protocol must be 'mhd' or 'xca'"),
        ({"protocol": 7, "base_url": "http://x/fhir"}, "protocol must be 'mhd' or 'xca'"),
        ({"protocol": "xca", "iti39_url": "http://x/39"}, "protocol xca needs iti38_url"),
        ({"protocol": "xca", "iti38_url": "http://x/38"}, "protocol xca needs iti39_url"),
        (
            {"protocol": "xca", "iti38_url": "ftp://x/38", "iti39_url": "http://x/39"},
            "iti38_url must be an http(s) URL",
        ),
        (
            {"base_url": "http://x/fhir", "iti38_url": "http://x/38"},
            "belong to protocol xca",
        ),
        ({"protocol": "xca", "iti38_url": ["http://x"]}, "iti38_url must be a string"),
    ],
)
def test_a_bad_protocol_entry_is_refused_with_a_clear_message(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(DirectoryError, match=re.escape(message)):
        parse_directory(_one(**fields))


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.text(max_size=30),
    st.sampled_from(["mhd", "xca", "http://127.0.0.1:1/x", "https://a/b", ""]),
    st.lists(st.text(max_size=5), max_size=2),
)


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "name",
                "home_community_id",
                "base_url",
                "protocol",
                "iti38_url",
                "iti39_url",
                "timeout_s",
                "audience",
                "media_url",
            ]
        ),
        _values,
    )
)
@settings(max_examples=300, deadline=None)
def test_any_region_entry_is_parsed_or_refused_as_a_directory_error(
    entry: dict[str, object],
) -> None:
    try:
        regions = parse_directory(orjson.dumps({"regions": [entry]}))
    except DirectoryError:
        return
    (region,) = regions
    assert region.base_url.startswith(("http://", "https://"))
    assert region.media_url is None or region.media_url.startswith(("http://", "https://"))
    if region.xca:
        assert region.iti38_url is not None and region.iti39_url is not None
    else:
        assert region.iti38_url is None and region.iti39_url is None


def test_a_region_may_name_its_media_archive() -> None:
    entry = {
        "name": "Helse Vest",
        "home_community_id": HCID_VEST,
        "base_url": "http://127.0.0.1:9001/fhir",
        "media_url": "https://media.vest.test/dicomweb/",
    }
    (region,) = parse_directory(orjson.dumps({"regions": [entry]}))
    assert region.media_url == "https://media.vest.test/dicomweb"
    (plain,) = parse_directory(region_json(HCID_HSO))
    assert plain.media_url is None
    for bad in ("ftp://media/dicomweb", "https://media/dicomweb?x=1", 42):
        with pytest.raises(DirectoryError, match="media_url"):
            parse_directory(orjson.dumps({"regions": [{**entry, "media_url": bad}]}))
