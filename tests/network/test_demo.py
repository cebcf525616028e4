"""`onerecord demo --exit-when-ready --manifest FILE`: starts, loads, writes, stops, exits 0."""

from __future__ import annotations

import json
import re
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
    # The dialogue with the GP offices (docs/dialogue.md), seeded from the population.
    assert data["dialogue"]["audience"] == "urn:onerecord:dialogue"
    assert data["dialogue"]["fhir_base"] == f"{data['dialogue']['url']}/fhir"
    assert "GP offices:" in done.stdout
    # Helse Nord's media archive (docs/media.md "In the demo"), its studies in the overview.
    media = data["media"]
    assert media["region"] == "Helse Nord" and media["dicomweb"] == f"{media['url']}/dicomweb"
    assert media["hub_dicomweb"] == f"http://127.0.0.1:{base}/dicomweb/2.16.578.1.12.4.5.100.4"
    assert media["ae_title"] == "ONERECORD" and media["dimse_port"] > 0
    assert len(media["studies"]["adult"]) == 6 and len(media["studies"]["elderly"]) == 3
    directory = json.loads((tmp_path / "demo" / "regions.json").read_text())
    assert [r.get("media_url") for r in directory["regions"]] == [None] * 3 + [media["dicomweb"]]
    assert "Media archive: 9 studies" in done.stdout
    assert media["dicomweb"] in done.stdout
    logs = tmp_path / "demo" / "logs"
    for log in logs.glob("*.log"):
        assert not re.search(r"(?<!\d)\d{11}(?!\d)", log.read_text(errors="replace")), log.name
    assert "onerecord search --patient" in done.stdout
    assert "All services stopped." in done.stdout
    leftovers = [
        p
        for p in psutil.process_iter(["pid", "cmdline"])
        if p.info["pid"] not in before
        and (
            str(base) in " ".join(p.info["cmdline"] or [])
            or str(tmp_path) in " ".join(p.info["cmdline"] or [])
        )
    ]
    assert leftovers == []
