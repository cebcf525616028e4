"""A document source that dies (os._exit) after writing content and before the registry commit.

Started as a child process by test_durability.py to simulate a crash at the worst moment.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import uvicorn

from onerecord.source import store as store_module
from onerecord.source.app import create_app
from onerecord.source.settings import SourceSettings


async def _die(*_args: object, **_kwargs: object) -> None:
    os._exit(137)


def main() -> None:
    db_url, schema, content_dir, port = sys.argv[1:5]
    store_module.SqlDocumentStore.register = _die  # type: ignore[method-assign, assignment]
    settings = SourceSettings(
        db_url=db_url,
        db_schema=schema or None,
        content_dir=Path(content_dir),
        public_base_url=f"http://127.0.0.1:{port}",
        dev_mode=True,
        dev_open_access=True,
    )
    uvicorn.run(create_app(settings), host="127.0.0.1", port=int(port), log_level="warning")


if __name__ == "__main__":
    main()
