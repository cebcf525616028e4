"""The demo's event bus for the locator: the machine's NATS if it answers, else one of its own.

`onerecord demo` runs with the locator on (docs/hub.md "Locator"). It uses NATS at
127.0.0.1:4222 when that answers with JetStream; otherwise it starts its own `nats-server -js`
(Debian package `nats-server`, installed by `scripts/install-nats`) on a free port, with its
store inside the demo's folder. Without either the demo still starts, with the locator off, and
says so. `ONERECORD_DEMO_NATS_URL` names another NATS to try first, `ONERECORD_DEMO_NATS_SERVER`
another nats-server program. The stream and subjects are the demo folder's own, so two demos on
one NATS never mix their regions' events; the patient key is a development key (`dev-…`), which
the hub and the sources refuse outside development mode.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import nats

from onerecord.events import DEV_PATIENT_KEY_PREFIX

__all__ = [
    "MACHINE_NATS_URL",
    "LocatorBus",
    "dev_patient_key",
    "drop_stream",
    "free_port",
    "jetstream_answers",
    "nats_server_binary",
    "nats_server_command",
]

MACHINE_NATS_URL = "nats://127.0.0.1:4222"
_SERVER_PATHS = ("/usr/sbin/nats-server", "/usr/bin/nats-server")


@dataclass(frozen=True, slots=True)
class LocatorBus:
    """Where the demo's regions publish and its hub listens, and the patient key they share."""

    url: str
    stream: str
    subject_prefix: str
    key: str
    own_server: bool

    @classmethod
    def for_demo(cls, workdir: Path, url: str, key: str, *, own_server: bool) -> LocatorBus:
        token = hashlib.sha256(str(workdir.resolve()).encode()).hexdigest()[:10]
        return cls(
            url, f"ONERECORD_DEMO_{token}", f"onerecord.demo{token}.locator", key, own_server
        )

    def env(self, prefix: str) -> dict[str, str]:
        """The settings for a hub (`ONERECORD_HUB_`) or a source (`ONERECORD_SOURCE_`)."""
        return {
            f"{prefix}LOCATOR_NATS_URL": self.url,
            f"{prefix}LOCATOR_STREAM": self.stream,
            f"{prefix}LOCATOR_SUBJECT_PREFIX": self.subject_prefix,
            f"{prefix}LOCATOR_PATIENT_KEY": self.key,
        }


async def jetstream_answers(url: str, timeout_s: float = 1.5) -> bool:
    """True when a NATS server answers at `url` with JetStream enabled."""
    try:
        client = await asyncio.wait_for(
            nats.connect(
                url, connect_timeout=timeout_s, max_reconnect_attempts=0, allow_reconnect=False
            ),
            timeout_s,
        )
    except Exception:  # any failure: no usable NATS there
        return False
    try:
        await asyncio.wait_for(client.jetstream().account_info(), timeout_s)
    except Exception:  # no JetStream on this server
        return False
    finally:
        await client.close()
    return True


async def drop_stream(bus: LocatorBus, timeout_s: float = 2.0) -> None:
    """Delete the demo's stream from a NATS the demo does not own."""
    client = await nats.connect(bus.url, connect_timeout=timeout_s, max_reconnect_attempts=0)
    try:
        await client.jetstream(timeout=timeout_s).delete_stream(bus.stream)
    finally:
        await client.close()


def nats_server_binary() -> str | None:
    """The nats-server program, if installed (Debian puts it in /usr/sbin)."""
    found = shutil.which("nats-server")
    if found:
        return found
    return next((p for p in _SERVER_PATHS if os.access(p, os.X_OK)), None)


def nats_server_command(binary: str, *, port: int, monitor_port: int, store: Path) -> list[str]:
    """A JetStream server on 127.0.0.1 only, its store in `store`, /healthz on `monitor_port`."""
    store.mkdir(parents=True, exist_ok=True)
    return [
        binary,
        "-js",
        "-a",
        "127.0.0.1",
        "-p",
        str(port),
        "-m",
        str(monitor_port),
        "-sd",
        str(store),
        "-n",
        "onerecord-demo",
    ]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dev_patient_key(keys: Path) -> str:
    """The demo's locator patient key: made once, kept in KEYS/dev-locator-patient.key."""
    path = keys / f"{DEV_PATIENT_KEY_PREFIX}locator-patient.key"
    if path.exists():
        return path.read_text().strip()
    keys.mkdir(parents=True, exist_ok=True)
    key = f"{DEV_PATIENT_KEY_PREFIX}locator-{secrets.token_hex(24)}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    return key
