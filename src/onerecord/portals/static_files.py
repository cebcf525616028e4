"""The portal's static files: versioned URLs, a year's cache lifetime, ETag/304 and gzip.

Issue 11, defect 8: the stylesheets were sent `no-store` and uncompressed. Every file of the
static folder is read once at start-up; its URL carries a hash of its content
(`/static/<hash>/<name>`, `static_url(name)` in the templates), so a changed file gets a new URL
and the old one may be kept for a year (`Cache-Control: public, max-age=31536000, immutable`).
A URL without the hash, or with another hash (a page from before a deploy), is still answered
with the current file, but with `no-cache`: the browser must ask again (ETag → 304). Text types
are gzipped once at start-up and sent so when `Accept-Encoding` allows it. Pages themselves stay
`no-store` (they carry health data; app.py). Only the file types listed in `MEDIA_TYPES` are
served, and only files that were in the folder at start-up: no path reaches the file system.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException

__all__ = [
    "IMMUTABLE",
    "MEDIA_TYPES",
    "REVALIDATE",
    "StaticFile",
    "StaticFolder",
    "accepts_gzip",
    "etag_matches",
]

MEDIA_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
}
"""The file types served; anything else in the folder (VENDORED.md, licences) is not."""
_COMPRESSIBLE = {".css", ".js", ".svg"}
_MIN_COMPRESS_BYTES = 256
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
_DIGEST_CHARS = 16
_VERSION = re.compile(rf"[0-9a-f]{{{_DIGEST_CHARS}}}")
_QVALUE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?")
_MAX_HEADER_CHARS = 2048
"""Longer Accept-Encoding / If-None-Match headers are read no further (outside input)."""


@dataclass(frozen=True, slots=True)
class StaticFile:
    """One file as served: its bytes, its gzipped bytes (text types) and its content hash."""

    name: str
    body: bytes
    gzipped: bytes | None
    media_type: str
    digest: str

    @classmethod
    def read(cls, name: str, path: Path) -> StaticFile:
        body = path.read_bytes()
        gzipped = None
        if path.suffix in _COMPRESSIBLE and len(body) >= _MIN_COMPRESS_BYTES:
            # mtime=0: the same bytes on every start, so the ETag of the gzip form holds.
            gzipped = gzip.compress(body, compresslevel=9, mtime=0)
        return cls(
            name=name,
            body=body,
            gzipped=gzipped,
            media_type=MEDIA_TYPES[path.suffix],
            digest=hashlib.sha256(body).hexdigest()[:_DIGEST_CHARS],
        )


class StaticFolder:
    """The static folder as read at start-up; `install` mounts it at `/static`."""

    def __init__(self, folder: Path) -> None:
        self.files: dict[str, StaticFile] = {}
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix in MEDIA_TYPES:
                name = path.relative_to(folder).as_posix()
                self.files[name] = StaticFile.read(name, path)

    def url(self, name: str) -> str:
        """Return the versioned URL of `name` (a template naming a missing file is a bug)."""
        try:
            return f"/static/{self.files[name].digest}/{name}"
        except KeyError:
            raise LookupError(f"no static file {name!r}") from None

    def find(self, path: str) -> tuple[StaticFile, bool]:
        """Return the file `path` names and whether the URL carries its current hash; else 404."""
        version, _, rest = path.partition("/")
        if _VERSION.fullmatch(version) and rest in self.files:
            found = self.files[rest]
            return found, version == found.digest
        if path in self.files:
            return self.files[path], False
        raise HTTPException(404)

    def respond(self, request: Request, path: str) -> Response:
        """Answer a GET or HEAD for `path`: the file, its gzip form or 304 Not Modified."""
        found, current = self.find(path)
        compressed = found.gzipped is not None and accepts_gzip(
            request.headers.get("accept-encoding", "")
        )
        etag = f'"{found.digest}-gz"' if compressed else f'"{found.digest}"'
        headers = {
            "cache-control": IMMUTABLE if current else REVALIDATE,
            "etag": etag,
            "vary": "Accept-Encoding",
        }
        if etag_matches(request.headers.get("if-none-match", ""), found.digest):
            return Response(status_code=304, headers=headers)
        body = found.gzipped if compressed and found.gzipped is not None else found.body
        if compressed:
            headers["content-encoding"] = "gzip"
        if request.method == "HEAD":
            headers["content-length"] = str(len(body))
            return Response(status_code=200, headers=headers, media_type=found.media_type)
        return Response(body, headers=headers, media_type=found.media_type)

    def install(self, app: FastAPI) -> None:
        """Answer GET and HEAD under `/static/` from the files read at start-up."""

        @app.api_route("/static/{path:path}", methods=["GET", "HEAD"], include_in_schema=False)
        async def static(path: str, request: Request) -> Response:
            return self.respond(request, path)


def accepts_gzip(header: str) -> bool:
    """Whether an `Accept-Encoding` header allows gzip (RFC 9110 §12.5.3; q=0 means "not").

    `gzip` (or `x-gzip`) with a q-value above 0 allows it; so does `*` when gzip is not named.
    An unreadable q-value counts as 0. Never raises, whatever the header holds.
    """
    named: float | None = None
    anything: float | None = None
    for item in header[:_MAX_HEADER_CHARS].split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip().lower()
        q = _quality(params)
        if coding in ("gzip", "x-gzip"):
            named = q if named is None else max(named, q)
        elif coding == "*":
            anything = q
    if named is not None:
        return named > 0
    return anything is not None and anything > 0


def _quality(params: str) -> float:
    """Return the q-value of one Accept-Encoding item (1 when absent, 0 when unreadable)."""
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() != "q":
            continue
        value = value.strip()
        # RFC 9110 §12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
        return float(value) if _QVALUE.fullmatch(value) else 0.0
    return 1.0


def etag_matches(header: str, digest: str) -> bool:
    """Whether `If-None-Match` names either form of the file (weak comparison, `*` matches)."""
    for tag in header[:_MAX_HEADER_CHARS].split(","):
        tag = tag.strip()
        if tag == "*":
            return True
        if tag.removeprefix("W/").strip('"') in (digest, f"{digest}-gz"):
            return True
    return False
