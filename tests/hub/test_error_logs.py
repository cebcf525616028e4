"""Issue 10 D: the hub logs an unexpected error once, by type and place, with its correlation id."""

from __future__ import annotations

import httpx
import pytest
from structlog.testing import capture_logs

from onerecord.hub.app import create_hub_app
from onerecord.hub.directory import RegionDirectory
from onerecord.hub.settings import HubSettings
from tests.hub.conftest import HCID_HSO, make_region

pytestmark = pytest.mark.anyio
BASE = "http://hub.test"


async def test_unexpected_hub_error_is_one_event_with_the_requests_correlation_id() -> None:
    app = create_hub_app(
        HubSettings(public_base_url=BASE, dev_mode=True, dev_open_access=True),
        directory=RegionDirectory.from_regions([make_region(HCID_HSO)]),
    )

    @app.get("/test-only/boom")
    async def boom() -> None:
        nin = "01010112345"
        raise RuntimeError(f"lookup of {nin} failed")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        with capture_logs() as logs:
            crash = await client.get("/test-only/boom", headers={"x-correlation-id": "cid-hub-1"})
    assert crash.status_code == 500
    assert "01010112345" not in crash.text
    errors = [e for e in logs if e["log_level"] == "error"]
    assert len(errors) == 1, logs
    (event,) = errors
    assert event["event"] == "hub.unexpected_error"
    assert event["correlation_id"] == "cid-hub-1"
    assert isinstance(event["exc_info"], RuntimeError)  # summarised by onerecord.logs
