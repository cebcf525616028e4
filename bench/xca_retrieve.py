"""Benchmark the memory of a large retrieve through the hub: ITI-39 from an XCA region vs ITI-68
from an MHD region (issue 13: a 30 MB document through the hub with RSS growth < 50 MB).

Set-up: the demo network (`onerecord demo`, as tests/network starts it) with region 1 (Helse
Sør-Øst) written `xca` in the hub's directory (`ONERECORD_DEMO_XCA_REGION=1`, as
`onerecord demo --xca-region 1`); region 2 stays `mhd`. One synthetic document of `--mb` MiB
(random bytes between a PDF header and a trailer ending in CR/LF) is stored over signed ITI-65 in
each of the two regions for the demo's adult patient; a health worker's DPoP-bound token and the
hub's overview give each document's `/fhir/Binary/...` URL at the hub.

Per path (xca, then mhd): the peak RSS of the hub and of that region is reset (`5` written to
/proc/<pid>/clear_refs), VmRSS read, then the document is retrieved `--repeat` times one after the
other through the hub (the body streamed by the client and its SHA-256 checked against what was
stored), and VmHWM read. Growth = VmHWM after − VmRSS before, per process: the kernel's own peak,
so no spike between two samples is missed. A psutil sampler (every 2 ms) reports its sampled
peak too, as a cross-check. Figures in MiB.

Prints the figures and writes bench/results/xca_retrieve.json (or `--out`).
Usage: .venv/bin/python bench/xca_retrieve.py [--mb 30] [--repeat 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.factories import make_entry  # noqa: E402
from tests.network.conftest import Network, start_network, stop_network  # noqa: E402

from onerecord.mhd import build_provide_bundle  # noqa: E402
from onerecord.search_client import HubSession  # noqa: E402
from onerecord.trust.publish_proof import PUBLISH_PROOF_HEADER, make_publish_proof  # noqa: E402

MIB = 1024 * 1024
TARGET_MIB = 50
XCA_INDEX, MHD_INDEX = 0, 1


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in bytes."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0]) * 1024
    return out


def _reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS (Linux ≥ 4.0); False if not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class Sampler:
    """Sample the RSS of some processes every few milliseconds in a thread; keep the peaks."""

    def __init__(self, pids: dict[str, int], interval_s: float = 0.002) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peaks = dict.fromkeys(pids, 0)
        self.interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, proc in self.procs.items():
                self.peaks[name] = max(self.peaks[name], proc.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _hub_pid(network: Network) -> int:
    port = str(network.layout.base_port)
    for child in psutil.Process(network.demo.pid).children(recursive=True):
        cmd = child.cmdline()
        if "hub" in cmd and "serve" in cmd and "--port" in cmd:
            if cmd[cmd.index("--port") + 1] == port:
                return child.pid
    raise LookupError("no hub process")


def _document(size: int) -> bytes:
    noise = random.Random(13).randbytes(size)
    return b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + noise + b"\n%%EOF\r\n"


def _publish(network: Network, index: int, patient: str, content: bytes) -> str:
    """Store `content` in region `index` over signed ITI-65; return its uniqueId (urn)."""
    hcid = network.hcid(index)
    entry = make_entry(patient_id=patient, content=content, title="Stor skannet journal")
    bundle = build_provide_bundle(
        [(entry, content)],
        source_id=f"{hcid}.9",
        submission_set_unique_id=f"{hcid.removeprefix('urn:oid:')}.8.{os.getpid()}.{index}",
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
        timeout=300,
    )
    if r.status_code != 200:
        raise RuntimeError(f"ITI-65 to region {index}: HTTP {r.status_code} {r.text[:500]}")
    return entry.unique_id.urn


def _urls(network: Network, session: HubSession, patient: str) -> dict[str, str]:
    """uniqueId → the hub's /Binary URL, from the hub's overview."""
    bundle = network.hub_search(session, patient)
    out: dict[str, str] = {}
    for entry in bundle.get("entry", []):
        doc = entry["resource"]
        master = doc.get("masterIdentifier")
        if doc["resourceType"] == "DocumentReference" and master:
            url = doc["content"][0]["attachment"].get("url")
            if url:
                out[str(master["value"])] = str(url)
    return out


def _retrieve(url: str, session: HubSession) -> tuple[int, str, float, dict[str, str]]:
    """GET through the hub, streaming; return size, SHA-256, seconds and headers."""
    digest = hashlib.sha256()
    size = 0
    started = time.perf_counter()
    with httpx.stream("GET", url, headers=session.headers("GET", url), timeout=120) as r:
        if r.status_code != 200:
            r.read()
            raise RuntimeError(f"retrieve: HTTP {r.status_code} {r.text[:500]}")
        for chunk in r.iter_bytes(256 * 1024):
            digest.update(chunk)
            size += len(chunk)
        headers = dict(r.headers)
    return size, digest.hexdigest(), time.perf_counter() - started, headers


@dataclass
class PathFigures:
    protocol: str
    figures: dict[str, Any]


def _measure(
    name: str,
    url: str,
    session: HubSession,
    pids: dict[str, int],
    *,
    repeat: int,
    expected: tuple[int, str],
) -> dict[str, Any]:
    reset = all(_reset_peak(pid) for pid in pids.values())
    before = {n: _status(pid) for n, pid in pids.items()}
    seconds: list[float] = []
    headers: dict[str, str] = {}
    with Sampler(pids) as sampler:
        for _ in range(repeat):
            size, sha, took, headers = _retrieve(url, session)
            if (size, sha) != expected:
                raise RuntimeError(f"{name}: the document came back different ({size} bytes)")
            seconds.append(took)
    after = {n: _status(pid) for n, pid in pids.items()}
    out: dict[str, Any] = {
        "retrieves": repeat,
        "byte_identical": True,
        "seconds_per_retrieve": [round(s, 3) for s in seconds],
        "mib_per_s": round(expected[0] / MIB / (sum(seconds) / len(seconds)), 1),
        "hub_answer_headers": {
            k: headers[k] for k in ("content-length", "transfer-encoding") if k in headers
        },
        "peak_reset": reset,
    }
    for proc in pids:
        rss0 = before[proc]["VmRSS"]
        out[proc] = {
            "rss_before_mib": round(rss0 / MIB, 1),
            "rss_after_mib": round(after[proc]["VmRSS"] / MIB, 1),
            "hwm_after_mib": round(after[proc]["VmHWM"] / MIB, 1),
            "growth_hwm_mib": round((after[proc]["VmHWM"] - rss0) / MIB, 1),
            "growth_sampled_mib": round((sampler.peaks[proc] - rss0) / MIB, 1),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=30, help="document size in MiB")
    parser.add_argument("--repeat", type=int, default=5, help="retrieves per path")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/xca_retrieve.json")
    args = parser.parse_args()

    document = _document(args.mb * MIB)
    expected = (len(document), hashlib.sha256(document).hexdigest())
    print(f"document: {len(document) / MIB:.1f} MiB; {args.repeat} retrieves per path")
    with tempfile.TemporaryDirectory(prefix="bench-xca-retrieve-") as tmp:
        started = time.perf_counter()
        network = start_network(Path(tmp), {"ONERECORD_DEMO_XCA_REGION": str(XCA_INDEX + 1)})
        try:
            print(f"network up in {time.perf_counter() - started:.0f} s")
            directory = json.loads(network.layout.directory_file.read_text())
            protocols = {
                r["home_community_id"]: r.get("protocol", "mhd") for r in directory["regions"]
            }
            assert protocols[network.hcid(XCA_INDEX)] == "xca", protocols
            assert protocols[network.hcid(MHD_INDEX)] == "mhd", protocols
            patient = str(network.manifest["patients"]["adult"])
            ids = {
                "xca": _publish(network, XCA_INDEX, patient, document),
                "mhd": _publish(network, MHD_INDEX, patient, document),
            }
            session = network.practitioner(patient)
            urls = _urls(network, session, patient)
            hub = _hub_pid(network)
            results: dict[str, Any] = {}
            for name, index in (("xca", XCA_INDEX), ("mhd", MHD_INDEX)):
                pids = {"hub": hub, "region": network.region_process(index).pid}
                figures = _measure(
                    name,
                    urls[ids[name]],
                    session,
                    pids,
                    repeat=args.repeat,
                    expected=expected,
                )
                results[name] = figures
                print(
                    f"{name}: hub RSS growth {figures['hub']['growth_hwm_mib']} MiB "
                    f"(VmHWM; sampled {figures['hub']['growth_sampled_mib']}), "
                    f"region {figures['region']['growth_hwm_mib']} MiB "
                    f"(sampled {figures['region']['growth_sampled_mib']}); "
                    f"{figures['mib_per_s']} MiB/s; hub answer {figures['hub_answer_headers']}"
                )
        finally:
            stop_network(network)

    met = results["xca"]["hub"]["growth_hwm_mib"] < TARGET_MIB
    report = {
        "issue": 13,
        "what": "one document through the hub's /fhir/Binary: ITI-39 (xca) vs ITI-68 (mhd)",
        "document_mib": round(len(document) / MIB, 1),
        "method": (
            "per process: VmHWM reset via /proc/<pid>/clear_refs, growth = VmHWM after the "
            "retrieves - VmRSS before; sampled = psutil RSS every 2 ms"
        ),
        "target": f"hub RSS growth < {TARGET_MIB} MiB for the xca path",
        "met": met,
        "paths": results,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    table = [("path", "hub growth", "hub sampled", "region growth", "MiB/s")]
    for name, fig in results.items():
        table.append(
            (
                name,
                f"{fig['hub']['growth_hwm_mib']} MiB",
                f"{fig['hub']['growth_sampled_mib']} MiB",
                f"{fig['region']['growth_hwm_mib']} MiB",
                str(fig["mib_per_s"]),
            )
        )
    for row in table:
        print("  ".join(f"{cell:>14}" for cell in row))
    print(f"target: hub growth < {TARGET_MIB} MiB over XCA — {'met' if met else 'NOT met'}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
