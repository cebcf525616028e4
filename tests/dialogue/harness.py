"""A real dialogue server on 127.0.0.1 (SQLite or PostgreSQL), tokens as the STS would sign
them, a movable service clock and a seeded GP office with its list."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import httpx

from onerecord.dialogue import Medication, Office, Service
from onerecord.dialogue.app import create_app
from onerecord.dialogue.contacts import ContactRegister
from onerecord.dialogue.database import make_engine, upgrade
from onerecord.dialogue.fhir import CATEGORY_SYSTEM, FEE_EXTENSION, FNR_SYSTEM
from onerecord.dialogue.settings import DialogueSettings
from onerecord.dialogue.store import ListEntry, SqlDialogueStore
from onerecord.trust.access_token import issue_access_token
from onerecord.trust.dpop import make_proof
from onerecord.trust.keys import SigningKey, StaticJwks
from tests.sts.fakes import attestation_details, synthetic_nin
from tests.support.servers import free_port, serve_in_thread

ISSUER = "https://sts.dialogue.test"
AUDIENCE = "urn:onerecord:dialogue"
ORG = "974600013"
OTHER_ORG = "974600021"
START = datetime(2027, 3, 20, 9, 0, tzinfo=UTC)
"""The service clock at the start of a module (tokens keep the real time)."""


def born(year: int, month: int = 1, day: int = 10) -> str:
    return synthetic_nin(date(year, month, day))


ADULT = born(1980)
PARENT = born(1985, 5, 5)
CHILD_8 = born(2019)
TEEN_13 = born(2014)
YOUNG_17 = born(2010)
KID_15 = born(2012)
PROTECTED_CHILD = born(2020, 2, 2)
ELDER = born(1940)
STRANGER = born(1970, 7, 7)
DOCTOR = born(1975, 3, 3)
OTHER_DOCTOR = born(1976, 4, 4)


@dataclass
class Clock:
    """The service's wall clock, set by the test."""

    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Token:
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
class Dialogue:
    """The running service, its database and its clock."""

    url: str
    sts_key: SigningKey
    clock: Clock
    db_url: str
    db_schema: str | None
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    @property
    def fhir(self) -> str:
        return f"{self.url}/fhir"

    def _token(self, pid: str, claims: dict[str, Any]) -> Token:
        key = SigningKey.generate()
        now = int(time.time())
        value = issue_access_token(
            key=self.sts_key,
            issuer=ISSUER,
            audience=AUDIENCE,
            subject=secrets.token_hex(4),
            jkt=key.thumbprint(),
            scope=["openid"],
            now=now,
            claims={"helseid://claims/identity/pid": pid, **claims},
        )
        return Token(value, key)

    def citizen(self, nin: str, *represents: tuple[str, str], level: str = "4") -> Token:
        """A citizen at level 4 with the representations the STS would list."""
        rep = [{"nin": n, "relation": r} for n, r in represents]
        return self._token(
            nin,
            {"helseid://claims/identity/security_level": level, "onerecord:representation": rep},
        )

    def staff(self, nin: str = DOCTOR, *, office: str = ORG, hpr: str | None = "9144889") -> Token:
        """A GP at `office` with an HPR number (health personnel, security level 4)."""
        details = attestation_details(
            **{"practitioner.point_of_care.id": office, "practitioner.legal_entity.id": office}
        )
        details["practitioner"]["identifier"] = {
            "id": nin,
            "system": FNR_SYSTEM,
            "name": "Kari Fastlege",
        }
        if hpr is not None:
            details["practitioner"]["hpr_nr"] = {
                "id": hpr,
                "system": "urn:oid:2.16.578.1.12.4.1.4.4",
            }
        return self._token(
            nin,
            {
                "helseid://claims/identity/security_level": "4",
                "nhn:tillitsrammeverk:parameters": details,
                "toa": int(time.time()) - 60,
            },
        )

    # -- requests ----------------------------------------------------------------------------

    def get(self, token: Token, path: str, **params: str) -> httpx.Response:
        url = f"{self.fhir}/{path}"
        return self.client.get(url, params=params, headers=token.headers("GET", url))

    def post(
        self, token: Token, path: str, body: Any, *, raw: bytes | None = None
    ) -> httpx.Response:
        url = f"{self.fhir}/{path}"
        headers = {**token.headers("POST", url), "Content-Type": "application/fhir+json"}
        if raw is not None:
            return self.client.post(url, content=raw, headers=headers)
        return self.client.post(url, json=body, headers=headers)

    def entries(self, token: Token, path: str, **params: str) -> list[dict[str, Any]]:
        r = self.get(token, path, **params)
        assert r.status_code == 200, r.text
        return [e["resource"] for e in r.json()["entry"]]


