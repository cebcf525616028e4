"""Static files (issue 11, defect 8): versioned URLs cached for a year, ETag/304 and gzip.

Over ASGI against the portal app; pages stay `no-store`. The Accept-Encoding and If-None-Match
readers are parsers of outside input, so each has a property test beside its examples.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from onerecord.portals.static_files import (
    IMMUTABLE,
    REVALIDATE,
    StaticFolder,
    accepts_gzip,
    etag_matches,
)
from tests.portals.test_app import App, Fakes, running_portal

pytestmark = pytest.mark.anyio

STATIC = Path(__file__).resolve().parents[2] / "src" / "onerecord" / "portals" / "static"
CSS = "designsystemet/designsystemet.css"
LINK = re.compile(r'<link rel="stylesheet" href="(/static/[^"]+)">')


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def portal(tmp_path: Path) -> AsyncIterator[App]:
    async with running_portal(tmp_path, Fakes()) as app:
        yield app


async def test_pages_link_versioned_stylesheets_that_are_cached_for_a_year(portal: App) -> None:
    page = await portal.client.get("/")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"  # pages carry health data
    links = LINK.findall(page.text)
    assert len(links) == 3, links
    assert "htmx" not in page.text and "<script" not in page.text
    folder = StaticFolder(STATIC)
    for link in links:
        name = link.split("/", 3)[3]
        assert link == folder.url(name)
        answer = await portal.client.get(link, headers={"accept-encoding": "identity"})
        assert answer.status_code == 200
        assert answer.headers["cache-control"] == IMMUTABLE
        assert answer.headers["content-type"] == "text/css; charset=utf-8"
        assert answer.headers["etag"] == f'"{folder.files[name].digest}"'
        assert answer.headers["vary"] == "Accept-Encoding"
        assert "content-encoding" not in answer.headers
        assert answer.content == (STATIC / name).read_bytes()


async def test_gzip_when_asked_for_and_not_when_refused(portal: App) -> None:
    url = StaticFolder(STATIC).url(CSS)
    raw = (STATIC / CSS).read_bytes()
    async with portal.client.stream("GET", url, headers={"accept-encoding": "gzip"}) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-encoding"] == "gzip"
        assert answer.headers["etag"].endswith('-gz"')
        body = b"".join([chunk async for chunk in answer.aiter_raw()])
    assert gzip.decompress(body) == raw
    assert len(body) < len(raw) / 4, (len(body), len(raw))
    for refusal in ("identity", "gzip;q=0", "br", "*;q=0", ""):
        plain = await portal.client.get(url, headers={"accept-encoding": refusal})
        assert "content-encoding" not in plain.headers, refusal
        assert plain.content == raw


async def test_etag_gives_304_for_either_form(portal: App) -> None:
    url = StaticFolder(STATIC).url("portal.css")
    first = await portal.client.get(url, headers={"accept-encoding": "gzip"})
    again = await portal.client.get(
        url, headers={"accept-encoding": "gzip", "if-none-match": first.headers["etag"]}
    )
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == first.headers["etag"]
    assert again.headers["cache-control"] == IMMUTABLE
    other = await portal.client.get(url, headers={"if-none-match": '"0123456789abcdef"'})
    assert other.status_code == 200


async def test_unversioned_or_stale_urls_are_served_but_revalidated(portal: App) -> None:
    folder = StaticFolder(STATIC)
    digest = folder.files["portal.css"].digest
    stale = "0" * len(digest) if digest != "0" * len(digest) else "1" * len(digest)
    for url in ("/static/portal.css", f"/static/{stale}/portal.css"):
        answer = await portal.client.get(url)
        assert answer.status_code == 200, url
        assert answer.headers["cache-control"] == REVALIDATE, url
        assert answer.content == (STATIC / "portal.css").read_bytes()


async def test_head_has_the_length_and_no_body(portal: App) -> None:
    url = StaticFolder(STATIC).url(CSS)
    answer = await portal.client.head(url, headers={"accept-encoding": "identity"})
    assert answer.status_code == 200
    assert answer.content == b""
    assert int(answer.headers["content-length"]) == (STATIC / CSS).stat().st_size


@pytest.mark.parametrize(
    "path",
    [
        "/static/VENDORED.md",
        "/static/designsystemet/LICENSE-designsystemet-css",
        "/static/htmx.min.js",
        "/static/../app.py",
        "/static/%2e%2e/app.py",
        "/static/0123456789abcdef/../app.py",
        "/static/nope.css",
        "/static/",
    ],
)
async def test_only_the_files_read_at_start_up_are_served(portal: App, path: str) -> None:
    answer = await portal.client.get(path)
    assert answer.status_code == 404, path


async def test_a_post_to_a_static_file_is_not_allowed(portal: App) -> None:
    answer = await portal.client.post("/static/portal.css")
    assert answer.status_code == 405


def test_a_template_naming_a_missing_file_fails_loudly() -> None:
    with pytest.raises(LookupError):
        StaticFolder(STATIC).url("htmx.min.js")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip", True),
        ("gzip, deflate, br, zstd", True),
        ("GZIP;Q=0.5", True),
        ("x-gzip", True),
        ("*", True),
        ("br;q=1, *;q=0.1", True),
        ("gzip;q=0", False),
        ("gzip;q=0.000", False),
        ("gzip;q=0, *", False),
        ("*;q=0", False),
        ("identity", False),
        ("", False),
        ("gzip;q=2", False),
        ("gzip;q=abc", False),
        ("gzip;q=-1", False),
    ],
)
def test_accept_encoding_examples(header: str, expected: bool) -> None:
    assert accepts_gzip(header) is expected


@given(st.text(max_size=300))
def test_accept_encoding_never_raises(header: str) -> None:
    assert accepts_gzip(header) in (True, False)


@given(st.text(alphabet="gzipxbr*;q=0.15, \t", max_size=60))
def test_accept_encoding_refusal_is_never_overridden(rest: str) -> None:
    # Whatever else is said, an explicit gzip;q=0 said last and alone means no gzip unless
    # gzip is also named with a q above 0 (the highest q for gzip counts).
    header = f"{rest}, gzip;q=0"
    named_positive = any(
        item.split(";")[0].strip().lower() in ("gzip", "x-gzip") and accepts_gzip(item)
        for item in rest.split(",")
    )
    assert accepts_gzip(header) is named_positive


@given(st.text(max_size=300), st.from_regex(r"[0-9a-f]{16}", fullmatch=True))
def test_if_none_match_never_raises_and_needs_the_digest(header: str, digest: str) -> None:
    matched = etag_matches(header, digest)
    assert matched in (True, False)
    if matched:
        assert "*" in header or digest in header


def test_if_none_match_examples() -> None:
    digest = "0123456789abcdef"
    assert etag_matches(f'"{digest}"', digest)
    assert etag_matches(f'W/"{digest}-gz"', digest)
    assert etag_matches(f'"other", "{digest}"', digest)
    assert etag_matches("*", digest)
    assert not etag_matches('"fedcba9876543210"', digest)
    assert not etag_matches("", digest)


def test_gzip_forms_are_the_same_on_every_start() -> None:
    first, second = StaticFolder(STATIC), StaticFolder(STATIC)
    assert first.files[CSS].gzipped == second.files[CSS].gzipped
    assert httpx.URL(first.url(CSS)).path.startswith("/static/")
