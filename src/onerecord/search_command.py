"""The terminal side of `onerecord search`: log in, search the hub, print table and status lines."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from onerecord.search_client import (
    HubSession,
    StaffMember,
    citizen_session,
    load_manifest,
    overview_rows,
    practitioner_session,
    region_lines,
    search_hub,
)
from onerecord.trust.keys import SigningKey

__all__ = ["run_search"]

_STYLE = {"ok": "green", "timeout": "yellow", "unavailable": "red", "denied": "magenta"}


async def run_search(
    *,
    patient: str,
    role: str,
    user: str | None,
    hub: str | None,
    manifest: Path,
    count: int = 50,
    console: Console | None = None,
) -> int:
    """Run one search as the demo's CLI client; return the exit code (0 ok, 1 refused/failed)."""
    out = console or Console()
    if not manifest.exists():
        out.print(f"[red]no manifest at {manifest}[/red] (start `onerecord demo` first)")
        return 2
    data = load_manifest(manifest)
    hub_fhir = hub or str(data["hub"]["fhir_base"])
    sts = str(data["sts"]["issuer"])
    client_id = str(data["client"]["client_id"])
    client_key = SigningKey.from_jwk(orjson.loads(Path(data["client"]["key_file"]).read_bytes()))
    audience = str(data["hub"].get("audience", "onerecord:hub"))
    async with httpx.AsyncClient(timeout=30) as http:
        session: HubSession
        if role == "practitioner":
            key = user or "doctor"
            if key not in data["staff"]:
                out.print(f"[red]unknown staff key {key!r}[/red]: {', '.join(data['staff'])}")
                return 2
            staff = StaffMember.from_manifest(data["staff"][key])
            session = await practitioner_session(
                http,
                sts_url=sts,
                client_id=client_id,
                client_key=client_key,
                staff=staff,
                patient=patient,
                audience=audience,
            )
            who = f"{data['staff'][key].get('name', key)} ({key})"
        elif role == "citizen":
            citizen = user or patient
            session = await citizen_session(
                http,
                sts_url=sts,
                client_id=client_id,
                client_key=client_key,
                citizen=citizen,
                audience=audience,
            )
            who = f"citizen {citizen}"
        else:
            out.print("[red]--as must be practitioner or citizen[/red]")
            return 2
        started = time.perf_counter()
        response = await search_hub(http, session, hub_fhir=hub_fhir, patient=patient, count=count)
        elapsed = (time.perf_counter() - started) * 1000
    body = response.json()
    names = {r["home_community_id"]: r["name"] for r in data["regions"]}
    out.print(
        f"Overview for patient {patient} as {who}: HTTP {response.status_code}, "
        f"{body.get('total', 0) if response.status_code == 200 else 0} document(s), "
        f"{elapsed:.0f} ms"
    )
    if response.status_code == 200:
        table = Table(show_lines=False)
        for column in ("date", "title", "type", "author", "organisation", "region"):
            table.add_column(column)
        for row in overview_rows(body, names):
            # Values come from the regions: escaped, so that none is read as console markup.
            cells = (row.date, row.title, row.type, row.author, row.organisation, row.region)
            table.add_row(*(escape(c) for c in cells))
        out.print(table)
    else:
        for issue in body.get("issue", [])[:3]:
            code, said = escape(str(issue.get("code"))), escape(str(issue.get("diagnostics", "")))
            out.print(f"[red]{code}[/red] {said}")
    for line in region_lines(body, data["regions"]):
        style = _STYLE.get(line.status, "red")
        latency = f" ({line.latency_ms} ms)" if line.latency_ms is not None else ""
        reason = f": {line.reason}" if line.reason else ""
        said = escape(f"{line.name}{latency}{reason}")
        out.print(f"  [{style}]{escape(line.status):12}[/{style}] {said}")
    return 0 if response.status_code == 200 else 1
