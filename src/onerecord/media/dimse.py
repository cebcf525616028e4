"""The archive's DIMSE service provider (pynetdicom): C-ECHO, C-STORE, C-FIND, C-MOVE, C-GET.

Only calling AE titles in the configuration may associate; any other is rejected in A-ASSOCIATE
(result rejected-permanent, source service-user, reason calling-AE-title-not-recognized,
PS3.8 9.3.4). pynetdicom treats an empty allow-list as "anyone", so an archive with no known
modality gets a list that matches nothing rather than none.

Storage accepts every storage SOP class in `STORAGE_SOP_CLASSES` in each transfer syntax of
`STORAGE_TRANSFER_SYNTAXES`, and keeps the bytes as sent: nothing is transcoded. C-MOVE sends
to a destination named in the configuration (0xA801 for any other); C-GET answers on the same
association. A retrieve sends each instance in its stored transfer syntax only: C-MOVE proposes
exactly those to the destination; for C-GET the requestor's accepted context must carry it (a
JPEG photograph fails as a sub-operation where the requestor offered only uncompressed).

pynetdicom calls the handlers on its own threads; they hand the work to the service on the
event loop that started the server and wait for it. Nagle's algorithm is turned off on every
connection, both received and opened for C-MOVE (TCP_NODELAY): DIMSE sends small PDUs and waits
for their answers, which Nagle and delayed ACKs would hold back by tens of milliseconds each.

References: DICOM PS3.4 B (Storage, statuses B.2.3), C (Query/Retrieve: C.4.1 C-FIND,
C.4.2 C-MOVE, C.4.3 C-GET), PS3.7 9.1 (DIMSE-C), PS3.8 9.3.4 (A-ASSOCIATE-RJ).
"""

from __future__ import annotations

import asyncio
import functools
import io
import logging
import socket
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

import pydicom
import structlog
from pydicom.dataset import Dataset
from pynetdicom import AE, _config, evt
from pynetdicom.events import Event
from pynetdicom.presentation import build_context
from pynetdicom.transport import ThreadedAssociationServer

from onerecord.media.errors import (
    ContentWriteFailed,
    InstanceConflict,
    InvalidInstance,
    InvalidQuery,
    SopClassMismatch,
    TooManyMatches,
)
from onerecord.media.query import FindQuery, KeyKind, QueryRoot, parse_find
from onerecord.media.service import MediaService
from onerecord.media.settings import MediaSettings
from onerecord.media.store import StoredInstance

__all__ = [
    "STORAGE_SOP_CLASSES",
    "STORAGE_TRANSFER_SYNTAXES",
    "DimseServer",
]

log = structlog.get_logger("onerecord.media")
T = TypeVar("T")

# The storage SOP classes the archive accepts (PS3.4 B.5), by name.
STORAGE_SOP_CLASSES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.1": "Computed Radiography Image Storage",
    "1.2.840.10008.5.1.4.1.1.1.1": "Digital X-Ray Image Storage - For Presentation",
    "1.2.840.10008.5.1.4.1.1.1.1.1": "Digital X-Ray Image Storage - For Processing",
    "1.2.840.10008.5.1.4.1.1.1.2": "Digital Mammography X-Ray Image Storage - For Presentation",
    "1.2.840.10008.5.1.4.1.1.2": "CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.3.1": "Ultrasound Multi-frame Image Storage",
    "1.2.840.10008.5.1.4.1.1.4": "MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.4.1": "Enhanced MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.6.1": "Ultrasound Image Storage",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.7.2": "Multi-frame Grayscale Byte Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.7.3": "Multi-frame Grayscale Word Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.7.4": "Multi-frame True Color Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.12.1": "X-Ray Angiographic Image Storage",
    "1.2.840.10008.5.1.4.1.1.12.2": "X-Ray Radiofluoroscopic Image Storage",
    "1.2.840.10008.5.1.4.1.1.20": "Nuclear Medicine Image Storage",
    "1.2.840.10008.5.1.4.1.1.128": "Positron Emission Tomography Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.1": "VL Endoscopic Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.1.1": "Video Endoscopic Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.2": "VL Microscopic Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.4": "VL Photographic Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.4.1": "Video Photographic Image Storage",
    "1.2.840.10008.5.1.4.1.1.88.11": "Basic Text SR Storage",
    "1.2.840.10008.5.1.4.1.1.88.22": "Enhanced SR Storage",
    "1.2.840.10008.5.1.4.1.1.88.33": "Comprehensive SR Storage",
    "1.2.840.10008.5.1.4.1.1.88.59": "Key Object Selection Document Storage",
    "1.2.840.10008.5.1.4.1.1.11.1": "Grayscale Softcopy Presentation State Storage",
    "1.2.840.10008.5.1.4.1.1.104.1": "Encapsulated PDF Storage",
}

