"""Alembic environment of the document source: a connection from the caller, or a URL.

`onerecord.source.migrate.upgrade` passes a synchronous connection in
`config.attributes["connection"]`; from the command line give `-x url=... [-x schema=...]`
(see `onerecord.sqldb.run_alembic_env`).
"""

from __future__ import annotations

from onerecord.source.database import make_engine
from onerecord.source.schema import metadata
from onerecord.sqldb import run_alembic_env

run_alembic_env(metadata, make_engine)
