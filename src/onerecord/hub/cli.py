"""`onerecord hub …`: serve the national hub (wired into the main CLI by its owner)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import structlog
import typer

__all__ = ["configure_json_logs", "hub_app"]

hub_app = typer.Typer(no_args_is_help=True, help="The national hub (XCA-style fan-out, MHD).")


def configure_json_logs(level: int = logging.INFO) -> None:
    """Log one JSON object per line, with the bound correlation id."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )


@hub_app.command("serve")
def serve(
    directory: Annotated[Path, typer.Option(help="Region directory file (JSON or TOML).")],
    host: str = "127.0.0.1",
    port: int = 8000,
    public_url: Annotated[
        str | None, typer.Option(help="Base URL clients use (default http://HOST:PORT).")
    ] = None,
) -> None:
    """Serve the national hub."""
    import uvicorn

    from onerecord.hub.app import create_hub_app
    from onerecord.hub.directory import RegionDirectory
    from onerecord.hub.settings import HubSettings

    configure_json_logs()
    settings = HubSettings(
        directory_file=directory, public_base_url=public_url or f"http://{host}:{port}"
    )
    regions = RegionDirectory(settings.directory_file)
    regions.install_sighup()
    uvicorn.run(create_hub_app(settings, directory=regions), host=host, port=port)
