"""The render pool: documents rendered in worker processes, within a size and a time limit."""

from __future__ import annotations

import time

import pytest

from onerecord.portals.render_pool import RenderPool
from tests.portals.test_documents import MINIMAL_EPIKRISE

pytestmark = pytest.mark.anyio

_LINE = "Pasienten ble observert over natten, uten nye funn. Kontroll hos fastlege om to uker."


def large_epikrise(size: int) -> bytes:
    """A KITH epikrise of about `size` bytes: one long free-text finding."""
    lines = max(1, (size - len(MINIMAL_EPIKRISE)) // (len(_LINE) + 1))
    return MINIMAL_EPIKRISE.replace(b"Linje en.\n  Linje to.", "\n".join([_LINE] * lines).encode())


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_render_in_a_worker_gives_the_same_view_as_in_process() -> None:
    pool = RenderPool(workers=1, timeout_s=60, max_bytes=1024 * 1024)
    try:
        view = await pool.render(MINIMAL_EPIKRISE, mime_type="text/xml", format_code=None)
    finally:
        await pool.aclose()
    assert view.kind == "html" and view.title == "Epikrise" and view.html is not None
    assert "Nordmann, Ola" in view.html


async def test_an_overrunning_render_is_abandoned_and_its_worker_replaced() -> None:
    pool = RenderPool(workers=1, timeout_s=60, max_bytes=8 * 1024 * 1024)
    await pool.warm()
    pool.timeout_s = 0.05  # a 3 MB epikrise takes far longer than 50 ms to render
    try:
        started = time.perf_counter()
        slow = await pool.render(large_epikrise(3_000_000), mime_type="text/xml", format_code=None)
        abandoned_after = time.perf_counter() - started
        assert slow.kind == "download" and slow.notice == "too-slow"
        assert pool._idle == [] and pool._busy == set()  # the overrunning worker was killed
        pool.timeout_s = 60
        small = await pool.render(MINIMAL_EPIKRISE, mime_type="text/xml", format_code=None)
    finally:
        await pool.aclose()
    assert small.kind == "html"  # a fresh worker took over
    assert abandoned_after < 5


async def test_a_document_over_the_size_limit_is_not_sent_to_a_worker() -> None:
    pool = RenderPool(workers=1, timeout_s=60, max_bytes=1000)
    view = await pool.render(large_epikrise(5000), mime_type="text/xml", format_code=None)
    assert view.kind == "download" and view.notice == "too-large"
    assert pool._idle == [] and pool._busy == set()  # no worker was started for it
    pdf = await pool.render(
        b"%PDF-1.7" + b"x" * 5000, mime_type="application/pdf", format_code=None
    )
    assert pdf.kind == "pdf" and pdf.notice is None
