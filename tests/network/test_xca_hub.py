"""The hub as XCA initiating gateway: one region of the real demo asked over ITI-38/39 with SAML.

One network (`onerecord demo` with ONERECORD_DEMO_XCA_REGION) for the module. Every region is
also an XCA responding gateway, so the directory can switch the same region between `xca` and
`mhd` at run time: the merged overview must be the same over either wire.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import time
from collections.abc import Iterator, Sequence
from html import unescape
from typing import Any

import httpx
import orjson
import pytest

from onerecord.mhd import build_provide_bundle
from onerecord.search_client import HubSession
from onerecord.trust.publish_proof import PUBLISH_PROOF_HEADER, make_publish_proof
from tests.factories import make_entry
from tests.network.conftest import Network, running_network
from tests.network.test_network import doc_key, documents, follow, search, statuses
from tests.portals.pages import TableRow, table_rows
from tests.portals.test_portal_network import OVERVIEW, Browser, _open_overview

pytestmark = pytest.mark.slow

XCA_INDEX = 0
"""The region asked over XCA (ONERECORD_DEMO_XCA_REGION=1)."""


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    env = {"ONERECORD_DEMO_XCA_REGION": str(XCA_INDEX + 1)}
    yield from running_network(tmp_path_factory.mktemp("xca-network"), env)


def _hcid(doc: dict[str, Any]) -> str | None:
    for ext in doc.get("extension", []):
        if ext.get("url", "").lower().endswith("homecommunityid"):
            return str(ext["valueIdentifier"]["value"])
    return None


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """The document as merged, but for what the XCA wire cannot carry.

    A placeholder's id is random on both wires, and the obfuscated ebRIM entry masks the class
    code (no category); ebRIM times are HL7 DTM, to the second (submission time).
    """
    if doc.get("masterIdentifier") is None:
        return {k: v for k, v in doc.items() if k not in ("id", "category")}
    out = json.loads(json.dumps(doc))
    for ext in out.get("extension", []):
        if "valueInstant" in ext:
            ext["valueInstant"] = re.sub(r"\.\d+(?=[+Z-])", "", ext["valueInstant"])
    return dict(out)


def _overview(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(
        (_comparable(d) for d in documents(bundle)),
        key=lambda d: (str(d.get("masterIdentifier")), d.get("date") or "", str(d)),
    )


def _set_protocol(network: Network, protocol: str, **fields: str) -> None:
    hcid = network.hcid(XCA_INDEX)
    url = network.layout.region_url(XCA_INDEX)

    def change(regions: list[dict[str, Any]]) -> None:
        entry = next(r for r in regions if r["home_community_id"] == hcid)
        for key in ("protocol", "iti38_url", "iti39_url"):
            entry.pop(key, None)
        entry["audience"] = hcid
        if protocol == "xca":
            entry.update(protocol="xca", iti38_url=f"{url}/xca/iti38", iti39_url=f"{url}/xca/iti39")
        entry.update(fields)

    network.rewrite_directory(change)


def _search(network: Network, session: HubSession, patient: str) -> dict[str, Any]:
    r, _ = search(network, session, patient, _count="200")
    assert r.status_code == 200, r.text
    bundle: dict[str, Any] = r.json()
    bundle["_masked"] = int(r.headers["x-onerecord-masked-count"])
    return bundle


def test_the_overview_and_the_retrieve_are_the_same_over_xca_and_mhd(network: Network) -> None:
    patient = str(network.manifest["patients"]["adult"])
    hcid = network.hcid(XCA_INDEX)
    directory = network.layout.directory_file.read_text()
    assert '"protocol": "xca"' in directory.replace("'", '"'), "the demo's entry says xca"
    practitioner = network.practitioner(patient)
    citizen = network.citizen(patient)

    over_xca = {
        who: _search(network, s, patient)
        for who, s in (("hcp", practitioner), ("citizen", citizen))
    }
    xca_docs = [d for d in documents(over_xca["hcp"]) if _hcid(d) == hcid]
    for bundle in over_xca.values():
        assert set(statuses(network, bundle).values()) == {"ok"}, bundle["entry"][0]
    from collections import Counter

    seen = Counter((_hcid(d), bool(d.get("masterIdentifier"))) for d in documents(over_xca["hcp"]))
    assert any(d.get("masterIdentifier") for d in xca_docs), (
        seen,
        hcid,
        statuses(network, over_xca["hcp"]),
    )
    assert any(not d.get("masterIdentifier") for d in xca_docs), "… and blocked ones"
    for bundle in over_xca.values():
        assert set(statuses(network, bundle).values()) == {"ok"}
    url = next(d["content"][0]["attachment"]["url"] for d in xca_docs if d.get("masterIdentifier"))
    assert url.startswith(f"{network.hub_fhir}/Binary/")
    got_xca = follow(url, practitioner)
    assert got_xca.status_code == 200, got_xca.text

    _set_protocol(network, "mhd")
    try:
        over_mhd = {
            who: _search(network, s, patient)
            for who, s in (("hcp", practitioner), ("citizen", citizen))
        }
        got_mhd = follow(url, practitioner)
    finally:
        _set_protocol(network, "xca")
    for who in ("hcp", "citizen"):
        assert _overview(over_xca[who]) == _overview(over_mhd[who]), who
        assert over_xca[who]["total"] == over_mhd[who]["total"]
        assert over_xca[who]["_masked"] == over_mhd[who]["_masked"]
    assert got_mhd.status_code == 200
    assert got_xca.content == got_mhd.content
    assert got_xca.headers["content-type"] == got_mhd.headers["content-type"]


def test_an_xca_region_refusing_or_unreachable_is_reported_as_over_mhd(network: Network) -> None:
    patient = str(network.manifest["patients"]["adult"])
    hcid = network.hcid(XCA_INDEX)
    session = network.practitioner(patient)
    # An assertion for another audience: the region refuses it, as it refuses such a hub
    # assertion over MHD (401, "denied"); the other regions answer.
    _set_protocol(network, "xca", audience="urn:oid:2.16.578.1.12.4.5.100.99")
    try:
        refused = _search(network, session, patient)
        _set_protocol(network, "xca", iti38_url="http://127.0.0.1:9/xca/iti38")
        unreachable = _search(network, session, patient)
    finally:
        _set_protocol(network, "xca")
    for bundle, expected in ((refused, "denied"), (unreachable, "unavailable")):
        found = statuses(network, bundle)
        assert found[hcid] == expected, found
        assert [found[network.hcid(i)] for i in range(4) if i != XCA_INDEX] == ["ok"] * 3
        assert all(_hcid(d) != hcid for d in documents(bundle))
        assert bundle["total"] > 0


def _publish(network: Network, index: int, patient: str, contents: Sequence[bytes]) -> list[str]:
    """Store documents with these exact bytes in region `index` over signed ITI-65."""
    hcid = network.hcid(index)
    docs = [(make_entry(patient_id=patient, content=c, title="Stort notat"), c) for c in contents]
    bundle = build_provide_bundle(
        docs,
        source_id=f"{hcid}.9",
        submission_set_unique_id=f"{hcid.removeprefix('urn:oid:')}.8.{os.getpid()}.{time.time_ns()}",
    )
    body = orjson.dumps(bundle)
    url = network.region_fhir(index)
    proof = make_publish_proof(
        network.publisher_key,
        issuer=network.manifest["publisher"]["issuer"],
        audience=hcid,
        htu=url,
        body=body,
        now=time.time(),
    )
    r = httpx.post(
        url,
        content=body,
        headers={"content-type": "application/fhir+json", PUBLISH_PROOF_HEADER: proof},
        timeout=120,
    )
    assert r.status_code == 200, r.text[:2000]
    return [e.unique_id.urn for e, _ in docs]


def test_a_document_from_an_xca_region_arrives_through_the_hub_byte_for_byte(
    network: Network,
) -> None:
    """Issue 13: ITI-39 streamed through the hub — a document ending in CR/LF, a multi-MB one."""
    patient = str(network.manifest["patients"]["adult"])
    noise = random.Random(13)
    contents = [
        b"%PDF-1.4\r\n" + noise.randbytes(3000) + b"\r\n%%EOF\r\n",
        # 6 MB whose bytes include what MIME framing looks like, ending in CR/LF twice.
        b"%PDF-1.4\n" + noise.randbytes(6 * 1024 * 1024) + b"\r\n--MIMEBoundary\r\n\r\n",
    ]
    ids = _publish(network, XCA_INDEX, patient, contents)
    practitioner = network.practitioner(patient)
    urls = {
        doc_key(d): d["content"][0]["attachment"]["url"]
        for d in documents(_search(network, practitioner, patient))
        if _hcid(d) == network.hcid(XCA_INDEX) and d.get("masterIdentifier")
    }
    for unique_id, content in zip(ids, contents, strict=True):
        url = urls[unique_id]
        got = httpx.get(url, headers=practitioner.headers("GET", url), timeout=120)
        assert got.status_code == 200, got.text[:500]
        assert len(got.content) == len(content)
        assert hashlib.sha256(got.content).hexdigest() == hashlib.sha256(content).hexdigest()
        assert got.headers["content-type"] == "application/pdf"
        # Streamed: the MTOM part does not say its size, so the hub answers chunked.
        assert "content-length" not in got.headers


def _portal_rows(browser: Browser) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """The overview's rows as the page shows them, asked afresh («Oppdater»).

    A «Sperret» row of the XCA region has no class (the obfuscated entry masks it): the class
    cell of every placeholder is left out of the comparison, and nothing else.
    """
    page = browser.get(OVERVIEW, antall="200", oppdater="1")
    assert page.status_code == 200, page.text[:2000]
    rows: list[TableRow] = table_rows(page)

    def shown(row: TableRow) -> tuple[str, ...]:
        cells = list(row.cells)
        if "blocked" in row.classes:
            cells[3] = ""
        return tuple(cells)

    return sorted((tuple(r.links), shown(r)) for r in rows)


def test_the_portal_shows_the_same_overview_with_a_region_over_xca(network: Network) -> None:
    """Issue 13: the demo with one region XCA-only, and the health worker's overview unchanged."""
    browser = Browser(str(network.manifest["portal"]["url"]))
    try:
        first = _open_overview(network, browser)
        name = network.manifest["regions"][XCA_INDEX]["name"]
        assert f"{name} svarte." in unescape(first.text)
        over_xca = _portal_rows(browser)
        assert any(name in cells for _, cells in over_xca)  # the XCA region's rows are there
        _set_protocol(network, "mhd")
        try:
            over_mhd = _portal_rows(browser)
        finally:
            _set_protocol(network, "xca")
    finally:
        browser.http.close()
    assert over_xca == over_mhd