# The transfer syntaxes accepted for storage, kept as sent (PS3.5 Annex A, 8, 10). The order is
# the archive's preference when one presentation context proposes several (pynetdicom accepts
# the first of the acceptor's list that was proposed): uncompressed, then lossless, then lossy,
# so that the archive never makes a modality compress lossily data it offered uncompressed.
STORAGE_TRANSFER_SYNTAXES: dict[str, str] = {
    "1.2.840.10008.1.2.1": "Explicit VR Little Endian",
    "1.2.840.10008.1.2": "Implicit VR Little Endian",
    "1.2.840.10008.1.2.1.99": "Deflated Explicit VR Little Endian",
    "1.2.840.10008.1.2.4.70": "JPEG Lossless, Non-Hierarchical, First-Order Prediction",
    "1.2.840.10008.1.2.4.57": "JPEG Lossless, Non-Hierarchical (Process 14)",
    "1.2.840.10008.1.2.4.80": "JPEG-LS Lossless",
    "1.2.840.10008.1.2.4.90": "JPEG 2000 Image Compression (Lossless Only)",
    "1.2.840.10008.1.2.5": "RLE Lossless",
    "1.2.840.10008.1.2.4.50": "JPEG Baseline (Process 1)",
    "1.2.840.10008.1.2.4.51": "JPEG Extended (Process 2 & 4)",
    "1.2.840.10008.1.2.4.81": "JPEG-LS Lossy (Near-Lossless)",
    "1.2.840.10008.1.2.4.91": "JPEG 2000 Image Compression",
    "1.2.840.10008.1.2.4.100": "MPEG2 Main Profile / Main Level",
    "1.2.840.10008.1.2.4.102": "MPEG-4 AVC/H.264 High Profile / Level 4.1",
    "1.2.840.10008.1.2.4.103": "MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1",
    "1.2.840.10008.1.2.4.104": "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video",
    "1.2.840.10008.1.2.4.107": "HEVC/H.265 Main Profile / Level 5.1",
}

VERIFICATION = "1.2.840.10008.1.1"
# The query/retrieve information models (PS3.4 C.6): FIND, MOVE and GET of each root.
_QUERY_ROOTS: dict[str, QueryRoot] = {
    "1.2.840.10008.5.1.4.1.2.1.1": QueryRoot.PATIENT,
    "1.2.840.10008.5.1.4.1.2.1.2": QueryRoot.PATIENT,
    "1.2.840.10008.5.1.4.1.2.1.3": QueryRoot.PATIENT,
    "1.2.840.10008.5.1.4.1.2.2.1": QueryRoot.STUDY,
    "1.2.840.10008.5.1.4.1.2.2.2": QueryRoot.STUDY,
    "1.2.840.10008.5.1.4.1.2.2.3": QueryRoot.STUDY,
}
_UNCOMPRESSED = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")

# Statuses (PS3.4 B.2.3, C.4.1.1.4, C.4.2.1.5, C.4.3.1.4; PS3.7 C).
SUCCESS = 0x0000
PENDING = 0xFF00
STORE_OUT_OF_RESOURCES = 0xA700
STORE_SOP_CLASS_MISMATCH = 0xA900
STORE_CANNOT_UNDERSTAND = 0xC000
STORE_CONFLICT = 0xC001
FIND_OUT_OF_RESOURCES = 0xA700
FIND_IDENTIFIER_MISMATCH = 0xA900
FIND_UNABLE_TO_PROCESS = 0xC000
MOVE_OUT_OF_RESOURCES_MATCHES = 0xA701
MOVE_DESTINATION_UNKNOWN = 0xA801
MOVE_IDENTIFIER_MISMATCH = 0xA900
MOVE_UNABLE_TO_PROCESS = 0xC000
PROCESSING_FAILURE = 0x0110
CANCEL = 0xFE00

_SERVICE_TIMEOUT = 120.0


class _NobodyKnown(list[str]):
    """An allow-list that admits no one, yet is true: pynetdicom reads [] as "admit anyone"."""

    def __bool__(self) -> bool:
        return True


class _ArchiveAE(AE):
    """An AE whose calling-AE allow-list is the configured modalities, even when empty."""

    known: tuple[str, ...] = ()

    @property
    def require_calling_aet(self) -> list[str]:
        return _NobodyKnown(self.known)

    @require_calling_aet.setter
    def require_calling_aet(self, ae_titles: list[str]) -> None:
        self.known = tuple(ae_titles)


