"""A secured hub on 127.0.0.1 in front of fake regions that count the calls they get."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onerecord.hub.app import create_hub_app
from onerecord.hub.security import HubSecurity
from onerecord.hub.settings import HubSettings
from onerecord.trust.access_token import AuthSettings
from onerecord.trust.keys import SigningKey, StaticJwks
from onerecord.trust.replay import MemoryReplayCache
from tests.hub.conftest import make_docref
from tests.hub.tokens import HUB_AUDIENCE, ISSUER, ApiCaller
from tests.support.servers import free_port, serve_in_thread

FHIR = "application/fhir+json"
FNR = "urn:oid:2.16.578.1.12.4.1.4.1"
REGIONS = tuple(f"urn:oid:2.16.578.1.12.4.5.100.{n}" for n in (1, 2, 3, 4))
_BREAKER = re.compile(r'onerecord_hub_breaker_state\{hcid="([^"]+)"\} ([0-9.]+)')


@dataclass
class FakeRegions:
    """Four regions on one server (`/r1/fhir` … `/r4/fhir`); each answers `documents` entries."""

    documents: int = 0
    delay_s: float = 0.0
    seen: Counter[str] = field(default_factory=Counter)
    headers: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def endpoint(request: Request) -> Response:
            region = request.path_params["region"]
            self.seen[region] += 1
            self.headers.append(dict(request.headers))
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            number = region.removeprefix("r")
            patient = request.query_params.get("patient.identifier", "").rpartition("|")[2]
            entries = []
            for i in range(self.documents):
                resource = make_docref(f"2.25.{number}{i}", hcid=REGIONS[int(number) - 1])
                # About the patient asked for, as a source answers (the hub checks the subject).
                resource["subject"] = {"identifier": {"system": FNR, "value": patient}}
                entries.append({"resource": resource})
            body = orjson.dumps({"resourceType": "Bundle", "type": "searchset", "entry": entries})
            return Response(body, media_type=FHIR)

        return Starlette(routes=[Route("/{region}/fhir/{path:path}", endpoint)])

    @property
    def calls(self) -> int:
        return sum(self.seen.values())


@dataclass
class SecuredHub:
    """The running hub, its regions and the test issuer's key."""

    base: str
    regions: FakeRegions
    sts_key: SigningKey
    http: httpx.Client
    """One client shared by the test's threads (a client per request costs an SSL context)."""

    @property
    def search_url(self) -> str:
        return f"{self.base}/fhir/DocumentReference"

    def caller(self) -> ApiCaller:
        return ApiCaller(self.sts_key)

    def breaker_states(self) -> dict[str, float]:
        text = self.http.get(f"{self.base}/metrics").text
        return {hcid: float(state) for hcid, state in _BREAKER.findall(text)}

    def citizen_search(
        self, caller: ApiCaller, token: str, nin: str, **params: str
    ) -> httpx.Response:
        headers = caller.headers(token, self.search_url)
        extra = params.pop("headers", None)
        if isinstance(extra, dict):
            headers.update(extra)
        query: dict[str, Any] = {"patient.identifier": f"{FNR}|{nin}", **params}
        return self.http.get(self.search_url, params=query, headers=headers)


@contextmanager
def secured_hub(tmp_path: Path, regions: FakeRegions, **overrides: Any) -> Iterator[SecuredHub]:
    """Start the fake regions and a hub that trusts a test issuer, with short deadlines."""
    sts_key = SigningKey.generate(kid="sts-test")
    with ExitStack() as stack:
        region_url = stack.enter_context(serve_in_thread(regions.app()))
        directory = tmp_path / "regions.json"
        directory.write_bytes(
            orjson.dumps(
                {
                    "regions": [
                        {
                            "name": f"Region {i}",
                            "home_community_id": hcid,
                            "base_url": f"{region_url}/r{i}/fhir",
                        }
                        for i, hcid in enumerate(REGIONS, start=1)
                    ]
                }
            )
        )
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        values: dict[str, Any] = {
            "directory_file": directory,
            "public_base_url": base,
            "per_region_timeout_s": 2.0,
            "aggregation_deadline_s": 2.5,
            "request_deadline_s": 3.0,
            "breaker_failure_threshold": 3,
            **overrides,
        }
        settings = HubSettings(**values)
        security = HubSecurity(
            auth=AuthSettings(issuer=ISSUER, audience=HUB_AUDIENCE),
            keys=StaticJwks([sts_key]),
            replay=MemoryReplayCache(),
            signing_key=SigningKey.generate(kid="hub-test"),
            assertion_issuer=base,
            public_base_url=base,
        )
        app = create_hub_app(settings, security=security)
        stack.enter_context(serve_in_thread(app, port=port))
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        http = stack.enter_context(httpx.Client(timeout=30, limits=limits))
        yield SecuredHub(base, regions, sts_key, http)
