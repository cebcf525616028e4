"""The imaging viewer of both portals: a study's page, photos side by side, the pixel proxy.

A listed document whose formatCode is `urn:ihe:rad:MADO` opens here instead of the document
page (`document_pages.py`). Its manifest (a FHIR ImagingStudy, `imaging.py`) is fetched through
the hub's Binary (ITI-68) as any document is, and kept in the session by retrieve token. The
page shows the study (date, modality, body site, region), its series as thumbnails, one image
of a series at a time (`?serie=…&bilde=…`), window presets on CT and MR (`?vindu=…`) and a video
in a `<video>` element; all of it works as plain links and a GET form, and `static/viewer.js`
adds scrolling (wheel, arrow keys, slider), zoom and presets without reloading.

The pixels go through the portal (`…/bilder/studies/{uid}/…`, `imaging_proxy`): the browser
never holds a token. The proxy admits only what the manifest of that very document names
(`parse_viewer_request`), asks the hub's DICOMweb route (MEDIA-CONTRACT §3) with the user's
own token and DPoP proof, and streams the answer back (Range through for video).

References: IHE RAD MADO; DICOM PS3.18 §8.3.5.1.3 (window), §10.4 (WADO-RS); RFC 9449 (DPoP);
RFC 9110 §14 (Range).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import structlog
from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from onerecord.domain import DomainError
from onerecord.mhd import MhdError, RetrieveKey
from onerecord.portals.errors import DocumentUnavailable, PortalError
from onerecord.portals.gateway import ACCESS_BASIS_HEADER, fetch_document, within_deadline
from onerecord.portals.imaging import (
    MADO_FORMAT,
    MEDIA_TYPES,
    WINDOW_PRESETS,
    ImagingInstance,
    ImagingManifest,
    ImagingSeries,
    InvalidManifest,
    ViewerRequest,
    ViewerRequestRefused,
    number_of_frames,
    parse_imaging_study,
    parse_viewer_request,
)
from onerecord.portals.overview import DocumentRow
from onerecord.portals.sessions import PortalSession
from onerecord.portals.web import Portal
from onerecord.search_client import HubSession

__all__ = [
    "ViewerState",
    "chosen_series",
    "compare_page",
    "frame_count",
    "frames_of",
    "imaging_page",
    "imaging_proxy",
    "is_imaging",
    "load_manifest",
    "photo_matches",
    "require_imaging",
    "viewer_state",
    "window_query",
]

log = structlog.get_logger("onerecord.portals.imaging")

_KEPT_MANIFESTS = 32
_COMPARE_CANDIDATES = 12
_MAX_METADATA = 1024 * 1024
_PASSED_HEADERS = ("content-type", "content-length", "content-range", "accept-ranges", "etag")
_PIXELS_CSP = "default-src 'none'; frame-ancestors 'self'; sandbox"


def is_imaging(row: DocumentRow) -> bool:
    """True for an imaging manifest: the viewer opens it, not the document page."""
    return row.format_code == MADO_FORMAT


async def load_manifest(
    portal: Portal,
    session: PortalSession,
    *,
    hub: HubSession,
    row: DocumentRow,
    access_basis: str | None,
) -> ImagingManifest:
    """Return the row's manifest, fetched through the hub once and then kept in the session."""
    ref = row.ref or ""
    kept = session.manifests.get(ref)
    if kept is not None:
        return kept
    got = await within_deadline(
        portal.settings.hub_deadline_s,
        fetch_document(
            portal.client(),
            hub,
            hub_fhir=portal.settings.hub_fhir,
            ref=ref,
            access_basis=access_basis,
            region=row.region,
        ),
    )
    try:
        if got.media_type not in ("application/fhir+json", "application/json"):
            raise InvalidManifest("not FHIR JSON")
        manifest = parse_imaging_study(got.content)
    except InvalidManifest as exc:
        log.warning("portal.imaging.bad_manifest", reason=str(exc))
        raise DocumentUnavailable() from None
    while len(session.manifests) >= _KEPT_MANIFESTS:
        session.manifests.pop(next(iter(session.manifests)))
    session.manifests[ref] = manifest
    return manifest


