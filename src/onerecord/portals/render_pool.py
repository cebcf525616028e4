"""Render documents in worker processes, never on the portal's event loop.

KITH XML goes through libxslt and FHIR documents through Python code; either takes seconds for
a large document, and on the event loop that stalled every other page (issue 10 G: five views
of a 5 MB document stopped the portal for 2.9 s). A render runs in one of a bounded number of
worker processes, with a time limit: a render that overruns is abandoned and its worker is
killed and replaced, and the page offers the document for download with a notice.

Why processes, not threads: an XSLT transform or a Python render in a thread cannot be stopped,
so a time limit in a thread would only stop the waiting, not the work, and the GIL-bound FHIR
renderer would still compete with the loop. lxml has no time limit for a transform, and its
depth and size limits (which `documents.py` keeps: no huge trees, no DTDs) bound memory, not
time. A killed process frees its CPU at once. Waiting for a free worker counts against the
same limit, so a burst of renders cannot queue pages without bound either.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import structlog

from onerecord.portals.documents import DocumentView, render_document, view_without_rendering

__all__ = ["RenderPool"]

log = structlog.get_logger("onerecord.portals.render_pool")

# spawn, not fork: the portal runs threads (uvicorn, the thread pool) that fork would copy
# mid-flight; a spawned worker starts clean and imports only what rendering needs.
_CONTEXT = multiprocessing.get_context("spawn")
WARM_WAIT_S = 60.0
"""How long a render waits for the start-up's workers before its own `timeout_s` begins."""


_READY = "ready"
START_TIMEOUT_S = 60.0
"""How long a spawned worker may take to import what rendering needs and say it is ready."""


def _serve(conn: Connection) -> None:
    """Worker process: say it is ready (its imports done), then render each job sent until the
    pipe closes."""
    conn.send(_READY)
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        content, mime_type, format_code, max_bytes = job
        view = render_document(
            content, mime_type=mime_type, format_code=format_code, max_bytes=max_bytes
        )
        conn.send(view)


@dataclass(eq=False)  # workers are told apart by identity
class _Worker:
    process: BaseProcess
    conn: Connection

    @classmethod
    def start(cls) -> _Worker:
        ours, theirs = _CONTEXT.Pipe()
        process = _CONTEXT.Process(target=_serve, args=(theirs,), daemon=True)
        process.start()
        theirs.close()
        worker = cls(process, ours)
        # Ready only once it has imported what rendering needs (a second or more of CPU): a
        # worker counted as started before that would spend a render's time limit importing.
        try:
            ready = ours.poll(START_TIMEOUT_S) and ours.recv() == _READY
        except (EOFError, OSError):
            ready = False
        if not ready:
            worker.kill()
            raise OSError("the render worker did not start")
        return worker

    def exchange(self, job: tuple[bytes, str, str | None, int]) -> DocumentView:
        """Send one job and wait for its view (blocking: run in a thread)."""
        self.conn.send(job)
        view = self.conn.recv()
        if not isinstance(view, DocumentView):
            raise EOFError("the render worker answered with something else")
        return view

    def kill(self) -> None:
        """Stop the worker now; a thread blocked in `exchange` gets EOFError."""
        self.process.kill()
        self.process.join(5)
        self.conn.close()


class RenderPool:
    """At most `workers` renders at a time, each given at most `timeout_s` (queueing included)."""

    def __init__(self, *, workers: int, timeout_s: float, max_bytes: int) -> None:
        if workers < 1:
            raise ValueError("a render pool needs at least one worker")
        self.workers = workers
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self._idle: list[_Worker] = []
        self._slots = asyncio.Semaphore(workers)
        self._busy: set[_Worker] = set()
        self._closed = False
        self._warming: asyncio.Task[Any] | None = None

    async def render(
        self, content: bytes, *, mime_type: str, format_code: str | None
    ) -> DocumentView:
        """Return how to show a document, rendered in a worker when it needs rendering."""
        shown = view_without_rendering(
            content, mime_type=mime_type, format_code=format_code, max_bytes=self.max_bytes
        )
        if shown is not None:
            return shown
        job = (content, mime_type, format_code, self.max_bytes)
        media = mime_type.split(";", 1)[0].strip().lower() or "application/octet-stream"
        await self._warmed()
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._run(job)
        except TimeoutError:
            log.warning("document.render_abandoned", mime_type=media, size=len(content))
            return DocumentView("download", media, notice="too-slow")
        except (EOFError, OSError) as error:  # the worker died (and was replaced)
            log.warning("document.render_worker_failed", error=type(error).__name__)
        return DocumentView("download", media)

    async def _run(self, job: tuple[bytes, str, str | None, int]) -> DocumentView:
        async with self._slots:
            worker = self._idle.pop() if self._idle else await self._start_worker()
            self._busy.add(worker)
            try:
                view = await asyncio.to_thread(worker.exchange, job)
            except BaseException:
                # Overrun, cancelled or broken: the worker may still be rendering. Kill it
                # (the thread waiting on it then ends) and start a fresh one next time.
                self._busy.discard(worker)
                await asyncio.to_thread(worker.kill)
                raise
            self._busy.discard(worker)
            await self._keep(worker)
            return view

    async def _start_worker(self) -> _Worker:
        """Start a worker; if the wait is given up, the worker still joins the idle ones."""
        starting = asyncio.ensure_future(asyncio.to_thread(_Worker.start))
        try:
            return await asyncio.shield(starting)
        except asyncio.CancelledError:
            starting.add_done_callback(self._started_late)
            raise

    def _started_late(self, starting: asyncio.Future[_Worker]) -> None:
        if not starting.cancelled() and starting.exception() is None:
            asyncio.ensure_future(self._keep(starting.result()))

    async def _keep(self, worker: _Worker) -> None:
        """Keep a free worker for the next render, unless there are enough or the pool closed."""
        if self._closed or len(self._idle) >= self.workers:
            await asyncio.to_thread(worker.kill)
        else:
            self._idle.append(worker)

    async def _warmed(self) -> None:
        """Wait (at most WARM_WAIT_S) for the start-up's workers: a render that came before them
        would otherwise spend its `timeout_s` spawning one more, and on a loaded machine be
        shown as too slow to render (the first document opened after a portal starts)."""
        warming = self._warming
        if warming is None or warming.done() or warming is asyncio.current_task():
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(warming), WARM_WAIT_S)

    async def warm(self) -> None:
        """Start the workers ahead of the first render (a spawn takes a second or so); renders
        that come meanwhile wait for them (`_warmed`)."""
        self._warming = asyncio.current_task()
        try:
            started = await asyncio.gather(
                *(asyncio.to_thread(_Worker.start) for _ in range(self.workers - len(self._idle)))
            )
            for worker in started:
                await self._keep(worker)
        finally:
            self._warming = None

    async def aclose(self) -> None:
        """Stop every worker."""
        self._closed = True
        workers, self._idle = [*self._idle, *self._busy], []
        for worker in workers:
            await asyncio.to_thread(worker.kill)
