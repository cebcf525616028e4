"""`onerecord demo`: the whole network on 127.0.0.1 — STS, four regions, hub — with synthetic data.

Each part is its own process (started in its own session, so Ctrl-C reaches only the demo,
which then stops them in order). Once the network is up the demo supervises the parts: one
that fails (killed, crashed) is started again with back-off, one line on the console each time,
and given up on after repeated quick failures (`onerecord.supervisor`); one stopped with SIGTERM
stays stopped. Ports: hub BASE, regions BASE+1…BASE+4, STS BASE+5, the portals BASE+6; the
dialogue and Helse Nord's media archive (HTTP and DIMSE, demo_media.py, loaded with the cast's
synthetic studies) on free ports. Keys are development keys under WORKDIR/keys: the STS's, the
hub's, the command-line client's (registered at the STS as `onerecord-cli`) and the portals'
(registered as `onerecord-portal` with its two redirect URIs). WORKDIR/manifest.json lists
every endpoint, the cast's patient ids and the staff, for `onerecord search`, the portals and
scripts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from rich.console import Console
from rich.progress import Progress, TaskID
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from onerecord.demo_mail import MailSink
from onerecord.demo_dialogue import DIALOGUE_AUDIENCE, seed_dialogue, write_contacts
from onerecord.demo_media import (
    MEDIA_AE_TITLE,
    MEDIA_ISSUER,
    MEDIA_REGION,
    MODALITY_AE_TITLE,
    MediaLoad,
    MediaPorts,
    load_media,
    media_environment,
    media_key_file,
    wait_published,
)
from onerecord.demo_nats import (
    MACHINE_NATS_URL,
    LocatorBus,
    dev_patient_key,
    drop_stream,
    free_port,
    jetstream_answers,
    nats_server_binary,
    nats_server_command,
)
from onerecord.hub.xca_initiating import development_certificate_file, load_hub_saml_issuer
from onerecord.search_client import StaffMember
from onerecord.supervisor import GiveUp, Restart, RestartPolicy, decide, describe_exit
from onerecord.synth.dataset import load_population, write_dataset
from onerecord.synth.importer import TargetUnavailable, import_dataset
from onerecord.synth.population import Population
from onerecord.synth.regions import DEFAULT_REGIONS
from onerecord.trust.keys import DEV_KEY_MARKER, SigningKey, load_or_create_dev_key
from onerecord.trust.publish_proof import (
    PUBLISH_PROOF_HEADER,
    make_publish_proof,
    publisher_jwk,
)
from onerecord.xca.dev_issuer import DEV_SAML_ISSUER, create_development_issuer

__all__ = [
    "CLIENT_ID",
    "PORTAL_CLIENT_ID",
    "PUBLISHER_ISSUER",
    "DemoLayout",
    "publish_proof_hook",
    "run_demo",
    "staff_manifest",
]

console = Console()

CLIENT_ID = "onerecord-cli"
PORTAL_CLIENT_ID = "onerecord-portal"
HUB_AUDIENCE = "onerecord:hub"
PDQM_AUDIENCE = "onerecord:pdqm"
"""The patient lookup (IHE PDQm ITI-78) the STS serves beside its registers at /fhir/Patient."""


@dataclass(frozen=True, slots=True)
class DemoLayout:
    """Where everything of one demo lives: ports, URLs and files."""

    workdir: Path
    base_port: int

    @property
    def hub(self) -> str:
        return f"http://127.0.0.1:{self.base_port}"

    @property
    def sts(self) -> str:
        return f"http://127.0.0.1:{self.base_port + 5}"

    @property
    def portal(self) -> str:
        return f"http://127.0.0.1:{self.base_port + 6}"

    def region_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.base_port + 1 + index}"

    @property
    def keys(self) -> Path:
        return self.workdir / "keys"

    @property
    def dataset(self) -> Path:
        return self.workdir / "dataset"

    @property
    def directory_file(self) -> Path:
        return self.workdir / "regions.json"

    @property
    def clients_file(self) -> Path:
        return self.workdir / "sts-clients.json"

    @property
    def manifest(self) -> Path:
        return self.workdir / "manifest.json"

    @property
    def publishers_file(self) -> Path:
        return self.workdir / "publishers.jwks.json"

    @property
    def media_publishers_file(self) -> Path:
        """Helse Nord's publishers: the importer and its media archive."""
        return self.workdir / "publishers-media.jwks.json"


