"""Alembic environment of the dialogue service: a connection from the caller, or a URL.

`onerecord.dialogue.database.upgrade` passes a synchronous connection in
`config.attributes["connection"]`; from the command line give `-x url=... [-x schema=...]`
(see `onerecord.sqldb.run_alembic_env`).
"""

from __future__ import annotations

from onerecord.dialogue.database import VERSION_TABLE, make_engine
from onerecord.dialogue.schema import metadata
from onerecord.sqldb import run_alembic_env

run_alembic_env(metadata, make_engine, version_table=VERSION_TABLE)
