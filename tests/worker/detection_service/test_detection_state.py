"""Detection state at start-up: a fresh start is said, damage is refused by name unless a reset is asked;
a row per brand is saved, only the changed ones at a checkpoint, and an earlier whole state still loads."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from buzzwatch.telemetry import LocalTelemetry
from stack.ports import free_port
from tests.support.streams import START, background, in_order
from worker.detection import DetectorConfig
from worker.detection_service.service import DetectionService
from worker.detection_service.store import DetectionStore, StateError


class NoDispatch:
    def spool(self, key: str, alert: object) -> None:
        raise AssertionError("no alert expected")


def start(database: Path, reset: bool = False) -> DetectionService:
    """What `buzzwatch detect` does at start-up, with DETECTION_RESET_STATE=`reset`."""
    store = DetectionStore(f"sqlite:///{database}", reset_corrupt=reset)
    return DetectionService(
        store,
        NoDispatch(),  # type: ignore[arg-type]
        LocalTelemetry(database.parent),
        DetectorConfig(),
        reset_state=reset,
    )


def saved_database(database: Path) -> int:
    """A database with a committed state after a day of traffic; the number of tweets it holds."""
    service = start(database)
    tweets = in_order(background(24, seed=3))
    service.process([json.dumps(t.to_dict()).encode() for t in tweets])
    service.checkpoint()
    service.store.close()
    return len(tweets)


def fresh_start_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.WARNING and "starts afresh" in r.getMessage()]


@pytest.mark.parametrize("case", ["missing", "empty file", "tables without state"])
def test_a_start_without_saved_state_says_so_and_names_the_database(tmp_path, caplog, case) -> None:
    database = tmp_path / "buzzwatch.db"
    if case == "empty file":
        database.write_bytes(b"")
    elif case == "tables without state":
        saved_database(database)
        with sqlite3.connect(database) as connection:
            connection.execute("DELETE FROM bw_detector_state")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="buzzwatch.detection"):
        service = start(database)
    (warning,) = fresh_start_warnings(caplog)
    assert str(database) in warning.getMessage() and warning.database == str(database)
    assert service.detector.brands == ()
    service.store.close()


def test_a_saved_state_resumes_without_a_warning(tmp_path, caplog) -> None:
    database = tmp_path / "buzzwatch.db"
    saved_database(database)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="buzzwatch.detection"):
        service = start(database)
    assert service.detector.brands == ("acme",)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    service.store.close()


def damage(database: Path, how: str) -> None:
    """Make the database unusable the way a disk or a person might."""
    if how == "not a database":
        database.write_bytes(os.urandom(8192))
    elif how == "damaged pages":
        raw = bytearray(database.read_bytes())
        raw[4096 : len(raw) - 4096] = os.urandom(len(raw) - 8192)  # keep the header page, wreck the rest
        database.write_bytes(bytes(raw))


@pytest.mark.parametrize("how", ["not a database", "damaged pages"])
def test_a_damaged_database_is_refused_by_name_then_set_aside_on_request(tmp_path, caplog, how) -> None:
    database = tmp_path / "buzzwatch.db"
    assert saved_database(database) > 500 and database.stat().st_size > 16384
    damage(database, how)
    before = database.read_bytes()
    caplog.clear()
    with pytest.raises(StateError) as refused:
        start(database)
    assert str(database) in str(refused.value) and "DETECTION_RESET_STATE=true" in str(refused.value)
    assert database.read_bytes() == before  # nothing touched without the reset

    with caplog.at_level(logging.INFO, logger="buzzwatch.detection"):
        service = start(database, reset=True)
    (aside,) = tmp_path.glob("buzzwatch.db.corrupt-*[0-9TZ]")
    assert aside.read_bytes() == before  # kept for inspection
    assert any(str(aside) in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert len(fresh_start_warnings(caplog)) == 1
    assert service.store.counts() == {"tweets": 0, "alerts": 0}
    service.store.close()


@pytest.mark.parametrize(
    "bad_state",
    ["{not json", json.dumps({"version": 1, "brands": 5}), json.dumps([1, 2]), json.dumps({"version": 99})],
)
def test_an_unreadable_state_row_is_refused_by_name_then_set_aside_on_request(
    tmp_path, caplog, bad_state
) -> None:
    database = tmp_path / "buzzwatch.db"
    tweets = saved_database(database)
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE bw_detector_state SET state = ?", (bad_state,))
    caplog.clear()
    with pytest.raises(StateError) as refused:
        start(database)
    message = str(refused.value)
    assert f"the detector state in {database} is unreadable" in message and "DETECTION_RESET_STATE" in message

    with caplog.at_level(logging.INFO, logger="buzzwatch.detection"):
        service = start(database, reset=True)
    assert len(fresh_start_warnings(caplog)) == 1
    assert service.store.counts()["tweets"] == tweets  # the seen ids are kept: no tweet counted twice
    with sqlite3.connect(database) as connection:
        (kept,) = connection.execute("SELECT name, state FROM bw_detector_state").fetchall()
    assert kept[0].startswith("buzz-detector.bad-") and kept[1] == bad_state
    service.store.close()


@pytest.mark.parametrize(
    "entry_point", [["buzzwatch.cli", "detect"], ["worker.detection_service"]], ids=["detect", "module"]
)
def test_the_detection_service_exits_with_one_line_naming_the_damaged_database(
    tmp_path: Path, entry_point: list[str]
) -> None:
    """As run (`buzzwatch detect` or `python -m worker.detection_service`): exit status 2, a CRITICAL JSON
    line that names the file and the reset; no traceback."""
    database = tmp_path / "buzzwatch.db"
    database.write_bytes(b"this is not a SQLite database" * 200)
    # An emulator address (never reached: the damaged database stops the service first), so the missing
    # Google credentials check does not stop it before the store is opened.
    env = dict(
        os.environ,
        BUZZWATCH_VAR_DIR=str(tmp_path),
        PORT=str(free_port()),
        LOG_LEVEL="INFO",
        PUBSUB_EMULATOR_HOST="127.0.0.1:9",
    )
    result = subprocess.run(
        [sys.executable, "-m", *entry_point],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stdout + result.stderr
    (critical,) = [
        json.loads(line) for line in result.stdout.splitlines() if '"severity": "CRITICAL"' in line
    ]
    assert str(database) in critical["message"] and "DETECTION_RESET_STATE=true" in critical["message"]


def test_a_state_row_that_does_not_load_stops_the_service_and_frees_the_database(tmp_path: Path) -> None:
    """The single instance holds the database while it loads the state: stopping on an unreadable row, it
    releases it (the next start, on another machine, would have waited out the lease)."""
    database = tmp_path / "buzzwatch.db"
    saved_database(database)
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE bw_detector_state SET state = ?", ("{not json",))
    env = dict(
        os.environ,
        BUZZWATCH_VAR_DIR=str(tmp_path),
        PORT=str(free_port()),
        PUBSUB_EMULATOR_HOST="127.0.0.1:9",  # never reached: the state stops it first
        DETECTION_INSTANCE_ID="detection-0",
    )
    result = subprocess.run(
        [sys.executable, "-m", "buzzwatch.cli", "detect"],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2 and b"is unreadable" in result.stderr + result.stdout
    store = DetectionStore(f"sqlite:///{database}")
    row = store.single_owner()
    assert row.epoch == 1 and row.owner is None  # taken, then released
    store.close()


MORNING = START + timedelta(hours=8)


def feed(service: DetectionService, tweets: list[Any]) -> None:
    service.process([json.dumps(t.to_dict()).encode() for t in tweets])
    service.checkpoint()


def brand_rows(database: Path) -> dict[str, tuple[int, float]]:
    """brand -> (position, updated_at) of the saved state's brand rows."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT brand, position, updated_at FROM bw_brand_state WHERE name = 'buzz-detector'"
        ).fetchall()
    return {brand: (position, updated) for brand, position, updated in rows}