def _no_delay(event: Event) -> None:
    """Turn Nagle's algorithm off on the association's socket, and read it in large pieces."""
    sock = event.assoc.dul.socket
    raw = getattr(sock, "socket", None)
    if sock is not None and raw is not None:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.recv = functools.partial(_recv, raw)  # type: ignore[method-assign]


def _recv(raw: socket.socket, nr_bytes: int) -> bytearray:
    """What `AssociationSocket.recv` returns (up to `nr_bytes`, fewer if the peer closed), read
    into one buffer with as few calls as the kernel allows.

    pynetdicom reads a PDU 4096 bytes per `recv` and appends each piece: 128 system calls and
    GIL hand-overs for a 0.5 MB slice, each a chance for the reactor threads to take the GIL.
    """
    buffer = bytearray(nr_bytes)
    view = memoryview(buffer)
    nr_read = 0
    while nr_read < nr_bytes:
        got = raw.recv_into(view[nr_read:], nr_bytes - nr_read)
        if not got:
            break  # the connection was closed: what was read so far, as pynetdicom does
        nr_read += got
    view.release()
    if nr_read < nr_bytes:
        del buffer[nr_read:]
    return buffer


def _status(code: int, comment: str) -> Dataset:
    ds = Dataset()
    ds.Status = code
    ds.ErrorComment = comment[:64]
    return ds


def _correlation(event: Event) -> str:
    calling = event.assoc.requestor.ae_title
    return f"dimse:{calling}:{id(event.assoc):x}:{uuid.uuid4().hex[:12]}"


