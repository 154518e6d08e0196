"""One database set-up: every SQLite connection of every store gets the same pragmas; PostgreSQL as it is."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from buzzwatch.database import BUSY_TIMEOUT_MS, lock_wait_budget, make_engine
from buzzwatch.settings import SettingsError
from stack.ports import free_port
from tests.support.commands import assert_one_line, run_buzzwatch

EXPECTED = {"journal_mode": "wal", "synchronous": 2, "busy_timeout": BUSY_TIMEOUT_MS, "foreign_keys": 1}


def _pragmas(engine: sa.Engine) -> dict[str, object]:
    with engine.connect() as connection:
        return {name: connection.exec_driver_sql(f"PRAGMA {name}").scalar() for name in EXPECTED}


def test_a_sqlite_file_gets_its_folder_and_the_pragmas_on_every_connection(tmp_path: Path) -> None:
    database = tmp_path / "not" / "yet" / "made.db"
    engine = make_engine(f"sqlite:///{database}")
    try:
        assert database.parent.is_dir()
        with engine.connect() as first, engine.connect() as second:  # two pooled connections, both set up
            for connection in (first, second):
                assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2
                assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == BUSY_TIMEOUT_MS
        assert _pragmas(engine) == EXPECTED
    finally:
        engine.dispose()


def test_a_sqlite_file_deleted_while_in_use_is_an_error_naming_it_and_one_put_back_is_used(
    tmp_path: Path,
) -> None:
    """A pooled connection wrote on into the deleted file: every write succeeded and was lost at the next
    start (a hostile check deleted the API's var folder: feedback answered 201, then was gone)."""
    import shutil

    database = tmp_path / "var" / "buzzwatch.db"
    engine = make_engine(f"sqlite:///{database}")
    notes = sa.Table("notes", sa.MetaData(), sa.Column("body", sa.String))
    try:
        notes.metadata.create_all(engine)
        with engine.begin() as connection:
            connection.execute(notes.insert().values(body="kept"))
        with (
            contextlib.closing(sqlite3.connect(database)) as live,
            contextlib.closing(sqlite3.connect(tmp_path / "backup.db")) as backup,
        ):
            live.backup(backup)
        shutil.rmtree(database.parent)
        for _ in range(2):  # the pooled connection is dropped; a new one is refused, every time
            gone = pytest.raises(sa.exc.OperationalError, match=f"the SQLite file {database} is gone")
            with gone, engine.begin() as connection:
                connection.execute(notes.insert().values(body="lost"))
        assert not database.exists()  # no empty file made in its place
        database.parent.mkdir()
        shutil.copy(tmp_path / "backup.db", database)  # the backup restored: used as it is
        with engine.begin() as connection:
            connection.execute(notes.insert().values(body="after"))
        with engine.connect() as connection:
            assert connection.execute(sa.select(notes.c.body)).scalars().all() == ["kept", "after"]
        engine.dispose()  # every connection closed by the code: the file may be moved and a new one made
        database.rename(tmp_path / "set-aside.db")  # as the detection store sets a damaged file aside
        notes.metadata.create_all(engine)
        assert database.exists()
    finally:
        engine.dispose()


def test_sqlite_enforces_foreign_keys_as_postgresql_does(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'keys.db'}")
    metadata = sa.MetaData()
    parent = sa.Table("parent", metadata, sa.Column("id", sa.Integer, primary_key=True))
    child = sa.Table("child", metadata, sa.Column("parent_id", sa.Integer, sa.ForeignKey("parent.id")))
    try:
        metadata.create_all(engine)
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
            connection.execute(child.insert().values(parent_id=42))
        with engine.begin() as connection:
            connection.execute(parent.insert().values(id=42))
            connection.execute(child.insert().values(parent_id=42))
    finally:
        engine.dispose()


def test_an_in_memory_sqlite_database_needs_no_folder() -> None:
    engine = make_engine("sqlite:///:memory:")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_postgresql_passes_through_with_a_ping_before_each_pooled_connection() -> None:
    engine = make_engine("postgresql+psycopg://user@db.invalid/buzzwatch")  # never connected
    assert engine.dialect.name == "postgresql"
    assert engine.pool._pre_ping  # a restarted server costs a reconnect, not a failed request
    plain = sa.create_engine("postgresql+psycopg://user@db.invalid/buzzwatch")
    assert len(engine.pool.dispatch.connect) == len(plain.pool.dispatch.connect)  # no SQLite pragmas sent


def test_the_feedback_store_and_the_detection_store_share_the_set_up(tmp_path: Path) -> None:
    from api.store import FeedbackStore
    from worker.detection_service.store import DetectionStore

    feedback = FeedbackStore(f"sqlite:///{tmp_path / 'api' / 'buzzwatch.db'}")
    detection = DetectionStore(f"sqlite:///{tmp_path / 'detection' / 'detection.db'}")
    try:
        assert _pragmas(feedback.engine) == EXPECTED
        assert _pragmas(detection.engine) == EXPECTED
    finally:
        feedback.close()
        detection.engine.dispose()


@pytest.mark.parametrize(
    ("database_url", "message"),
    [
        ("garbage://x", "DATABASE_URL=garbage://x: no driver here (Can't load plugin"),
        ("mysql://bw:secret@db/bw", "DATABASE_URL=mysql://bw:***@db/bw: no driver here (No module named"),
        ("a url with secret words", "DATABASE_URL is not a database URL (e.g. sqlite:///"),
    ],
)
def test_a_url_that_cannot_be_opened_is_a_settings_error_without_its_password(
    database_url: str, message: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        make_engine(database_url)
    assert str(raised.value).startswith(message)
    assert "secret" not in str(raised.value)


@pytest.mark.parametrize("arguments", [("detect",), ("api", "--host", "127.0.0.1")])
def test_the_commands_that_open_a_database_say_so_in_one_line(
    tmp_path: Path, arguments: tuple[str, ...]
) -> None:
    """detect printed SQLAlchemy's NoSuchModuleError traceback; api a boot failure in each gunicorn worker."""
    env = {
        **os.environ,
        "DATABASE_URL": "garbage://x",
        "BUZZWATCH_VAR_DIR": str(tmp_path),
        "PORT": str(free_port()),
        "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{free_port()}",  # never reached: the store opens first
    }
    line = assert_one_line(run_buzzwatch(env, *arguments), arguments[0])
    assert "DATABASE_URL=garbage://x: no driver here" in line


@pytest.mark.parametrize("arguments", [("detect",), ("api", "--host", "127.0.0.1")])
def test_a_sqlite_file_whose_folder_cannot_be_made_is_one_line(
    tmp_path: Path, arguments: tuple[str, ...]
) -> None:
    """A file where the database's folder must be was a FileExistsError traceback from both commands."""
    (tmp_path / "afile").write_text("not a folder")
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path}/afile/x.db",
        "BUZZWATCH_VAR_DIR": str(tmp_path),
        "PORT": str(free_port()),
        "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{free_port()}",  # never reached: the store opens first
    }
    line = assert_one_line(run_buzzwatch(env, *arguments), arguments[0])
    assert f"cannot make its folder {tmp_path}/afile" in line