@dataclass
class Service:
    """One started process, the URL of its /healthz, and how to start it again."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    command: list[str] = field(default_factory=list)
    log: Path | None = None
    env: dict[str, str] | None = None
    started: float = field(default_factory=time.monotonic)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "onerecord.cli", *args]


def _sqlite(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def sts_command(layout: DemoLayout) -> list[str]:
    """The STS: development keys, the synthetic population, the CLI client registered."""
    return _cli(
        "sts",
        "serve",
        "--port",
        str(layout.base_port + 5),
        "--population",
        str(layout.dataset / "population.json"),
        "--clients",
        str(layout.clients_file),
        *register_args(layout),
        "--dev",
    )


def register_args(layout: DemoLayout) -> list[str]:
    """Serve the patient lookup on the STS, audited into a chain of its own."""
    audit = layout.workdir / "sts" / "register-audit.db"
    return ["--register-audit-db", _sqlite(audit)]


def register_manifest(layout: DemoLayout) -> dict[str, str]:
    """Where the portals look a patient up (PDQm ITI-78) and the audience of its tokens."""
    return {"fhir_base": f"{layout.sts}/fhir", "audience": PDQM_AUDIENCE}


def dialogue_command(
    layout: DemoLayout, port: int, mail: tuple[str, int] | None = None
) -> list[str]:
    """The dialogue with the GP office (docs/dialogue.md): its own SQLite database, e-mail
    notices to the demo's mail sink (`mail`: its host and port), the development clock on."""
    notices = []
    if mail is not None:
        notices = [
            "--smtp-host",
            mail[0],
            "--smtp-port",
            str(mail[1]),
            "--contacts",
            str(layout.workdir / "dialogue" / "contacts.json"),
            "--portal-url",
            f"{layout.portal}/innbygger/fastlege",
        ]
    return _cli(
        "dialogue",
        "serve",
        "--issuer",
        layout.sts,
        "--db",
        _sqlite(layout.workdir / "dialogue" / "dialogue.db"),
        "--port",
        str(port),
        "--audience",
        DIALOGUE_AUDIENCE,
        *notices,
        "--dev",
        "--dev-clock",
    )


def media_command(layout: DemoLayout, ports: MediaPorts) -> list[str]:
    """Helse Nord's media archive (docs/media.md "In the demo"): its own SQLite database and
    content folder, DICOMweb behind the STS and the hub, the region's source for the patient's
    controls and the manifests, signed with the archive's own publisher key."""
    folder = layout.workdir / "media"
    info = DEFAULT_REGIONS[MEDIA_REGION]
    return _cli(
        "media",
        "serve",
        "--region",
        info.name,
        "--home-community-id",
        info.home_community_id.urn,
        "--db",
        _sqlite(folder / "archive.db"),
        "--content",
        str(folder / "content"),
        "--port",
        str(ports.http),
        "--ae-title",
        MEDIA_AE_TITLE,
        "--dimse-port",
        str(ports.dimse),
        "--issuer",
        layout.sts,
        "--jwks-url",
        f"{layout.sts}/jwks",
        "--hub-issuer",
        layout.hub,
        "--hub-jwks-url",
        f"{layout.hub}/jwks",
        "--public-base-url",
        ports.url,
        "--source-url",
        layout.region_url(MEDIA_REGION),
        "--publisher-issuer",
        MEDIA_ISSUER,
        "--publisher-key-file",
        str(media_key_file(layout.keys)),
        "--log-level",
        "warning",
    )


def portal_command(layout: DemoLayout) -> list[str]:
    """The portals: hub clients with the portal client's development key (dev mode)."""
    return _cli(
        "portal",
        "serve",
        "--manifest",
        str(layout.manifest),
        "--port",
        str(layout.base_port + 6),
        "--dev",
    )


def hub_command(layout: DemoLayout, postgres: str | None) -> list[str]:
    """The hub: trusts the STS, signs assertions with its development key, audits."""
    audit = _database(postgres, "onerecord_hub") if postgres else None
    audit = audit or _sqlite(layout.workdir / "hub" / "audit.db")
    cmd = _cli(
        "hub",
        "serve",
        "--directory",
        str(layout.directory_file),
        "--port",
        str(layout.base_port),
        "--issuer",
        layout.sts,
        "--jwks-url",
        f"{layout.sts}/jwks",
        "--audience",
        HUB_AUDIENCE,
        "--key-dir",
        str(layout.keys),
        "--audit-db",
        audit,
        *_audit_checkpoint_args(layout, "hub"),
        "--log-level",
        "warning",
        "--dev",
    )
    return cmd


def region_command(layout: DemoLayout, index: int, postgres: str | None) -> list[str]:
    """One region: its own database and content folder; trusts the STS and hub."""
    info = DEFAULT_REGIONS[index]
    folder = layout.workdir / info.slug
    folder.mkdir(parents=True, exist_ok=True)
    registry = (
        _database(postgres, f"onerecord_{info.slug}")
        if postgres
        else _sqlite(folder / "registry.db")
    )
    cmd = _cli(
        "source",
        "serve",
        "--region",
        info.name,
        "--home-community-id",
        info.home_community_id.urn,
        "--repository-unique-id",
        str(info.repository_unique_id),
        "--db",
        registry,
        "--content",
        str(folder / "content"),
        "--port",
        str(layout.base_port + 1 + index),
        "--issuer",
        layout.sts,
        "--jwks-url",
        f"{layout.sts}/jwks",
        "--hub-issuer",
        layout.hub,
        "--hub-jwks-url",
        f"{layout.hub}/jwks",
        *_audit_checkpoint_args(layout, info.slug),
        "--dev",
    )
    return cmd


