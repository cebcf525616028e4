"""A development-only clock for the demo's browser journeys: real time plus an offset.

With `dev_clock` (refused outside dev mode, as development keys are), `POST /dev/clock` with
`{"offset_seconds": N}` moves the service's clock N seconds ahead of the real one (0–400 days;
0 puts it back). Only the service's own clock moves (absences, answer limits, free slots,
notices); tokens and their proofs keep the real time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import orjson

from onerecord.dialogue.errors import BadInput

__all__ = ["MAX_OFFSET", "DevClock", "parse_clock_offset"]

MAX_OFFSET = timedelta(days=400)


class DevClock:
    """`base()` plus `offset`."""

    def __init__(self, base: Callable[[], datetime]) -> None:
        self.base = base
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return self.base() + self.offset

    def state(self) -> dict[str, Any]:
        return {"now": self().isoformat(), "offset_seconds": self.offset.total_seconds()}


def parse_clock_offset(raw: bytes) -> timedelta:
    """`{"offset_seconds": N}`, N a number from 0 to 400 days, or raise BadInput."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadInput("the body is not JSON") from None
    if not isinstance(value, dict) or set(value) != {"offset_seconds"}:
        raise BadInput('give {"offset_seconds": N}')
    seconds = value["offset_seconds"]
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise BadInput("offset_seconds must be a number")
    if not 0 <= seconds <= MAX_OFFSET.total_seconds():
        raise BadInput(f"offset_seconds must be 0–{int(MAX_OFFSET.total_seconds())}")
    return timedelta(seconds=seconds)
