"""Issue 10 E: `onerecord source import` shows its retries and gives up on a dead source.

It used to retry for over ten minutes, silently, when the region it loaded died.
"""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from onerecord.synth.dataset import write_dataset
from tests.support.servers import free_port, wait_healthy

from .conftest import REFERENCE_DATE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def one_document_bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Over a hundred single-document bundles for Helse Sør-Øst: an import that takes a while."""
    out = tmp_path_factory.mktemp("dataset")
    write_dataset(out, seed=9, citizens=30, reference_date=REFERENCE_DATE, batch_size=1)
    return out


def _import(dataset: Path, url: str, give_up_after: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable, "-m", "onerecord.cli", "source", "import", str(dataset),
            "--region", "hso", "--url", url, "--concurrency", "1",
            "--give-up-after", str(give_up_after),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _registered(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            return int(conn.execute("select count(*) from document_entry").fetchone()[0])
    except sqlite3.Error:
        return 0


@pytest.fixture
def source(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    port = free_port()
    db = tmp_path / "registry.db"
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "onerecord.cli", "source", "serve", "--db", f"sqlite:///{db}",
            "--content", str(tmp_path / "content"), "--port", str(port),
            "--dev", "--dev-open-access", "--log-level", "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        yield proc, f"http://127.0.0.1:{port}", db
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_import_gives_up_with_one_line_when_its_source_dies_mid_import(
    one_document_bundles: Path, source: tuple[subprocess.Popen[bytes], str, Path]
) -> None:
    proc, url, db = source
    importer = _import(one_document_bundles, url, give_up_after=2)
    try:
        deadline = time.monotonic() + 60
        while _registered(db) < 3:
            assert importer.poll() is None, importer.communicate()
            assert time.monotonic() < deadline, "the import did not start"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        out, err = importer.communicate(timeout=60)
    finally:
        if importer.poll() is None:
            importer.kill()
            importer.wait()
    assert importer.returncode == 3, out + err
    assert time.monotonic() - killed < 2 + 10
    assert "retrying" in out and "(attempt 2, next in 0.5 s)" in out, out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: gave up on {url}/fhir after 2 s without an answer")
    assert "ConnectError" in lines[0]
    assert "Traceback" not in out + err


def test_import_gives_up_on_a_source_that_never_answers(one_document_bundles: Path) -> None:
    with socket.socket() as silent:  # accepts connections (kernel backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        importer = _import(one_document_bundles, url, give_up_after=1.5)
        try:
            out, err = importer.communicate(timeout=60)
        finally:
            if importer.poll() is None:
                importer.kill()
                importer.wait()
    assert importer.returncode == 3, out + err
    assert time.monotonic() - started < 1.5 + 15
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert (
        lines[0]
        == f"error: gave up on {url}/fhir after 2 s without an answer (requests hang unanswered)"
    )
