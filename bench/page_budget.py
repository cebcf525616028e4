"""Page budget of both portals, measured in chromium against the demo network (issue 11).

Targets (issue 11, "What must be shown"): the largest page ≤ 100 kB transferred on a repeat
visit, first contentful paint ≤ 300 ms on loopback, the overview of 200 documents with a
server time p99 < 300 ms.

Set-up: `onerecord demo` started as the tests start it (tests.network.conftest.start_network,
all on 127.0.0.1), then --documents more synthetic documents published (ITI-65, signed with the
demo's publisher key, as its importer does) for the cast's 85-year-old ("elderly") into the
regions that already hold theirs, so that one patient has at least --documents documents.

Measured, for every page of bench/portal_walk.py (and the health worker's overview at 200 rows
a page) at 1280 × 800 and 390 × 844, each page reached as its user reaches it (STS login):
- bytes transferred on a first visit (browser cache emptied with CDP
  `Network.clearBrowserCache`) and on a repeat visit (a new navigation to the same URL): the
  encoded body size of every response of the page (`performance.getEntriesByType` navigation +
  resource); a response served from the cache (transferSize 0) or revalidated (304) counts 0.
  Also the bytes on the wire with headers (transferSize);
- first contentful paint (`performance.getEntriesByName('first-contentful-paint')`) over
  --loads repeat visits: p50/p95/max;
and the overview of the patient with ≥ 200 documents (`/helsepersonell/oversikt?antall=200`):
the portal's own `server-timing: portal;dur=` (hub call through the real hub and four regions +
overview + listing + template, as bench/portal.py reads it) over --requests requests made with
the browser's session (`page.request`, no rendering), after --warmup, p50/p95/p99/max, once
with every request asking the hub (`&oppdater=1`, the verdict) and once served from the rows
the session keeps (listing_cache.py, as sorting and paging are); an
answer other than 200 (a 502 when the hub's deadline passed) is counted by status, not timed.

Prints a table and writes bench/results/page_budget.json.
Usage: .venv/bin/python bench/page_budget.py [--quick] [--loads 20] [--requests 200]
       [--warmup 10] [--documents 200] [--sizes desktop phone]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.portal_walk import SIZES, chromium, demo_network, walk  # noqa: E402
from tests.browser import journeys as step  # noqa: E402
from tests.network.conftest import Network  # noqa: E402

from onerecord.demo import publish_proof_hook  # noqa: E402
from onerecord.mhd import build_provide_bundle  # noqa: E402
from onerecord.synth.dataset import batch_documents, load_population  # noqa: E402
from onerecord.synth.documents import generate_documents, patient_regions  # noqa: E402
from onerecord.synth.regions import DEFAULT_REGIONS  # noqa: E402

TARGET_REPEAT_KB = 100
TARGET_FCP_MS = 300
TARGET_SERVER_P99_MS = 300
MANY = "elderly"  # the cast member who gets the extra documents
SEED = 11_200  # not the demo's seed: new uniqueIds, not repeats of the demo's documents
FHIR_JSON = "application/fhir+json"
SERVER_TIMING = re.compile(r"(?:^|,)\s*portal;dur=([0-9.]+)")

_SIZES_JS = """() => {
    const entries = [...performance.getEntriesByType('navigation'),
                     ...performance.getEntriesByType('resource')];
    const body = e => (e.transferSize === 0 || e.responseStatus === 304) ? 0 : e.encodedBodySize;
    return {
        body: entries.reduce((n, e) => n + body(e), 0),
        wire: entries.reduce((n, e) => n + e.transferSize, 0),
        responses: entries.length,
        from_cache: entries.filter(e => e.transferSize === 0).length,
        largest: entries.map(e => [e.name.replace(location.origin, '').split('?')[0], body(e)])
                        .sort((a, b) => b[1] - a[1]).slice(0, 3),
    };
}"""
_FCP_JS = """() => {
    const e = performance.getEntriesByName('first-contentful-paint')[0];
    return e ? e.startTime : null;
}"""


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary(values: Sequence[float]) -> dict[str, float]:
    """Return p50/p95/p99/max in ms, rounded."""
    out = {f"p{p}": round(percentile(values, p), 1) for p in (50, 95, 99)}
    out["max"] = round(max(values), 1)
    return out


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


# the patient with many documents ---------------------------------------------------------


async def _publish(network: Network, count: int) -> int:
    """Publish about `count` new documents for the cast's MANY in their regions; return how many."""
    population = load_population(Path(network.manifest["dataset"]))
    person = population.cast[MANY]
    alone = replace(population, citizens=(person,))
    # generate_documents puts a cast member's documents in three regions chosen by the seed.
    slugs = set(patient_regions(alone, person.nin, SEED))
    indexes = [i for i, info in enumerate(DEFAULT_REGIONS) if info.slug in slugs]
    each = math.ceil(count * 1.1 / len(indexes))  # a margin: some are replaced, not added
    audiences = {
        network.layout.region_url(i): DEFAULT_REGIONS[i].home_community_id.urn for i in indexes
    }
    hook = publish_proof_hook(network.publisher_key, audiences)
    published = 0
    key = random.Random(SEED).getrandbits(31) + 1
    async with httpx.AsyncClient(timeout=120, event_hooks={"request": [hook]}) as http:
        for i in indexes:
            info = DEFAULT_REGIONS[i]
            documents = list(generate_documents(alone, info, seed=SEED, per_patient=(each, each)))
            for number, batch in enumerate(batch_documents(documents, 50), start=1):
                bundle = build_provide_bundle(
                    [(d.entry, d.content) for d in batch],
                    source_id=info.source_id,
                    submission_set_unique_id=info.submission_set_unique_id(key, number),
                )
                answer = await http.post(
                    f"{network.layout.region_url(i)}/fhir",
                    content=json.dumps(bundle),
                    headers={"content-type": FHIR_JSON, "accept": FHIR_JSON},
                )
                if not answer.is_success:
                    raise SystemExit(f"{info.name} refused a bundle: {answer.text[:500]}")
                published += len(batch)
    return published


