"""A real S3-compatible server on 127.0.0.1 for tests: moto's server mode, as a child process.

moto (Apache-2.0, a test dependency only) answers the S3 REST API over HTTP as a cloud bucket
would: multipart uploads, server-side copy, ranged GETs, listings. Being its own process, the
test process's memory measures only the client side (the archive's constant-memory reads).
Credentials, region and endpoint reach obstore the production way: `AWS_*` variables.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.servers import free_port

__all__ = ["S3Server", "moto_server"]


@dataclass(frozen=True)
class S3Server:
    """A running moto server: its endpoint and the environment a client needs."""

    endpoint: str

    @property
    def env(self) -> dict[str, str]:
        """What an operator sets for an S3-compatible store (docs/media.md "Storage")."""
        return {
            "AWS_ACCESS_KEY_ID": "onerecord-test",
            "AWS_SECRET_ACCESS_KEY": "onerecord-test-secret",
            "AWS_REGION": "eu-north-1",
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
        }

    def new_bucket(self) -> str:
        """Create an empty bucket with a fresh name (one per test: no shared state)."""
        name = f"onerecord-{uuid.uuid4().hex[:16]}"
        response = httpx.put(f"{self.endpoint}/{name}", timeout=10)
        response.raise_for_status()
        return name

    def store(self, bucket: str, prefix: str | None = None) -> Any:
        """An obstore S3Store on the bucket, configured explicitly (not from the environment)."""
        from obstore.store import S3Store

        env = self.env
        return S3Store(
            bucket,
            prefix=prefix,
            endpoint=self.endpoint,
            access_key_id=env["AWS_ACCESS_KEY_ID"],
            secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region=env["AWS_REGION"],
            client_options={"allow_http": True},
        )

    def keys(self, bucket: str) -> list[str]:
        """Every key in the bucket, as the server lists them (ListObjectsV2)."""
        import obstore

        store = self.store(bucket)
        return sorted(meta["path"] for batch in obstore.list(store) for meta in batch)


@contextlib.contextmanager
def moto_server() -> Iterator[S3Server]:
    """Start `moto.server` on a free port of 127.0.0.1; stop it afterwards."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="moto-") as folder:
        log = Path(folder) / "moto.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 30
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"moto exited: {log.read_text(errors='replace')[-2000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{endpoint}/moto-api/", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("moto did not start")
                time.sleep(0.05)
            yield S3Server(endpoint)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