def _audit_checkpoint_args(layout: DemoLayout, name: str) -> list[str]:
    """Sign each audit chain's head with the development checkpoint key, into a file of its own.

    Check with `onerecord audit verify --db … --checkpoints WORKDIR/NAME/audit-checkpoints.jsonl
    --checkpoint-key WORKDIR/keys/dev-audit-checkpoint.jwk.json --dev`.
    """
    load_or_create_dev_key(layout.keys, name="audit-checkpoint")
    path = layout.keys / f"{DEV_KEY_MARKER}-audit-checkpoint.jwk.json"
    checkpoints = layout.workdir / name / "audit-checkpoints.jsonl"
    return ["--audit-checkpoints", str(checkpoints), "--audit-checkpoint-key", str(path)]


def write_directory(
    layout: DemoLayout, *, xca_region: int | None = None, media: dict[int, str] | None = None
) -> None:
    """Write the hub's region directory: the four regions with their audiences.

    Region number `xca_region` (1-4) is asked over XCA: its entry says `xca` with its
    responding gateway's ITI-38/39 URLs (reads and self-service stay at its FHIR base).
    `media`: region index → its archive's DICOMweb base (`media_url`, docs/hub.md).
    """
    regions: list[dict[str, Any]] = [
        {
            "name": info.name,
            "home_community_id": info.home_community_id.urn,
            "base_url": f"{layout.region_url(i)}/fhir",
            "audience": info.home_community_id.urn,
            "enabled": True,
        }
        for i, info in enumerate(DEFAULT_REGIONS)
    ]
    for index, url in (media or {}).items():
        regions[index]["media_url"] = url
    if xca_region is not None:
        entry = regions[xca_region - 1]
        url = layout.region_url(xca_region - 1)
        entry.update(protocol="xca", iti38_url=f"{url}/xca/iti38", iti39_url=f"{url}/xca/iti39")
    layout.directory_file.write_text(json.dumps({"regions": regions}, indent=2), encoding="utf-8")


@dataclass(frozen=True)
class _SamlTrust:
    hub: dict[str, str]
    region: dict[str, str]


DEV_XDS_SAML_ISSUER = DEV_SAML_ISSUER
"""The development SAML issuer of clinical systems' ITI-18/43 (stands in for HelseID's)."""
XDS_SAML_AUDIENCE = "onerecord:dokumentdeling-saml"
"""The network's audience of those assertions (HelseID's is `nhn:dokumentdeling-saml`): the
hub and every region accept it, since the hub relays the assertion (docs/xca.md)."""


def xds_saml_files(layout: DemoLayout) -> tuple[Path, Path]:
    """The development clinical SAML issuer's key and certificate (made by the demo)."""
    return layout.keys / "dev-xds-saml.key", layout.keys / "dev-xds-saml.crt"


def _hub_saml_trust(layout: DemoLayout) -> _SamlTrust:
    """Make the hub's development SAML issuer now, so every region can trust it from the start;
    and the clinical systems' development issuer, which the hub and every region trust."""
    load_hub_saml_issuer(
        name=layout.hub, key_file=None, certificate_file=None, key_dir=layout.keys, dev_mode=True
    )
    certificate = str(development_certificate_file(layout.keys))
    xds_key, xds_certificate = xds_saml_files(layout)
    if not xds_key.exists() or not xds_certificate.exists():
        create_development_issuer(xds_key, xds_certificate)
    return _SamlTrust(
        hub={
            "ONERECORD_HUB_SAML_ISSUER": layout.hub,
            "ONERECORD_HUB_XDS_ISSUERS": json.dumps({DEV_XDS_SAML_ISSUER: [str(xds_certificate)]}),
            "ONERECORD_HUB_XDS_AUDIENCES": json.dumps([XDS_SAML_AUDIENCE]),
        },
        region={
            "ONERECORD_SOURCE_XCA_ISSUERS": json.dumps(
                {layout.hub: [certificate], DEV_XDS_SAML_ISSUER: [str(xds_certificate)]}
            )
        },
    )


