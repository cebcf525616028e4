"""The clinic's work list with its real parts on 127.0.0.1: the STS (a generated synthetic
population, the portal and a test client registered, the dialogue audience served), the
dialogue service (SQLite, a movable service clock, the GP's office seeded with its list) and
the portals (hcp portal with `dialogue_url`), each a uvicorn server in a thread.

Citizens' requests are made over the dialogue service's FHIR API with tokens the STS issues
(the test-user grant), as the citizen portal would; nothing here runs an event loop in the
calling thread (browser test modules may use it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
from collections.abc import Coroutine, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

from onerecord.demo import staff_manifest
from onerecord.dialogue import Medication, Office, Service
from onerecord.dialogue.app import create_app
from onerecord.dialogue.database import make_engine, upgrade
from onerecord.dialogue.settings import DialogueSettings
from onerecord.dialogue.store import ListEntry, SqlDialogueStore
from onerecord.hub.app import create_hub_app
from onerecord.hub.directory import RegionDirectory
from onerecord.hub.security import HubSecurity
from onerecord.hub.settings import HubSettings
from onerecord.portals import PortalSettings, create_portal_app
from onerecord.search_client import fetch_token
from onerecord.sts import ClientConfig, StsSettings, create_sts_app
from onerecord.sts.registers import PopulationRegisters
from onerecord.synth.population import Population, generate_population
from onerecord.trust.access_token import AuthSettings
from onerecord.trust.dpop import make_proof
from onerecord.trust.keys import SigningKey, StaticJwks
from onerecord.trust.replay import MemoryReplayCache
from tests.dialogue.harness import Clock, communication
from tests.hub.conftest import HCID_HSO, make_region
from tests.support.servers import free_port, serve_in_thread

__all__ = ["AUDIENCE", "ClinicStack", "running_clinic"]

AUDIENCE = "urn:onerecord:dialogue"
PORTAL_CLIENT = "onerecord-portal"
TEST_CLIENT = "dialogue-tests"
_T = TypeVar("_T")


def _off_thread(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run `coro` to the end in a thread of its own (no event loop in the caller's thread)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@dataclass
class CitizenToken:
    value: str
    key: SigningKey

    def headers(self, method: str, url: str) -> dict[str, str]:
        return {
            "Authorization": f"DPoP {self.value}",
            "DPoP": make_proof(
                self.key, htm=method, htu=url.split("?", 1)[0], access_token=self.value
            ),
        }


@dataclass
class ClinicStack:
    """The running parts and the people of the synthetic population the tests use."""

    sts: str
    dialogue: str
    portal: str
    population: Population
    clock: Clock
    test_key: SigningKey
    db_url: str
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    @property
    def gp(self) -> str:
        """The GP (staff key `gp`): works at the office the dialogue service knows."""
        return self.population.staff["gp"].nin.value

    @property
    def office(self) -> str:
        return str(self.population.staff["gp"].organisation)

    @property
    def other_doctor(self) -> str:
        """A doctor at another organisation (staff key `doctor`)."""
        return self.population.staff["doctor"].nin.value

    def patient(self, key: str = "adult") -> str:
        return self.population.cast[key].nin.value

    def citizen(self, nin: str) -> CitizenToken:
        key = SigningKey.generate(kid=f"dpop-{nin[-4:]}")

        async def get() -> str:
            async with httpx.AsyncClient(timeout=30) as http:
                return await fetch_token(
                    http,
                    sts_url=self.sts,
                    client_id=TEST_CLIENT,
                    client_key=self.test_key,
                    dpop_key=key,
                    subject=nin,
                    audience=AUDIENCE,
                )

        return CitizenToken(_off_thread(get()), key)

    def post(self, token: CitizenToken, path: str, body: Any) -> httpx.Response:
        url = f"{self.dialogue}/fhir/{path}"
        headers = {**token.headers("POST", url), "Content-Type": "application/fhir+json"}
        return self.client.post(url, json=body, headers=headers)

    def get(self, token: CitizenToken, path: str, **params: str) -> httpx.Response:
        url = f"{self.dialogue}/fhir/{path}"
        return self.client.get(url, params=params, headers=token.headers("GET", url))

    def e_consultation(self, nin: str, text: str) -> dict[str, Any]:
        """The citizen sends an e-consultation over the FHIR API; return the Communication."""
        r = self.post(self.citizen(nin), "Communication", communication(nin, text))
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    def renewal(self, nin: str, medication: str, note: str) -> dict[str, Any]:
        r = self.post(
            self.citizen(nin),
            "Task",
            {
                "resourceType": "Task",
                "status": "requested",
                "intent": "order",
                "code": {
                    "coding": [
                        {"system": "urn:onerecord:dialogue:request", "code": "prescription-renewal"}
                    ]
                },
                "for": {"identifier": {"system": "urn:oid:2.16.578.1.12.4.1.4.1", "value": nin}},
                "focus": {"reference": f"MedicationRequest/{medication}"},
                "note": [{"text": note}],
            },
        )
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    def audit_events(self, patient: str) -> list[dict[str, Any]]:
        """The dialogue service's audit records of `patient` (as stored)."""
        from onerecord.audit import SqlAuditSink

        async def read() -> list[dict[str, Any]]:
            engine = make_engine(self.db_url)
            try:
                sink = SqlAuditSink(engine, "onerecord-dialogue", group_commit=False)
                records = await sink.records([patient])
                return [
                    {
                        "action": r.action.value,
                        "query": r.query,
                        "hpr": r.practitioner.hpr if r.practitioner else None,
                        "citizen": r.citizen is not None,
                    }
                    for r in records
                ]
            finally:
                await engine.dispose()

        return _off_thread(read())


