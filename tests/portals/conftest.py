"""The portal in a thread in front of the real demo network (one network per module)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from onerecord.portals import PortalSettings, create_portal_app
from tests.network.conftest import Network, network
from tests.support.servers import free_port, serve_in_thread

__all__ = ["network", "portal_url"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def portal_url(network: Network) -> Iterator[str]:
    port = free_port()
    settings = PortalSettings.from_manifest(
        network.manifest, public_url=f"http://127.0.0.1:{port}", dev_mode=True
    )
    with serve_in_thread(create_portal_app(settings), port=port) as url:
        yield url
