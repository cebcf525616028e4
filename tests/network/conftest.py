"""One real network per test module: `onerecord demo` (STS, hub, four regions) as processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from onerecord.demo import DemoLayout, region_command, region_environment
from onerecord.search_client import (
    HubSession,
    StaffMember,
    citizen_session,
    fetch_token,
    practitioner_attestation,
    practitioner_session,
    search_hub,
)
from onerecord.trust.keys import SigningKey
from onerecord.trust.patient_binding import encode_salt, make_digest, new_salt
from tests.support.servers import free_port_block, wait_healthy

HUB_ENV = {
    "ONERECORD_HUB_PER_REGION_TIMEOUT_S": "0.8",
    "ONERECORD_HUB_AGGREGATION_DEADLINE_S": "1.0",
    "ONERECORD_HUB_REQUEST_DEADLINE_S": "1.5",
    "ONERECORD_HUB_BREAKER_FAILURE_THRESHOLD": "3",
    "ONERECORD_HUB_BREAKER_COOLDOWN_S": "1.0",
}


@dataclass
class Network:
    """The running demo: its manifest, layout, and the processes tests may stop and restart."""

    layout: DemoLayout
    manifest: dict[str, Any]
    demo: subprocess.Popen[bytes]
    spawned: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def hub_fhir(self) -> str:
        return str(self.manifest["hub"]["fhir_base"])

    @property
    def client_key(self) -> SigningKey:
        data = Path(self.manifest["client"]["key_file"]).read_bytes()
        return SigningKey.from_jwk(json.loads(data))

    @property
    def publisher_key(self) -> SigningKey:
        data = Path(self.manifest["publisher"]["key_file"]).read_bytes()
        return SigningKey.from_jwk(json.loads(data))

    def hcid(self, index: int) -> str:
        return str(self.manifest["regions"][index]["home_community_id"])

    def region_fhir(self, index: int) -> str:
        return str(self.manifest["regions"][index]["fhir_base"])

    def region_process(self, index: int) -> psutil.Process:
        port = str(self.layout.base_port + 1 + index)
        pids = [self.demo.pid, *(p.pid for p in self.spawned if p.poll() is None)]
        for pid in pids:
            try:
                parent = psutil.Process(pid)
                for child in [parent, *parent.children()]:
                    cmd = child.cmdline()
                    if "source" in cmd and "--port" in cmd and cmd[cmd.index("--port") + 1] == port:
                        if child.status() != psutil.STATUS_ZOMBIE:
                            return child
            except psutil.NoSuchProcess:
                continue
        raise LookupError(f"no running process for region {index}")

    def restart_region(self, index: int) -> None:
        proc = subprocess.Popen(
            region_command(self.layout, index, None),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, **region_environment(self.layout, index)},
        )
        self.spawned.append(proc)
        wait_healthy(self.layout.region_url(index), proc)

    def staff(self, key: str = "doctor") -> StaffMember:
        return StaffMember.from_manifest(self.manifest["staff"][key])

    def practitioner(self, patient: str, staff: str = "doctor") -> HubSession:
        async def run() -> HubSession:
            async with httpx.AsyncClient(timeout=30) as http:
                return await practitioner_session(
                    http,
                    sts_url=self.manifest["sts"]["issuer"],
                    client_id=self.manifest["client"]["client_id"],
                    client_key=self.client_key,
                    staff=self.staff(staff),
                    patient=patient,
                )

        return asyncio.run(run())

    def practitioner_at_source(self, patient: str) -> HubSession:
        """A token for calling region 1 directly (audience: its homeCommunityId)."""

        async def run() -> HubSession:
            salt = new_salt()
            dpop = SigningKey.generate(kid="direct")
            async with httpx.AsyncClient(timeout=30) as http:
                token = await fetch_token(
                    http,
                    sts_url=self.manifest["sts"]["issuer"],
                    client_id=self.manifest["client"]["client_id"],
                    client_key=self.client_key,
                    dpop_key=dpop,
                    subject=self.staff().nin,
                    audience=self.hcid(0),
                    attestation=practitioner_attestation(
                        self.staff(), patient_digest=make_digest(patient, salt)
                    ),
                )
            return HubSession(token, dpop, patient, encode_salt(salt))

        return asyncio.run(run())

    def citizen(self, nin: str) -> HubSession:
        async def run() -> HubSession:
            async with httpx.AsyncClient(timeout=30) as http:
                return await citizen_session(
                    http,
                    sts_url=self.manifest["sts"]["issuer"],
                    client_id=self.manifest["client"]["client_id"],
                    client_key=self.client_key,
                    citizen=nin,
                )

        return asyncio.run(run())

    def hub_search(self, session: HubSession, patient: str) -> dict[str, Any]:
        """Search the hub for `patient`'s documents with `session` (one page of 200)."""

        async def run() -> dict[str, Any]:
            async with httpx.AsyncClient(timeout=30) as http:
                answer = await search_hub(
                    http, session, hub_fhir=self.hub_fhir, patient=patient, count=200
                )
            assert answer.status_code == 200, answer.text[:2000]
            body: dict[str, Any] = answer.json()
            return body

        return asyncio.run(run())

    def rewrite_directory(self, change: Any) -> None:
        """Edit the hub's directory file and wait until the hub has reloaded it (≤ 1 s)."""
        path = self.layout.directory_file
        data = json.loads(path.read_text())
        change(data["regions"])
        path.write_text(json.dumps(data))
        time.sleep(1.1)