def region_environment(
    layout: DemoLayout, index: int, saml: _SamlTrust | None = None
) -> dict[str, str]:
    """The settings a demo region gets beside its command line: the importer's publishing key,
    its SAML audiences and the SAML issuers it trusts (the hub's, the clinical systems').

    Also for restarting one region of a running demo (the tests' `restart_region`): the SAML
    issuers are made once per layout and only read again here.
    """
    info = DEFAULT_REGIONS[index]
    trust = saml or _hub_saml_trust(layout)
    publishers = layout.media_publishers_file if index == MEDIA_REGION else layout.publishers_file
    return {
        "ONERECORD_SOURCE_PUBLISHER_JWKS_FILE": str(publishers),
        "ONERECORD_SOURCE_XCA_AUDIENCES": json.dumps(
            [info.home_community_id.urn, XDS_SAML_AUDIENCE]
        ),
        **trust.region,
    }


PUBLISHER_ISSUER = "onerecord-demo-importer"


def write_publishers(layout: DemoLayout) -> SigningKey:
    """Create the importer's publishing key and the JWKS file the regions trust for ITI-65.

    Each key is tied to the one issuer that may sign with it. Helse Nord's source also trusts
    its media archive's key (a file of its own), marked as an archive: the archive publishes its
    manifests there and reads the patient's controls as a system of the region; the importer
    may publish but not read controls.
    """
    key = load_or_create_dev_key(layout.keys, name="publisher")
    media = load_or_create_dev_key(layout.keys, name="media-publisher")
    importer = publisher_jwk(key, issuer=PUBLISHER_ISSUER)
    archive = publisher_jwk(media, issuer=MEDIA_ISSUER, archive=True)
    layout.publishers_file.write_text(json.dumps({"keys": [importer]}), encoding="utf-8")
    layout.media_publishers_file.write_text(
        json.dumps({"keys": [importer, archive]}), encoding="utf-8"
    )
    return key


def publish_proof_hook(
    key: SigningKey, audiences: dict[str, str], *, issuer: str = PUBLISHER_ISSUER
) -> Callable[[httpx.Request], Awaitable[None]]:
    """Return an httpx request hook that signs every ITI-65 POST for the region it goes to,
    as `issuer` (the issuer the regions registered the key for)."""

    async def sign(request: httpx.Request) -> None:
        if request.method != "POST":
            return
        origin = f"{request.url.scheme}://{request.url.host}:{request.url.port}"
        request.headers[PUBLISH_PROOF_HEADER] = make_publish_proof(
            key,
            issuer=issuer,
            audience=audiences[origin],
            htu=str(request.url),
            body=request.content,
            now=time.time(),
        )

    return sign


def write_clients(layout: DemoLayout) -> tuple[Path, Path]:
    """Register the CLI's and the portals' public keys at the STS; return the key files."""
    cli_key = load_or_create_dev_key(layout.keys, name="client")
    portal_key = load_or_create_dev_key(layout.keys, name="portal-client")
    clients = {
        CLIENT_ID: {"jwk": cli_key.public_jwk(), "redirect_uris": [], "name": "onerecord CLI"},
        PORTAL_CLIENT_ID: {
            "jwk": portal_key.public_jwk(),
            "redirect_uris": [
                f"{layout.portal}/helsepersonell/innlogget",
                f"{layout.portal}/innbygger/innlogget",
            ],
            "name": "onerecord portals",
        },
    }
    layout.clients_file.write_text(json.dumps(clients, indent=2), encoding="utf-8")
    return layout.keys / "dev-client.jwk.json", layout.keys / "dev-portal-client.jwk.json"


def staff_manifest(population: Population) -> dict[str, dict[str, Any]]:
    """Return the staff's attestation facts: nin, HPR category, organisation and department."""
    out: dict[str, dict[str, Any]] = {}
    for key, person in sorted(population.staff.items()):
        org = population.organisation(person.organisation)
        out[key] = {
            "nin": str(person.nin),
            "name": person.name,
            "category": person.categories[0] if person.categories else None,
            "hpr": person.hpr.value if person.hpr else None,
            "legal_entity": str(org.legal_entity),
            "point_of_care": str(org.orgnr),
            "organisation": org.name,
            "department": str(person.department) if person.department else None,
            "departments": [{"resh": str(d.resh), "name": d.name} for d in org.departments],
        }
    return out