def saved(service: DetectionService) -> dict[str, Any]:
    return json.loads(json.dumps(service.detector.state_dict()))


def three_brands(hours: float) -> list[Any]:
    return in_order(
        background(hours, seed=1, brand="busy", day_rate=4.0, start=MORNING)
        + background(hours, seed=2, brand="mid", start=MORNING)
        + background(hours, seed=3, brand="calm", day_rate=0.5, start=MORNING)
    )


def stopped_after(database: Path, hours: float) -> DetectionService:
    """A service that counted `three_brands(hours)`, committed and stopped (its store closed)."""
    service = start(database)
    feed(service, three_brands(hours))
    service.store.close()
    return service


def test_a_checkpoint_writes_the_changed_brands_only_and_a_restart_resumes_the_same_detector(
    tmp_path: Path,
) -> None:
    database = tmp_path / "buzzwatch.db"
    service = start(database)
    first = three_brands(2)
    feed(service, first)
    before = brand_rows(database)
    assert sorted(before, key=lambda b: before[b][0]) == list(service.detector.brands)  # first appearance

    busy_only = [t for t in three_brands(2.05)[len(first) :] if t.tweet.brands == ("busy",)]
    assert busy_only  # a few more minutes of the busy brand, nothing for the others
    feed(service, busy_only)
    after = brand_rows(database)
    assert after["busy"][1] > before["busy"][1]
    assert {b: after[b] for b in ("mid", "calm")} == {b: before[b] for b in ("mid", "calm")}
    with sqlite3.connect(database) as connection:
        (global_state,) = connection.execute("SELECT state FROM bw_detector_state").fetchone()
    assert "brands" not in json.loads(global_state)  # the global row holds no brand

    restarted = start(database)  # "mid" and "calm" close their minutes since their save again
    assert saved(restarted) == saved(service)
    assert restarted.detector.brands == service.detector.brands
    assert restarted.detector.changed_brands() == []
    restarted.store.close()
    service.store.close()