# measuring in the browser ----------------------------------------------------------------


def _visit(page: Page, url: str) -> None:
    page.goto(url, wait_until="load")
    page.wait_for_function("() => performance.getEntriesByName('first-contentful-paint').length")


def measure_page(page: Page, url: str, loads: int) -> dict[str, Any]:
    """Bytes on a first and a repeat visit to `url`, and FCP over `loads` repeat visits."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.clearBrowserCache")
    _visit(page, url)
    first = page.evaluate(_SIZES_JS)
    _visit(page, url)
    repeat = page.evaluate(_SIZES_JS)
    paints: list[float] = []
    for _ in range(loads):
        _visit(page, url)
        paints.append(float(page.evaluate(_FCP_JS)))
    cdp.detach()
    return {
        "path": urlsplit(url).path,
        "first_visit_bytes": first["body"],
        "first_visit_wire_bytes": first["wire"],
        "repeat_visit_bytes": repeat["body"],
        "repeat_visit_wire_bytes": repeat["wire"],
        "responses": first["responses"],
        "repeat_from_cache": repeat["from_cache"],
        "largest_first": first["largest"],
        "fcp_ms": summary(paints),
    }


DOCUMENT_ROW = re.compile(r'<tr class="(?:document|blocked)\b')


def overview_200(
    page: Page, cast: step.Cast, requests: int, warmup: int, *, fresh: bool
) -> dict[str, Any]:
    """Log a doctor in for MANY and time the 200-row overview: Server-Timing and wall time.

    `fresh`: every request asks the hub («Oppdater», `&oppdater=1`: fan-out to the regions);
    else the rows the session fetched are kept (listing_cache.py: sort, page, back).
    """
    url = cast.portal_url
    doctor = cast.staff("doctor")
    step.log_in(page, url, "helsepersonell", doctor["nin"])
    step.choose_workplace(page, doctor["organisation"])
    step.state_basis(page, cast.nin(MANY), step.GP_BASIS)
    target = f"{url}/helsepersonell/oversikt?antall=200{'&oppdater=1' if fresh else ''}"
    server: list[float] = []
    wall: list[float] = []
    rows = 0
    failed: dict[str, int] = {}
    for n in range(warmup + requests):
        started = time.perf_counter()
        answer = page.request.get(target)
        elapsed = (time.perf_counter() - started) * 1000
        if answer.status != 200:  # e.g. 502 when the hub's deadline passed: counted, not timed
            failed[str(answer.status)] = failed.get(str(answer.status), 0) + 1
            continue
        timing = SERVER_TIMING.search(answer.headers.get("server-timing", ""))
        if timing is None:
            raise SystemExit("the overview sent no server-timing portal;dur=")
        # Document rows (a «Sperret» row too), not the header nor the groups' heading rows.
        rows = len(DOCUMENT_ROW.findall(answer.text()))
        if n >= warmup:
            server.append(float(timing.group(1)))
            wall.append(elapsed)
    if not server:
        raise SystemExit(f"no overview answered 200: {failed}")
    if rows < 200:
        raise SystemExit(f"the overview of {MANY} shows {rows} rows, not 200")
    return {
        "fresh": fresh,
        "rows": rows,
        "requests": requests,
        "failed": failed,
        "server_ms": summary(server),
        "client_wall_ms": summary(wall),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    before = machine()
    pages: dict[str, dict[str, Any]] = {}
    with demo_network() as network:
        published = asyncio.run(_publish(network, args.documents))
        print(f"published {published} documents for {MANY}", flush=True)
        with chromium() as browser:
            cast = step.Cast.of(network.manifest)
            for size in args.sizes:
                for stop in walk(browser, cast, size):
                    pages[f"{stop.name}/{size}"] = measure_page(
                        stop.page, stop.page.url, args.loads
                    )
                    if stop.name == "hcp-overview":
                        wide = f"{cast.portal_url}/helsepersonell/oversikt?antall=200"
                        pages[f"hcp-overview-200-rows/{size}"] = measure_page(
                            stop.page, wide, args.loads
                        )
                    print(f"measured {stop.name} at {size}", flush=True)
            kept: dict[str, Any] = {}
            for fresh in (True, False):
                context = browser.new_context(locale="nb-NO", viewport=SIZES["desktop"])
                try:
                    kept[str(fresh)] = overview_200(
                        context.new_page(), cast, args.requests, args.warmup, fresh=fresh
                    )
                finally:
                    context.close()
            overview, cached = kept["True"], kept["False"]
    largest = max(pages.items(), key=lambda kv: kv[1]["repeat_visit_bytes"])
    worst_fcp = max(pages.items(), key=lambda kv: kv[1]["fcp_ms"]["p95"])
    return {
        "targets": {
            "largest_repeat_visit_kb": TARGET_REPEAT_KB,
            "fcp_ms": TARGET_FCP_MS,
            "overview_200_server_p99_ms": TARGET_SERVER_P99_MS,
        },
        "verdict": {
            "largest_repeat_visit": [largest[0], round(largest[1]["repeat_visit_bytes"] / 1024, 1)],
            "largest_repeat_visit_met": largest[1]["repeat_visit_bytes"] <= TARGET_REPEAT_KB * 1024,
            "worst_fcp_p95": [worst_fcp[0], worst_fcp[1]["fcp_ms"]["p95"]],
            "fcp_met": worst_fcp[1]["fcp_ms"]["p95"] <= TARGET_FCP_MS,
            "overview_200_server_p99_ms": overview["server_ms"]["p99"],
            "overview_200_met": overview["server_ms"]["p99"] < TARGET_SERVER_P99_MS,
        },
        "settings": {
            "loads": args.loads,
            "requests": args.requests,
            "warmup": args.warmup,
            "documents_added": published,
            "quick": args.quick,
        },
        "pages": pages,
        "overview_200": overview,
        "overview_200_kept_rows": cached,
        "machine": before,
        "load_average_after": machine()["load_average"],
    }


def report(result: dict[str, Any]) -> None:
    kb = 1024
    print()
    print(
        f"{'page/size':<36} {'first kB':>9} {'repeat kB':>9} {'wire kB':>8} "
        f"{'FCP p50':>8} {'FCP p95':>8}"
    )
    for name, p in result["pages"].items():
        first, repeat = p["first_visit_bytes"] / kb, p["repeat_visit_bytes"] / kb
        wire, fcp = p["repeat_visit_wire_bytes"] / kb, p["fcp_ms"]
        print(
            f"{name:<36} {first:>9.1f} {repeat:>9.1f} {wire:>8.1f} {fcp['p50']:>8} {fcp['p95']:>8}"
        )
    print()
    for key, what in (("overview_200", "asking the hub"), ("overview_200_kept_rows", "kept rows")):
        o = result[key]
        if o["failed"]:
            print(f"overview of 200 documents ({what}): answers other than 200: {o['failed']}")
        print(
            f"overview of {o['rows']} documents, {what}, {o['requests']} requests (ms): "
            f"server {o['server_ms']}, client wall {o['client_wall_ms']}"
        )
    v = result["verdict"]
    print()
    print(
        f"largest page on a repeat visit: {v['largest_repeat_visit'][0]} "
        f"{v['largest_repeat_visit'][1]} kB vs ≤ {TARGET_REPEAT_KB} kB: "
        f"{'met' if v['largest_repeat_visit_met'] else 'NOT met'}"
    )
    print(
        f"first contentful paint, worst p95: {v['worst_fcp_p95'][0]} {v['worst_fcp_p95'][1]} ms "
        f"vs ≤ {TARGET_FCP_MS} ms: {'met' if v['fcp_met'] else 'NOT met'}"
    )
    print(
        f"overview of 200 documents, server time p99 {v['overview_200_server_p99_ms']} ms vs "
        f"< {TARGET_SERVER_P99_MS} ms: {'met' if v['overview_200_met'] else 'NOT met'}"
    )
    print(
        f"load average before {result['machine']['load_average']}, "
        f"after {result['load_average_after']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="defaults 5 loads, 30 requests, 3 warm-up, desktop"
    )
    parser.add_argument("--loads", type=int, help="repeat visits per page for FCP (20)")
    parser.add_argument("--requests", type=int, help="200-row overview requests (200)")
    parser.add_argument("--warmup", type=int, help="overview requests not timed (10)")
    parser.add_argument(
        "--documents", type=int, default=200, help="documents added for one patient"
    )
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), help="(both)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "page_budget.json")
    args = parser.parse_args(argv)
    defaults = (5, 30, 3, ["desktop"]) if args.quick else (20, 200, 10, list(SIZES))
    for name, default in zip(("loads", "requests", "warmup", "sizes"), defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, default)
    if min(args.loads, args.requests) < 1 or args.warmup < 0 or args.documents < 0:
        parser.error("--loads and --requests must be at least 1, --warmup and --documents ≥ 0")
    result = run(args)
    report(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
