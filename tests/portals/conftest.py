"""The portals as `onerecord demo` starts them, in front of the real network (one per module)."""

from __future__ import annotations

import pytest

from tests.network.conftest import Network, network

__all__ = ["network", "portal_url"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def portal_url(network: Network) -> str:
    """The portals' base URL; its client is registered at the STS with these redirect URIs."""
    return str(network.manifest["portal"]["url"])
