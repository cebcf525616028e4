"""The `onerecord` command: serve a region, generate and import synthetic data, run the demo."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from onerecord.keep_alive import SERVER_KEEP_ALIVE_S

if TYPE_CHECKING:
    from onerecord.source.settings import SourceSettings

__all__ = ["main"]

_HELP = "onerecord: national health-record sharing network."
_root = typer.Typer(no_args_is_help=True, help=_HELP)
source_app = typer.Typer(no_args_is_help=True, help="A regional document source (IHE MHD).")
media_app = typer.Typer(no_args_is_help=True, help="A regional media archive (DICOM).")
audit_app = typer.Typer(no_args_is_help=True, help="The audit trail of a source or the hub.")

# Every command group, in the order `--help` lists them: defined here, or (module, attribute)
# of another package's. A process imports only the group it runs (`main`): each service
# package costs 1–2.5 s of CPU to import, and a network starts about ten such processes.
_GROUPS: dict[str, typer.Typer | tuple[str, str]] = {
    "source": source_app,
    "synth": ("onerecord.synth.cli", "synth_app"),
    "hub": ("onerecord.hub.cli", "hub_app"),
    "sts": ("onerecord.sts.cli", "app"),
    "portal": ("onerecord.portals.cli", "portal_app"),
    "media": media_app,
    "audit": audit_app,
    "dialogue": ("onerecord.dialogue.cli", "dialogue_app"),
}


def _group(name: str) -> typer.Typer:
    found = _GROUPS[name]
    if isinstance(found, typer.Typer):
        return found
    module, attribute = found
    group = getattr(importlib.import_module(module), attribute)
    assert isinstance(group, typer.Typer)
    return group


def _command(only: str | None = None) -> typer.Typer:
    """The whole command, or (`only`) the top-level commands and that one group."""
    command = typer.Typer(no_args_is_help=True, help=_HELP)
    command.registered_commands = list(_root.registered_commands)
    for name in _GROUPS:
        if only is None or name == only:
            command.add_typer(_group(name), name=name)
    return command


def main() -> None:
    """Run `onerecord …`, importing only the command group named (the whole for --help)."""
    named = sys.argv[1] if len(sys.argv) > 1 else None
    _command(named if named in _GROUPS else None)()


def __getattr__(name: str) -> typer.Typer:
    """`onerecord.cli.app`: the whole command, every group imported (tests, CliRunner)."""
    if name == "app":
        return _command()
    raise AttributeError(name)


@audit_app.command("verify")
def audit_verify(
    db: Annotated[str, typer.Option(help="sqlite:///FILE or postgresql://… of the audit store.")],
    db_schema: Annotated[str | None, typer.Option(help="PostgreSQL schema.")] = None,
    checkpoints: Annotated[
        Path | None, typer.Option(help="The audit checkpoint file (JSON lines), kept apart.")
    ] = None,
    checkpoint_key: Annotated[
        Path | None, typer.Option(help="Public JWK or JWKS file of the checkpoint key.")
    ] = None,
    dev: Annotated[bool, typer.Option("--dev", help="Accept a development key.")] = False,
) -> None:
    """Check every audit hash chain, and with --checkpoints every signed checkpoint.

    Exit 0 when all verify, 1 when a row was edited, deleted or reordered, a chain was rewritten
    or cut short of its last checkpoint, or a checkpoint is forged; 2 when it cannot check.
    """
    from onerecord.audit import audit_verify_command
    from onerecord.preflight import exit_unless_usable

    exit_unless_usable(db, db_schema)
    raise typer.Exit(
        audit_verify_command(
            db, db_schema, checkpoints=checkpoints, checkpoint_key=checkpoint_key, dev_mode=dev
        )
    )


def _modality(text: str) -> tuple[str, str, int]:
    """`AE=HOST:PORT` → (AE, HOST, PORT)."""
    title, sep, where = text.partition("=")
    host, colon, port = where.rpartition(":")
    if not (sep and colon and host and port.isdigit()):
        raise typer.BadParameter(f"{text!r}: expected AE=HOST:PORT", param_hint="--modality")
    return title, host, int(port)


@media_app.command("serve")
def media_serve(
    region: Annotated[str, typer.Option(help="Region name.")] = "Helse Nord",
    home_community_id: Annotated[
        str, typer.Option(help="urn:oid:… of the region's community.")
    ] = "urn:oid:2.16.578.1.12.4.5.100.4",
    db: Annotated[str, typer.Option(help="sqlite:///FILE or postgresql://…")] = (
        "sqlite:///var/media/archive.db"
    ),
    db_schema: Annotated[str | None, typer.Option(help="PostgreSQL schema to use.")] = None,
    content: Annotated[Path, typer.Option(help="Content folder.")] = Path("var/media/content"),
    content_url: Annotated[
        str | None,
        typer.Option(
            help="s3://bucket/prefix for instance bytes instead of the folder (credentials "
            "and endpoint from AWS_* variables); the folder then only spools STOW-RS clips."
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="HTTP and DIMSE address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port (/healthz).")] = 8042,
    ae_title: Annotated[str, typer.Option(help="The archive's AE title.")] = "ONERECORD",
    dimse_port: Annotated[int, typer.Option(help="DIMSE port.")] = 11112,
    modality: Annotated[
        list[str] | None,
        typer.Option(help="A known peer as AE=HOST:PORT (repeat); others are refused."),
    ] = None,
    issuer: Annotated[
        str | None, typer.Option(help="Trusted token issuer (iss); DICOMweb is off without it.")
    ] = None,
    jwks_url: Annotated[
        str | None, typer.Option(help="JWKS URL of the issuer (default ISSUER/jwks).")
    ] = None,
    hub_issuer: Annotated[str | None, typer.Option(help="iss of trusted hub assertions.")] = None,
    hub_jwks_url: Annotated[str | None, typer.Option(help="JWKS URL of the hub.")] = None,
    public_base_url: Annotated[
        str | None, typer.Option(help="The URL clients address (default http://HOST:PORT).")
    ] = None,
    source_url: Annotated[
        str | None,
        typer.Option(
            help="The region's document source: asked for the patient's controls; each study "
            "is published there (ITI-65)."
        ),
    ] = None,
    publisher_issuer: Annotated[
        str | None, typer.Option(help="This archive's iss in its publish proofs to the source.")
    ] = None,
    publisher_key_file: Annotated[
        Path | None, typer.Option(help="This archive's private signing key (JWK file).")
    ] = None,
    without_patient_controls: Annotated[
        bool,
        typer.Option(help="Serve DICOMweb without the patient's controls (development only)."),
    ] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Serve one regional media archive: DIMSE (C-ECHO/STORE/FIND/MOVE/GET), DICOMweb, /healthz.

    Settings not given as options come from ONERECORD_MEDIA_* variables (docs/media.md), e.g.
    ONERECORD_MEDIA_MODALITIES='{"CT1": {"host": "10.0.0.5", "port": 104}}'. DICOMweb is served
    only with --issuer (the trust framework), and then with the patient's controls read from
    the region's source (--source-url, --publisher-issuer, --publisher-key-file).
    """
    import uvicorn
    from pydantic import ValidationError

    from onerecord.logs import configure_logging, logging_config
    from onerecord.media.app import create_app
    from onerecord.media.settings import MediaSettings, RemoteAE
    from onerecord.preflight import exit_unless_usable

    values: dict[str, object] = {
        "region": region,
        "home_community_id": home_community_id,
        "db_url": db,
        "db_schema": db_schema,
        "content_dir": content,
        "dimse_host": host,
        "dimse_port": dimse_port,
        "ae_title": ae_title,
    }
    if public_base_url or "ONERECORD_MEDIA_PUBLIC_BASE_URL" not in os.environ:
        values["public_base_url"] = public_base_url or f"http://{host}:{port}"
    if issuer:
        values["issuer"] = issuer
        values["jwks_url"] = jwks_url or f"{issuer.rstrip('/')}/jwks"
    if hub_issuer:
        values["hub_issuer"] = hub_issuer
        values["hub_jwks_url"] = hub_jwks_url
    for name, value in (
        ("content_url", content_url),
        ("source_url", source_url),
        ("publisher_issuer", publisher_issuer),
        ("publisher_key_file", publisher_key_file),
    ):
        if value is not None:
            values[name] = value
    if without_patient_controls:
        values["without_patient_controls"] = True
    if modality:
        peers = [_modality(text) for text in modality]
        values["modalities"] = {t: RemoteAE(host=h, port=p) for t, h, p in peers}
    try:
        settings = MediaSettings(**values)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise typer.BadParameter(str(exc.errors()[0]["msg"])) from None
    except ValueError as exc:
        raise typer.BadParameter(str(exc).splitlines()[-1]) from None
    if db.startswith("sqlite:///"):
        Path(db.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    exit_unless_usable(db, db_schema)
    configure_logging(log_level, service="media")
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=SERVER_KEEP_ALIVE_S,
        log_config=logging_config(log_level, service="media"),
    )


