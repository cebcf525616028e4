"""The DIMSE listener's sockets: Nagle off on every accepted connection; empty allow-list."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from pynetdicom import AE

from onerecord.audit import MemoryAuditSink
from onerecord.media import MediaService, MediaSettings, MemoryInstanceStore, RemoteAE
from onerecord.media.dimse import DimseServer
from tests.support.servers import free_port

VERIFICATION = "1.2.840.10008.1.1"
LOOP = asyncio.get_event_loop_policy().new_event_loop()  # never run: C-ECHO needs no service


def _server(tmp_path: Path, modalities: dict[str, RemoteAE]) -> DimseServer:
    service = MediaService(
        store=None,  # type: ignore[arg-type]  # C-ECHO touches no store
        content=MemoryInstanceStore(),
        audit=MemoryAuditSink(),
        source_id="x",
        home_community_id="urn:oid:1.2.3",
    )
    settings = MediaSettings(
        db_url=f"sqlite:///{tmp_path}/unused.db", dimse_port=free_port(), modalities=modalities
    )
    return DimseServer(service=service, settings=settings, loop=LOOP)


def _requestor(title: str) -> AE:
    ae = AE(ae_title=title)
    ae.add_requested_context(VERIFICATION)
    return ae


def test_accepted_connections_have_nagle_off(tmp_path: Path) -> None:
    server = _server(tmp_path, {"CT1": RemoteAE(host="127.0.0.1", port=1)})
    server.start()
    try:
        assoc = _requestor("CT1").associate("127.0.0.1", server.port, ae_title="ONERECORD")
        assert assoc.is_established
        try:
            accepted = [a for a in server._ae.active_associations if a.is_acceptor]
            assert accepted
            raw = accepted[0].dul.socket.socket
            assert raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
            assert assoc.send_c_echo().Status == 0x0000
        finally:
            assoc.release()
    finally:
        server.stop()


def test_no_known_modality_means_nobody_may_associate(tmp_path: Path) -> None:
    server = _server(tmp_path, {})
    server.start()
    try:
        assoc = _requestor("CT1").associate("127.0.0.1", server.port, ae_title="ONERECORD")
        assert assoc.is_rejected
    finally:
        server.stop()