@dataclass(frozen=True, slots=True)
class ViewerState:
    """Which series and image (or frame) the page shows, and with which window preset.

    `frames`: a series of one multi-frame image scrolls through its frames (0: its images).
    """

    series: ImagingSeries | None
    index: int
    preset: str | None
    frames: int = 0

    @property
    def count(self) -> int:
        if self.frames:
            return self.frames
        return len(self.series.instances) if self.series is not None else 0


def chosen_series(manifest: ImagingManifest, params: Mapping[str, str]) -> ImagingSeries | None:
    """The series `serie` names, else the first with instances."""
    wanted = params.get("serie", "")
    series = manifest.find_series(wanted) if wanted else None
    return series or next((s for s in manifest.series if s.instances), None)


def frames_of(series: ImagingSeries | None) -> ImagingInstance | None:
    """The one multi-frame image of a series, whose frames the viewer scrolls through."""
    if series is None or len(series.instances) != 1 or not series.instances[0].is_multiframe:
        return None
    return series.instances[0]


def viewer_state(
    manifest: ImagingManifest, params: Mapping[str, str], *, frames: int = 0
) -> ViewerState:
    """Read `serie`, `bilde` (1-based) and `vindu` leniently: a bad value shows the first."""
    series = chosen_series(manifest, params)
    frames = frames if frames > 1 and frames_of(series) is not None else 0
    count = frames or (len(series.instances) if series is not None else 0)
    raw = params.get("bilde", "")
    index = int(raw) - 1 if raw.isascii() and raw.isdigit() and len(raw) < 7 else 0
    index = min(max(index, 0), max(count - 1, 0))
    preset = params.get("vindu")
    if preset not in WINDOW_PRESETS or series is None or not series.windowed:
        preset = None
    return ViewerState(series, index, preset, frames)


def window_query(preset: str | None) -> str:
    """`?window=center,width,linear` for a preset (PS3.18 §8.3.5.1.3); "" for the image's own."""
    if preset is None:
        return ""
    center, width = WINDOW_PRESETS[preset]
    return "?" + urlencode({"window": f"{center},{width},linear"})


class _Links:
    """The page's own links (keeping the list's view for the way back) and its pixel URLs."""

    def __init__(self, page_url: str, view: str, manifest: ImagingManifest) -> None:
        self.page_url = page_url
        self.view = view
        self.pixels_base = f"{page_url}/bilder/studies/{manifest.study_uid}"

    @property
    def view_items(self) -> list[tuple[str, str]]:
        """The list's view as form fields (the slider's GET form keeps it)."""
        return parse_qsl(self.view)

    def page(self, **params: Any) -> str:
        given = urlencode({k: v for k, v in params.items() if v not in (None, "")})
        query = "&".join(p for p in (self.view, given) if p)
        return f"{self.page_url}?{query}" if query else self.page_url

    def series(self, series: ImagingSeries) -> str:
        return f"{self.pixels_base}/series/{series.uid}"

    def thumbnail(self, series: ImagingSeries) -> str:
        return f"{self.series(series)}/thumbnail"

    def rendered(
        self, series: ImagingSeries, index: int, preset: str | None = None, frames: int = 0
    ) -> str:
        if frames:
            instance = series.instances[0]
            frame = f"/frames/{index + 1}"
        else:
            instance, frame = series.instances[index], ""
        return (
            f"{self.series(series)}/instances/{instance.uid}{frame}/rendered{window_query(preset)}"
        )


