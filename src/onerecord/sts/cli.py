"""`onerecord sts serve`: run the development token service (the CLI owner mounts `app`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from onerecord.audit import SqlAuditSink
from onerecord.keep_alive import SERVER_KEEP_ALIVE_S
from onerecord.sts.pdqm_service import REGISTER_SOURCE_ID
from onerecord.sts.registers import PopulationRegisters

__all__ = ["app", "load_population", "register_audit_sink", "serve"]

app = typer.Typer(help="The development token service (stands in for HelseID and ID-porten).")


def load_population(path: Path) -> PopulationRegisters:
    """Load the synthetic population file (`onerecord synth`) as the STS's registers."""
    from onerecord.synth.dataset import load_population as load

    if not path.exists():
        raise typer.BadParameter(f"no population file at {path} (run `onerecord synth` first)")
    return PopulationRegisters(load(path))


def register_audit_sink(url: str) -> SqlAuditSink:
    """Open the patient lookup's audit database, creating its tables (before serving)."""
    import asyncio

    from onerecord.audit import create_audit_tables, make_audit_engine

    async def prepare() -> None:
        engine = make_audit_engine(url)
        try:
            await create_audit_tables(engine)
        finally:
            await engine.dispose()

    asyncio.run(prepare())
    return SqlAuditSink(make_audit_engine(url), REGISTER_SOURCE_ID)


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
    register_audit_db: Annotated[
        str | None,
        typer.Option(
            help="sqlite:///FILE or postgresql://…: serve the patient lookup (PDQm ITI-78) "
            "at /fhir/Patient, audited into this database"
        ),
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
    if register_audit_db is not None:
        overrides["register_audit_db"] = register_audit_db
    settings = StsSettings(**overrides)
    registers = load_population(population)
    audit = register_audit_sink(settings.register_audit_db) if settings.register_audit_db else None
    # No access log: request lines carry query strings; errors are logged as one event each.
    uvicorn.run(
        create_sts_app(
            settings,
            registers=registers,
            patient_register=registers if audit is not None else None,
            patient_audit=audit,
        ),
        host=host,
        port=port,
        log_level="warning",
        log_config=logging_config(service="sts"),
        access_log=False,
        timeout_keep_alive=SERVER_KEEP_ALIVE_S,
    )
