"""`onerecord dialogue serve`: the dialogue service as a process of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from onerecord.keep_alive import SERVER_KEEP_ALIVE_S

__all__ = ["dialogue_app"]

dialogue_app = typer.Typer(
    no_args_is_help=True, help="The dialogue with the GP office (FHIR R4, docs/dialogue.md)."
)


@dialogue_app.command("serve")
def serve(
    issuer: Annotated[str, typer.Option(help="The trusted token issuer (iss).")],
    jwks_url: Annotated[
        str | None, typer.Option(help="JWKS of the issuer; default: <issuer>/jwks.")
    ] = None,
    db: Annotated[
        str, typer.Option(help="sqlite:///FILE (default) or postgresql://…")
    ] = "sqlite:///var/dialogue/dialogue.db",
    db_schema: Annotated[str | None, typer.Option(help="PostgreSQL schema.")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8107,
    public_url: Annotated[
        str | None,
        typer.Option(help="Base URL clients address (DPoP htu); default http://host:port."),
    ] = None,
    audience: Annotated[
        str, typer.Option(help="The aud accepted in access tokens.")
    ] = "urn:onerecord:dialogue",
    log_level: Annotated[str, typer.Option(help="Log level.")] = "info",
    smtp_host: Annotated[
        str | None, typer.Option(help="SMTP server for e-mail notices (none: notices off).")
    ] = None,
    smtp_port: Annotated[int, typer.Option(help="SMTP port.")] = 25,
    contacts: Annotated[
        Path | None,
        typer.Option(help="The contact register's extract (e-mail, language) for notices."),
    ] = None,
    portal_url: Annotated[
        str, typer.Option(help="The page a notice points to (the citizen's GP page).")
    ] = "http://127.0.0.1:8106/innbygger/fastlege",
    dev: Annotated[bool, typer.Option("--dev", help="Development mode.")] = False,
    dev_clock: Annotated[
        bool,
        typer.Option("--dev-clock", help="Allow POST /dev/clock to move the clock (needs --dev)."),
    ] = False,
) -> None:
    """Serve the dialogue service (migrates its database first)."""
    import uvicorn

    from onerecord.dialogue.app import create_app
    from onerecord.dialogue.settings import DialogueSettings
    from onerecord.logs import configure_logging, logging_config
    from onerecord.preflight import exit_unless_usable

    settings = DialogueSettings(
        db_url=db,
        db_schema=db_schema,
        public_base_url=public_url or f"http://{host}:{port}",
        issuer=issuer,
        jwks_url=jwks_url or f"{issuer.rstrip('/')}/jwks",
        audience=audience,
        smtp_host=smtp_host,
        smtp_port=smtp_port,
        contacts_file=contacts,
        dev_mode=dev,
        dev_clock=dev_clock,
        portal_url=portal_url,
    )
    if db.startswith("sqlite:///"):
        Path(db.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    exit_unless_usable(db, db_schema)
    configure_logging(log_level, service="dialogue")
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=SERVER_KEEP_ALIVE_S,
        log_config=logging_config(log_level, service="dialogue"),
    )
