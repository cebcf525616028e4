"""Benchmark ITI-38 (XCA Cross Gateway Query) against ITI-67 (MHD search) on one region.

For each registry size (`--entries`, default 100,000 and 1,000,000) one region's registry is
bulk-loaded (cached in bench/.cache/, reused when it holds exactly N entries): N entries spread
over N/100 synthetic patients, one of whom — the patient asked about — has `--patient-entries`
entries (default 50: a realistic record, with the synthetic mix of N, R, V, NORU and NORS).
One source process on 127.0.0.1 (uvicorn, the whole trust path: policy, patient binding, audit;
per-caller limits off) trusts a static STS key for MHD and the development SAML issuer for XCA.
Then, for the same health worker and the same patient:

- ITI-38: FindDocuments, LeafClass, Approved, with one signed SAML assertion (the region keeps
  no assertion replay cache, so the assertion is reused, as an initiating gateway does within
  its lifetime);
- ITI-67: `patient.identifier` with `_count` = the patient's entries (one page holds the same
  result as the XCA answer), a DPoP-bound token and a fresh DPoP proof per request, the proofs
  signed before the timer starts.

Both answers are checked to carry the same number of entries. After a warm-up the two are
measured in alternating blocks (`--rounds` blocks of `--searches`/`--rounds` each), one
keep-alive client, so that both see the same machine noise; p50/p95/p99 and the ratios
XCA ÷ MHD are printed and written to bench/results/xca.json. Target (issue 13): XCA ≤ 1.5 × MHD.

The source's CPU time per request of each wire is measured too (the shared machine's load
moves it far less than latency), and, in this process without HTTP, the median of each stage
(`--stages` runs): the store's find, decoding the entries, writing the answer by strings and by
the lxml tree, SAML parse + verification, DPoP token + proof. The source keeps written
ExtrinsicObjects (`xca_written_entries`, default 4096); the same patient asked again is then
answered from it: `--written-entries 0` measures every answer cold.
`--profile DIR` runs the source under cProfile and writes one profile per wire (XCA alone, then
MHD alone) to DIR.

Usage: .venv/bin/python bench/xca.py [--entries 100000 1000000] [--patient-entries 50]
       [--searches 1000] [--rounds 10] [--written-entries 4096] [--postgres] [--profile DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import asyncpg
import httpx
import psutil
from lxml import etree

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.source.xca_support import make_assertion, make_dev_issuer, patient_cx  # noqa: E402
from tests.support.servers import free_port, wait_healthy  # noqa: E402

from onerecord.domain import DocumentQuery, NationalIdentityNumber  # noqa: E402
from onerecord.source.database import make_engine  # noqa: E402
from onerecord.source.migrate import upgrade  # noqa: E402
from onerecord.source.settings import SourceSettings  # noqa: E402
from onerecord.source.store import SqlDocumentStore  # noqa: E402
from onerecord.synth.documents import fast_entries  # noqa: E402
from onerecord.synth.numbers import synthetic_fnr  # noqa: E402
from onerecord.synth.regions import DEFAULT_REGIONS  # noqa: E402
from onerecord.trust.access_token import (  # noqa: E402
    AuthSettings,
    authenticate_request,
    issue_access_token,
)
from onerecord.trust.dpop import make_proof  # noqa: E402
from onerecord.trust.keys import SigningKey, StaticJwks  # noqa: E402
from onerecord.trust.patient_binding import encode_salt, make_digest, new_salt  # noqa: E402
from onerecord.trust.replay import MemoryReplayCache  # noqa: E402
from onerecord.xca.dev_issuer import DEV_SAML_ISSUER  # noqa: E402
from onerecord.xca.ebrim import QueryResponse, ebrim_from_entry, render_query_response  # noqa: E402
from onerecord.xca.saml import (  # noqa: E402
    TrustedIssuer,
    XuaSettings,
    load_certificate,
    verify_assertion,
)
from onerecord.xca.soap import parse_envelope, render_envelope  # noqa: E402
from onerecord.xca.writer import document_entry_xml, query_response_xml  # noqa: E402
from onerecord.xca.xml import WSSE  # noqa: E402
from onerecord.xca.xua import caller_from_assertion  # noqa: E402

REGION = DEFAULT_REGIONS[0]
HCID = REGION.home_community_id.urn
STS = "https://sts.bench"
FNR = "urn:oid:2.16.578.1.12.4.1.4.1"
HPR = "1234567"
LEGAL_ENTITY, POINT_OF_CARE = "974000016", "974000024"
CACHE = ROOT / "bench" / ".cache"
PG = os.environ.get("ONERECORD_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
FIND_DOCUMENTS = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
_HL7 = 'xmlns="urn:hl7-org:v3"'


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def figures(values: list[float]) -> dict[str, float]:
    return {f"p{p}": round(percentile(values, p), 3) for p in (50, 95, 99)}


# --- data ------------------------------------------------------------------------------------


def people(entries: int) -> tuple[str, str, list[str]]:
    """The patient asked about, the health worker, and everyone else (synthetic numbers)."""
    rng = random.Random(13)

    def one() -> str:
        born = date(1930, 1, 1) + timedelta(days=rng.randrange(0, 365 * 90))
        return synthetic_fnr(rng, born).value

    patient, doctor = one(), one()
    others = sorted({one() for _ in range(max(1, entries // 100))} - {patient, doctor})
    return patient, doctor, others


async def fill(url: str, schema: str | None, entries: int, patient: str, per_patient: int) -> Any:
    """Load N entries (the patient's among them), or reuse a cache holding exactly N."""
    _, _, others = people(entries)
    engine = make_engine(url, schema=schema)
    try:
        await upgrade(engine)
        store = SqlDocumentStore(engine)
        if await store.count() == entries:
            return None
        t0 = time.perf_counter()
        # Different seeds give different uniqueId roots (synth.documents.fast_entries).
        loaded = await store.bulk_load(
            fast_entries(entries - per_patient, seed=7, region=REGION, patients=others),
            batch_size=5000,
        )
        loaded += await store.bulk_load(
            fast_entries(per_patient, seed=8, region=REGION, patients=[patient])
        )
        assert loaded == entries, (loaded, entries)
        return time.perf_counter() - t0
    finally:
        await engine.dispose()


# --- the health worker's credentials, on each wire --------------------------------------------


def _attestation(patient: str, salt: bytes, doctor: str) -> dict[str, Any]:
    org = "urn:oid:2.16.578.1.12.4.1.4.101"
    return {
        "type": "nhn:tillitsrammeverk:parameters",
        "practitioner": {
            "identifier": {"id": doctor, "system": FNR, "name": "Kari Lege"},
            "hpr_nr": {"id": HPR, "system": "urn:oid:2.16.578.1.12.4.1.4.4"},
            "authorization": {"code": "LE", "system": "urn:oid:2.16.578.1.12.4.1.1.9060"},
            "legal_entity": {"id": LEGAL_ENTITY, "system": org, "name": "Testsykehuset HF"},
            "point_of_care": {"id": POINT_OF_CARE, "system": org, "name": "Testsykehuset Ullevål"},
        },
        "care_relationship": {
            "healthcare_service": {"code": "01", "system": "urn:oid:2.16.578.1.12.4.1.1.8666"},
            "purpose_of_use": {"code": "TREAT", "system": "urn:oid:2.16.840.1.113883.1.11.20448"},
            "decision_ref": {"id": "bench-1", "user_selected": True},
        },
        "patients": [{"identifier_digest": make_digest(patient, salt)}],
    }


def access_token(sts: SigningKey, dpop: SigningKey, patient: str, salt: bytes, doctor: str) -> str:
    now = int(time.time())
    return issue_access_token(
        key=sts,
        issuer=STS,
        audience=HCID,
        subject=f"hp:{doctor}",
        jkt=dpop.thumbprint(),
        scope=["nhn:phr/mhd/read-documentreferences"],
        now=now,
        lifetime=3600,
        claims={
            "helseid://claims/identity/pid": doctor,
            "helseid://claims/identity/security_level": "4",
            "nhn:tillitsrammeverk:parameters": _attestation(patient, salt, doctor),
            "toa": now,
        },
    )


def saml_attributes(patient: str) -> dict[str, str | None]:
    """The same health worker as the token's attestation, as HelseID asserts it in SAML."""

    def ii(extension: str, root: str) -> str:
        return f'<id {_HL7} xsi:type="II" extension="{extension}" root="urn:oid:{root}"/>'

    def ce(tag: str, code: str, system: str) -> str:
        return f'<{tag} {_HL7} xsi:type="CE" code="{code}" codeSystem="urn:oid:{system}"/>'

    return {
        "urn:oasis:names:tc:xacml:1.0:subject:subject-id": "Kari Lege",
        "urn:ihe:iti:xua:2017:subject:provider-identifier": (
            f'<id {_HL7} type="II" extension="{HPR}" root="2.16.578.1.12.4.1.4.4"/>'
        ),
        "urn:oasis:names:tc:xspa:1.0:subject:npi": HPR,
        "urn:oasis:names:tc:xacml:2.0:subject:role": ce("Role", "LE", "2.16.578.1.12.4.1.1.9060"),
        "urn:oasis:names:tc:xspa:1.0:subject:organization": "Testsykehuset HF",
        "urn:oasis:names:tc:xspa:1.0:subject:organization-id": ii(
            LEGAL_ENTITY, "2.16.578.1.12.4.1.4.101"
        ),
        "urn:oasis:names:tc:xspa:1.0:subject:child-organization": ii(
            POINT_OF_CARE, "2.16.578.1.12.4.1.4.101"
        ),
        "urn:nhn:trust-framework:1.0:ext:subject:child-organization-name": (
            "Testsykehuset Ullevål"
        ),
        "urn:oasis:names:tc:xacml:2.0:action:purpose": ce(
            "Purpose", "TREAT", "2.16.840.1.113883.1.11.20448"
        ),
        "urn:nhn:trust-framework:1.0:ext:care-relationship:healthcare-service": ce(
            "HealthcareService", "01", "2.16.578.1.12.4.1.1.8666"
        ),
        "urn:nhn:trust-framework:1.0:ext:care-relationship:decision-ref": (
            '<decision-ref><id value="bench-1"/><user-selected value="True"/></decision-ref>'
        ),
        "urn:oasis:names:tc:xacml:1.0:resource:resource-id": patient_cx(patient),
        "urn:no:ehelse:saml:1.0:subject:SecurityLevel": "4",
        "urn:no:ehelse:saml:1.0:subject:Scope": "journaldokumenter_helsepersonell",
        "urn:ihe:iti:xca:2010:homeCommunityId": "2.16.578.1.12.4.1.7.1.1",
        "urn:ihe:iti:xua:2012:acp": None,
    }


def query_envelope(assertion: Any, patient: str) -> bytes:
    """An ITI-38 FindDocuments (LeafClass, Approved) request with the assertion."""
    signed = etree.tostring(assertion).decode()
    return (
        '<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:wsa="http://www.w3.org/2005/08/addressing">'
        "<env:Header><wsa:Action>urn:ihe:iti:2007:CrossGatewayQuery</wsa:Action>"
        f"<wsa:MessageID>urn:uuid:{uuid.uuid4()}</wsa:MessageID>"
        f'<wsse:Security xmlns:wsse="{WSSE}">{signed}</wsse:Security>'
        "</env:Header><env:Body>"
        '<query:AdhocQueryRequest xmlns:query="urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0" '
        'xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0">'
        '<query:ResponseOption returnType="LeafClass" returnComposedObjects="true"/>'
        f'<rim:AdhocQuery id="{FIND_DOCUMENTS}">'
        '<rim:Slot name="$XDSDocumentEntryPatientId"><rim:ValueList>'
        f"<rim:Value>'{escape(patient_cx(patient))}'</rim:Value></rim:ValueList></rim:Slot>"
        '<rim:Slot name="$XDSDocumentEntryStatus"><rim:ValueList>'
        "<rim:Value>('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')</rim:Value>"
        "</rim:ValueList></rim:Slot></rim:AdhocQuery></query:AdhocQueryRequest>"
        "</env:Body></env:Envelope>"
    ).encode()


# --- the source process ----------------------------------------------------------------------


def serve(config_file: Path) -> None:
    """The child: one source with the trust path and the XCA gateway (`--serve CONFIG`)."""
    import uvicorn

    from onerecord.source.app import create_app

    config = json.loads(config_file.read_text())
    settings = SourceSettings(**config["settings"])
    app = create_app(settings, keys=StaticJwks([config["sts_jwk"]]))
    profile_file = config.get("profile")
    profiler = cProfile.Profile() if profile_file else None

    def dump(*_: Any) -> None:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile_file)
        raise SystemExit(0)

    if profiler is not None:
        signal.signal(signal.SIGUSR1, dump)
        profiler.enable()
    uvicorn.run(app, host="127.0.0.1", port=config["port"], log_level="warning")