def _recording_engine(url: str) -> tuple[sa.Engine, list[str]]:
    """An engine with lock-wait budgets whose every statement sent to the server (its SETs too) is listed."""
    import psycopg

    sent: list[str] = []

    class Recording(psycopg.Cursor):
        def execute(self, query: object, *args: object, **kwargs: object) -> Recording:
            sent.append(str(query))
            return super().execute(query, *args, **kwargs)  # type: ignore[arg-type]

    engine = make_engine(url, lock_wait_budgets=True)
    sa.event.listen(
        engine, "connect", lambda dbapi_connection, _: setattr(dbapi_connection, "cursor_factory", Recording)
    )
    return engine, sent


def test_postgresql_sets_the_lock_wait_only_for_statements_in_a_budget(postgres_url: str) -> None:
    """It sent two SETs before every statement, in a budget or not: a round trip each for nothing."""
    engine, sent = _recording_engine(postgres_url)
    try:
        with engine.begin() as connection:
            for _ in range(3):
                connection.exec_driver_sql("SELECT 1")
        assert not [query for query in sent if query.startswith("SET")], sent
        sent.clear()
        with lock_wait_budget(5.0), engine.begin() as connection:
            connection.exec_driver_sql("SELECT 1")
            for setting in ("lock_timeout", "statement_timeout"):  # what is left of the budget, in ms
                assert (
                    0 < int(connection.exec_driver_sql(f"SHOW {setting}").scalar().removesuffix("ms")) <= 5000
                )
        sets = [query for query in sent if query.startswith("SET")]
        assert len(sets) == 3 and all(query.startswith("SET LOCAL lock_timeout = ") for query in sets)
        sent.clear()
        with engine.connect() as connection:  # the budget ended with its transaction
            assert connection.exec_driver_sql("SHOW lock_timeout").scalar() == "0"
            assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == "0"
        assert not [query for query in sent if query.startswith("SET")], sent
    finally:
        engine.dispose()


def test_postgresql_a_transaction_that_outlives_its_budget_waits_as_usual_again(postgres_url: str) -> None:
    engine, sent = _recording_engine(postgres_url)
    try:
        with engine.begin() as connection:
            with lock_wait_budget(5.0):
                connection.exec_driver_sql("SELECT 1")
            assert connection.exec_driver_sql("SHOW lock_timeout").scalar() == "0"
            assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == "0"
            connection.exec_driver_sql("SELECT 1")
        assert [query for query in sent if query.startswith("SET")][-1].startswith(
            "SET LOCAL lock_timeout = DEFAULT"
        )
        assert len([query for query in sent if query.startswith("SET")]) == 2  # the budget's, then one reset
    finally:
        engine.dispose()