async def photo_matches(
    portal: Portal,
    session: PortalSession,
    *,
    hub: HubSession,
    row: DocumentRow,
    manifest: ImagingManifest,
    rows: Iterable[DocumentRow],
    access_basis: str | None,
) -> list[tuple[DocumentRow, ImagingManifest]]:
    """Other photo studies of the same body site and side in the list, oldest first."""
    site = manifest.site_key
    if not manifest.is_photo or site is None:
        return []
    others = [r for r in rows if r.ref and r.ref != row.ref and is_imaging(r) and not r.blocked][
        :_COMPARE_CANDIDATES
    ]
    got = await asyncio.gather(
        *(
            load_manifest(portal, session, hub=hub, row=r, access_basis=access_basis)
            for r in others
        ),
        return_exceptions=True,
    )
    found = [
        (r, m)
        for r, m in zip(others, got, strict=True)
        if isinstance(m, ImagingManifest) and m.is_photo and m.site_key == site
    ]
    return sorted(found, key=lambda pair: pair[1].started or pair[0].date)


async def imaging_page(
    portal: Portal,
    request: Request,
    session: PortalSession,
    *,
    hub: HubSession,
    row: DocumentRow,
    rows: Iterable[DocumentRow],
    access_basis: str | None,
    page_url: str,
    back_url: str,
    view: str,
    template: str,
    **context: Any,
) -> Response:
    """Render the viewer of one study (`template` frames it per portal)."""
    manifest = await load_manifest(portal, session, hub=hub, row=row, access_basis=access_basis)
    matches = await photo_matches(
        portal,
        session,
        hub=hub,
        row=row,
        manifest=manifest,
        rows=rows,
        access_basis=access_basis,
    )
    params = dict(request.query_params)
    chosen = chosen_series(manifest, params)
    frames = 0
    if chosen is not None and frames_of(chosen) is not None:
        frames = await frame_count(
            portal, hub=hub, row=row, manifest=manifest, series=chosen, access_basis=access_basis
        )
    state = viewer_state(manifest, params, frames=frames)
    links = _Links(page_url, view, manifest)
    return portal.render(
        request,
        template,
        session,
        row=row,
        manifest=manifest,
        state=state,
        links=links,
        presets=WINDOW_PRESETS,
        matches=matches,
        back_url=back_url,
        **context,
    )


async def compare_page(
    portal: Portal,
    request: Request,
    session: PortalSession,
    *,
    hub: HubSession,
    pair: tuple[DocumentRow, DocumentRow],
    access_basis: str | None,
    page_urls: tuple[str, str],
    back_url: str,
    view: str,
    template: str,
    **context: Any,
) -> Response:
    """Two photo studies of one body site side by side, the older first."""
    shown = []
    for row, page_url in zip(pair, page_urls, strict=True):
        manifest = await load_manifest(portal, session, hub=hub, row=row, access_basis=access_basis)
        series = next((s for s in manifest.series if s.instances), None)
        if not manifest.is_photo or series is None:
            raise DocumentUnavailable()
        shown.append((row, manifest, series, _Links(page_url, view, manifest)))
    if shown[0][1].site_key != shown[1][1].site_key:
        raise DocumentUnavailable()
    shown.sort(key=lambda item: item[1].started or item[0].date)
    return portal.render(request, template, session, shown=shown, back_url=back_url, **context)


# --- the proxy ---------------------------------------------------------------------------------


def _refused(status: int) -> Response:
    return Response(
        status_code=status,
        content={400: "Bad request", 403: "Forbidden", 404: "Not found"}.get(status, "Refused"),
        media_type="text/plain",
        headers={"x-content-type-options": "nosniff", "content-security-policy": _PIXELS_CSP},
    )


def _hub_request(
    portal: Portal,
    *,
    hub: HubSession,
    row: DocumentRow,
    asked: ViewerRequest,
    access_basis: str | None,
) -> httpx.Request:
    """The request to the hub's DICOMweb route for a checked `asked`, signed for this user."""
    key = RetrieveKey.parse(row.ref or "")
    url = f"{portal.settings.hub_dicomweb}/{key.home_community_id.oid.value}/{asked.relative}"
    headers = hub.headers("GET", url)
    headers["accept"] = asked.accept
    headers["accept-encoding"] = "identity"
    if access_basis:
        headers[ACCESS_BASIS_HEADER] = access_basis
    if asked.range is not None:
        headers["range"] = asked.range
    return portal.client().build_request("GET", url, params=list(asked.query), headers=headers)


