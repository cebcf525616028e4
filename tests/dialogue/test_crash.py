"""A message survives the dialogue service being killed between storing it and answering, and is
not stored twice: the client resends with the same Idempotency-Key and gets the first result.

A real `onerecord dialogue serve` process (SQLite), SIGKILLed after the message is in the
database but before the client has read the answer, then started again on the same database.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from onerecord.dialogue import schema
from onerecord.dialogue.database import make_engine
from onerecord.trust.keys import SigningKey
from tests.dialogue.harness import ADULT, AUDIENCE, ISSUER, Clock, Dialogue, _seed, communication
from tests.support.servers import free_port, serve_in_thread, wait_healthy

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL")


@contextmanager
def _jwks(key: SigningKey) -> Iterator[str]:
    async def jwks(_request: object) -> JSONResponse:
        return JSONResponse({"keys": [key.public_jwk()]})

    with serve_in_thread(Starlette(routes=[Route("/jwks", jwks)])) as url:
        yield f"{url}/jwks"


def _serve(db: str, port: int, jwks_url: str, log: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "onerecord.cli", "dialogue", "serve", "--issuer", ISSUER,
        "--jwks-url", jwks_url, "--db", db, "--port", str(port), "--audience", AUDIENCE,
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log.open("ab"))
    wait_healthy(f"http://127.0.0.1:{port}", proc)
    return proc


def _messages(db: str, text: str) -> list[str]:
    async def read() -> list[str]:
        engine = make_engine(db)
        try:
            async with engine.connect() as conn:
                rows = await conn.execute(
                    select(schema.message.c.id).where(schema.message.c.text == text)
                )
                return [r.id for r in rows]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_a_message_stored_before_a_crash_is_given_back_once_on_resend(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'dialogue.db'}"
    asyncio.run(_seed(db, None))
    sts_key = SigningKey.generate(kid="sts-crash")
    port = free_port()
    text = "Sendt rett før tjenesten stoppet"
    body = json.dumps(communication(ADULT, text, category="contact-office", fee=None))
    key = "portal-form-7c1d2e3f4a5b"
    with _jwks(sts_key) as jwks_url:
        url = f"http://127.0.0.1:{port}"
        client = Dialogue(url, sts_key, Clock(), db, None)
        me = client.citizen(ADULT)
        target = f"{client.fhir}/Communication"
        proc = _serve(db, port, jwks_url, tmp_path / "dialogue.log")
        try:
            # Send, and do not read the answer: the service is killed before the client does.
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            headers = {
                **me.headers("POST", target),
                "Content-Type": "application/fhir+json",
                "Idempotency-Key": key,
            }
            connection.request("POST", "/fhir/Communication", body=body, headers=headers)
            deadline = time.monotonic() + 15
            while not _messages(db, text):
                assert time.monotonic() < deadline, "the message was never stored"
                time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            connection.close()  # the answer is lost with the connection
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        [stored] = _messages(db, text)

        proc = _serve(db, port, jwks_url, tmp_path / "dialogue.log")
        try:
            headers = {
                **me.headers("POST", target),
                "Content-Type": "application/fhir+json",
                "Idempotency-Key": key,
            }
            again = client.client.post(target, content=body, headers=headers)
            assert again.status_code == 201, again.text
            assert again.json()["id"] == stored  # the first result, not a second message
            assert _messages(db, text) == [stored]
            thread = client.entries(me, "Communication", patient=ADULT)
            assert [m["id"] for m in thread if m["payload"][0]["contentString"] == text] == [stored]
        finally:
            client.client.close()
            proc.terminate()
            proc.wait(10)
