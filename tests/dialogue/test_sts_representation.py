"""Representation from the STS to the dialogue service, both real on 127.0.0.1 (issue 15).

The STS (the fake population of tests/sts) signs each citizen's token for the dialogue's
audience; the dialogue service trusts that STS's key and decides each action by its own rules.
Each rule of docs/dialogue.md "Who may act for whom" once, end to end:
- a parent books for a child of 13 at the parent's address (the dialogue token lists the child);
- that parent may not write an e-consultation or read the messages of the child of 13;
- a parent of a child living elsewhere (no parent at the child's address) is refused;
- a parent with a protected address represents nobody, and a protected child is not represented;
- a proxy books for the adult who gave the fullmakt;
- the record's token (another audience) is no key to the dialogue (and the dialogue's none to
  the record: tests/sts/test_sts.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from onerecord.dialogue import Office, Service, Slot, VisitMode
from onerecord.dialogue.app import create_app
from onerecord.dialogue.database import make_engine, upgrade
from onerecord.dialogue.fhir import FNR_SYSTEM
from onerecord.dialogue.settings import DialogueSettings
from onerecord.dialogue.store import ListEntry, SqlDialogueStore
from onerecord.sts import StsSettings, create_sts_app
from onerecord.sts.settings import ClientConfig
from onerecord.trust.keys import SigningKey, StaticJwks
from tests.dialogue.harness import Clock, Token, communication
from tests.sts.fakes import (
    CHILD_8,
    CHILD_13,
    CHILD_AWAY,
    GIVER,
    PARENT,
    PROTECTED,
    PROTECTED_CHILD,
    client_assertion,
    make_population,
)
from tests.support.servers import free_port, serve_in_thread

AUDIENCE = "urn:onerecord:dialogue"
ORG = "974600013"
GRANT = "urn:onerecord:params:oauth:grant-type:test-user"


@dataclass
class Network:
    sts: str
    fhir: str
    client_key: SigningKey
    client: httpx.Client

    def token(self, nin: str, audience: str = AUDIENCE) -> Token:
        from onerecord.trust.dpop import make_proof

        form = {
            "grant_type": GRANT,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": client_assertion(self.client_key, "ehr", self.sts),
            "subject": nin,
            "resource": audience,
        }
        proof = make_proof(self.client_key, htm="POST", htu=f"{self.sts}/token")
        r = self.client.post(f"{self.sts}/token", data=form, headers={"DPoP": proof})
        assert r.status_code == 200, r.text
        return Token(str(r.json()["access_token"]), self.client_key)

    def post(self, token: Token, path: str, body: object) -> httpx.Response:
        url = f"{self.fhir}/{path}"
        headers = {**token.headers("POST", url), "Content-Type": "application/fhir+json"}
        return self.client.post(url, json=body, headers=headers)

    def get(self, token: Token, path: str, **params: str) -> httpx.Response:
        url = f"{self.fhir}/{path}"
        return self.client.get(url, params=params, headers=token.headers("GET", url))


SLOTS = tuple(f"slot-{i}" for i in range(6))


async def _seed(db_url: str, now: datetime) -> None:
    engine = make_engine(db_url)
    try:
        await upgrade(engine)
        store = SqlDialogueStore(engine)
        await store.put_office(Office(ORG, "Sentrum legekontor", "22 33 44 55", frozenset(Service)))
        for nin in (PARENT, CHILD_8, CHILD_13, CHILD_AWAY, GIVER, PROTECTED):
            await store.put_list_entry(ListEntry(nin, ORG, "Kari Fastlege", False))
        await store.put_list_entry(ListEntry(PROTECTED_CHILD, ORG, "Kari Fastlege", True))
        for i, slot_id in enumerate(SLOTS):
            start = now + timedelta(days=2, hours=i)
            await store.add_slot(
                Slot(slot_id, ORG, start, start + timedelta(minutes=20), VisitMode.IN_PERSON)
            )
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    now = datetime.now(UTC).replace(microsecond=0)
    db: Path = tmp_path_factory.mktemp("dialogue-sts") / "dialogue.db"
    asyncio.run(_seed(f"sqlite:///{db}", now))
    sts_port, dialogue_port = free_port(), free_port()
    sts_base = f"http://127.0.0.1:{sts_port}"
    client_key, sts_key = SigningKey.generate(kid="ehr"), SigningKey.generate(kid="sts")
    sts_app = create_sts_app(
        StsSettings(
            issuer=sts_base,
            dev_mode=True,
            clients={"ehr": ClientConfig(jwk=client_key.public_jwk(), redirect_uris=())},
            allowed_audiences=("nhn:phr", AUDIENCE),
        ),
        registers=make_population(),
        key=sts_key,
    )
    settings = DialogueSettings(
        db_url=f"sqlite:///{db}",
        public_base_url=f"http://127.0.0.1:{dialogue_port}",
        issuer=sts_base,
        jwks_url=f"{sts_base}/jwks",
        audience=AUDIENCE,
    )
    dialogue_app = create_app(settings, keys=StaticJwks([sts_key]), clock=Clock(now))
    with (
        serve_in_thread(sts_app, sts_port),
        serve_in_thread(dialogue_app, dialogue_port) as url,
        httpx.Client(timeout=30) as client,
    ):
        yield Network(sts_base, f"{url}/fhir", client_key, client)


def _booking(patient: str, slot: str) -> dict[str, object]:
    return {
        "resourceType": "Appointment",
        "status": "booked",
        "slot": [{"reference": f"Slot/{slot}"}],
        "participant": [{"actor": {"identifier": {"system": FNR_SYSTEM, "value": patient}}}],
    }


def test_a_parent_books_for_a_child_of_13_through_the_sts_token(network: Network) -> None:
    parent = network.token(PARENT)
    booked = network.post(parent, "Appointment", _booking(CHILD_13, SLOTS[0]))
    assert booked.status_code == 201, booked.text
    listed = network.get(parent, "Appointment", patient=CHILD_13)
    assert listed.status_code == 200
    assert [e["resource"]["id"] for e in listed.json()["entry"]] == [booked.json()["id"]]


def test_the_parent_of_a_child_of_13_writes_no_e_consultation_and_reads_no_messages(
    network: Network,
) -> None:
    parent = network.token(PARENT)
    econ = network.post(parent, "Communication", communication(CHILD_13, "Vondt i magen"))
    assert econ.status_code == 403, econ.text
    contact = communication(CHILD_13, "Flytte timen", category="contact-office", fee=None)
    assert network.post(parent, "Communication", contact).status_code == 403
    assert network.get(parent, "Communication", patient=CHILD_13).status_code == 403
    # The child under 12 keeps the full set (a message to the office).
    ok = communication(CHILD_8, "Spørsmål om time", category="contact-office", fee=None)
    assert network.post(parent, "Communication", ok).status_code == 201


def test_a_child_with_no_parent_at_the_address_is_not_represented(network: Network) -> None:
    parent = network.token(PARENT)
    r = network.post(parent, "Appointment", _booking(CHILD_AWAY, SLOTS[1]))
    assert r.status_code == 403, r.text


def test_a_protected_address_on_either_side_represents_nobody(network: Network) -> None:
    protected_parent = network.token(PROTECTED)
    r = network.post(protected_parent, "Appointment", _booking(PROTECTED_CHILD, SLOTS[1]))
    assert r.status_code == 403, r.text
    # The protected child's slot stays free for anyone on the list.
    free = network.get(network.token(PARENT), "Slot", patient=PARENT)
    assert SLOTS[1] in [e["resource"]["id"] for e in free.json()["entry"]]


def test_the_records_token_is_no_key_to_the_dialogue(network: Network) -> None:
    record = network.token(PARENT, audience="nhn:phr")
    assert network.post(record, "Appointment", _booking(CHILD_13, SLOTS[2])).status_code == 401


def test_a_proxy_books_for_the_adult_who_gave_the_fullmakt(network: Network) -> None:
    holder = network.token(PARENT)
    r = network.post(holder, "Appointment", _booking(GIVER, SLOTS[3]))
    assert r.status_code == 201, r.text
