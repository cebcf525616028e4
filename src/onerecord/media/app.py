"""The media archive as one process: its HTTP app (health, DICOMweb) and DIMSE listener.

`create_app(settings)` builds the ASGI app; its lifespan opens the database and brings it to
the newest schema (alembic, `media/migrations`: the archive's tables and the audit chain),
builds the `MediaService` over the SQL metadata store, the content store (a folder, or S3 with
`content_url`) and the
hash-chained audit sink, and starts the DIMSE listener on the same event loop. `/healthz`
answers 200 with the AE title and DIMSE port once both are up.

DICOMweb (`/dicomweb`, routes in dicomweb_routes.py) is served only behind the trust framework:
with `issuer` and `jwks_url` set, every request is authenticated (DPoP-bound access token or
hub assertion), bound to one patient, decided by the policy with the patient's own controls
read from the region's document source (region_controls.py, `source_url`) and audited
(security.py).

With `source_url`, `publisher_issuer` and `publisher_key_file` set, a background task also
publishes each study's manifest to that source (publisher.py, docs/media.md "In the national
overview"); the studies a patient's blocks name are found in the manifests' table.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
import orjson
import structlog
from fastapi import FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from onerecord.audit import AuditSink, SqlAuditSink
from onerecord.domain import OrganisationNumber
from onerecord.media.content import (
    FolderInstanceStore,
    InstanceContentStore,
    ObstoreInstanceStore,
)
from onerecord.media.database import make_engine
from onerecord.media.dicomweb import DicomWebService
from onerecord.media.dicomweb_routes import dicomweb_router, install_error_handlers
from onerecord.media.dimse import DimseServer
from onerecord.media.manifest import ArchiveIdentity
from onerecord.media.manifest_store import SqlManifestOutbox
from onerecord.media.migrate import upgrade
from onerecord.media.orphans import run_orphan_sweeps, sweep_orphans
from onerecord.media.photo import PhotoLimits
from onerecord.media.publisher import ManifestPublisher
from onerecord.media.region_controls import (
    NoPatientControls,
    PatientControlSource,
    SourceControls,
)
from onerecord.media.security import MediaAuthenticator, MediaGuard
from onerecord.media.service import MediaService
from onerecord.media.settings import MediaSettings
from onerecord.media.store import SqlMetadataStore
from onerecord.trust.access_token import AuthSettings
from onerecord.trust.keys import KeyProvider, RemoteJwks, SigningKey
from onerecord.trust.policy import RegionPolicy
from onerecord.trust.replay import MemoryReplayCache, ReplayCache

__all__ = ["create_app"]

log = structlog.get_logger("onerecord.media")


def create_app(
    settings: MediaSettings,
    *,
    content: InstanceContentStore | None = None,
    audit: AuditSink | None = None,
    keys: KeyProvider | None = None,
    hub_keys: KeyProvider | None = None,
    replay: ReplayCache | None = None,
    publisher_key: SigningKey | None = None,
) -> FastAPI:
    """Build one region's media archive; the keyword arguments replace the defaults (tests).

    `keys`, `hub_keys` and `replay` replace the STS's and the hub's remote JWKS and the replay
    cache of DPoP proofs and hub assertions; `publisher_key` the key in `publisher_key_file`.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.db_url, schema=settings.db_schema)
        await upgrade(engine)  # the archive's tables and its audit chain (migrations/)
        sink: SqlAuditSink | None = None
        if audit is None:
            sink = SqlAuditSink(
                engine, _source_id(settings), group_commit=settings.audit_group_commit
            )
        # A store's registration and its audit record share one transaction (docs/media.md
        # "Storage"); with another sink (tests) the service appends the record after.
        store = SqlMetadataStore(engine, audit=sink)
        the_content = content or _content_store(settings)
        # Bytes a crash left between write and register (docs/media.md "Storage"): swept
        # now, before DIMSE listens, and then every orphan_sweep_interval_s (orphans.py).
        grace = timedelta(seconds=settings.orphan_grace_s)
        swept = await sweep_orphans(
            content=the_content, referenced=store.is_referenced, grace=grace
        )
        service = MediaService(
            store=store,
            content=the_content,
            audit=audit or sink,  # type: ignore[arg-type]
            source_id=_source_id(settings),
            home_community_id=settings.home_community_id,
            max_find_results=settings.max_find_results,
            max_retrieve_instances=settings.max_retrieve_instances,
        )
        dimse = DimseServer(service=service, settings=settings, loop=asyncio.get_running_loop())
        dimse.start()
        app.state.service = service
        app.state.dimse = dimse
        http = httpx.AsyncClient()
        key = publisher_key
        if key is None and settings.publisher_key_file is not None:
            key = SigningKey.from_jwk(orjson.loads(settings.publisher_key_file.read_bytes()))
        if settings.dicomweb_enabled:
            assert settings.issuer is not None and settings.jwks_url is not None
            app.state.authenticator = MediaAuthenticator(
                auth=AuthSettings(
                    issuer=settings.issuer,
                    audience=settings.audience,
                    skew=settings.clock_skew,
                ),
                keys=keys or RemoteJwks(settings.jwks_url, http),
                replay=replay or MemoryReplayCache(),
                hub_issuer=settings.hub_issuer,
                hub_keys=hub_keys
                or (RemoteJwks(settings.hub_jwks_url, http) if settings.hub_jwks_url else None),
            )
            app.state.guard = MediaGuard(
                region_policy=RegionPolicy(),
                controls=_patient_controls(settings, http, key),
                # A block names a manifest's uniqueId: the study UID or a replacement's.
                studies=SqlManifestOutbox(engine),
            )
            app.state.dicomweb = DicomWebService(
                media=service,
                engine=engine,
                base_url=f"{settings.public_base_url.rstrip('/')}/dicomweb",
                max_limit=settings.qido_max_limit,
                max_part_bytes=settings.max_stow_part_bytes,
                max_video_bytes=settings.max_video_bytes,
                max_body_bytes=settings.max_stow_body_bytes,
                photo_limits=PhotoLimits(
                    max_bytes=settings.max_photo_bytes, max_pixels=settings.max_photo_pixels
                ),
                spool_dir=settings.content_dir / ".staging",
            )
        worker: asyncio.Task[None] | None = None
        publisher: ManifestPublisher | None = None
        if settings.publishing_enabled:
            assert key is not None
            publisher = _publisher(settings, engine, key=key, audit=audit or sink)
            service.on_stored(publisher.wake)
            worker = asyncio.create_task(publisher.run(), name="media-manifests")
        app.state.publisher = publisher
        app.state.outbox = SqlManifestOutbox(engine) if publisher is not None else None
        sweeps = asyncio.create_task(
            run_orphan_sweeps(
                content=the_content,
                referenced=store.is_referenced,
                grace=grace,
                interval=settings.orphan_sweep_interval_s,
            ),
            name="media-orphan-sweeps",
        )
        log.info(
            "media.started",
            region=settings.region,
            dimse_port=dimse.port,
            orphans_swept=swept,
            publishing=worker is not None,
        )
        try:
            yield
        finally:
            sweeps.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeps
            if worker is not None and publisher is not None:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
                await publisher.http.aclose()
            # shutdown() waits for the associations' threads, which wait on this loop.
            await asyncio.to_thread(dimse.stop)
            await http.aclose()
            await store.close()
            if sink is not None:
                await sink.close()
            await engine.dispose()

    app = FastAPI(
        title=f"onerecord media archive — {settings.region}",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.dicomweb = None
    app.state.authenticator = None
    app.state.guard = None
    app.state.outbox = None
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(dicomweb_router(settings))

    @app.get("/healthz")
    async def health(request: Request) -> dict[str, object]:
        dimse: DimseServer = request.app.state.dimse
        answer: dict[str, object] = {
            "status": "ok",
            "region": settings.region,
            "ae_title": settings.ae_title,
            "dimse_port": dimse.port,
        }
        outbox: SqlManifestOutbox | None = request.app.state.outbox
        if outbox is not None:  # publishing on: how many studies still wait (a count only)
            answer["manifests_pending"] = await outbox.pending()
        return answer

    return app


def _content_store(settings: MediaSettings) -> InstanceContentStore:
    """Object storage with `content_url` (docs/media.md "Storage"), else the folder."""
    if settings.content_url is not None:
        return ObstoreInstanceStore.from_url(settings.content_url)
    return FolderInstanceStore(settings.content_dir)


def _patient_controls(
    settings: MediaSettings, http: httpx.AsyncClient, key: SigningKey | None
) -> PatientControlSource:
    """The region's source as the patient's controls (settings checked: all three or none)."""
    if settings.source_url is None:
        log.warning("media.without_patient_controls", reason="development setting")
        return NoPatientControls()
    assert settings.publisher_issuer is not None and key is not None
    return SourceControls(
        http=http,
        source_url=settings.source_url,
        audience=settings.controls_audience,
        issuer=settings.publisher_issuer,
        key=key,
        ttl_s=settings.controls_ttl_s,
        max_entries=settings.controls_cache_size,
        timeout_s=settings.controls_timeout_s,
    )


def _publisher(
    settings: MediaSettings,
    engine: AsyncEngine,
    *,
    key: SigningKey,
    audit: AuditSink | None,
) -> ManifestPublisher:
    """The worker that publishes each study's manifest to the region's source (publisher.py)."""
    assert settings.source_url is not None and settings.publisher_issuer is not None
    return ManifestPublisher(
        outbox=SqlManifestOutbox(engine),
        archive=ArchiveIdentity(
            home_community_id=settings.home_community_id,
            organisation_name=settings.organisation_name,
            organisation_number=OrganisationNumber(settings.organisation_number),
            dicomweb_base_url=f"{settings.public_base_url.rstrip('/')}/dicomweb",
        ),
        http=httpx.AsyncClient(timeout=httpx.Timeout(settings.manifest_timeout_s)),
        source_url=settings.source_url,
        audience=settings.controls_audience,
        issuer=settings.publisher_issuer,
        key=key,
        quiet=settings.manifest_quiet_s,
        retry=settings.manifest_retry_s,
        retry_max=settings.manifest_retry_max_s,
        lease=settings.manifest_lease_s,
        audit=audit,
        source_id=_source_id(settings),
    )


def _source_id(settings: MediaSettings) -> str:
    """The audit chain's source: the region's community, marked as its media archive."""
    return f"{settings.home_community_id}#media"[:64]
