"""ITI-65/67/68 against a real document source over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace
from typing import Any

import httpx
import orjson

from onerecord.domain import DocumentEntry, DocumentUniqueId
from onerecord.mhd import EXT_HOME_COMMUNITY_ID, build_provide_bundle
from tests.factories import make_entry, sample_pdf
from tests.source.conftest import SourceServer

FHIR = "application/fhir+json"
FNR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.1"


def post_bundle(server: SourceServer, docs: list[tuple[DocumentEntry, bytes]]) -> httpx.Response:
    bundle = build_provide_bundle(
        docs, source_id="urn:oid:2.16.578.1.12.4.5.100.1.9", submission_set_unique_id=_ss_id()
    )
    return httpx.post(
        server.fhir, content=orjson.dumps(bundle), headers={"content-type": FHIR}, timeout=30
    )


_counter = iter(range(1, 10**9))


def _ss_id() -> str:
    return f"2.16.578.1.12.4.5.100.1.8.{next(_counter)}"


def search(server: SourceServer, patient: str, **params: Any) -> dict[str, Any]:
    query = {"patient.identifier": f"{FNR_SYSTEM}|{patient}", **params}
    r = httpx.get(f"{server.fhir}/DocumentReference", params=query, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(FHIR)
    return r.json()  # type: ignore[no-any-return]


def resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        e["resource"]
        for e in bundle.get("entry", [])
        if e["resource"]["resourceType"] == "DocumentReference"
    ]


def outcome_text(r: httpx.Response) -> str:
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    return " ".join(i.get("diagnostics", "") for i in body["issue"])


def test_capability_statement(source_server: SourceServer) -> None:
    r = httpx.get(f"{source_server.fhir}/metadata")
    assert r.status_code == 200
    assert r.json()["resourceType"] == "CapabilityStatement"


def test_publish_find_retrieve_round_trip(source_server: SourceServer) -> None:
    content = sample_pdf()
    entry = make_entry(content=content)
    r = post_bundle(source_server, [(entry, content)])
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "transaction-response"

    bundle = search(source_server, entry.patient_id.value)
    assert bundle["total"] == 1
    (doc,) = resources(bundle)
    assert doc["masterIdentifier"]["value"].endswith(entry.unique_id.value)
    hcid_ext = [e for e in doc.get("extension", []) if e["url"] == EXT_HOME_COMMUNITY_ID]
    assert len(hcid_ext) == 1
    assert hcid_ext[0]["valueIdentifier"]["value"] == source_server.settings.home_community_id
    url = doc["content"][0]["attachment"]["url"]
    assert url.startswith(source_server.fhir + "/Binary/")

    got = httpx.get(url)
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("application/pdf")
    assert got.content == content


def test_repeated_unique_id_with_same_content_is_idempotent(source_server: SourceServer) -> None:
    content = sample_pdf()
    entry = make_entry(content=content)
    assert post_bundle(source_server, [(entry, content)]).status_code == 200
    assert post_bundle(source_server, [(entry, content)]).status_code == 200
    assert search(source_server, entry.patient_id.value)["total"] == 1


def test_repeated_unique_id_with_other_content_conflicts(source_server: SourceServer) -> None:
    entry = make_entry(content=sample_pdf())
    assert post_bundle(source_server, [(entry, sample_pdf())]).status_code == 200
    other = sample_pdf(text="another text")
    clash = make_entry(content=other, unique_id=entry.unique_id.value)
    r = post_bundle(source_server, [(clash, other)])
    assert r.status_code == 409
    assert entry.unique_id.value in outcome_text(r)


def test_replaces_marks_the_old_entry_superseded(source_server: SourceServer) -> None:
    first = make_entry(content=sample_pdf())
    assert post_bundle(source_server, [(first, sample_pdf())]).status_code == 200
    new_content = sample_pdf(text="corrected")
    second = make_entry(
        content=new_content, patient_id=first.patient_id.value, replaces=first.unique_id.value
    )
    assert post_bundle(source_server, [(second, new_content)]).status_code == 200
    current = resources(search(source_server, first.patient_id.value))
    assert [d["masterIdentifier"]["value"] for d in current] == [second.unique_id.urn] or current[
        0
    ]["masterIdentifier"]["value"].endswith(second.unique_id.value)
    old = resources(search(source_server, first.patient_id.value, status="superseded"))
    assert len(old) == 1 and old[0]["status"] == "superseded"


def test_bundle_is_all_or_nothing(source_server: SourceServer) -> None:
    good = make_entry(content=sample_pdf())
    bad_content = sample_pdf(text="x")
    bad = replace(make_entry(content=bad_content, patient_id=good.patient_id.value), size=1)
    r = post_bundle(source_server, [(good, sample_pdf()), (bad, bad_content)])
    assert r.status_code == 422
    assert search(source_server, good.patient_id.value)["total"] == 0


def test_paging_with_next_links_gives_each_entry_once(source_server: SourceServer) -> None:
    first = make_entry(content=sample_pdf())
    patient = first.patient_id.value
    docs = [(first, sample_pdf())] + [
        (
            make_entry(content=sample_pdf(text=f"doc {i}"), patient_id=patient),
            sample_pdf(text=f"doc {i}"),
        )
        for i in range(11)
    ]
    assert post_bundle(source_server, docs).status_code == 200
    seen: list[str] = []
    bundle = search(source_server, patient, _count=5)
    added = False
    while True:
        seen += [d["id"] for d in resources(bundle)]
        if not added:
            # Documents arriving mid-traversal do not shift the pages of this traversal.
            extra = make_entry(content=sample_pdf(text="late"), patient_id=patient)
            assert post_bundle(source_server, [(extra, sample_pdf(text="late"))]).status_code == 200
            added = True
        nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not nxt:
            break
        r = httpx.get(nxt[0])
        assert r.status_code == 200
        bundle = r.json()
    assert len(seen) == 12 and len(set(seen)) == 12
    assert search(source_server, patient)["total"] == 13


def test_post_search_equals_get_search(source_server: SourceServer) -> None:
    entry = make_entry(content=sample_pdf())
    assert post_bundle(source_server, [(entry, sample_pdf())]).status_code == 200
    r = httpx.post(
        f"{source_server.fhir}/DocumentReference/_search",
        data={"patient.identifier": f"{FNR_SYSTEM}|{entry.patient_id.value}"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["total"] == 1


def test_search_filters(source_server: SourceServer) -> None:
    entry = make_entry(content=sample_pdf())
    assert post_bundle(source_server, [(entry, sample_pdf())]).status_code == 200
    patient = entry.patient_id.value
    cls = entry.class_code
    assert search(source_server, patient, category=f"{cls.system}|{cls.code}")["total"] == 1
    assert search(source_server, patient, category=f"{cls.system}|Z00-1")["total"] == 0
    year = entry.creation_time.year
    assert search(source_server, patient, date=f"ge{year}")["total"] == 1
    assert search(source_server, patient, date=f"lt{year}")["total"] == 0


# ---- bad input ----------------------------------------------------------------------------


def _raw_post(server: SourceServer, body: bytes, content_type: str = FHIR) -> httpx.Response:
    return httpx.post(server.fhir, content=body, headers={"content-type": content_type}, timeout=60)


def test_malformed_json_is_400(source_server: SourceServer) -> None:
    r = _raw_post(source_server, b'{"resourceType": "Bundle", ')
    assert r.status_code == 400
    assert "JSON" in outcome_text(r)
    assert "Traceback" not in r.text


def test_bundle_that_is_not_a_transaction_is_400(source_server: SourceServer) -> None:
    entry = make_entry(content=sample_pdf())
    bundle = build_provide_bundle(
        [(entry, sample_pdf())], source_id="urn:oid:1.2.3", submission_set_unique_id=_ss_id()
    )
    bundle["type"] = "batch"
    r = _raw_post(source_server, orjson.dumps(bundle))
    assert r.status_code == 400
    assert "transaction" in outcome_text(r)


def _tamper(entry: DocumentEntry, content: bytes, mutate: Any) -> bytes:
    bundle = build_provide_bundle(
        [(entry, content)], source_id="urn:oid:1.2.3", submission_set_unique_id=_ss_id()
    )
    for e in bundle["entry"]:
        if e["resource"]["resourceType"] == "DocumentReference":
            mutate(e["resource"])
    return orjson.dumps(bundle)


def test_wrong_hash_is_422(source_server: SourceServer) -> None:
    content = sample_pdf()

    def wrong_hash(doc: dict[str, Any]) -> None:
        doc["content"][0]["attachment"]["hash"] = base64.b64encode(
            hashlib.sha1(b"other").digest()
        ).decode()

    r = _raw_post(source_server, _tamper(make_entry(content=content), content, wrong_hash))
    assert r.status_code == 422
    assert "hash" in outcome_text(r).lower()


def test_wrong_size_is_422(source_server: SourceServer) -> None:
    content = sample_pdf()

    def wrong_size(doc: dict[str, Any]) -> None:
        doc["content"][0]["attachment"]["size"] = len(content) + 1

    r = _raw_post(source_server, _tamper(make_entry(content=content), content, wrong_size))
    assert r.status_code == 422
    assert "size" in outcome_text(r).lower()


def test_mime_mismatch_is_415(source_server: SourceServer) -> None:
    content = sample_pdf()

    def as_png(doc: dict[str, Any]) -> None:
        doc["content"][0]["attachment"]["contentType"] = "image/png"

    r = _raw_post(source_server, _tamper(make_entry(content=content), content, as_png))
    assert r.status_code == 415
    assert "image/png" in outcome_text(r)


def test_invalid_fodselsnummer_is_422(source_server: SourceServer) -> None:
    content = sample_pdf()
    entry = make_entry(content=content)

    def bad_nin(doc: dict[str, Any]) -> None:
        doc["subject"]["identifier"]["value"] = entry.patient_id.value[:10] + str(
            (int(entry.patient_id.value[10]) + 1) % 10
        )

    r = _raw_post(source_server, _tamper(entry, content, bad_nin))
    assert r.status_code == 422
    assert "check digit" in outcome_text(r)


def test_unknown_code_is_422(source_server: SourceServer) -> None:
    content = sample_pdf()

    def bad_type(doc: dict[str, Any]) -> None:
        doc["type"]["coding"][0]["code"] = "A99-2"

    r = _raw_post(source_server, _tamper(make_entry(content=content), content, bad_type))
    assert r.status_code == 422
    assert "A99-2" in outcome_text(r)


def test_body_50_mb_over_the_limit_is_413(source_server: SourceServer) -> None:
    limit = source_server.settings.max_body_bytes
    body = b"{" + b" " * (limit + 50 * 1024 * 1024)
    r = _raw_post(source_server, body)
    assert r.status_code == 413
    assert "limit" in outcome_text(r)


def test_chunked_body_over_the_limit_is_413(source_server: SourceServer) -> None:
    limit = source_server.settings.max_body_bytes

    def chunks() -> Any:
        block = b" " * (1024 * 1024)
        for _ in range(limit // len(block) + 2):
            yield block

    r = httpx.post(source_server.fhir, content=chunks(), headers={"content-type": FHIR})
    assert r.status_code == 413


def test_wrong_content_type_is_415(source_server: SourceServer) -> None:
    r = _raw_post(source_server, b"<Bundle/>", content_type="application/fhir+xml")
    assert r.status_code == 415


def test_search_without_patient_is_400(source_server: SourceServer) -> None:
    r = httpx.get(f"{source_server.fhir}/DocumentReference", params={"status": "current"})
    assert r.status_code == 400
    assert "patient.identifier" in outcome_text(r)


def test_search_with_xml_accept_is_406(source_server: SourceServer) -> None:
    entry = make_entry(content=sample_pdf())
    r = httpx.get(
        f"{source_server.fhir}/DocumentReference",
        params={"patient.identifier": f"{FNR_SYSTEM}|{entry.patient_id.value}"},
        headers={"accept": "application/fhir+xml"},
    )
    assert r.status_code == 406


def test_retrieve_unknown_is_404_and_bad_key_is_400(source_server: SourceServer) -> None:
    from onerecord.domain import HomeCommunityId, RepositoryUniqueId
    from onerecord.mhd import RetrieveKey

    key = RetrieveKey(
        HomeCommunityId.parse(source_server.settings.home_community_id),
        RepositoryUniqueId.parse(source_server.settings.repository_unique_id),
        DocumentUniqueId("1.2.3.4.5"),
    )
    assert httpx.get(f"{source_server.fhir}/Binary/{key.token()}").status_code == 404
    assert httpx.get(f"{source_server.fhir}/Binary/garbage").status_code == 400


def test_retrieve_with_unmet_accept_is_406(source_server: SourceServer) -> None:
    content = sample_pdf()
    entry = make_entry(content=content)
    assert post_bundle(source_server, [(entry, content)]).status_code == 200
    (doc,) = resources(search(source_server, entry.patient_id.value))
    url = doc["content"][0]["attachment"]["url"]
    assert httpx.get(url, headers={"accept": "image/png"}).status_code == 406
    assert httpx.get(url, headers={"accept": "application/*"}).status_code == 200


def _stored_file(server: SourceServer, sha256: str) -> Any:
    matches = [p for p in server.settings.content_dir.rglob(sha256) if p.is_file()]
    assert len(matches) == 1
    return matches[0]


def test_corrupted_bytes_are_never_served_whole(source_server: SourceServer) -> None:
    content = sample_pdf(text="to be corrupted")
    entry = make_entry(content=content)
    assert post_bundle(source_server, [(entry, content)]).status_code == 200
    (doc,) = resources(search(source_server, entry.patient_id.value))
    path = _stored_file(source_server, entry.hash_sha256)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # same size, different bytes
    path.write_bytes(bytes(data))
    url = doc["content"][0]["attachment"]["url"]
    try:
        r = httpx.get(url)
    except httpx.HTTPError:
        return  # the transfer broke off: the client knows it did not get the document
    assert r.content != bytes(data)
    assert len(r.content) < len(content)


def test_truncated_bytes_are_a_500_outcome(source_server: SourceServer) -> None:
    content = sample_pdf(text="to be truncated")
    entry = make_entry(content=content)
    assert post_bundle(source_server, [(entry, content)]).status_code == 200
    (doc,) = resources(search(source_server, entry.patient_id.value))
    path = _stored_file(source_server, entry.hash_sha256)
    path.write_bytes(path.read_bytes()[:-10])
    r = httpx.get(doc["content"][0]["attachment"]["url"])
    assert r.status_code == 500
    assert "integrity" in outcome_text(r)
    assert "Traceback" not in r.text


def test_entered_in_error_is_410_and_leaves_default_searches(source_server: SourceServer) -> None:
    import anyio

    from onerecord.source.database import make_engine
    from onerecord.source.store import SqlDocumentStore

    content = sample_pdf(text="registered by mistake")
    entry = make_entry(content=content)
    assert post_bundle(source_server, [(entry, content)]).status_code == 200
    (doc,) = resources(search(source_server, entry.patient_id.value))

    async def withdraw() -> bool:
        settings = source_server.settings
        engine = make_engine(settings.db_url, schema=settings.db_schema)
        try:
            return await SqlDocumentStore(engine).mark_entered_in_error(entry.unique_id)
        finally:
            await engine.dispose()

    assert anyio.run(withdraw)
    r = httpx.get(doc["content"][0]["attachment"]["url"])
    assert r.status_code == 410
    assert "entered in error" in outcome_text(r)
    assert search(source_server, entry.patient_id.value)["total"] == 0
    withdrawn = search(source_server, entry.patient_id.value, status="entered-in-error")
    assert resources(withdrawn)[0]["status"] == "entered-in-error"
