"""Every service of the running network keeps an idle connection open longer than its clients.

An httpx client drops an idle pooled connection after 5 s; a server that also gives up after
5 s (uvicorn's default) races it, and a request sent in that moment gets no answer: the portal's
login failed that way under load with «Det oppstod en feil». The services keep idle connections
`SERVER_KEEP_ALIVE_S` (onerecord/keep_alive.py). Here one connection to each service sends a
request, idles past the clients' 5 s, and is still answered on the same socket.
"""

from __future__ import annotations

import http.client
import time
from urllib.parse import urlsplit

import httpx
import pytest

from onerecord.hub.http1 import Http1Pool
from onerecord.keep_alive import SERVER_KEEP_ALIVE_S
from tests.network.conftest import Network

pytestmark = [pytest.mark.slow, pytest.mark.shared_network]

CLIENT_IDLE_S = 5.0  # httpx's keepalive_expiry


def test_servers_outlast_every_client_pool() -> None:
    assert httpx.Limits().keepalive_expiry == CLIENT_IDLE_S
    assert SERVER_KEEP_ALIVE_S > CLIENT_IDLE_S + 5
    assert SERVER_KEEP_ALIVE_S > Http1Pool().keepalive_timeout_s + 5


def _services(network: Network) -> dict[str, str]:
    manifest = network.manifest
    urls = {
        "sts": manifest["sts"]["issuer"],
        "hub": manifest["hub"]["base_url"],
        "region": network.region_fhir(0).removesuffix("/fhir"),
        "portals": manifest["portal"]["url"],
    }
    for name in ("media", "dialogue"):
        if isinstance(manifest.get(name), dict) and "url" in manifest[name]:
            urls[name] = manifest[name]["url"]
    return urls


def test_an_idle_connection_is_still_answered_after_the_clients_idle_time(
    network: Network,
) -> None:
    connections: dict[str, http.client.HTTPConnection] = {}
    try:
        for name, url in _services(network).items():
            where = urlsplit(url)
            conn = http.client.HTTPConnection(where.hostname or "", where.port, timeout=10)
            conn.request("GET", "/healthz")
            first = conn.getresponse()
            first.read()
            assert first.status == 200, name
            assert not first.will_close, name
            connections[name] = conn
        time.sleep(CLIENT_IDLE_S + 1.5)
        for name, conn in connections.items():
            socket_before = conn.sock
            conn.request("GET", "/healthz")
            again = conn.getresponse()  # RemoteDisconnected if the server had closed it
            again.read()
            assert again.status == 200, name
            assert conn.sock is socket_before, name  # the same connection, not a new one
    finally:
        for conn in connections.values():
            conn.close()