async def frame_count(
    portal: Portal,
    *,
    hub: HubSession,
    row: DocumentRow,
    manifest: ImagingManifest,
    series: ImagingSeries,
    access_basis: str | None,
) -> int:
    """NumberOfFrames of `series`' one multi-frame image, from its metadata through the hub
    (1 when it cannot be read: the viewer then shows the first frame)."""
    path = f"studies/{manifest.study_uid}/series/{series.uid}/instances/{series.instances[0].uid}"
    try:
        asked = parse_viewer_request(manifest, f"{path}/metadata", ())
        sent = _hub_request(portal, hub=hub, row=row, asked=asked, access_basis=access_basis)
        content = await within_deadline(portal.settings.hub_deadline_s, _small_body(portal, sent))
    except (httpx.HTTPError, PortalError, ViewerRequestRefused, DomainError, MhdError):
        return 1
    return number_of_frames(content) if content is not None else 1


async def _small_body(portal: Portal, sent: httpx.Request) -> bytes | None:
    """A 200 answer's body of at most `_MAX_METADATA` bytes; None for anything else."""
    answer = await portal.client().send(sent, stream=True)
    try:
        if answer.status_code != 200:
            return None
        chunks, size = [], 0
        async for chunk in answer.aiter_bytes():
            size += len(chunk)
            if size > _MAX_METADATA:
                return None
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        await answer.aclose()


async def imaging_proxy(
    portal: Portal,
    request: Request,
    *,
    hub: HubSession,
    row: DocumentRow,
    manifest: ImagingManifest,
    path: str,
    access_basis: str | None,
) -> Response:
    """Relay one thumbnail, rendered image or video, or metadata of the row's own study."""
    try:
        asked = parse_viewer_request(
            manifest,
            path,
            request.query_params.multi_items(),
            range_header=request.headers.get("range"),
        )
        sent = _hub_request(portal, hub=hub, row=row, asked=asked, access_basis=access_basis)
    except ViewerRequestRefused as exc:
        # No UID in the log: the reason and status say enough (the hub audits what it sees).
        log.warning("portal.imaging.refused", status=exc.status, reason=str(exc)[:80])
        return _refused(exc.status)
    except (DomainError, MhdError, ValueError):
        return _refused(404)
    client = portal.client()
    try:
        answer = await within_deadline(
            portal.settings.hub_deadline_s, client.send(sent, stream=True)
        )
    except (httpx.HTTPError, PortalError):
        log.warning("portal.imaging.hub_unreachable")
        return _refused(502)
    status = answer.status_code
    media = answer.headers.get("content-type", "").split(";")[0].strip().lower()
    if status not in (200, 206) or media not in MEDIA_TYPES[asked.kind]:
        await answer.aclose()
        if status in (200, 206):
            log.warning("portal.imaging.unexpected_type", kind=asked.kind)
            return _refused(502)
        log.info("portal.imaging.hub_answer", status=status)
        if status in (401, 403):
            return _refused(403)
        if status in (404, 410, 416):
            return _refused(404 if status != 416 else 416)
        return _refused(400 if status in (400, 406) else 502)
    passed = {name: answer.headers[name] for name in _PASSED_HEADERS if name in answer.headers}
    if "content-encoding" in answer.headers:
        passed.pop("content-length", None)  # the body is passed on decoded
    passed["content-type"] = media
    passed["x-content-type-options"] = "nosniff"
    passed["content-security-policy"] = _PIXELS_CSP
    passed["cache-control"] = "private, no-store"
    return StreamingResponse(
        answer.aiter_bytes(),
        status_code=status,
        headers=passed,
        background=BackgroundTask(answer.aclose),
    )


def require_imaging(row: DocumentRow) -> None:
    """A proxy or compare request through a row that is no imaging manifest: 404."""
    if not is_imaging(row):
        raise DocumentUnavailable()
