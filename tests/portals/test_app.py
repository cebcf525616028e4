"""The portal app on its own (no network): cookies, CSRF, error pages, escaping."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from onerecord.portals import PortalSettings, create_portal_app
from onerecord.trust.errors import DevelopmentKeyRefused
from onerecord.trust.keys import SigningKey
from tests.portals.pages import csrf_token, set_cookie_header

pytestmark = pytest.mark.anyio

STAFF = {
    "doctor": {
        "nin": "01818012337",
        "name": "Kari <b>Lege</b>",
        "category": "LE",
        "legal_entity": "974000016",
        "point_of_care": "974000024",
        "organisation": "Testsykehuset HF",
        "department": None,
    }
}


def _key_file(folder: Path, kid: str) -> Path:
    path = folder / f"{kid}.jwk.json"
    path.write_text(json.dumps(SigningKey.generate(kid=kid).private_jwk()))
    return path


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = PortalSettings(
        public_url="https://portal.example",
        session_secret="a-production-secret-of-some-length",
        client_key_file=_key_file(tmp_path, "portal-test"),
        staff=STAFF,
    )
    app = create_portal_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://portal.example") as c:
        yield c


def test_development_client_key_refused_outside_dev_mode(tmp_path: Path) -> None:
    settings = PortalSettings(
        session_secret="a-production-secret-of-some-length",
        client_key_file=_key_file(tmp_path, "dev-client"),
    )
    with pytest.raises(DevelopmentKeyRefused):
        create_portal_app(settings)


async def test_session_cookie_is_secure_httponly_lax(client: httpx.AsyncClient) -> None:
    page = await client.get("/helsepersonell/logg-inn")
    assert page.status_code == 200
    cookie = set_cookie_header(page).lower()
    for flag in ("secure", "httponly", "samesite=lax", "path=/"):
        assert flag in cookie, cookie
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"


async def test_names_are_escaped(client: httpx.AsyncClient) -> None:
    page = await client.get("/helsepersonell/logg-inn")
    assert "Kari &lt;b&gt;Lege&lt;/b&gt;" in page.text
    assert "<b>Lege</b>" not in page.text


async def test_post_without_or_with_wrong_csrf_token_is_403(client: httpx.AsyncClient) -> None:
    page = await client.get("/helsepersonell/logg-inn")
    token = csrf_token(page)
    missing = await client.post("/helsepersonell/logg-inn", data={"staff": "doctor"})
    assert missing.status_code == 403
    assert "sikkerhetsnøkkelen" in missing.text
    wrong = await client.post(
        "/helsepersonell/logg-inn", data={"staff": "doctor", "csrf_token": token + "x"}
    )
    assert wrong.status_code == 403
    # With the right token the login goes through and the session id changes.
    ok = await client.post(
        "/helsepersonell/logg-inn", data={"staff": "doctor", "csrf_token": token}
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/helsepersonell/pasient"
    assert set_cookie_header(ok) != set_cookie_header(page)


async def test_forged_cookie_is_not_a_session(client: httpx.AsyncClient) -> None:
    client.cookies.set("onerecord_portal", "made-up.0000", domain="portal.example")
    page = await client.get("/helsepersonell/pasient")
    assert page.status_code == 401
    assert "Logg inn på nytt" in page.text


async def test_error_pages_say_what_to_do_without_a_trace(client: httpx.AsyncClient) -> None:
    missing = await client.get("/finnes-ikke")
    assert missing.status_code == 404
    assert "Siden finnes ikke" in missing.text and "Traceback" not in missing.text
    assert missing.headers["content-type"].startswith("text/html")
    wrong_method = await client.delete("/helsepersonell/logg-inn")
    assert wrong_method.status_code == 405
    assert "Hva du kan gjøre" in wrong_method.text


async def test_unknown_staff_is_refused_with_a_message(client: httpx.AsyncClient) -> None:
    token = csrf_token(await client.get("/helsepersonell/logg-inn"))
    r = await client.post("/helsepersonell/logg-inn", data={"staff": "nobody", "csrf_token": token})
    assert r.status_code == 400
    assert "Velg en helsearbeider" in r.text


def test_portal_serve_refuses_the_dev_secret_without_dev(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from onerecord.cli import app

    manifest = {
        "hub": {"fhir_base": "http://127.0.0.1:1/fhir"},
        "sts": {"issuer": "http://127.0.0.1:2"},
        "client": {"client_id": "c", "key_file": str(_key_file(tmp_path, "dev-client"))},
    }
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    result = CliRunner().invoke(app, ["portal", "serve", "--manifest", str(path)])
    assert result.exit_code == 2
    assert "session secret" in result.output
