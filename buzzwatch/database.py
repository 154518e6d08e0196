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

A service answering people (the API) cannot let one request wait 15 s per statement behind a lock: an engine
made with `lock_wait_budgets=True` lets the code bound the total wait of a piece of work with
`lock_wait_budget(seconds)`. Every statement inside it waits for locks only for what is left of the budget
(SQLite: `busy_timeout`; PostgreSQL: `lock_timeout` and `statement_timeout`), so a held lock costs the whole
request at most its budget, then an error `is_lock_timeout` recognises. Outside a budget such an engine waits
as the others do (SQLite `BUSY_TIMEOUT_MS`, PostgreSQL the server's settings).

On PostgreSQL the budget is `SET LOCAL`, which ends with its transaction, so a statement outside any budget
(the API's prediction-log writer, most statements) sends nothing. A statement inside one still gets its own
SET: what is left of the budget shrinks from one statement to the next, and a value set once a transaction
would let its later statements wait past the budget.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
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
SQLITE_BUSY_CODES = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (extended codes carry them in their low byte)
POSTGRES_TIMEOUT_STATES = ("55P03", "57014")  # lock_not_available (lock_timeout), query_canceled (statement)

_lock_wait_deadline: ContextVar[float | None] = ContextVar("lock_wait_deadline", default=None)


@contextmanager
def lock_wait_budget(seconds: float) -> Iterator[None]:
    """Bound the total lock wait of every statement run inside (on engines made with lock_wait_budgets)."""
    deadline = time.monotonic() + seconds
    outer = _lock_wait_deadline.get()
    token = _lock_wait_deadline.set(deadline if outer is None else min(outer, deadline))
    try:
        yield
    finally:
        _lock_wait_deadline.reset(token)


def lock_wait_left_s() -> float | None:
    """Seconds left of the current lock-wait budget (0 when spent); None outside any budget."""
    deadline = _lock_wait_deadline.get()
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def is_lock_timeout(exc: BaseException) -> bool:
    """Whether a database error means a wait for a lock ran out (SQLite busy, a PostgreSQL timeout)."""
    original = getattr(exc, "orig", None) or exc
    sqlite_code = getattr(original, "sqlite_errorcode", None)
    if sqlite_code is not None:
        return sqlite_code & 0xFF in SQLITE_BUSY_CODES
    return getattr(original, "sqlstate", None) in POSTGRES_TIMEOUT_STATES


def _budget_ms() -> int | None:
    left_s = lock_wait_left_s()
    return None if left_s is None else max(1, int(left_s * 1000))


def _install_lock_wait_budgets(engine: Engine, sqlite: bool) -> None:
    """Before each statement, set the connection's lock wait to what is left of the budget, or the default."""

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _lock_wait(connection: Any, _cursor: Any, *_args: Any) -> None:
        budget_ms = _budget_ms()
        raw = connection.connection.dbapi_connection
        if sqlite:  # a pragma outside transactions: remembered per connection, sent only when it changes
            wanted = BUSY_TIMEOUT_MS if budget_ms is None else budget_ms
            if connection.info.get("busy_timeout_ms") != wanted:
                raw.execute(f"PRAGMA busy_timeout={wanted}")
                connection.info["busy_timeout_ms"] = wanted
            return
        # Nothing in a failed transaction, where only a rollback (to a savepoint) may run and nothing waits.
        status = raw.info.transaction_status.name
        if status == "INERROR":
            return
        if status == "IDLE":  # this statement begins a transaction: a SET LOCAL of the last one has ended
            connection.info.pop("lock_wait_set", None)
        if budget_ms is None and not connection.info.get("lock_wait_set") and not raw.autocommit:
            return  # the server's own settings are in force
        value = "DEFAULT" if budget_ms is None else str(budget_ms)
        scope = "SESSION" if raw.autocommit else "LOCAL"  # no transaction to end it: reset each statement
        cursor = raw.cursor()
        try:
            cursor.execute(f"SET {scope} lock_timeout = {value}; SET {scope} statement_timeout = {value}")
        finally:
            cursor.close()
        connection.info["lock_wait_set"] = budget_ms is not None


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        found = path.stat()
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


def _refuse_a_file_gone(engine: Engine, path: Path) -> None:
    """A SQLite file deleted (or its folder) while the engine uses it is an error naming it, not a success.

    An open connection writes on into the deleted file, so every commit would be acknowledged (a 201, an
    acknowledged message) and lost at the next start. Each pooled connection remembers its file; handed out
    while the path no longer leads to it, it is dropped, and a new connection to a file that was there and is
    gone raises `sqlite3.OperationalError` naming it (a file put back in its place, a restored backup, is
    used). A file that never was is made, as at the first start, and so is one moved after `dispose()` (the
    detection store sets a damaged file aside so).
    """
    opened = False

    @sa.event.listens_for(engine, "do_connect")
    def _still_there(_dialect: Any, _record: Any, _args: Any, _params: Any) -> None:
        if opened and _file_id(path) is None:
            raise sqlite3.OperationalError(
                f"the SQLite file {path.resolve()} is gone (deleted while in use); restart to make a new one"
            )

    @sa.event.listens_for(engine, "connect")
    def _remember_file(_dbapi_connection: Any, record: Any) -> None:
        nonlocal opened
        opened = True
        record.info["file_id"] = _file_id(path)

    @sa.event.listens_for(engine, "engine_disposed")
    def _forget_file(_engine: Engine) -> None:  # the code closed every connection: it may move the file
        nonlocal opened
        opened = False

    @sa.event.listens_for(engine, "checkout")
    def _same_file(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if _file_id(path) != record.info.get("file_id"):
            raise sa.exc.DisconnectionError(
                f"the SQLite file {path} is no longer the one this connection opened"
            )


def make_engine(database_url: str, *, lock_wait_budgets: bool = False) -> Engine:
    """An engine for the URL; a SQLite file gets its folder made and the pragmas above on every connection.

    With `lock_wait_budgets`, statements run inside `lock_wait_budget` wait for locks only what is left of it.
    A URL SQLAlchemy cannot read, or whose database it has no driver for, is a `SettingsError` naming
    DATABASE_URL (its password hidden): one line from the command, not a traceback.
    """
    try:
        url = sa.engine.make_url(database_url)
    except sa.exc.ArgumentError:
        raise SettingsError(f"DATABASE_URL is not a database URL ({EXAMPLES})") from None
    if url.get_backend_name() != "sqlite":
        try:
            engine = sa.create_engine(url, pool_pre_ping=True)
        except (sa.exc.NoSuchModuleError, ModuleNotFoundError) as exc:
            shown = url.render_as_string(hide_password=True)
            raise SettingsError(f"DATABASE_URL={shown}: no driver here ({exc}; {EXAMPLES})") from None
        if lock_wait_budgets:
            _install_lock_wait_budgets(engine, sqlite=False)
        return engine
    if url.database and url.database != ":memory:":
        folder = Path(url.database).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file where a folder must be, no permission: one line, not a traceback
            shown = url.render_as_string(hide_password=True)
            raise SettingsError(
                f"DATABASE_URL={shown}: cannot make its folder {folder} ({exc.strerror})"
            ) from None
    engine = sa.create_engine(url)

    @sa.event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()
        record.info["busy_timeout_ms"] = BUSY_TIMEOUT_MS

    if url.database and url.database != ":memory:":
        _refuse_a_file_gone(engine, Path(url.database))

    if lock_wait_budgets:
        _install_lock_wait_budgets(engine, sqlite=True)
    return engine