def manifest_body(
    layout: DemoLayout,
    population: Population,
    client_key: Path,
    portal_key: Path | None = None,
) -> dict[str, Any]:
    """Everything a script needs to use the running network."""
    portal_key = portal_key or layout.keys / "dev-portal-client.jwk.json"
    return {
        "hub": {
            "base_url": layout.hub,
            "fhir_base": f"{layout.hub}/fhir",
            "jwks": f"{layout.hub}/jwks",
            "audience": HUB_AUDIENCE,
            "iti18": f"{layout.hub}/xca/iti18",
            "iti43": f"{layout.hub}/xca/iti43",
        },
        "xds_saml": {
            "issuer": DEV_XDS_SAML_ISSUER,
            "audience": XDS_SAML_AUDIENCE,
            "key_file": str(xds_saml_files(layout)[0].resolve()),
            "certificate_file": str(xds_saml_files(layout)[1].resolve()),
        },
        "sts": {
            "issuer": layout.sts,
            "token_endpoint": f"{layout.sts}/token",
            "jwks": f"{layout.sts}/jwks",
        },
        "client": {"client_id": CLIENT_ID, "key_file": str(client_key.resolve())},
        "portal_client": {
            "client_id": PORTAL_CLIENT_ID,
            "key_file": str(portal_key.resolve()),
        },
        "portal": {"url": layout.portal},
        "register": register_manifest(layout),
        "publisher": {
            "issuer": PUBLISHER_ISSUER,
            "key_file": str((layout.keys / "dev-publisher.jwk.json").resolve()),
        },
        "regions": [
            {
                "slug": info.slug,
                "name": info.name,
                "home_community_id": info.home_community_id.urn,
                "repository_unique_id": str(info.repository_unique_id),
                "fhir_base": f"{layout.region_url(i)}/fhir",
                "audience": info.home_community_id.urn,
            }
            for i, info in enumerate(DEFAULT_REGIONS)
        ],
        "patients": {key: str(c.nin) for key, c in sorted(population.cast.items())},
        "staff": staff_manifest(population),
        "dataset": str(layout.dataset.resolve()),
        "workdir": str(layout.workdir.resolve()),
    }


def _database(postgres: str, name: str) -> str:
    """The URL of database `name` on the server that `postgres` points at."""
    return make_url(postgres).set(database=name).render_as_string(hide_password=False)


DEMO_DATABASES = tuple(f"onerecord_{i.slug}" for i in DEFAULT_REGIONS) + ("onerecord_hub",)


async def _create_databases(postgres: str) -> None:
    """Give every region and the hub's audit a PostgreSQL database of its own."""
    import asyncpg

    conn = await asyncpg.connect(
        make_url(postgres).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        for name in DEMO_DATABASES:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def _spawn(cmd: list[str], log: Path, env: dict[str, str] | None) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            cmd,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the demo only; it stops the children
        )


def _start(
    name: str, url: str, cmd: list[str], log: Path, env: dict[str, str] | None = None
) -> Service:
    return Service(name, url, _spawn(cmd, log, env), command=cmd, log=log, env=env)


def _restart(service: Service) -> None:
    """Start a service's process again with the same command, log and environment."""
    assert service.log is not None and service.command
    service.process = _spawn(service.command, service.log, service.env)
    service.started = time.monotonic()


