"""Lift a citizen's document block from a browser test module (shared network, `finally`).

The block is lifted at the hub as the citizen, in a thread of its own: a browser test module's
main thread runs no event loop (tests/browser/conftest.py).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import httpx

from onerecord.search_client import hub_change_control
from tests.network.conftest import Network

__all__ = ["lift_document_block"]


def lift_document_block(network: Network, patient: str, unique_id: str, hcid: str) -> None:
    """Remove `patient`'s block of the document `unique_id` in the region `hcid` (idempotent)."""

    def call() -> int:
        citizen = network.citizen(patient)

        async def delete() -> httpx.Response:
            async with httpx.AsyncClient(timeout=30) as http:
                return await hub_change_control(
                    http,
                    citizen,
                    hub_base=str(network.manifest["hub"]["base_url"]),
                    method="DELETE",
                    path=f"document-blocks/{unique_id}",
                    home_community_id=hcid,
                )

        return asyncio.run(delete()).status_code

    with ThreadPoolExecutor(1) as pool:
        status = pool.submit(call).result()
    assert status == 200, f"the block of {unique_id} was not lifted ({status})"
