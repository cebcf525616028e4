"""Open a document in place, the same way in both portals.

The page shows a PDF in an <object> (with a download link as its fallback), an image as <img>,
KITH XML and FHIR documents as HTML rendered on the server (`documents.render_document`, in a
worker process of `render_pool.RenderPool`, with a size and a time limit), and
anything else as a download. The bytes come from a separate URL, served with a strict
Content-Security-Policy (`sandbox`), `nosniff` and the media type the region gave, so a
hostile document cannot run script in the portal's origin.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import Response

from onerecord.portals.gateway import fetch_document
from onerecord.portals.overview import DocumentRow
from onerecord.portals.sessions import PortalSession
from onerecord.portals.web import Portal
from onerecord.search_client import HubSession

__all__ = ["document_content", "document_page"]

_INLINE = frozenset({"application/pdf", "image/png", "image/jpeg", "image/gif"})
_CONTENT_CSP = (
    "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'self'"
)
# Chromium's PDF viewer does not run in a sandboxed document, so an inline PDF gets the CSP
# without `sandbox`; everything else is sandboxed too (no script, no same-origin access).
_SANDBOXED_CSP = f"{_CONTENT_CSP}; sandbox"


async def document_page(
    portal: Portal,
    request: Request,
    session: PortalSession,
    *,
    hub: HubSession,
    row: DocumentRow,
    access_basis: str | None,
    back_url: str,
    content_url: str,
    template: str = "document.html",
    **context: Any,
) -> Response:
    """Render the page that shows one document in place (`template` frames it per portal)."""
    view = None
    if row.mime_type not in _INLINE:
        got = await fetch_document(
            portal.client(),
            hub,
            hub_fhir=portal.settings.hub_fhir,
            ref=row.ref or "",
            access_basis=access_basis,
            region=row.region,
        )
        # Never on the event loop: a large document would stall every other page.
        view = await portal.renderer.render(
            got.content, mime_type=got.media_type, format_code=row.format_code
        )
    kind = (
        view.kind
        if view is not None
        else ("pdf" if row.mime_type == "application/pdf" else "image")
    )
    return portal.render(
        request,
        template,
        session,
        row=row,
        kind=kind,
        view=view,
        back_url=back_url,
        content_url=content_url,
        download_url=f"{content_url}?last-ned=1",
        **context,
    )


def _filename(row: DocumentRow) -> str:
    ext = {
        "application/pdf": "pdf",
        "image/png": "png",
        "image/jpeg": "jpg",
        "text/xml": "xml",
        "application/xml": "xml",
        "application/fhir+json": "json",
    }.get(row.mime_type, "bin")
    stem = "".join(c if c.isalnum() else "-" for c in (row.title or "dokument"))[:60] or "dokument"
    return f"{stem}.{ext}"


async def document_content(
    portal: Portal,
    *,
    hub: HubSession,
    row: DocumentRow,
    access_basis: str | None,
    download: bool,
) -> Response:
    """Return the document's bytes: inline for PDF and images, else (or on request) as a file."""
    got = await fetch_document(
        portal.client(),
        hub,
        hub_fhir=portal.settings.hub_fhir,
        ref=row.ref or "",
        access_basis=access_basis,
        region=row.region,
    )
    inline = not download and got.media_type in _INLINE
    name = _filename(row)
    disposition = "inline" if inline else "attachment"
    return Response(
        got.content,
        media_type=got.media_type if inline else "application/octet-stream",
        headers={
            "content-disposition": f"{disposition}; filename*=UTF-8''{quote(name)}",
            "content-security-policy": (
                _CONTENT_CSP if inline and got.media_type == "application/pdf" else _SANDBOXED_CSP
            ),
            "x-content-type-options": "nosniff",
            "cache-control": "no-store",
        },
    )