async def _seed(db_url: str, population: Population) -> None:
    gp = population.staff["gp"]
    office = str(gp.organisation)
    engine = make_engine(db_url)
    try:
        await upgrade(engine)
        store = SqlDialogueStore(engine)
        await store.put_office(
            Office(office, "Sentrum legekontor", "22 33 44 55", frozenset(Service), None)
        )
        for key in ("adult", "elderly", "parent", "proxy_holder"):
            nin = population.cast[key].nin.value
            await store.put_list_entry(ListEntry(nin, office, gp.name, False))
            await store.put_medication(
                Medication(f"med-{key}-1", nin, office, "Metformin 500 mg", "1 tablett x 2")
            )
    finally:
        await engine.dispose()


@contextmanager
def running_clinic(workdir: Path, clock: Clock | None = None) -> Iterator[ClinicStack]:
    """Start the STS, the dialogue service and the portals; stop them when the block ends."""
    population = generate_population(seed=11, citizens=10, reference_date=datetime.now(UTC).date())
    sts_port, dialogue_port, portal_port, hub_port = (free_port() for _ in range(4))
    sts_url = f"http://127.0.0.1:{sts_port}"
    dialogue_url = f"http://127.0.0.1:{dialogue_port}"
    portal_url = f"http://127.0.0.1:{portal_port}"
    hub_url = f"http://127.0.0.1:{hub_port}"
    portal_key, test_key = SigningKey.generate(kid="portal"), SigningKey.generate(kid="tests")
    sts_key = SigningKey.generate(kid="sts-clinic")
    sts = create_sts_app(
        StsSettings(
            issuer=sts_url,
            dev_mode=True,
            allowed_audiences=("onerecord:hub", AUDIENCE),
            default_audience="onerecord:hub",
            clients={
                PORTAL_CLIENT: ClientConfig(
                    jwk=portal_key.public_jwk(),
                    redirect_uris=(
                        f"{portal_url}/helsepersonell/innlogget",
                        f"{portal_url}/innbygger/innlogget",
                    ),
                    name="onerecord portals",
                ),
                TEST_CLIENT: ClientConfig(jwk=test_key.public_jwk()),
            },
        ),
        registers=PopulationRegisters(population),
        key=sts_key,
    )
    db_url = f"sqlite:///{workdir / 'dialogue.db'}"
    _off_thread(_seed(db_url, population))
    clock = clock or Clock(datetime.now(UTC))
    dialogue = create_app(
        DialogueSettings(
            db_url=db_url,
            public_base_url=dialogue_url,
            issuer=sts_url,
            jwks_url=f"{sts_url}/jwks",
            audience=AUDIENCE,
        ),
        keys=StaticJwks([sts_key]),
        clock=clock,
    )
    # The national hub, its one region switched off: the citizen's access log from the regions
    # is empty, and the clinic's reads come from the dialogue service beside it.
    hub = create_hub_app(
        HubSettings(public_base_url=hub_url),
        directory=RegionDirectory.from_regions(
            [make_region(HCID_HSO, base_url="http://127.0.0.1:9/fhir", enabled=False)]
        ),
        security=HubSecurity(
            auth=AuthSettings(issuer=sts_url, audience="onerecord:hub"),
            keys=StaticJwks([sts_key]),
            replay=MemoryReplayCache(),
            signing_key=SigningKey.generate(kid="hub-clinic"),
            assertion_issuer=hub_url,
            public_base_url=hub_url,
        ),
    )
    key_file = workdir / "portal-client.jwk.json"
    key_file.write_text(json.dumps(portal_key.private_jwk()))
    portal = create_portal_app(
        PortalSettings(
            public_url=portal_url,
            hub_fhir=f"{hub_url}/fhir",
            sts_url=sts_url,
            client_id=PORTAL_CLIENT,
            client_key_file=key_file,
            dev_mode=True,
            staff=staff_manifest(population),
            dialogue_url=dialogue_url,
            override_log_file=workdir / "portal" / "overrides.jsonl",
            notice_outbox_dir=workdir / "portal" / "outbox",
        )
    )
    with ExitStack() as stack:
        stack.enter_context(serve_in_thread(sts, sts_port))
        stack.enter_context(serve_in_thread(hub, hub_port))
        stack.enter_context(serve_in_thread(dialogue, dialogue_port))
        stack.enter_context(serve_in_thread(portal, portal_port))
        running = ClinicStack(
            sts_url, dialogue_url, portal_url, population, clock, test_key, db_url
        )
        time.sleep(0.1)
        try:
            yield running
        finally:
            running.client.close()
