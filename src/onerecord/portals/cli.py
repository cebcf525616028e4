"""`onerecord portal …`: serve the health-personnel portal in front of a running network."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from onerecord.keep_alive import SERVER_KEEP_ALIVE_S

__all__ = ["portal_app"]

portal_app = typer.Typer(no_args_is_help=True, help="The web portals (health personnel).")


@portal_app.command("serve")
def serve(
    manifest: Annotated[
        Path, typer.Option(help="The demo's manifest.json (hub, STS, client key, staff).")
    ],
    host: str = "127.0.0.1",
    port: int = 8200,
    public_url: Annotated[
        str | None, typer.Option(help="Base URL browsers use (default http://HOST:PORT).")
    ] = None,
    dev: Annotated[
        bool, typer.Option("--dev", help="Development mode: dev keys, dev session secret.")
    ] = False,
) -> None:
    """Serve the portal; the session secret comes from ONERECORD_PORTAL_SESSION_SECRET."""
    import uvicorn
    from pydantic import ValidationError

    from onerecord.logs import configure_logging, logging_config
    from onerecord.portals.app import create_portal_app
    from onerecord.portals.settings import PortalSettings
    from onerecord.trust.errors import DevelopmentKeyRefused

    try:
        settings = PortalSettings.from_manifest_file(
            manifest, public_url=public_url or f"http://{host}:{port}", dev_mode=dev
        )
        app = create_portal_app(settings)
    except ValidationError as exc:
        raise typer.BadParameter(str(exc.errors()[0]["msg"])) from None
    except DevelopmentKeyRefused as exc:
        raise typer.BadParameter(exc.description) from None
    configure_logging(service="portals")
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        log_config=logging_config(service="portals"),
        access_log=False,
        timeout_keep_alive=SERVER_KEEP_ALIVE_S,
    )