def test_a_whole_state_saved_by_an_earlier_version_loads_and_moves_into_brand_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = tmp_path / "buzzwatch.db"
    service = stopped_after(database, 2)
    whole = saved(service)
    for payload in whole["brands"].values():  # as saved before brands had rows of their own
        del payload["next_minute"]
    with sqlite3.connect(database) as connection:
        connection.execute("DELETE FROM bw_brand_state")
        connection.execute("UPDATE bw_detector_state SET state = ?", (json.dumps(whole),))

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="buzzwatch.detection"):
        resumed = start(database)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert saved(resumed) == saved(service)
    resumed.checkpoint()  # no new tweet: the first commit still moves every brand to its row
    assert sorted(brand_rows(database)) == ["busy", "calm", "mid"]
    resumed.store.close()
    again = start(database)
    assert saved(again) == saved(service)
    again.store.close()


def test_an_unreadable_brand_row_is_refused_then_set_aside_with_its_state(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = tmp_path / "buzzwatch.db"
    stopped_after(database, 1)
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE bw_brand_state SET state = '{not json' WHERE brand = 'mid'")
    with pytest.raises(StateError) as refused:
        start(database)
    assert f"the detector state in {database} is unreadable" in str(refused.value)

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="buzzwatch.detection"):
        fresh = start(database, reset=True)
    assert fresh.detector.brands == ()
    assert any("starts afresh" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    with sqlite3.connect(database) as connection:
        names = {
            name
            for table in ("bw_detector_state", "bw_brand_state")
            for (name,) in connection.execute(f"SELECT DISTINCT name FROM {table}")
        }
    (aside,) = names
    assert aside.startswith("buzz-detector.bad-")  # both tables' rows kept for inspection, under one name
    fresh.store.close()
