"""The archive's orphan sweep: content no instance references, and writes cut short.

A store writes the bytes before it registers the instance (content.py); a crash or a failed
register in between leaves bytes nothing references, and a hard crash a `.part` file. The sweep
runs at start-up (before DIMSE listens) and then every `interval` seconds while the archive
runs; it removes only what is older than `grace` and unreferenced, and each content store keeps
a store in flight safe (content.py: renewed times, set-aside-then-look-again). A failed sweep
is logged and tried again at the next turn.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import anyio
import structlog

from onerecord.media.content import InstanceContentStore

__all__ = ["run_orphan_sweeps", "sweep_orphans"]

log = structlog.get_logger("onerecord.media.orphans")


async def sweep_orphans(
    *, content: InstanceContentStore, referenced: Callable[[str], Awaitable[bool]], grace: timedelta
) -> int:
    """Remove unreferenced content and torn writes older than `grace`; return how many."""
    started = time.monotonic()
    removed = await content.sweep_orphans(referenced, grace)
    if removed:
        log.info(
            "media.orphans_swept",
            removed=removed,
            grace_s=grace.total_seconds(),
            took_s=round(time.monotonic() - started, 3),
        )
    return removed


async def run_orphan_sweeps(
    *,
    content: InstanceContentStore,
    referenced: Callable[[str], Awaitable[bool]],
    grace: timedelta,
    interval: float,
) -> None:
    """Sweep every `interval` seconds (the first after one interval), until cancelled."""
    while True:
        await anyio.sleep(interval)
        try:
            await sweep_orphans(content=content, referenced=referenced, grace=grace)
        except Exception as exc:  # noqa: BLE001 - the next turn tries again
            log.warning("media.orphan_sweep_failed", error=type(exc).__name__)