@source_app.command("serve")
def source_serve(
    region: Annotated[str, typer.Option(help="Region name, e.g. 'Helse Vest'.")] = "Helse Sør-Øst",
    home_community_id: Annotated[
        str, typer.Option(help="urn:oid:… of this community.")
    ] = "urn:oid:2.16.578.1.12.4.5.100.1",
    repository_unique_id: Annotated[
        str | None, typer.Option(help="OID of the repository (default: hcid + '.2').")
    ] = None,
    db: Annotated[str, typer.Option(help="sqlite:///FILE or postgresql://…")] = (
        "sqlite:///var/source/registry.db"
    ),
    db_schema: Annotated[str | None, typer.Option(help="PostgreSQL schema to use.")] = None,
    content: Annotated[Path, typer.Option(help="Content folder.")] = Path("var/source/content"),
    s3_url: Annotated[str | None, typer.Option(help="s3://bucket/prefix for content.")] = None,
    host: str = "127.0.0.1",
    port: int = 8001,
    public_url: Annotated[
        str | None, typer.Option(help="Base URL clients use (default http://HOST:PORT).")
    ] = None,
    max_body_mb: Annotated[int, typer.Option(help="Request body limit in MiB.")] = 64,
    issuer: Annotated[str | None, typer.Option(help="Trusted token issuer (iss).")] = None,
    jwks_url: Annotated[
        str | None, typer.Option(help="JWKS URL of the issuer (default ISSUER/jwks).")
    ] = None,
    audience: Annotated[
        str | None, typer.Option(help="aud accepted (default: the homeCommunityId URN).")
    ] = None,
    hub_issuer: Annotated[str | None, typer.Option(help="iss of trusted hub assertions.")] = None,
    hub_jwks_url: Annotated[str | None, typer.Option(help="JWKS URL of the trusted hub.")] = None,
    redis_url: Annotated[
        str | None, typer.Option(help="redis://… shared replay cache (default: in memory).")
    ] = None,
    dev_open_access: Annotated[
        bool, typer.Option("--dev-open-access", help="No auth, policy or audit (needs --dev).")
    ] = False,
    dev: Annotated[bool, typer.Option("--dev", help="Development mode.")] = False,
    publisher_jwks: Annotated[
        Path | None,
        typer.Option(help="JWKS file of the systems allowed to publish (ITI-65 publish proofs)."),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=32, help="Worker processes (more than 1 needs --redis-url).")
    ] = 1,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    audit_checkpoints: Annotated[
        Path | None, typer.Option(help="Append signed audit chain heads to this file.")
    ] = None,
    audit_checkpoint_key: Annotated[
        Path | None, typer.Option(help="Private JWK that signs the audit checkpoints.")
    ] = None,
) -> None:
    """Serve one regional document source (refuses to start without --issuer or open access)."""
    import uvicorn

    from onerecord.domain import HomeCommunityId
    from onerecord.logs import configure_logging, logging_config
    from onerecord.preflight import exit_unless_usable
    from onerecord.source.app import create_app
    from onerecord.source.settings import SourceSettings

    hcid = HomeCommunityId.parse(home_community_id)
    settings = SourceSettings(
        region=region,
        home_community_id=hcid.urn,
        repository_unique_id=repository_unique_id or f"{hcid.oid.value}.2",
        db_url=db,
        db_schema=db_schema,
        content_dir=content,
        s3_url=s3_url,
        public_base_url=public_url or f"http://{host}:{port}",
        max_body_bytes=max_body_mb * 1024 * 1024,
        issuer=issuer,
        jwks_url=jwks_url or (f"{issuer.rstrip('/')}/jwks" if issuer else None),
        audience=audience,
        hub_issuer=hub_issuer,
        hub_jwks_url=hub_jwks_url,
        redis_url=redis_url,
        dev_mode=dev,
        dev_open_access=dev_open_access,
    )
    if publisher_jwks is not None:
        # Set only when given, so ONERECORD_SOURCE_PUBLISHER_JWKS_FILE still applies otherwise.
        settings = settings.model_copy(update={"publisher_jwks_file": publisher_jwks})
    if audit_checkpoints is not None or audit_checkpoint_key is not None:
        settings = SourceSettings.model_validate(
            {
                **settings.model_dump(),
                "audit_checkpoint_file": audit_checkpoints,
                "audit_checkpoint_key_file": audit_checkpoint_key,
            }
        )
    if settings.audit_checkpoint_key_file is not None:
        # Fail at start-up with one line, not in the lifespan, when the key is not allowed.
        from onerecord.audit import load_checkpoint_key
        from onerecord.trust.errors import DevelopmentKeyRefused

        try:
            load_checkpoint_key(settings.audit_checkpoint_key_file, dev_mode=settings.dev_mode)
        except DevelopmentKeyRefused as exc:
            raise typer.BadParameter(exc.description) from None
    if db.startswith("sqlite:///"):
        Path(db.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    exit_unless_usable(db, db_schema)
    configure_logging(log_level, service="source")
    server = {
        "host": host,
        "port": port,
        "log_level": "warning",
        "access_log": False,
        "timeout_keep_alive": SERVER_KEEP_ALIVE_S,
        "log_config": logging_config(log_level, service="source"),
    }
    if workers == 1:
        uvicorn.run(create_app(settings), loop="uvloop", http="httptools", **server)  # type: ignore[arg-type]
        return
    if not (settings.redis_url or settings.dev_open_access):
        # Each worker would keep its own DPoP/jti replay cache: a proof refused by one worker
        # could be replayed against another.
        raise typer.BadParameter("--workers > 1 needs --redis-url for a shared replay cache")
    asyncio.run(_migrate(settings))  # once, before the workers race to do it
    os.environ.update(_settings_environment(settings))
    os.environ["ONERECORD_LOG_LEVEL"] = log_level
    uvicorn.run(
        "onerecord.source.app:app_from_environment",
        factory=True,
        workers=workers,
        loop="uvloop",
        http="httptools",
        **server,  # type: ignore[arg-type]
    )


async def _migrate(settings: SourceSettings) -> None:
    from onerecord.source.database import make_engine
    from onerecord.source.migrate import upgrade

    engine = make_engine(settings.db_url, schema=settings.db_schema)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


def _settings_environment(settings: SourceSettings) -> dict[str, str]:
    """The settings as ONERECORD_SOURCE_* variables, for worker processes to read back."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value)
        env[f"ONERECORD_SOURCE_{name.upper()}"] = text
    return env


@source_app.command("import")
def source_import(
    dataset: Annotated[Path, typer.Argument(help="Folder written by `onerecord synth generate`.")],
    region: Annotated[
        str, typer.Option(help="Region slug in the dataset (hso, vest, midt, nord).")
    ],
    url: Annotated[str, typer.Option(help="Base URL of the region, e.g. http://127.0.0.1:8001")],
    concurrency: int = 4,
    publisher_key: Annotated[
        Path | None,
        typer.Option(help="Private JWK file that signs each ITI-65 request (publish proof)."),
    ] = None,
    audience: Annotated[
        str | None,
        typer.Option(help="The region's audience (its homeCommunityId URN), with --publisher-key."),
    ] = None,
    publisher_issuer: Annotated[
        str | None,
        typer.Option(
            help="The issuer the source registered --publisher-key for (its JWKS 'iss'); "
            "the demo's importer by default."
        ),
    ] = None,
    give_up_after: Annotated[
        float,
        typer.Option(
            min=0.1, help="Seconds without an answer from the region before giving up (exit 3)."
        ),
    ] = 60.0,
) -> None:
    """Bulk-load a synthetic dataset into a running region (re-runnable without duplicates)."""
    from onerecord.synth.cli import run_import

    hook = None
    if publisher_key is not None:
        import orjson

        from onerecord.demo import PUBLISHER_ISSUER, publish_proof_hook
        from onerecord.trust.keys import SigningKey

        if audience is None:
            raise typer.BadParameter("--audience is needed with --publisher-key")
        key = SigningKey.from_jwk(orjson.loads(publisher_key.read_bytes()))
        origin = url.removesuffix("/").removesuffix("/fhir")
        hook = publish_proof_hook(
            key, {origin: audience}, issuer=publisher_issuer or PUBLISHER_ISSUER
        )
    raise typer.Exit(
        run_import(
            dataset, region, url, concurrency, request_hook=hook, give_up_after=give_up_after
        )
    )


@_root.command("demo")
def demo(
    workdir: Annotated[Path, typer.Option(help="Where databases and content live.")] = Path(
        "var/demo"
    ),
    base_port: Annotated[
        int, typer.Option(help="The hub's port; regions take the next four, the STS the fifth.")
    ] = 8100,
    citizens: Annotated[int, typer.Option(help="Synthetic citizens besides the fixed cast.")] = 40,
    seed: int = 1,
    postgres: Annotated[
        str | None, typer.Option(help="postgresql://… : one database schema per region.")
    ] = None,
    manifest: Annotated[Path | None, typer.Option(help="Write endpoints and ids as JSON.")] = None,
    exit_when_ready: Annotated[bool, typer.Option(help="Stop once loaded (for scripts).")] = False,
    locator: Annotated[
        bool, typer.Option(help="Run the locator over NATS (the machine's, or the demo's own).")
    ] = True,
    xca_region: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=4,
            envvar="ONERECORD_DEMO_XCA_REGION",
            help="Ask region N (1-4) over XCA (ITI-38/39 with SAML) instead of MHD.",
        ),
    ] = None,
) -> None:
    """Start the STS, four regions and the hub on 127.0.0.1 with synthetic data."""
    from onerecord.demo import run_demo

    raise typer.Exit(
        asyncio.run(
            run_demo(
                workdir=workdir,
                base_port=base_port,
                citizens=citizens,
                seed=seed,
                postgres=postgres,
                manifest=manifest,
                exit_when_ready=exit_when_ready,
                locator=locator,
                xca_region=xca_region,
            )
        )
    )


@_root.command("search")
def search(
    patient: Annotated[str, typer.Option(help="The patient's fødselsnummer (synthetic).")],
    as_: Annotated[
        str, typer.Option("--as", help="practitioner (with an attestation) or citizen.")
    ] = "practitioner",
    user: Annotated[
        str | None,
        typer.Option(
            help="Staff key from the manifest (doctor, nurse, gp …) or a citizen's number "
            "(default: doctor, or the patient themself)."
        ),
    ] = None,
    hub: Annotated[str | None, typer.Option(help="Hub FHIR base (default: manifest).")] = None,
    manifest: Annotated[Path, typer.Option(help="The demo's manifest.json.")] = Path(
        "var/demo/manifest.json"
    ),
    count: Annotated[int, typer.Option(help="Documents on the first page.")] = 50,
) -> None:
    """Get a token from the STS, search the hub for one patient, print the overview."""
    from onerecord.search_command import run_search

    raise typer.Exit(
        asyncio.run(
            run_search(
                patient=patient,
                role=as_,
                user=user,
                hub=hub,
                manifest=manifest,
                count=count,
            )
        )
    )


if __name__ == "__main__":
    main()
