"""The render pool: documents rendered in worker processes, within a size and a time limit."""

from __future__ import annotations

import asyncio
import time

import pytest

from onerecord.portals import render_pool
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


async def test_a_render_during_start_up_waits_for_the_warm_workers_not_its_own_spawn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first document opened after the portal starts was shown as too slow to render on a
    loaded machine: its `timeout_s` went on spawning a worker while the start-up's were coming."""
    real_start = render_pool._Worker.start

    def slow_start() -> render_pool._Worker:
        time.sleep(3.0)  # a spawn on a busy machine
        return real_start()

    monkeypatch.setattr(render_pool._Worker, "start", staticmethod(slow_start))
    pool = RenderPool(workers=1, timeout_s=2.0, max_bytes=1024 * 1024)
    warming = asyncio.create_task(pool.warm())
    await asyncio.sleep(0.1)
    try:
        view = await pool.render(MINIMAL_EPIKRISE, mime_type="text/xml", format_code=None)
        await warming
    finally:
        await pool.aclose()
    assert view.kind == "html", view.notice