async def _wait_ready(
    client: httpx.AsyncClient, service: Service, deadline: float, log: Path
) -> None:
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
            raise RuntimeError(
                f"{service.name} exited with code {service.process.returncode}:\n{tail}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get(f"{service.url}/healthz", timeout=2)).status_code == 200:
                return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{service.name} did not start within the deadline")


def stop_all(services: Sequence[Service], timeout: float = 10) -> None:
    """Terminate every process (SIGTERM), wait, and kill what does not stop."""
    for service in services:
        if service.process.poll() is None:
            service.process.terminate()
    ends = time.monotonic() + timeout
    for service in services:
        try:
            service.process.wait(timeout=max(ends - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait()


async def run_demo(
    *,
    workdir: Path,
    base_port: int,
    citizens: int,
    seed: int,
    postgres: str | None,
    manifest: Path | None,
    exit_when_ready: bool,
    locator: bool = True,
    xca_region: int | None = None,
) -> int:
    """Start, load, print, wait for Ctrl-C, stop. Returns the exit code."""
    layout = DemoLayout(workdir, base_port)
    workdir.mkdir(parents=True, exist_ok=True)
    if not (layout.dataset / "population.json").exists():
        with console.status("Generating synthetic patients and documents…"):
            summary = write_dataset(
                layout.dataset,
                seed=seed,
                citizens=citizens,
                reference_date=date.today(),
                batch_size=50,
            )
        console.print(f"Generated {summary}")
    population = load_population(layout.dataset / "population.json")
    client_key, portal_key = write_clients(layout)
    publisher = write_publishers(layout)
    media = MediaPorts(http=free_port(), dimse=free_port())
    write_directory(layout, xca_region=xca_region, media={MEDIA_REGION: media.dicomweb})
    saml_env = _hub_saml_trust(layout)
    if postgres:
        await _create_databases(postgres)
    logs = workdir / "logs"
    services: list[Service] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    bus: LocatorBus | None = None
    mail_sink: MailSink | None = None
    try:
        bus = await _locator_bus(layout, logs, services, enabled=locator)
        hub_env = {**(bus.env("ONERECORD_HUB_") if bus else {}), **saml_env.hub}
        region_env = {**(bus.env("ONERECORD_SOURCE_") if bus else {}), **saml_env.region}
        services.append(
            _start(
                "STS",
                layout.sts,
                sts_command(layout),
                logs / "sts.log",
                env={
                    "ONERECORD_STS_KEY_DIR": str(layout.keys),
                    # EHRs may also call a region directly, with a token for that region.
                    "ONERECORD_STS_ALLOWED_AUDIENCES": json.dumps(
                        [
                            HUB_AUDIENCE,
                            PDQM_AUDIENCE,
                            DIALOGUE_AUDIENCE,
                            *(i.home_community_id.urn for i in DEFAULT_REGIONS),
                        ]
                    ),
                },
            )
        )
        services.append(
            _start("hub", layout.hub, hub_command(layout, postgres), logs / "hub.log", hub_env)
        )
        for i, info in enumerate(DEFAULT_REGIONS):
            services.append(
                _start(
                    info.name,
                    layout.region_url(i),
                    region_command(layout, i, postgres),
                    logs / f"{info.slug}.log",
                    env={**region_environment(layout, i, saml_env), **region_env},
                )
            )
        first_region = len(services) - len(DEFAULT_REGIONS)
        regions = services[first_region:]
        services.append(
            _start(
                "media archive",
                media.url,
                media_command(layout, media),
                logs / "media.log",
                env=media_environment(),
            )
        )
        audiences = {
            layout.region_url(i): info.home_community_id.urn
            for i, info in enumerate(DEFAULT_REGIONS)
        }
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(120.0),
            event_hooks={"request": [publish_proof_hook(publisher, audiences)]},
        ) as client:
            with console.status(
                "Starting the STS, the hub, four regional sources and Helse Nord's media archive…"
            ):
                deadline = time.monotonic() + 90
                await asyncio.gather(
                    *(
                        _wait_ready(client, s, deadline, logs / f"{_log_name(s)}.log")
                        for s in services
                    )
                )
            mail_sink = _mail_sink(layout)
            try:
                # The GP offices' dialogue starts while the regions and the archive load.
                _, loaded, dialogue = await asyncio.gather(
                    _load(client, layout, regions),
                    _load_media(layout, population, client_key, media, seed=seed),
                    _start_dialogue(layout, population, logs, services, mail_sink),
                )
            except TargetUnavailable as exc:
                console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
                return 1
        body = manifest_body(layout, population, client_key, portal_key)
        body["media"] = media_manifest(layout, media, loaded)
        body["dialogue"] = dialogue
        if mail_sink is not None:
            body["mail"] = {
                "smtp_host": mail_sink.host,
                "smtp_port": mail_sink.port,
                "folder": str(mail_sink.folder.resolve()),
            }
        body["locator"] = (
            {"nats_url": bus.url, "stream": bus.stream, "subject_prefix": bus.subject_prefix}
            if bus
            else None
        )
        layout.manifest.write_text(json.dumps(body, indent=2, ensure_ascii=False), "utf-8")
        # The portals read the manifest, so they start once it is written.
        portal = _start("portals", layout.portal, portal_command(layout), logs / "portal.log")
        services.append(portal)
        async with httpx.AsyncClient(timeout=httpx.Timeout(30.0)) as client:
            with console.status("Starting the portals…"):
                await _wait_ready(client, portal, time.monotonic() + 60, logs / "portal.log")
        if manifest is not None:
            manifest.write_text(json.dumps(body, indent=2, ensure_ascii=False), "utf-8")
        _print_ready(layout, body, manifest)
        if exit_when_ready:
            return 0
        console.print("Press Ctrl-C to stop.")
        await _supervise(stop, services, RestartPolicy())
        return 0
    finally:
        # The handlers stay installed while stopping: a second Ctrl-C must not leave orphans.
        with console.status("Stopping…"):
            stop_all(list(reversed(services)))
            if mail_sink is not None:
                mail_sink.stop()
            if bus is not None and not bus.own_server:
                # The machine's NATS keeps nothing of the demo; a next start backfills.
                with contextlib.suppress(Exception):
                    await drop_stream(bus)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        # Everything is stopped; a late second Ctrl-C must not turn a clean exit into 130.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        console.print("All services stopped.")


async def _locator_bus(
    layout: DemoLayout, logs: Path, services: list[Service], *, enabled: bool
) -> LocatorBus | None:
    """The locator's NATS: the machine's if it answers, else the demo's own nats-server.

    Returns None (the locator off, and the console says why) when neither is there.
    """
    if not enabled:
        console.print("Locator off (--no-locator): the hub asks every region.")
        return None
    key = dev_patient_key(layout.keys)
    machine = os.environ.get("ONERECORD_DEMO_NATS_URL", MACHINE_NATS_URL)
    if await jetstream_answers(machine):
        console.print(f"Locator on: NATS JetStream at {machine}.")
        return LocatorBus.for_demo(layout.workdir, machine, key, own_server=False)
    binary = os.environ.get("ONERECORD_DEMO_NATS_SERVER") or nats_server_binary()
    if binary is None or not os.access(binary, os.X_OK):
        console.print(
            f"[yellow]Locator off: no NATS answers at {machine} and nats-server is not "
            "installed (scripts/install-nats); the hub asks every region.[/yellow]"
        )
        return None
    port, monitor = free_port(), free_port()
    command = nats_server_command(
        binary, port=port, monitor_port=monitor, store=layout.workdir / "nats"
    )
    service = _start("NATS", f"http://127.0.0.1:{monitor}", command, logs / "nats.log")
    services.append(service)
    url = f"nats://127.0.0.1:{port}"
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0)) as client:
        try:
            with console.status("Starting NATS JetStream for the locator…"):
                await _wait_ready(client, service, time.monotonic() + 30, logs / "nats.log")
        except (RuntimeError, TimeoutError) as exc:
            console.print(f"[yellow]Locator off: nats-server did not start ({exc}).[/yellow]")
            stop_all([service])
            services.remove(service)
            return None
    console.print(f"Locator on: the demo's own nats-server at {url}.")
    return LocatorBus.for_demo(layout.workdir, url, key, own_server=True)


