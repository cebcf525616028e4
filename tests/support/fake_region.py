"""A scripted fake region as a real HTTP server process: `python -m tests.support.fake_region`.

One process serves several regions, each under `/<name>/fhir/…`, answering what a JSON script
says (issue 10 C: regions that misbehave). Behaviours (`kind`):

- `bundle`: a searchset Bundle of `entries` (resources), optionally with `headers`;
- `raw`: `status`, `body` (text) and `headers` as given;
- `endless-next`: each page holds one DocumentReference from `entry` (its uniqueId numbered
  by page) and a `next` link to the following page, without end;
- `oversized`: `bytes` bytes of a JSON string, with Content-Length, or chunked when `chunked`;
- `slow`: a searchset Bundle of `entries` after `seconds`.

`GET /_seen` answers how many requests each region saw; `GET /jwks` answers the script's
`jwks` object after `jwks_delay_s` (a slow token issuer). `GET /healthz` answers 200.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

FHIR = "application/fhir+json"


def searchset(entries: list[dict[str, Any]], next_url: str | None = None) -> bytes:
    links = [{"relation": "self", "url": "self"}]
    if next_url is not None:
        links.append({"relation": "next", "url": next_url})
    # The standard library's json: it nests deeper than orjson, as a faulty region may.
    return json_bytes(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "link": links,
            "entry": [{"resource": r} for r in entries],
        }
    )


def json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


def build_app(script: dict[str, Any], port: int) -> Starlette:
    regions: dict[str, dict[str, Any]] = script.get("regions", {})
    seen: Counter[str] = Counter()

    async def region(request: Request) -> Response:
        name = request.path_params["name"]
        seen[name] += 1
        plan = regions.get(name)
        if plan is None:
            return Response(b"no such region", status_code=404)
        kind = plan["kind"]
        headers = plan.get("headers", {})
        if kind == "bundle":
            return Response(searchset(plan["entries"]), media_type=FHIR, headers=headers)
        if kind == "raw":
            return Response(
                plan["body"].encode(), status_code=plan["status"], media_type=FHIR, headers=headers
            )
        if kind == "endless-next":
            page = int(request.query_params.get("page", "1"))
            entry = copy.deepcopy(plan["entry"])
            entry["id"] = f"{entry['id']}-{page}"
            entry["masterIdentifier"]["value"] += f".{page}"
            base = f"http://127.0.0.1:{port}/{name}/fhir"
            body = searchset([entry], f"{base}/DocumentReference?page={page + 1}")
            return Response(body, media_type=FHIR)
        if kind == "oversized":
            size = int(plan["bytes"])
            if plan.get("chunked"):

                async def chunks() -> AsyncIterator[bytes]:
                    yield b'{"resourceType": "Bundle", "padding": "'
                    for _ in range(size // 65536 + 1):
                        yield b"x" * 65536
                    yield b'"}'

                return StreamingResponse(chunks(), media_type=FHIR)
            return Response(b'"' + b"x" * size + b'"', media_type=FHIR)
        if kind == "slow":
            await asyncio.sleep(float(plan["seconds"]))
            return Response(searchset(plan.get("entries", [])), media_type=FHIR)
        return Response(f"unknown kind {kind}".encode(), status_code=500)

    async def seen_counts(_request: Request) -> Response:
        return Response(orjson.dumps(dict(seen)), media_type="application/json")

    async def jwks(_request: Request) -> Response:
        await asyncio.sleep(float(script.get("jwks_delay_s", 0)))
        keys = orjson.dumps(script.get("jwks", {"keys": []}))
        return Response(keys, media_type="application/json")

    async def healthz(_request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/_seen", seen_counts),
            Route("/jwks", jwks),
            Route("/{name}/fhir/{path:path}", region),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--script", type=Path, required=True)
    args = parser.parse_args()
    script = orjson.loads(args.script.read_bytes())
    uvicorn.run(build_app(script, args.port), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
