"""The orphan sweep: remove content the registry does not reference, and stale partial writes.

A publish writes bytes before it registers them (source/service.py); a crash or a failed
commit in between leaves bytes that nothing references and, after a hard crash, a `.part`
file. The sweep runs once at start-up and then every `interval`; it removes only what is older
than `grace` and unreferenced, so an upload in flight (younger, or renewed by the upload) keeps
its bytes. A failed sweep is logged and tried again at the next turn.
"""

from __future__ import annotations

from datetime import timedelta

import anyio
import structlog

from onerecord.source.content import ContentStore
from onerecord.source.store import DocumentStore

__all__ = ["run_orphan_sweeps", "sweep_orphan_content"]

log = structlog.get_logger("onerecord.source")


async def sweep_orphan_content(
    *, content: ContentStore, store: DocumentStore, grace: timedelta
) -> int:
    """Remove unreferenced blobs and partial writes older than `grace`; return the blob count."""
    removed = await content.sweep_orphans(store.has_content, older_than=grace)
    if removed:
        log.info("content.swept", orphans_removed=removed, grace_s=grace.total_seconds())
    return removed


async def run_orphan_sweeps(
    *, content: ContentStore, store: DocumentStore, grace: timedelta, interval: float
) -> None:
    """Sweep now and then every `interval` seconds, until cancelled."""
    while True:
        try:
            await sweep_orphan_content(content=content, store=store, grace=grace)
        except Exception as exc:
            log.warning("content.sweep_failed", error=type(exc).__name__)
        await anyio.sleep(interval)