async def _start_dialogue(
    layout: DemoLayout,
    population: Population,
    logs: Path,
    services: list[Service],
    mail_sink: MailSink | None = None,
) -> dict[str, str]:
    """Seed the GP offices from the population, start the dialogue service, wait for it.

    It runs beside the regions' loading, so it shows no status line of its own (the loading's
    progress bars are the one live display).
    """
    summary = await seed_dialogue(
        _sqlite(layout.workdir / "dialogue" / "dialogue.db"), population, today=date.today()
    )
    mail = None
    if mail_sink is not None:
        write_contacts(layout.workdir / "dialogue" / "contacts.json", population)
        mail = (mail_sink.host, mail_sink.port)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = dialogue_command(layout, port, mail)
    service = _start("dialogue", url, command, logs / "dialogue.log")
    services.append(service)
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0)) as client:
        await _wait_ready(client, service, time.monotonic() + 60, logs / "dialogue.log")
    console.print(
        f"GP offices: {summary.offices}, {summary.people} people on their lists, "
        f"{summary.slots} free slots, {summary.vaccine_slots} flu-vaccine slots."
    )
    return {"url": url, "fhir_base": f"{url}/fhir", "audience": DIALOGUE_AUDIENCE}


async def _load_media(
    layout: DemoLayout,
    population: Population,
    client_key: Path,
    media: MediaPorts,
    *,
    seed: int,
) -> MediaLoad:
    """Send the cast's synthetic studies to Helse Nord's archive as a modality and a phone
    would (demo_media.py), then wait until every manifest is published to the region's source."""
    key = SigningKey.from_jwk(json.loads(client_key.read_bytes()))
    staff = StaffMember.from_manifest(staff_manifest(population)["doctor"])
    # A client of its own: the importer's signs every POST with the importer's publish proof.
    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0)) as client:
        loaded = await load_media(
            client,
            dict(population.cast),
            ports=media,
            sts_url=layout.sts,
            client_id=CLIENT_ID,
            client_key=key,
            staff=staff,
            seed=seed,
            today=date.today(),
        )
        started = time.monotonic()
        await wait_published(client, media, time.monotonic() + 60)
    studies = sum(len(uids) for uids in loaded.studies.values())
    console.print(
        f"Media archive: {studies} studies ({loaded.instances} instances) for "
        f"{len(loaded.studies)} people sent in {loaded.seconds:.1f} s, in the overview "
        f"{time.monotonic() - started:.1f} s later."
    )
    return loaded


def media_manifest(layout: DemoLayout, media: MediaPorts, loaded: MediaLoad) -> dict[str, Any]:
    """Where the archive answers (DIMSE, DICOMweb, through the hub) and what it holds."""
    info = DEFAULT_REGIONS[MEDIA_REGION]
    return {
        "region": info.name,
        "home_community_id": info.home_community_id.urn,
        "url": media.url,
        "dicomweb": media.dicomweb,
        "hub_dicomweb": f"{layout.hub}/dicomweb/{info.home_community_id.oid.value}",
        "ae_title": MEDIA_AE_TITLE,
        "dimse_host": "127.0.0.1",
        "dimse_port": media.dimse,
        "modality_ae_title": MODALITY_AE_TITLE,
        "studies": loaded.studies,
    }


def _mail_sink(layout: DemoLayout) -> MailSink | None:
    """The demo's SMTP sink (demo_mail.py): the citizen's emergency notices land in WORKDIR/mail."""
    try:
        from onerecord.demo_mail import MailSink
    except ImportError:  # aiosmtpd is a development dependency
        console.print("[yellow]Mail off: aiosmtpd is not installed; no notices are sent.[/yellow]")
        return None
    sink = MailSink(layout.workdir / "mail", port=free_port()).start()
    console.print(f"Mail sink: smtp://{sink.host}:{sink.port}, mails in {sink.folder}/")
    return sink


