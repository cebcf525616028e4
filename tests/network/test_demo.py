"""`onerecord demo --exit-when-ready --manifest FILE`: starts, loads, writes, stops, exits 0."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.support.servers import free_port_block

pytestmark = pytest.mark.slow


def test_demo_exit_when_ready_writes_the_manifest_and_stops_everything(tmp_path: Path) -> None:
    manifest = tmp_path / "out.json"
    base = free_port_block(6)
    before = {p.pid for p in psutil.process_iter()}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "onerecord.cli",
            "demo",
            "--workdir",
            str(tmp_path / "demo"),
            "--base-port",
            str(base),
            "--citizens",
            "2",
            "--manifest",
            str(manifest),
            "--exit-when-ready",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads(manifest.read_text())
    assert data["hub"]["fhir_base"] == f"http://127.0.0.1:{base}/fhir"
    assert data["sts"]["issuer"] == f"http://127.0.0.1:{base + 5}"
    assert [r["fhir_base"] for r in data["regions"]] == [
        f"http://127.0.0.1:{base + i}/fhir" for i in range(1, 5)
    ]
    assert len({r["home_community_id"] for r in data["regions"]}) == 4
    assert {"adult", "child11", "proxy_holder"} <= set(data["patients"])
    assert data["staff"]["doctor"]["category"] == "LE"
    assert Path(data["client"]["key_file"]).exists()
    assert "onerecord search --patient" in done.stdout
    assert "All services stopped." in done.stdout
    leftovers = [
        p
        for p in psutil.process_iter(["pid", "cmdline"])
        if p.info["pid"] not in before and str(base) in " ".join(p.info["cmdline"] or [])
    ]
    assert leftovers == []
