"""`onerecord sts serve`: run the development token service (the CLI owner mounts `app`)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["app", "load_population", "serve"]

app = typer.Typer(help="The development token service (stands in for HelseID and ID-porten).")


def load_population(path: Path) -> Any:
    """Load the synthetic population file via onerecord.synth.population."""
    module = importlib.import_module("onerecord.synth.population")
    population_cls = module.Population
    for loader in ("load", "from_file", "read"):
        if hasattr(population_cls, loader):
            return getattr(population_cls, loader)(path)
    raise typer.BadParameter("onerecord.synth.population.Population has no load(path)")


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1")] = 8100,
    population: Annotated[Path, typer.Option(help="synthetic population file")] = Path(
        "var/population.json"
    ),
    dev: Annotated[bool, typer.Option("--dev", help="allow development keys")] = False,
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    clients: Annotated[
        Path | None, typer.Option(help="JSON file: {client_id: {jwk, redirect_uris}}")
    ] = None,
) -> None:
    """Serve the STS on host:port with the given population."""
    import orjson
    import uvicorn

    from onerecord.sts.app import create_sts_app
    from onerecord.sts.settings import StsSettings

    overrides: dict[str, Any] = {"issuer": f"http://{host}:{port}", "dev_mode": dev}
    if clients is not None:
        overrides["clients"] = orjson.loads(clients.read_bytes())
    settings = StsSettings(**overrides)
    registers = load_population(population)
    uvicorn.run(create_sts_app(settings, registers=registers), host=host, port=port)