def _log_name(service: Service) -> str:
    names = {
        "STS": "sts",
        "hub": "hub",
        "portals": "portal",
        "NATS": "nats",
        "dialogue": "dialogue",
        "media archive": "media",
    } | {i.name: i.slug for i in DEFAULT_REGIONS}
    return names[service.name]


async def _supervise(
    stop: asyncio.Event, services: Sequence[Service], policy: RestartPolicy
) -> None:
    """Wait for Ctrl-C; restart a part that failed, with back-off; one console line each time.

    While a region is down the hub reports it unavailable; a part stopped on purpose (SIGTERM)
    stays stopped, and one that keeps failing right after it starts is given up on.
    """
    failures: dict[str, int] = {}
    due: dict[str, float] = {}  # name → when to start it again
    settled: set[str] = set()
    while not stop.is_set():
        now = time.monotonic()
        for service in services:
            name = service.name
            if name in settled:
                continue
            if name in due:
                if now >= due[name]:
                    del due[name]
                    _restart(service)
                continue
            code = service.process.poll()
            if code is None:
                continue
            decision = decide(
                policy,
                returncode=code,
                ran_for=now - service.started,
                failures_before=failures.get(name, 0),
            )
            ended = describe_exit(code)
            if isinstance(decision, Restart):
                failures[name] = decision.failures
                due[name] = now + decision.delay
                console.print(
                    f"[yellow]{name} stopped ({ended}); restarting it in {decision.delay:g} s "
                    f"(restart {decision.failures})[/yellow]"
                )
            elif isinstance(decision, GiveUp):
                settled.add(name)
                console.print(
                    f"[red]{name} stopped ({ended}) {decision.failures} times in a row soon "
                    f"after starting; not restarting it again (see {service.log})[/red]"
                )
            else:
                settled.add(name)
                console.print(f"[red]{name} stopped ({ended}); left stopped[/red]")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.2)


async def _load(client: httpx.AsyncClient, layout: DemoLayout, regions: list[Service]) -> None:
    with Progress(console=console) as progress:
        for index, service in enumerate(regions):
            info = DEFAULT_REGIONS[index]
            task = progress.add_task(f"Loading {info.name}", total=None)

            def advance(n: int, task: TaskID = task) -> None:
                progress.advance(task, n)

            result = await import_dataset(
                layout.dataset,
                region=info.slug,
                base_url=service.url,
                client=client,
                progress=advance,
            )
            progress.update(task, total=result.documents, completed=result.documents)
            for rejection in result.rejected:
                console.print(f"[red]rejected[/red] {rejection}")


def _print_ready(layout: DemoLayout, body: dict[str, Any], manifest: Path | None) -> None:
    console.print()
    console.print(f"[bold]{'national hub':18}[/bold] {layout.hub}/fhir")
    for region in body["regions"]:
        console.print(
            f"[bold]{region['name']:18}[/bold] {region['fhir_base']}   "
            f"{region['home_community_id']}"
        )
    if body.get("media"):
        media = body["media"]
        console.print(f"[bold]{'media archive':18}[/bold] {media['dicomweb']}   {media['region']}")
        console.print(
            f"[bold]{'  DICOM (DIMSE)':18}[/bold] AE title {media['ae_title']}, "
            f"127.0.0.1:{media['dimse_port']}"
        )
    console.print(f"[bold]{'token service':18}[/bold] {layout.sts}")
    if body.get("dialogue"):
        console.print(f"[bold]{'GP dialogue':18}[/bold] {body['dialogue']['fhir_base']}")
    console.print(f"[bold]{'health personnel':18}[/bold] {layout.portal}/helsepersonell/logg-inn")
    console.print(f"[bold]{'citizens':18}[/bold] {layout.portal}/innbygger/logg-inn")
    console.print(f"[bold]{'manifest':18}[/bold] {manifest or layout.manifest}")
    if body.get("mail"):
        console.print(f"[bold]{'e-mail to citizens':18}[/bold] {body['mail']['folder']}/")
    patient = body["patients"]["adult"]
    flag = f" --manifest {layout.manifest}"
    console.print("\nTry:")
    console.print(f"  onerecord search --patient {patient} --as practitioner --user doctor{flag}")
    console.print(f"  onerecord search --patient {patient} --as citizen{flag}")
    if body.get("media"):
        media = body["media"]
        console.print(
            f"  echoscu -aet {media['modality_ae_title']} -aec {media['ae_title']} "
            f"127.0.0.1 {media['dimse_port']}   (DCMTK: the archive answers its modality)"
        )
