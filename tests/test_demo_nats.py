"""The demo's NATS for the locator (onerecord/demo_nats.py and demo._locator_bus)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from onerecord.demo import DemoLayout, _locator_bus, stop_all
from onerecord.demo_nats import (
    LocatorBus,
    dev_patient_key,
    free_port,
    jetstream_answers,
    nats_server_binary,
)
from onerecord.hub.settings import HubSettings
from onerecord.source.settings import SourceSettings

pytestmark = pytest.mark.anyio


def test_the_development_patient_key_is_made_once_and_kept_private(tmp_path: Path) -> None:
    key = dev_patient_key(tmp_path / "keys")
    assert key.startswith("dev-") and len(key) > 40
    assert dev_patient_key(tmp_path / "keys") == key
    path = next((tmp_path / "keys").iterdir())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_development_patient_key_is_refused_outside_development_mode(tmp_path: Path) -> None:
    key = dev_patient_key(tmp_path)
    directory = tmp_path / "regions.json"
    directory.write_text('{"regions": []}')
    locator = {"locator_nats_url": "nats://127.0.0.1:4222", "locator_patient_key": key}
    with pytest.raises(ValidationError, match="development locator patient key"):
        HubSettings(directory_file=directory, **locator)
    HubSettings(directory_file=directory, dev_mode=True, **locator)
    source = {
        "region": "R",
        "home_community_id": "urn:oid:2.16.578.1.12.4.5.100.1",
        "db_url": "sqlite://",
        "content_dir": tmp_path / "c",
        "issuer": "https://sts.example",
        "jwks_url": "https://sts.example/jwks",
    }
    with pytest.raises(ValidationError, match="development locator patient key"):
        SourceSettings(**source, **locator)
    SourceSettings(**source, dev_mode=True, **locator)


def test_two_demo_folders_never_share_a_stream(tmp_path: Path) -> None:
    one = LocatorBus.for_demo(tmp_path / "a", "nats://x", "dev-k", own_server=False)
    two = LocatorBus.for_demo(tmp_path / "b", "nats://x", "dev-k", own_server=False)
    assert one.stream != two.stream and one.subject_prefix != two.subject_prefix
    assert one.env("ONERECORD_HUB_")["ONERECORD_HUB_LOCATOR_STREAM"] == one.stream


async def test_without_nats_and_without_nats_server_the_demo_runs_with_the_locator_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ONERECORD_DEMO_NATS_URL", f"nats://127.0.0.1:{free_port()}")
    monkeypatch.setenv("ONERECORD_DEMO_NATS_SERVER", str(tmp_path / "no-nats-server"))
    services: list = []  # type: ignore[type-arg]
    bus = await _locator_bus(DemoLayout(tmp_path, 0), tmp_path / "logs", services, enabled=True)
    assert bus is None and services == []
    assert "Locator off" in capsys.readouterr().out


async def test_without_nats_the_demo_starts_its_own_nats_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if nats_server_binary() is None:
        pytest.skip("nats-server is not installed (scripts/install-nats)")
    monkeypatch.setenv("ONERECORD_DEMO_NATS_URL", f"nats://127.0.0.1:{free_port()}")
    services: list = []  # type: ignore[type-arg]
    layout = DemoLayout(tmp_path, 0)
    bus = await _locator_bus(layout, tmp_path / "logs", services, enabled=True)
    try:
        assert bus is not None and bus.own_server
        assert [s.name for s in services] == ["NATS"]
        assert await jetstream_answers(bus.url)
        assert (tmp_path / "nats").is_dir()  # its store is inside the demo's folder
        assert bus.key.startswith("dev-")
    finally:
        stop_all(services)
    assert services[0].process.returncode is not None
