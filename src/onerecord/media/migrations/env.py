"""Alembic environment of the media archive: a connection from the caller, or a URL.

`onerecord.media.migrate.upgrade` passes a synchronous connection in
`config.attributes["connection"]`; from the command line give `-x url=... [-x schema=...]`
(see `onerecord.sqldb.run_alembic_env`). The version table is `media_alembic_version`, the
archive's own name; the archive still needs a database or schema of its own (it creates the
audit tables).
"""

from __future__ import annotations

from sqlalchemy import MetaData

from onerecord.audit import audit_metadata
from onerecord.media.database import make_engine
from onerecord.media.migrate import VERSION_TABLE
from onerecord.media.schema import media_metadata
from onerecord.sqldb import run_alembic_env


def _target() -> MetaData:
    combined = MetaData()
    for part in (media_metadata, audit_metadata):
        for table in part.tables.values():
            table.to_metadata(combined)
    return combined


run_alembic_env(_target(), make_engine, version_table=VERSION_TABLE)
