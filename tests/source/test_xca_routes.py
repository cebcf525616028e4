"""The XCA routes alone, over a gateway that fails: our fault is a SOAP Receiver fault (500)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from onerecord.source.security import SourceCallerLimits
from onerecord.source.settings import SourceSettings
from onerecord.source.xca_app import xca_router
from onerecord.trust.caller_limits import CallerQuota
from onerecord.xca.xml import NS

ENVELOPE = (
    b'<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body>'
    b'<query:AdhocQueryRequest xmlns:query="urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"/>'
    b"</env:Body></env:Envelope>"
)


class BrokenGateway:
    """A gateway with a bug in it."""

    async def query(self, envelope: Any, **_: Any) -> Any:
        raise RuntimeError("a bug")

    async def retrieve(self, envelope: Any, **_: Any) -> Any:
        raise RuntimeError("a bug")


@pytest.mark.anyio
@pytest.mark.parametrize("operation", ["iti38", "iti39"])
async def test_an_error_of_ours_is_a_receiver_fault(operation: str) -> None:
    settings = SourceSettings(dev_mode=True, dev_open_access=True)
    app = FastAPI()
    app.include_router(xca_router(settings))
    app.state.xca_gateway = BrokenGateway()
    app.state.caller_limits = SourceCallerLimits(CallerQuota(concurrency=1, rate_per_s=1, burst=1))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        r = await client.post(
            f"/xca/{operation}",
            content=ENVELOPE,
            headers={"content-type": "application/soap+xml"},
        )
    assert r.status_code == 500
    from lxml import etree

    fault = etree.fromstring(r.content)
    assert fault.findtext(".//env:Code/env:Value", namespaces=NS) == "env:Receiver"
    assert b"a bug" not in r.content
