"""Benchmark the trust path of a document source.

- tokens/s: `authenticate_request` (signature, claims, DPoP proof with ath and jti replay check,
  attestation parse) over pre-made health-personnel tokens and proofs, in this process;
- added latency: p50 of one patient's ITI-67 search (50 documents, `_count=20`) against two
  sources on 127.0.0.1 (uvicorn, SQLite) with the same data — one in dev open access, one with
  the whole trust path (authentication + patient binding + policy + controls lookup + audit
  write) — as a ratio. The client's proof signing is done before the timer starts. Target:
  the trust path adds at most 25 %.

Prints the figures and writes bench/results/trust.json.
Usage: .venv/bin/python bench/trust.py [--tokens 2000] [--searches 400]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.factories import make_entry, sample_pdf  # noqa: E402
from tests.support.servers import free_port, serve_in_thread  # noqa: E402

from onerecord.domain import NationalIdentityNumber  # noqa: E402
from onerecord.mhd import build_provide_bundle  # noqa: E402
from onerecord.source.app import create_app  # noqa: E402
from onerecord.source.settings import SourceSettings  # noqa: E402
from onerecord.trust.access_token import AuthSettings, authenticate_request, issue_access_token  # noqa: E402
from onerecord.trust.dpop import make_proof  # noqa: E402
from onerecord.trust.keys import SigningKey, StaticJwks  # noqa: E402
from onerecord.trust.patient_binding import encode_salt, make_digest, new_salt  # noqa: E402
from onerecord.trust.replay import MemoryReplayCache  # noqa: E402

ISSUER = "https://sts.bench"
HCID = "urn:oid:2.16.578.1.12.4.5.100.1"


def _nin(prefix: str) -> str:
    for i in range(1000):
        value = NationalIdentityNumber.with_check_digits(f"{prefix}{i:03d}")
        if value:
            return value
    raise SystemExit("no synthetic number")


def attestation(patient: str, salt: bytes, doctor: str) -> dict[str, Any]:
    org = "urn:oid:2.16.578.1.12.4.1.4.101"
    return {
        "type": "nhn:tillitsrammeverk:parameters",
        "practitioner": {
            "identifier": {
                "id": doctor,
                "system": "urn:oid:2.16.578.1.12.4.1.4.1",
                "name": "Kari Lege",
            },
            "hpr_nr": {"id": "1234567", "system": "urn:oid:2.16.578.1.12.4.1.4.4"},
            "authorization": {"code": "LE", "system": "urn:oid:2.16.578.1.12.4.1.1.9060"},
            "legal_entity": {"id": "974000016", "system": org, "name": "Testsykehuset HF"},
            "point_of_care": {"id": "974000024", "system": org, "name": "Testsykehuset Ullevål"},
        },
        "care_relationship": {
            "healthcare_service": {"code": "01", "system": "urn:oid:2.16.578.1.12.4.1.1.8666"},
            "purpose_of_use": {"code": "TREAT", "system": "urn:oid:2.16.840.1.113883.1.11.20448"},
            "decision_ref": {"id": "bench-1", "user_selected": True},
        },
        "patients": [{"identifier_digest": make_digest(patient, salt)}],
    }


def token_for(
    key: SigningKey, dpop: SigningKey, patient: str, salt: bytes, doctor: str, aud: str
) -> str:
    now = int(time.time())
    return issue_access_token(
        key=key,
        issuer=ISSUER,
        audience=aud,
        subject=f"hp:{doctor}",
        jkt=dpop.thumbprint(),
        scope=["nhn:phr/mhd/read-documentreferences"],
        now=now,
        lifetime=3600,
        claims={
            "helseid://claims/identity/pid": doctor,
            "helseid://claims/identity/security_level": "4",
            "nhn:tillitsrammeverk:parameters": attestation(patient, salt, doctor),
            "toa": now,
        },
    )


async def tokens_per_second(n: int, patient: str, doctor: str) -> float:
    sts, dpop = SigningKey.generate(kid="sts"), SigningKey.generate()
    salt = new_salt()
    url = "http://127.0.0.1:8001/fhir/DocumentReference"
    token = token_for(sts, dpop, patient, salt, doctor, HCID)
    proofs = [make_proof(dpop, htm="GET", htu=url, access_token=token) for _ in range(n)]
    keys, replay = StaticJwks([sts]), MemoryReplayCache()
    settings = AuthSettings(issuer=ISSUER, audience=HCID)
    start = time.perf_counter()
    for proof in proofs:
        await authenticate_request(
            authorization_header=f"DPoP {token}",
            dpop_header=proof,
            method="GET",
            url=url,
            keys=keys,
            replay=replay,
            settings=settings,
        )
    return n / (time.perf_counter() - start)


def _search_times(base: str, patient: str, n: int, headers_for: Any) -> list[float]:
    url = f"{base}/fhir/DocumentReference"
    params = {"patient.identifier": f"urn:oid:2.16.578.1.12.4.1.4.1|{patient}", "_count": "20"}
    times = []
    with httpx.Client(timeout=30) as client:
        for i in range(n + 20):
            headers = headers_for(url)
            start = time.perf_counter()
            r = client.get(url, params=params, headers=headers)
            elapsed = time.perf_counter() - start
            assert r.status_code == 200, r.text
            if i >= 20:  # warm-up
                times.append(elapsed)
    return times


def added_latency(searches: int, patient: str, doctor: str, workdir: Path) -> dict[str, float]:
    sts, dpop = SigningKey.generate(kid="sts"), SigningKey.generate()
    salt = new_salt()
    open_port, trusted_port = free_port(), free_port()
    common = {
        "home_community_id": HCID,
        "repository_unique_id": "2.16.578.1.12.4.5.100.1.2",
    }
    open_settings = SourceSettings(
        **common,  # type: ignore[arg-type]
        db_url=f"sqlite:///{workdir / 'open.db'}",
        content_dir=workdir / "open",
        public_base_url=f"http://127.0.0.1:{open_port}",
        dev_mode=True,
        dev_open_access=True,
    )
    trusted_settings = SourceSettings(
        **common,  # type: ignore[arg-type]
        db_url=f"sqlite:///{workdir / 'trusted.db'}",
        content_dir=workdir / "trusted",
        public_base_url=f"http://127.0.0.1:{trusted_port}",
        # Dev mode only so that the set-up can publish unsigned; searches take the full path.
        dev_mode=True,
        issuer=ISSUER,
        jwks_url="http://127.0.0.1:9/unused",
    )
    docs = []
    for i in range(50):
        content = sample_pdf(f"bench {i}")
        docs.append((make_entry(patient_id=patient, content=content), content))
    bundle = orjson.dumps(
        build_provide_bundle(
            docs,
            source_id="urn:oid:2.16.578.1.12.4.5.100.1.9",
            submission_set_unique_id="2.16.578.1.12.4.5.100.1.8.1",
        )
    )
    token = token_for(sts, dpop, patient, salt, doctor, HCID)

    def trusted_headers(url: str) -> dict[str, str]:
        return {
            "Authorization": f"DPoP {token}",
            "DPoP": make_proof(dpop, htm="GET", htu=url, access_token=token),
            "nhn-source-system": "bench",
            "nhn-patient-nin": patient,
            "onerecord-patient-salt": encode_salt(salt),
        }

    with (
        serve_in_thread(create_app(open_settings), port=open_port) as open_url,
        serve_in_thread(
            create_app(trusted_settings, keys=StaticJwks([sts])), port=trusted_port
        ) as trusted_url,
    ):
        for base in (open_url, trusted_url):
            r = httpx.post(
                f"{base}/fhir",
                content=bundle,
                headers={"content-type": "application/fhir+json"},
                timeout=60,
            )
            assert r.status_code == 200, r.text
        # Interleave the two so that machine noise hits both alike.
        open_times: list[float] = []
        trusted_times: list[float] = []
        rounds = 4
        for _ in range(rounds):
            open_times += _search_times(open_url, patient, searches // rounds, lambda _u: {})
            trusted_times += _search_times(
                trusted_url, patient, searches // rounds, trusted_headers
            )
    open_p50 = statistics.median(open_times) * 1000
    trusted_p50 = statistics.median(trusted_times) * 1000
    return {
        "open_p50_ms": round(open_p50, 3),
        "trusted_p50_ms": round(trusted_p50, 3),
        "added_ratio": round(trusted_p50 / open_p50 - 1, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--searches", type=int, default=400)
    args = parser.parse_args()
    patient, doctor = _nin("158380"), _nin("018180")  # synthetic: month + 80
    rate = asyncio.run(tokens_per_second(args.tokens, patient, doctor))
    with tempfile.TemporaryDirectory() as tmp:
        latency = added_latency(args.searches, patient, doctor, Path(tmp))
    result = {
        "tokens_validated_per_second": round(rate, 1),
        **latency,
        "target_added_ratio": 0.25,
        "meets_target": latency["added_ratio"] <= 0.25,
        "searches": args.searches,
        "documents_per_patient": 50,
        "page_size": 20,
    }
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results" / "trust.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
