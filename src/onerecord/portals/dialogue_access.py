"""The clinic's reads in the citizen's access log (issue 15): «who at the office read my messages».

The dialogue service keeps its own audit chain (docs/dialogue.md, "Audit") and answers the
citizen's `GET /fhir/AuditEvent?patient=` with the reads by health personnel, in the shape a
region gives the hub. The access-log page asks it beside the hub (when `dialogue_url` is set)
with a token of the dialogue audience got from the citizen's refresh token, reads the events
with the same `build_access_log` and lists them among the regions' rows, the service named as
where the access happened. The dialogue service is one more source: when it does not answer,
the page says so as it does of a region, and shows the rest.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from onerecord.portals.access_log import AccessLog, AccessLogRow, build_access_log
from onerecord.portals.oauth import refresh
from onerecord.portals.overview import RegionNotice
from onerecord.portals.sessions import PortalSession
from onerecord.portals.web import Portal

__all__ = ["DIALOGUE_SOURCE", "with_dialogue_reads"]

DIALOGUE_SOURCE = "Fastlegekontoret (digital dialog)"
"""Where the clinic's reads happened, as the log's region column names it."""
_MAX_BYTES = 4 * 1024 * 1024


def _when(row: AccessLogRow) -> float:
    try:
        return datetime.fromisoformat(row.recorded.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


async def with_dialogue_reads(
    portal: Portal, session: PortalSession, log: AccessLog, patient: str
) -> AccessLog:
    """`log` with the dialogue service's reads of `patient` merged in, newest first."""
    settings = portal.settings
    if settings.dialogue_url is None:
        return log
    url = f"{settings.dialogue_url}/fhir/AuditEvent"
    try:
        async with session.refresh_lock:
            login = session.tokens
            if login is None:
                return log
            fresh = await refresh(
                portal.client(),
                sts_url=settings.sts_url,
                client_id=settings.client_id,
                client_key=portal.client_key,
                tokens=login,
                audience=settings.dialogue_audience,
            )
            if session.tokens is login:
                # Only the refresh token rotates: the login token stays the hub's.
                session.tokens = replace(login, refresh_token=fresh.refresh_token)
        response = await portal.client().get(
            url,
            params={"patient": patient},
            headers=fresh.hub_session().headers("GET", url),
            timeout=settings.hub_deadline_s,
        )
        if response.status_code == 403:
            return log  # the rules do not let this reader see it (as the service decided)
        body = response.json() if len(response.content) <= _MAX_BYTES else None
    except Exception:  # noqa: BLE001 - any failure of this one source: say so, show the rest
        return replace(log, regions=(*log.regions, RegionNotice(DIALOGUE_SOURCE, "unavailable")))
    if response.status_code != 200 or not isinstance(body, dict):
        return replace(log, regions=(*log.regions, RegionNotice(DIALOGUE_SOURCE, "unavailable")))
    rows = [replace(r, region=DIALOGUE_SOURCE) for r in build_access_log(body, ()).rows]
    merged = sorted((*log.rows, *rows), key=_when, reverse=True)
    return AccessLog(
        rows=tuple(merged), regions=(*log.regions, RegionNotice(DIALOGUE_SOURCE, "ok"))
    )