@contextlib.contextmanager
def source_process(
    workdir: Path,
    url: str,
    schema: str | None,
    sts: SigningKey,
    certificate: Path,
    profile: Path | None = None,
    *,
    written_entries: int,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    settings = {
        "home_community_id": HCID,
        "repository_unique_id": str(REGION.repository_unique_id),
        "db_url": url,
        "db_schema": schema,
        "content_dir": str(workdir / "content"),
        "public_base_url": f"http://127.0.0.1:{port}",
        "dev_mode": True,  # the development SAML issuer is trusted in dev mode only
        "issuer": STS,
        "jwks_url": "http://127.0.0.1:9/unused",
        "xca_issuers": {DEV_SAML_ISSUER: [str(certificate)]},
        "caller_concurrency": 0,
        "caller_rate_per_s": 0,
        "caller_burst": 0,
        "xca_written_entries": written_entries,
    }
    config = {"settings": settings, "sts_jwk": sts.public_jwk(), "port": port}
    if profile is not None:
        config["profile"] = str(profile)
    config_file = workdir / f"source-{port}.json"
    config_file.write_text(json.dumps(config))
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve", str(config_file)], cwd=ROOT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, None, timeout=120)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGUSR1 if profile is not None else signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --- measuring -------------------------------------------------------------------------------


class Wires:
    """One keep-alive client; one ITI-38 request and ITI-67 requests of the same patient."""

    def __init__(
        self, base: str, *, patient: str, doctor: str, per_patient: int, issuer: Any, sts: Any
    ) -> None:
        self.client = httpx.Client(timeout=60)
        self.iti38_url = f"{base}/xca/iti38"
        self.iti67_url = f"{base}/fhir/DocumentReference"
        assertion = make_assertion(issuer, doctor, saml_attributes(patient), audience=HCID)
        self.iti38_body = query_envelope(assertion, patient)
        self.iti67_params = {"patient.identifier": f"{FNR}|{patient}", "_count": str(per_patient)}
        self.dpop, self.salt = SigningKey.generate(), new_salt()
        self.token = access_token(sts, self.dpop, patient, self.salt, doctor)
        self.patient = patient
        self.issuer_certificate: Path = issuer.certificate_file
        self.answer_bytes: dict[str, int] = {}

    def iti67_headers(self, n: int) -> list[dict[str, str]]:
        """n sets of headers, each with its own proof (the region keeps a DPoP replay cache)."""
        return [
            {
                "Authorization": f"DPoP {self.token}",
                "DPoP": make_proof(
                    self.dpop, htm="GET", htu=self.iti67_url, access_token=self.token
                ),
                "nhn-source-system": "bench",
                "nhn-patient-nin": self.patient,
                "onerecord-patient-salt": encode_salt(self.salt),
            }
            for _ in range(n)
        ]

    def iti38(self, n: int) -> tuple[list[float], int]:
        headers = {"content-type": "application/soap+xml; charset=UTF-8"}
        times, answered = [], 0
        for _ in range(n):
            t0 = time.perf_counter()
            r = self.client.post(self.iti38_url, content=self.iti38_body, headers=headers)
            dt = time.perf_counter() - t0
            assert r.status_code == 200 and b"ResponseStatusType:Success" in r.content, r.text
            times.append(dt * 1000)
            answered = r.content.count(b"<rim:ExtrinsicObject ")
            self.answer_bytes["iti38"] = len(r.content)
        return times, answered

    def iti67(self, n: int) -> tuple[list[float], int]:
        times, answered = [], 0
        for headers in self.iti67_headers(n):
            t0 = time.perf_counter()
            r = self.client.get(self.iti67_url, params=self.iti67_params, headers=headers)
            dt = time.perf_counter() - t0
            assert r.status_code == 200, r.text
            times.append(dt * 1000)
            answered = sum(
                1 for e in r.json().get("entry", []) if e["resource"]["resourceType"] != "Bundle"
            )
            self.answer_bytes["iti67"] = len(r.content)
        return times, answered


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the source process so far."""
    return float(sum(psutil.Process(pid).cpu_times()[:2]))


def measure(wires: Wires, pid: int, searches: int, rounds: int, warm: int) -> dict[str, Any]:
    _, xca_count = wires.iti38(warm)
    _, mhd_count = wires.iti67(warm)
    if xca_count != mhd_count:
        raise SystemExit(f"ITI-38 answered {xca_count} entries, ITI-67 {mhd_count}")
    xca: list[float] = []
    mhd: list[float] = []
    cpu = {"xca": 0.0, "mhd": 0.0}
    block = max(1, searches // rounds)
    for i in range(rounds):
        # Alternate which wire goes first, so neither always follows the other.
        order: list[tuple[str, Callable[[int], tuple[list[float], int]], list[float]]] = [
            ("xca", wires.iti38, xca),
            ("mhd", wires.iti67, mhd),
        ]
        for name, run, into in order if i % 2 == 0 else reversed(order):
            before = cpu_seconds(pid)
            into.extend(run(block)[0])
            cpu[name] += cpu_seconds(pid) - before
    x, m = figures(xca), figures(mhd)
    # The source's CPU per request: what the machine's other load does not change much.
    cpu_ms = {name: round(1000 * seconds / len(xca), 3) for name, seconds in cpu.items()}
    return {
        "entries_answered": xca_count,
        "searches_each": len(xca),
        "iti38_ms": x,
        "iti67_ms": m,
        "ratio_p50": round(x["p50"] / m["p50"], 3),
        "ratio_p95": round(x["p95"] / m["p95"], 3),
        "ratio_p99": round(x["p99"] / m["p99"], 3),
        "source_cpu_ms_per_request": {"iti38": cpu_ms["xca"], "iti67": cpu_ms["mhd"]},
        "ratio_cpu": round(cpu_ms["xca"] / cpu_ms["mhd"], 3),
        "answer_bytes": dict(wires.answer_bytes),
        "load_average": round(os.getloadavg()[0], 2),
    }


async def stages(
    url: str, schema: str | None, wires: Wires, sts: SigningKey, n: int
) -> dict[str, float]:
    """Median ms of each stage of the two answers, in this process (no HTTP): the breakdown.

    Each stage is run `n` times on the patient's entries; the registry is the loaded one.
    """
    success = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
    engine = make_engine(url, schema=schema)
    store = SqlDocumentStore(engine)
    query = DocumentQuery(patient_id=NationalIdentityNumber(wires.patient), count=200)
    times: dict[str, list[float]] = {}

    def timed(name: str, t0: float) -> None:
        times.setdefault(name, []).append((time.perf_counter() - t0) * 1000)

    certificate = load_certificate(wires.issuer_certificate.read_bytes())
    xua = XuaSettings(
        issuers=(TrustedIssuer(DEV_SAML_ISSUER, (certificate,)),), audiences=frozenset({HCID})
    )
    keys, replay = StaticJwks([sts]), MemoryReplayCache()
    auth = AuthSettings(issuer=STS, audience=HCID)
    proofs = wires.iti67_headers(n)
    try:
        for i in range(n):
            t0 = time.perf_counter()
            page = await store.find(query, None)
            timed("store_find", t0)
            t0 = time.perf_counter()
            entries = [f.entry for f in page.entries]
            timed("decode_entries", t0)
            t0 = time.perf_counter()
            written = query_response_xml(
                QueryResponse(status=success), written=[document_entry_xml(e) for e in entries]
            )
            render_envelope(
                written, action="urn:ihe:iti:2007:CrossGatewayQueryResponse", relates_to="x"
            )
            timed("write_answer_strings", t0)
            t0 = time.perf_counter()
            tree = render_query_response(
                QueryResponse(status=success, entries=tuple(ebrim_from_entry(e) for e in entries))
            )
            render_envelope(
                tree, action="urn:ihe:iti:2007:CrossGatewayQueryResponse", relates_to="x"
            )
            timed("write_answer_lxml_tree", t0)
            t0 = time.perf_counter()
            envelope = parse_envelope(wires.iti38_body)
            caller_from_assertion(verify_assertion(envelope.assertion, xua, now=datetime.now(UTC)))
            timed("saml_parse_and_verify", t0)
            t0 = time.perf_counter()
            await authenticate_request(
                authorization_header=proofs[i]["Authorization"],
                dpop_header=proofs[i]["DPoP"],
                method="GET",
                url=wires.iti67_url,
                keys=keys,
                replay=replay,
                settings=auth,
            )
            timed("dpop_token_and_proof", t0)
    finally:
        await engine.dispose()
    return {name: round(statistics.median(values), 3) for name, values in times.items()}


async def pg_schema(name: str) -> None:
    conn = await asyncpg.connect(PG)
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{name}"')
    finally:
        await conn.close()


def run_size(entries: int, options: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    patient, doctor, _ = people(entries)
    per_patient = options.patient_entries
    if options.postgres:
        url, schema = PG, f"bench_xca_{entries}_{per_patient}"
        asyncio.run(pg_schema(schema))
    else:
        CACHE.mkdir(parents=True, exist_ok=True)
        url, schema = f"sqlite:///{CACHE / f'xca-{entries}-{per_patient}.db'}", None
    print(f"[{entries:,}] loading the registry …", flush=True)
    load_s = asyncio.run(fill(url, schema, entries, patient, per_patient))
    if load_s is None:
        print(f"[{entries:,}] reusing the cached registry", flush=True)
    else:
        print(
            f"[{entries:,}] loaded in {load_s:.1f} s ({entries / load_s:,.0f} rows/s)", flush=True
        )
    issuer = make_dev_issuer(workdir)
    result: dict[str, Any] = {
        "entries": entries,
        "patient_entries": per_patient,
        "xca_written_entries": options.written_entries,
    }
    result["load_seconds"] = None if load_s is None else round(load_s, 1)
    sts = SigningKey.generate(kid="sts")  # the source trusts its public key from the start

    def wires_for(base: str) -> Wires:
        return Wires(
            base, patient=patient, doctor=doctor, per_patient=per_patient, issuer=issuer, sts=sts
        )

    cache = options.written_entries
    with source_process(
        workdir, url, schema, sts, issuer.certificate_file, written_entries=cache
    ) as (base, proc):
        wires = wires_for(base)
        result |= measure(wires, proc.pid, options.searches, options.rounds, options.warm_up)
        wires.client.close()
    result["stages_ms_median"] = asyncio.run(stages(url, schema, wires, sts, options.stages))
    print(f"[{entries:,}] stages (ms, median, in process): {result['stages_ms_median']}")
    if options.profile is not None:
        options.profile.mkdir(parents=True, exist_ok=True)
        for wire in ("iti38", "iti67"):
            out = options.profile / f"{wire}-{entries}.prof"
            with source_process(
                workdir, url, schema, sts, issuer.certificate_file, out, written_entries=cache
            ) as pair:
                wires = wires_for(pair[0])
                getattr(wires, wire)(options.warm_up)
                getattr(wires, wire)(options.searches // 2)
                wires.client.close()
            print(f"[{entries:,}] profile of {wire}: {out}", flush=True)
    x, m = result["iti38_ms"], result["iti67_ms"]
    print(
        f"[{entries:,}] {result['entries_answered']} entries answered; "
        f"ITI-38 p50/p95/p99 {x['p50']:.2f}/{x['p95']:.2f}/{x['p99']:.2f} ms, "
        f"ITI-67 {m['p50']:.2f}/{m['p95']:.2f}/{m['p99']:.2f} ms; "
        f"XCA ÷ MHD {result['ratio_p50']:.2f} (p50), {result['ratio_p99']:.2f} (p99), "
        f"{result['ratio_cpu']:.2f} (source CPU per request); "
        f"load {result['load_average']}",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--patient-entries", type=int, default=50)
    parser.add_argument("--searches", type=int, default=1000, help="timed searches per wire")
    parser.add_argument("--rounds", type=int, default=10, help="alternating blocks")
    parser.add_argument("--warm-up", type=int, default=50, help="untimed searches per wire")
    parser.add_argument("--stages", type=int, default=200, help="runs of the in-process breakdown")
    parser.add_argument(
        "--written-entries",
        type=int,
        default=SourceSettings.model_fields["xca_written_entries"].default,
        help="the source's cache of written ExtrinsicObjects (0: off, every answer cold)",
    )
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite")
    parser.add_argument("--profile", type=Path, default=None, help="write cProfile files here")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "xca.json")
    parser.add_argument("--serve", type=Path, default=None, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve is not None:
        serve(options.serve)
        return
    with tempfile.TemporaryDirectory() as tmp:
        sizes = [run_size(n, options, Path(tmp)) for n in options.entries]
    result = {
        "backend": "postgresql" if options.postgres else "sqlite",
        "target_ratio": 1.5,
        "sizes": sizes,
        "meets_target": all(s["ratio_p50"] <= 1.5 and s["ratio_p99"] <= 1.5 for s in sizes),
    }
    print(json.dumps(result, indent=1))
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