def start_network(workdir: Path, env: dict[str, str] | None = None) -> Network:
    """Run `onerecord demo` with a manifest and short hub deadlines; wait until it is ready.

    `env`: further environment of the demo (e.g. ONERECORD_DEMO_XCA_REGION).
    """
    base = free_port_block(7)
    manifest = workdir / "manifest-for-tests.json"
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "onerecord.cli",
            "demo",
            "--workdir",
            str(workdir),
            "--base-port",
            str(base),
            "--citizens",
            "4",
            "--manifest",
            str(manifest),
        ],
        env={**os.environ, **HUB_ENV, "COLUMNS": "120", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 180
    while not manifest.exists():
        if demo.poll() is not None or time.monotonic() > deadline:
            out = demo.stdout.read().decode(errors="replace") if demo.stdout else ""
            demo.kill()
            raise RuntimeError(f"the demo did not start:\n{out[-3000:]}")
        time.sleep(0.2)
    time.sleep(0.2)  # the manifest is written in one call; let it land
    layout = DemoLayout(workdir, base)
    network = Network(layout, json.loads(manifest.read_text()), demo)
    data = json.loads(layout.directory_file.read_text())
    for region in data["regions"]:
        region["timeout_s"] = 5.0  # capped by the 1.0 s aggregation deadline
    layout.directory_file.write_text(json.dumps(data))
    time.sleep(1.1)
    return network


def stop_network(network: Network) -> tuple[int | None, str]:
    """Ctrl-C the demo; return its exit code and output."""
    for index in range(4):
        try:
            proc = network.region_process(index)
            if proc.status() == psutil.STATUS_STOPPED:
                proc.resume()
        except (LookupError, psutil.NoSuchProcess):
            continue
    for spawned in network.spawned:
        spawned.terminate()
    for spawned in network.spawned:
        try:
            spawned.wait(timeout=10)
        except subprocess.TimeoutExpired:
            spawned.kill()
            spawned.wait()
        if spawned.stderr:
            spawned.stderr.close()
    network.demo.send_signal(signal.SIGINT)
    time.sleep(0.3)
    network.demo.send_signal(signal.SIGINT)  # an impatient second Ctrl-C leaves no orphans
    try:
        code: int | None = network.demo.wait(timeout=30)
    except subprocess.TimeoutExpired:
        network.demo.kill()
        network.demo.wait()
        code = None
    out = network.demo.stdout.read().decode(errors="replace") if network.demo.stdout else ""
    if network.demo.stdout:
        network.demo.stdout.close()
    return code, out


@pytest.fixture(scope="module")
def network(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Network]:
    """The demo network of this module, or the worker's shared one (`shared_network` mark).

    A module marked `pytest.mark.shared_network` only reads, or puts back what it changes
    (blocks lifted, reservations withdrawn), and asserts nothing that another module's visits
    could change (counts of access-log entries, no emergency access yet): it runs against one
    network started once per pytest worker (`shared_network` in tests/conftest.py) instead of a
    network of its own (docs/testing.md "Shared network").
    """
    if request.node.get_closest_marker("shared_network") is not None:
        yield request.getfixturevalue("shared_network")
        return
    yield from running_network(tmp_path_factory.mktemp("network"))


def running_network(workdir: Path, env: dict[str, str] | None = None) -> Iterator[Network]:
    """Start the demo, yield it, and check that Ctrl-C stopped everything cleanly."""
    net = start_network(workdir, env)
    children = psutil.Process(net.demo.pid).children(recursive=True)
    try:
        yield net
    finally:
        code, out = stop_network(net)
        _gone, alive = psutil.wait_procs(children, timeout=10)
        for proc in alive:
            proc.kill()
    # Ctrl-C stopped everything cleanly.
    assert code == 0, out[-3000:]
    assert "All services stopped." in out
    assert not alive, f"left running: {alive}"
