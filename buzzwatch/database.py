"""One way to open a database: the SQLAlchemy engine behind the API's feedback store and the detection store.

PostgreSQL (`DATABASE_URL` in production) is passed through as it is, with a ping before each pooled
connection is handed out, so a server restart or an idle-connection cut costs a reconnect, not a failed
request or checkpoint. SQLite is the local twin, and each connection gets the same pragmas, each for a reason:

- `journal_mode=WAL`: readers (the health and feed routes, `/readyz`, the demo) never block the one writer,
  and the writer never blocks them.
- `synchronous=FULL`: a commit is on disk before the caller is told. The API answers 201 for a stored
  feedback and the detection consumer acknowledges its messages after its checkpoint commits; NORMAL would
  let an OS crash or power cut undo a commit whose messages were already acknowledged. The cost is one fsync
  a commit: the API writes predictions in batches and detection commits every 2 s, so it is a few a second.
- `busy_timeout`: a writer waits up to `BUSY_TIMEOUT_MS` for another process's write (several API workers,
  a detection restart overlapping the old process) instead of failing at once with "database is locked".
- `foreign_keys=ON`: SQLite ignores foreign keys unless told; PostgreSQL enforces them, so the twin does too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from buzzwatch.settings import SettingsError

BUSY_TIMEOUT_MS = 15_000
EXAMPLES = "e.g. sqlite:///var/buzzwatch.db or postgresql+psycopg://USER:PASSWORD@HOST/DB"

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
    "PRAGMA foreign_keys=ON",
)


def make_engine(database_url: str) -> Engine:
    """An engine for the URL; a SQLite file gets its folder made and the pragmas above on every connection.

    A URL SQLAlchemy cannot read, or whose database it has no driver for, is a `SettingsError` naming
    DATABASE_URL (its password hidden): one line from the command, not a traceback.
    """
    try:
        url = sa.engine.make_url(database_url)
    except sa.exc.ArgumentError:
        raise SettingsError(f"DATABASE_URL is not a database URL ({EXAMPLES})") from None
    if url.get_backend_name() != "sqlite":
        try:
            return sa.create_engine(url, pool_pre_ping=True)
        except (sa.exc.NoSuchModuleError, ModuleNotFoundError) as exc:
            shown = url.render_as_string(hide_password=True)
            raise SettingsError(f"DATABASE_URL={shown}: no driver here ({exc}; {EXAMPLES})") from None
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url)

    @sa.event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    return engine
