"""`onerecord media serve` as its own process: settings from flags, DCMTK peers, the audit chain."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import httpx
from typer.testing import CliRunner

from onerecord.cli import app
from tests.media.conftest import SynthFiles
from tests.media.dicom_tools import require_dcmtk, storescu_batches
from tests.support.servers import free_port, serve_process


def test_serve_store_and_verify_the_audit_chain(tmp_path: Path, synth_files: SynthFiles) -> None:
    http_port, dimse_port = free_port(), free_port()
    db = tmp_path / "archive.db"
    args = [
        "-m", "onerecord.cli", "media", "serve",
        "--db", f"sqlite:///{db}", "--content", str(tmp_path / "content"),
        "--port", str(http_port), "--dimse-port", str(dimse_port), "--ae-title", "HN_ARCHIVE",
        "--modality", "US1=127.0.0.1:1104", "--log-level", "warning",
    ]  # fmt: skip
    with serve_process(args, http_port):
        health = httpx.get(f"http://127.0.0.1:{http_port}/healthz").json()
        assert health["ae_title"] == "HN_ARCHIVE" and health["dimse_port"] == dimse_port
        assert "manifests_pending" not in health  # publishing is off without a source
        peer = ["-aet", "US1", "-aec", "HN_ARCHIVE", "127.0.0.1", str(dimse_port)]
        subprocess.run([require_dcmtk("echoscu"), *peer], check=True, timeout=60)
        for options, files in storescu_batches(synth_files.paths):
            subprocess.run(
                [require_dcmtk("storescu"), *options, *peer, *map(str, files)],
                check=True,
                timeout=120,
            )
    with sqlite3.connect(db) as conn:
        (instances,) = conn.execute("SELECT count(*) FROM media_instance").fetchone()
        (stores,) = conn.execute(
            "SELECT count(*) FROM audit_event WHERE action = 'store' AND outcome = 'success'"
        ).fetchone()
    assert instances == stores == len(synth_files.paths)
    verify = CliRunner().invoke(app, ["audit", "verify", "--db", f"sqlite:///{db}"])
    assert verify.exit_code == 0, verify.output


def test_a_malformed_modality_flag_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["media", "serve", "--db", f"sqlite:///{tmp_path}/a.db", "--modality", "CT1@host"],
    )
    assert result.exit_code == 2
    assert "AE=HOST:PORT" in result.output


def test_dicomweb_without_the_patients_controls_is_refused(tmp_path: Path) -> None:
    base = ["media", "serve", "--db", f"sqlite:///{tmp_path}/a.db", "--issuer", "http://sts"]
    result = CliRunner().invoke(app, base)
    assert result.exit_code == 2
    assert "patient's controls" in " ".join(result.output.split())
    result = CliRunner().invoke(app, [*base, "--source-url", "http://127.0.0.1:8080"])
    assert result.exit_code == 2
    assert "go together" in " ".join(result.output.split())