def communication(
    patient: str | None,
    text: str,
    *,
    category: str | None = "e-consultation",
    fee: bool | None = True,
    in_response_to: str | None = None,
    priority: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Communication", "payload": [{"contentString": text}]}
    if patient is not None:
        body["subject"] = {"identifier": {"system": FNR_SYSTEM, "value": patient}}
    if category is not None:
        body["category"] = [{"coding": [{"system": CATEGORY_SYSTEM, "code": category}]}]
    if fee is not None:
        body["extension"] = [{"url": FEE_EXTENSION, "valueBoolean": fee}]
    if in_response_to is not None:
        body["inResponseTo"] = [{"reference": f"Communication/{in_response_to}"}]
    if priority is not None:
        body["priority"] = priority
    return body


async def _seed(url: str, schema: str | None) -> None:
    engine = make_engine(url, schema=schema)
    try:
        await upgrade(engine)
        store = SqlDialogueStore(engine)
        await store.put_office(
            Office(ORG, "Sentrum legekontor", "22 33 44 55", frozenset(Service), None)
        )
        await store.put_office(
            Office(OTHER_ORG, "Bakkehaugen legesenter", "22 11 11 11", frozenset(Service), None)
        )
        for nin in (ADULT, PARENT, CHILD_8, TEEN_13, YOUNG_17, KID_15, ELDER, STRANGER):
            await store.put_list_entry(ListEntry(nin, ORG, "Kari Fastlege", False))
        await store.put_list_entry(ListEntry(PROTECTED_CHILD, ORG, "Kari Fastlege", True))
        for nin in (ADULT, CHILD_8):
            await store.put_medication(
                Medication(
                    f"med-{nin[-5:]}-1", nin, ORG, "Metformin 500 mg", "1 tablett morgen og kveld"
                )
            )
            await store.put_medication(
                Medication(
                    f"med-{nin[-5:]}-2", nin, ORG, "Atorvastatin 20 mg", "1 tablett om kvelden"
                )
            )
    finally:
        await engine.dispose()


@contextmanager
def running_dialogue(
    db_url: str, db_schema: str | None, *, contacts: ContactRegister | None = None, **more: Any
) -> Iterator[Dialogue]:
    """Seed the database, then serve the dialogue service on 127.0.0.1 until the block ends
    (`more`: further settings, `contacts`: the contact register for e-mail notices)."""
    asyncio.run(_seed(db_url, db_schema))
    sts_key = SigningKey.generate(kid="sts-dialogue")
    clock = Clock()
    port = free_port()
    settings = DialogueSettings(
        db_url=db_url,
        db_schema=db_schema,
        public_base_url=f"http://127.0.0.1:{port}",
        issuer=ISSUER,
        jwks_url=f"{ISSUER}/jwks",
        audience=AUDIENCE,
        **more,
    )
    app = create_app(settings, keys=StaticJwks([sts_key]), clock=clock, contacts=contacts)
    with serve_in_thread(app, port) as url:
        dialogue = Dialogue(url, sts_key, clock, db_url, db_schema)
        try:
            yield dialogue
        finally:
            dialogue.client.close()
