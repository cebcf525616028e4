"""`onerecord sts serve`: run the development token service (the CLI owner mounts `app`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from onerecord.sts.registers import PopulationRegisters

__all__ = ["app", "load_population", "serve"]

app = typer.Typer(help="The development token service (stands in for HelseID and ID-porten).")


def load_population(path: Path) -> PopulationRegisters:
    """Load the synthetic population file (`onerecord synth`) as the STS's registers."""
    from onerecord.synth.dataset import load_population as load

    if not path.exists():
        raise typer.BadParameter(f"no population file at {path} (run `onerecord synth` first)")
    return PopulationRegisters(load(path))


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

    from onerecord.logs import configure_logging, logging_config
    from onerecord.sts.app import create_sts_app
    from onerecord.sts.settings import StsSettings

    configure_logging(service="sts")

    overrides: dict[str, Any] = {"issuer": f"http://{host}:{port}", "dev_mode": dev}
    if clients is not None:
        overrides["clients"] = orjson.loads(clients.read_bytes())
    settings = StsSettings(**overrides)
    registers = load_population(population)
    # No access log: request lines carry query strings; errors are logged as one event each.
    uvicorn.run(
        create_sts_app(settings, registers=registers),
        host=host,
        port=port,
        log_level="warning",
        log_config=logging_config(service="sts"),
        access_log=False,
    )