class DimseServer:
    """The archive's DIMSE listener, handing each request to a `MediaService`."""

    def __init__(
        self,
        *,
        service: MediaService,
        settings: MediaSettings,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.service = service
        self.settings = settings
        self._loop = loop
        self._server: ThreadedAssociationServer | None = None
        # pynetdicom logs C-FIND/MOVE/GET identifiers (patient ids among them) at INFO: never.
        _config.LOG_REQUEST_IDENTIFIERS = False
        _config.LOG_RESPONSE_IDENTIFIERS = False
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)
        ae = _ArchiveAE(ae_title=settings.ae_title)
        ae.require_calling_aet = list(settings.modalities)
        ae.maximum_pdu_size = settings.max_pdu
        ae.maximum_associations = settings.max_associations
        ae.network_timeout = 60
        ae.acse_timeout = 30
        ae.dimse_timeout = 60
        ae.add_supported_context(VERIFICATION)
        syntaxes = list(STORAGE_TRANSFER_SYNTAXES)
        for sop_class in STORAGE_SOP_CLASSES:
            # scu_role: a C-GET requestor proposes to be the SCP of these (PS3.4 C.4.3).
            ae.add_supported_context(sop_class, syntaxes, scu_role=True, scp_role=True)
        for model in _QUERY_ROOTS:
            ae.add_supported_context(model, list(_UNCOMPRESSED))
        self._ae = ae

    @property
    def port(self) -> int:
        """The port the listener is bound to."""
        assert self._server is not None, "not started"
        return int(self._server.server_address[1])

    def start(self) -> None:
        handlers: list[Any] = [
            (evt.EVT_CONN_OPEN, _no_delay),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_C_FIND, self._on_find),
            (evt.EVT_C_MOVE, self._on_move),
            (evt.EVT_C_GET, self._on_get),
        ]
        self._server = self._ae.start_server(
            (self.settings.dimse_host, self.settings.dimse_port),
            block=False,
            evt_handlers=handlers,
        )
        log.info(
            "media.dimse_started",
            ae_title=self.settings.ae_title,
            port=self.port,
            known_modalities=len(self.settings.modalities),
        )

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the service's event loop and wait for it (from a DIMSE thread)."""
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(_SERVICE_TIMEOUT)
        except FutureTimeout:
            future.cancel()
            raise

    # --- handlers (on pynetdicom's threads) ----------------------------------------------

    def _on_echo(self, event: Event) -> int:
        return SUCCESS

    def _on_store(self, event: Event) -> int | Dataset:
        data = event.encoded_dataset(include_meta=True)
        try:
            self._run(
                self.service.store_instance(
                    data,
                    calling_ae_title=event.assoc.requestor.ae_title,
                    correlation_id=_correlation(event),
                    sop_class_uid=str(event.request.AffectedSOPClassUID),
                )
            )
        except SopClassMismatch as exc:
            return _status(STORE_SOP_CLASS_MISMATCH, str(exc))
        except InvalidInstance as exc:
            return _status(STORE_CANNOT_UNDERSTAND, str(exc))
        except InstanceConflict as exc:
            return _status(STORE_CONFLICT, str(exc))
        except ContentWriteFailed:
            return _status(STORE_OUT_OF_RESOURCES, "the archive could not store the bytes")
        except Exception:  # noqa: BLE001 - the peer gets a status, the log the cause
            log.exception("media.store_failed")
            return _status(PROCESSING_FAILURE, "the archive failed to store the instance")
        return SUCCESS

    def _query(self, event: Event) -> FindQuery:
        root = _QUERY_ROOTS[str(event.request.AffectedSOPClassUID)]
        return parse_find(event.identifier, root=root)

    def _on_find(self, event: Event) -> Iterator[tuple[int, Dataset | None]]:
        try:
            query = self._query(event)
            matches = self._run(
                self.service.find(
                    query,
                    calling_ae_title=event.assoc.requestor.ae_title,
                    correlation_id=_correlation(event),
                )
            )
        except InvalidQuery as exc:
            yield FIND_IDENTIFIER_MISMATCH, _status(FIND_IDENTIFIER_MISMATCH, str(exc))
            return
        except TooManyMatches as exc:
            yield FIND_OUT_OF_RESOURCES, _status(FIND_OUT_OF_RESOURCES, str(exc))
            return
        except Exception:  # noqa: BLE001
            log.exception("media.find_failed")
            yield FIND_UNABLE_TO_PROCESS, _status(FIND_UNABLE_TO_PROCESS, "query failed")
            return
        for match in matches:
            if event.is_cancelled:
                yield CANCEL, None
                return
            yield PENDING, self._identifier(query, match)
        yield SUCCESS, None

    def _identifier(self, query: FindQuery, match: dict[str, Any]) -> Dataset:
        """A C-FIND response identifier: the level, and each requested key (PS3.4 C.4.1.1.3.2)."""
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.QueryRetrieveLevel = query.level.name
        ds.RetrieveAETitle = self.settings.ae_title
        for key in query.return_keys:
            value = match.get(key.keyword)
            if key.kind is KeyKind.MODALITIES:
                setattr(ds, key.keyword, list(value or []))
            elif value is None:
                setattr(ds, key.keyword, None)
            else:
                setattr(ds, key.keyword, value)
        return ds

    def _locate(self, event: Event, purpose: str) -> list[StoredInstance]:
        return self._run(
            self.service.locate(
                self._query(event),
                calling_ae_title=event.assoc.requestor.ae_title,
                correlation_id=_correlation(event),
                purpose=purpose,
            )
        )

    def _dataset(self, instance: StoredInstance) -> Dataset:
        data = self._run(self.service.read(instance))
        return pydicom.dcmread(io.BytesIO(data))

    def _on_move(self, event: Event) -> Iterator[Any]:
        destination = str(event.move_destination).strip()
        peer = self.settings.modalities.get(destination)
        if peer is None:
            yield None, None  # pynetdicom answers 0xA801, Move Destination unknown
            return
        failure = None
        found: list[StoredInstance] = []
        try:
            found = self._locate(event, f"C-MOVE to {destination}")
        except InvalidQuery as exc:
            failure = _status(MOVE_IDENTIFIER_MISMATCH, str(exc))
        except TooManyMatches as exc:
            failure = _status(MOVE_OUT_OF_RESOURCES_MATCHES, str(exc))
        contexts = sorted({(i.sop_class_uid, i.transfer_syntax_uid) for i in found})
        yield (
            peer.host,
            peer.port,
            {
                "contexts": [build_context(c, [t]) for c, t in contexts][:128] or None,
                "evt_handlers": [(evt.EVT_CONN_OPEN, _no_delay)],
            },
        )
        if failure is not None:
            # pynetdicom sends a failure status only in place of a sub-operation.
            yield 1
            yield int(failure.Status), failure
            return
        yield len(found)
        for instance in found:
            if event.is_cancelled:
                yield CANCEL, None
                return
            yield PENDING, self._dataset(instance)

    def _on_get(self, event: Event) -> Iterator[Any]:
        failure = None
        try:
            found = self._locate(event, "C-GET")
        except InvalidQuery as exc:
            failure = _status(MOVE_IDENTIFIER_MISMATCH, str(exc))
        except TooManyMatches as exc:
            failure = _status(MOVE_OUT_OF_RESOURCES_MATCHES, str(exc))
        if failure is not None:
            yield 1  # pynetdicom sends a failure status only in place of a sub-operation
            yield int(failure.Status), failure
            return
        yield len(found)
        for instance in found:
            if event.is_cancelled:
                yield CANCEL, None
                return
            yield PENDING, self._dataset(instance)
