"""Issue 10 E: `onerecord demo` restarts a region (or Helse Nord's media archive) that died, and
says so on one line.

The demo used to leave a dead region dead until the whole network was restarted.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.network.conftest import start_network, stop_network

pytestmark = pytest.mark.slow


def test_demo_restarts_a_killed_region_and_logs_the_restart(tmp_path: Path) -> None:
    network = start_network(tmp_path / "demo")
    children = psutil.Process(network.demo.pid).children(recursive=True)
    try:
        dead = network.region_process(1)
        dead.kill()  # SIGKILL: a crash, not a stop on purpose
        dead.wait(timeout=10)
        deadline = time.monotonic() + 45
        while True:
            assert time.monotonic() < deadline, "the region was not restarted in time"
            try:
                again = network.region_process(1)
                healthy = httpx.get(network.layout.region_url(1) + "/healthz", timeout=2)
                if again.pid != dead.pid and healthy.status_code == 200:
                    break
            except (LookupError, psutil.NoSuchProcess, httpx.HTTPError):
                pass
            time.sleep(0.2)
        # It answers searches again, not only /healthz.
        metadata = httpx.get(network.region_fhir(1) + "/metadata", timeout=10)
        assert metadata.status_code == 200
        # Helse Nord's media archive is supervised the same way, on the same ports and data.
        media = network.manifest["media"]
        archive = _media_process(network.demo.pid)
        archive.kill()
        archive.wait(timeout=10)
        deadline = time.monotonic() + 45
        while True:
            assert time.monotonic() < deadline, "the media archive was not restarted in time"
            try:
                health = httpx.get(f"{media['url']}/healthz", timeout=2)
                if health.status_code == 200 and _media_process(network.demo.pid) != archive:
                    break
            except (LookupError, httpx.HTTPError):
                pass
            time.sleep(0.2)
        assert health.json()["dimse_port"] == media["dimse_port"]
        assert health.json()["manifests_pending"] == 0
    finally:
        code, out = stop_network(network)
        _gone, alive = psutil.wait_procs(children, timeout=10)
        for proc in alive:
            proc.kill()
    assert code == 0, out[-3000:]
    assert not alive, f"left running: {alive}"
    name = network.manifest["regions"][1]["name"]
    restarts = [line for line in out.splitlines() if line.startswith(f"{name} stopped")]
    assert restarts == [f"{name} stopped (killed by SIGKILL); restarting it in 1 s (restart 1)"]
    assert "media archive stopped (killed by SIGKILL); restarting it in 1 s (restart 1)" in out
    assert "All services stopped." in out


def _media_process(demo_pid: int) -> psutil.Process:
    for child in psutil.Process(demo_pid).children():
        try:
            cmd = child.cmdline()
            if "media" in cmd and "serve" in cmd:
                if child.status() != psutil.STATUS_ZOMBIE:
                    return child
        except psutil.NoSuchProcess:
            continue
    raise LookupError("no running media archive")
