"""`onerecord hub …`: serve the national hub (wired into the main CLI by its owner)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from onerecord.keep_alive import SERVER_KEEP_ALIVE_S
from onerecord.logs import configure_logging, logging_config

__all__ = ["configure_json_logs", "hub_app"]

hub_app = typer.Typer(no_args_is_help=True, help="The national hub (XCA-style fan-out, MHD).")


def configure_json_logs(level: int = logging.INFO) -> None:
    """Log one redacted JSON object per line, with the bound correlation id (`onerecord.logs`)."""
    configure_logging(level, service="hub")


@hub_app.command("serve")
def serve(
    directory: Annotated[Path, typer.Option(help="Region directory file (JSON or TOML).")],
    host: str = "127.0.0.1",
    port: int = 8000,
    public_url: Annotated[
        str | None, typer.Option(help="Base URL clients use (default http://HOST:PORT).")
    ] = None,
    issuer: Annotated[str | None, typer.Option(help="Trusted token issuer (iss).")] = None,
    jwks_url: Annotated[
        str | None, typer.Option(help="The issuer's JWKS (default ISSUER/jwks).")
    ] = None,
    audience: Annotated[str, typer.Option(help="The hub's audience in tokens.")] = (
        "onerecord:hub"
    ),
    dev: Annotated[bool, typer.Option("--dev", help="Allow development keys.")] = False,
    dev_open_access: Annotated[
        bool, typer.Option("--dev-open-access", help="No tokens at all (development only).")
    ] = False,
    key_file: Annotated[
        Path | None, typer.Option(help="Private JWK of the hub's assertion key.")
    ] = None,
    key_dir: Annotated[Path, typer.Option(help="Where the development key lives.")] = Path(
        "var/hub/keys"
    ),
    redis_url: Annotated[
        str | None,
        typer.Option(help="redis://… DPoP replay cache and paging snapshots for replicas."),
    ] = None,
    audit_db: Annotated[
        str | None, typer.Option(help="sqlite:///FILE or postgresql://… for the hub's audit.")
    ] = None,
    audit_db_schema: Annotated[str | None, typer.Option(help="PostgreSQL schema.")] = None,
    audit_checkpoints: Annotated[
        Path | None, typer.Option(help="Append signed audit chain heads to this file.")
    ] = None,
    audit_checkpoint_key: Annotated[
        Path | None, typer.Option(help="Private JWK that signs the audit checkpoints.")
    ] = None,
    per_region_timeout: Annotated[
        float | None, typer.Option(help="Seconds per region (default 4.0).")
    ] = None,
    aggregation_deadline: Annotated[
        float | None, typer.Option(help="Seconds for all regions (default 4.5).")
    ] = None,
    request_deadline: Annotated[
        float | None, typer.Option(help="Seconds per request (default 5.0).")
    ] = None,
    caller_concurrency: Annotated[
        int | None, typer.Option(help="Requests in flight per caller (default 16; 0 = no limit).")
    ] = None,
    caller_rate: Annotated[
        float | None,
        typer.Option(help="Sustained requests per second per caller (default 20; 0 = no limit)."),
    ] = None,
    caller_burst: Annotated[
        int | None, typer.Option(help="Requests a caller may send at once (default 200).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Serve the national hub."""
    import uvicorn

    from onerecord.hub.app import create_hub_app
    from onerecord.hub.directory import RegionDirectory
    from onerecord.hub.settings import HubSettings
    from onerecord.preflight import exit_unless_usable

    level = getattr(logging, log_level.upper(), logging.INFO)
    configure_json_logs(level)
    # Options left out fall back to ONERECORD_HUB_* variables, then to the defaults.
    given: dict[str, Any] = {
        "per_region_timeout_s": per_region_timeout,
        "aggregation_deadline_s": aggregation_deadline,
        "request_deadline_s": request_deadline,
        "audit_checkpoint_file": audit_checkpoints,
        "audit_checkpoint_key_file": audit_checkpoint_key,
        "caller_concurrency": caller_concurrency,
        "caller_rate_per_s": caller_rate,
        "caller_burst": caller_burst,
    }
    given = {k: v for k, v in given.items() if v is not None}
    settings = HubSettings(
        directory_file=directory,
        public_base_url=public_url or f"http://{host}:{port}",
        issuer=issuer,
        jwks_url=jwks_url,
        audience=audience,
        dev_mode=dev or dev_open_access,
        dev_open_access=dev_open_access,
        key_file=key_file,
        key_dir=key_dir,
        redis_url=redis_url,
        audit_db_url=audit_db,
        audit_db_schema=audit_db_schema,
        **given,
    )
    if not settings.issuer and not settings.dev_open_access:
        raise typer.BadParameter("give --issuer (and --jwks-url), or --dev-open-access")
    if settings.issuer and not settings.dev_open_access:
        # Fail at start-up, not at the first request, when the key is not allowed.
        from onerecord.hub.security import load_hub_key
        from onerecord.trust.errors import DevelopmentKeyRefused

        try:
            load_hub_key(settings)
        except DevelopmentKeyRefused as exc:
            raise typer.BadParameter(f"{exc.description} (or give --key-file)") from None
    if settings.audit_checkpoint_key_file is not None:
        from onerecord.audit import load_checkpoint_key
        from onerecord.trust.errors import DevelopmentKeyRefused

        try:
            load_checkpoint_key(settings.audit_checkpoint_key_file, dev_mode=settings.dev_mode)
        except DevelopmentKeyRefused as exc:
            raise typer.BadParameter(exc.description) from None
    if audit_db and audit_db.startswith("sqlite:///"):
        Path(audit_db.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    exit_unless_usable(settings.audit_db_url, settings.audit_db_schema)
    regions = RegionDirectory(settings.directory_file)
    regions.install_sighup()
    uvicorn.run(
        create_hub_app(settings, directory=regions),
        host=host,
        port=port,
        log_level="warning",
        log_config=logging_config(level, service="hub"),
        access_log=False,
        timeout_keep_alive=SERVER_KEEP_ALIVE_S,
        loop="uvloop",
        http="httptools",
    )
