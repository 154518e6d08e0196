"""Two `detect` processes on one database and one subscription: one counts, the other stands by."""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from buzzwatch.pubsub import StreamTopology
from buzzwatch.settings import CommonSettings
from stack.emulator import PubSubEmulator
from stack.ports import free_port
from stack.processes import health_report
from tests.support.polling import wait_for
from tests.support.stack import buzzwatch, publish_scored, stack_env, stack_store, stop, stream_events
from worker.detection import BuzzDetector
from worker.detection_service.single import gone_from_this_machine
from worker.detection_service.store import DetectionStore, FencedError, alert_outbox, read_rows, seen_tweets

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def counted(database_url: str) -> int:
    rows = read_rows(database_url, sa.select(sa.func.count()).select_from(seen_tweets))
    return int(rows[0][0]) if rows else 0


def detect_env(tmp_path: Path, name: str, **extra: str) -> tuple[dict[str, str], StreamTopology]:
    """The environment of `detect` processes on the shared emulator, with topics named for one test, and
    their topology (made)."""
    env = stack_env(
        tmp_path,
        {"PUBSUB_EMULATOR_HOST": os.environ["PUBSUB_EMULATOR_HOST"]},
        PUBSUB_SCORED_TOPIC=f"{name}-scored",
        PUBSUB_SCORED_SUBSCRIPTION=f"{name}-detector",
        PUBSUB_DEAD_LETTER_TOPIC=f"{name}-dead",
        PUBSUB_DEAD_LETTER_SUBSCRIPTION=f"{name}-dead-keep",
        **extra,
    )
    topology = StreamTopology.from_settings(CommonSettings.from_env(env))
    topology.ensure_scored_path()
    return env, topology


def test_a_second_instance_stands_by_and_takes_over_when_the_first_stops(
    emulator_env: PubSubEmulator, tmp_path: Path, unique_name: str
) -> None:
    """Before, both counted the messages Pub/Sub gave each (about half the stream each, one state row
    written by both in turn) and could both alert; on a fresh database the second start could also fail
    creating the tables the first was creating ("table bw_seen_tweets already exists")."""
    # a dead holder's lease runs out after 12 s; a standby looks every 4 s
    env, topology = detect_env(tmp_path, unique_name, DETECTION_LEASE_S="12")
    database_url = f"sqlite:///{tmp_path / 'buzzwatch.db'}"
    ports = {name: free_port() for name in ("a", "b")}
    processes = {  # started together on no database: both make its tables
        name: buzzwatch(
            "detect",
            env=dict(env, PORT=str(port), DETECTION_INSTANCE_ID=name),
            log_path=tmp_path / f"{name}.log",
        )
        for name, port in ports.items()
    }

    def health(name: str) -> dict[str, Any] | None:
        return health_report(f"http://127.0.0.1:{ports[name]}/healthz")

    try:
        wait_for(lambda: all(health(n) for n in ports), 60, "both answer /healthz")
        reports = {name: health(name) for name in ports}
        standing = [name for name, report in reports.items() if report and "standby_for" in report]
        assert len(standing) == 1, reports
        (waiting,) = standing
        (holder,) = set(ports) - {waiting}
        assert reports[waiting]["standby_for"] == holder  # type: ignore[index]

        events = stream_events(calm_minutes=120, buzz_minutes=10, tail_minutes=15)
        first = sum(e.created_at < events[-1].created_at - timedelta(minutes=5) for e in events)
        publish_scored(events[:first], topology.project, topology.scored_topic)
        wait_for(lambda: counted(database_url) == first, 60, "the stream counted", processes[holder])
        assert health(waiting) == reports[waiting]  # it counted nothing meanwhile

        processes[holder].send_signal(signal.SIGTERM)  # a rollout stops the old revision
        assert processes[holder].wait(30) == 0
        started = time.monotonic()
        wait_for(lambda: "standby_for" not in (health(waiting) or {"standby_for": 1}), 20, "the takeover")
        assert time.monotonic() - started < 8  # released at the stop: taken at the next look, not the lease
        publish_scored(events[first:], topology.project, topology.scored_topic)
        wait_for(lambda: counted(database_url) == len(events), 60, "the rest counted", processes[waiting])
        wait_for(lambda: (health(waiting) or {}).get("counted") == len(events) - first, 10, "its totals")
    finally:
        stop(list(processes.values()))
    with stack_store(tmp_path) as store:
        state = BuzzDetector.from_state(store.load_state() or {}).state_dict()
    assert state["stats"]["observed"] == len(events)  # every tweet in the one committed detector, once
    payloads = [json.loads(p) for (p,) in read_rows(database_url, sa.select(alert_outbox.c.payload))]
    assert [p["kind"] for p in payloads].count("new") == 1, payloads


def test_a_holder_that_lost_the_database_writes_nothing(tmp_path: Path) -> None:
    """A holder that stalled past its lease (a zombie) finds its commit and alert claims refused."""
    store = DetectionStore(f"sqlite:///{tmp_path / 'buzzwatch.db'}")
    row = store.single_owner()
    zombie = store.acquire(row, "a", lease_s=1.0, now=100.0)
    assert zombie is not None
    assert store.acquire(row, "b", lease_s=1.0, now=100.5) is None  # read before "a" took it: refused
    taken = store.acquire(store.single_owner(), "b", lease_s=10.0, now=102.0)  # "a"'s lease ran out
    assert taken is not None and taken.epoch == zombie.epoch + 1
    with pytest.raises(FencedError, match="the database has moved on from a"):
        store.guarded(zombie).commit(["t1"], {"stats": {}}, [])
    with pytest.raises(FencedError):
        store.guarded(zombie).claim_dispatch("some alert")
    store.guarded(taken).commit(["t1"], {"stats": {}}, [])
    assert store.guarded(taken).claim_dispatch("some alert") == 112.0  # until its lease runs out (was inf)
    assert store.counts()["tweets"] == 1
    assert store.owners() == {}  # the instance row is no partition group's
    store.close()


def test_a_holder_of_this_machine_whose_process_is_gone_is_not_waited_for() -> None:
    """A local restart after a crash (the default id is host-pid) took over at once, not after a lease."""
    import socket

    here = socket.gethostname()
    assert gone_from_this_machine(f"{here}-4194305")  # above any Linux pid: no such process
    assert not gone_from_this_machine(f"{here}-{os.getpid()}")  # this one runs
    assert not gone_from_this_machine("another-host-12")  # another machine's: its lease decides
    assert not gone_from_this_machine("detection-0")  # a chosen id (DETECTION_INSTANCE_ID)


def test_a_locked_database_neither_stops_the_holder_nor_the_standby(tmp_path: Path, monkeypatch) -> None:
    """The lease's renewal and the standby's look ran outside the commits' retries: a database locked
    (or full) past its busy timeout stopped both with a traceback, exit 1, and nothing counted after."""
    import sqlite3
    import threading

    from buzzwatch import database
    from worker.detection_service.settings import DetectionSettings
    from worker.detection_service.single import SingleRunner

    pragmas = tuple(p.replace(str(database.BUSY_TIMEOUT_MS), "100") for p in database.SQLITE_PRAGMAS)
    monkeypatch.setattr(database, "SQLITE_PRAGMAS", pragmas)  # a lock held past 0.1 s fails at once
    monkeypatch.setattr(database, "BUSY_TIMEOUT_MS", 100)
    path = tmp_path / "buzzwatch.db"
    store = DetectionStore(f"sqlite:///{path}")
    settings = {
        name: DetectionSettings.from_env({"DETECTION_INSTANCE_ID": name, "DETECTION_LEASE_S": "3"})
        for name in ("a", "b")
    }
    holder = SingleRunner(store, settings["a"], lambda view: None)  # type: ignore[arg-type,return-value]
    stop = threading.Event()
    lease = holder._take(stop, restarted=True)
    assert lease is not None
    standby = SingleRunner(store, settings["b"], lambda view: None)  # type: ignore[arg-type,return-value]
    looked: list[object] = []
    thread = threading.Thread(target=lambda: looked.append(standby._take(stop, restarted=True)))
    lock = sqlite3.connect(path, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # another process writing, for longer than the busy timeout
    try:
        thread.start()
        holder._renew_at = 0.0
        holder._renew(lease)  # was: OperationalError, database is locked
        time.sleep(1.5)
        assert thread.is_alive() and not looked  # looking again, not dead
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    holder._renew_at = 0.0
    holder._renew(lease)  # renewed now: the lease holds
    wait_for(lambda: standby.holder == "a", 10, "the standby sees the holder")
    stop.set()
    thread.join(10)
    assert looked == [None] and store.single_owner().owner == "a"
    store.close()


def test_a_stop_while_the_database_is_locked_ends_within_the_platforms_grace(
    emulator_env: PubSubEmulator, tmp_path: Path, unique_name: str
) -> None:
    """Each last statement (the final commit, the release) waited SQLite's 15 s busy timeout: a SIGTERM
    took 43 s and ended in a traceback, exit 1, past Cloud Run's 10 s grace."""
    import sqlite3

    env, topology = detect_env(tmp_path, unique_name, PORT=str(free_port()), DETECTION_INSTANCE_ID="a")
    process = buzzwatch("detect", env=env, log_path=tmp_path / "a.log")
    try:
        healthz = f"http://127.0.0.1:{env['PORT']}/healthz"
        wait_for(lambda: (health_report(healthz) or {}).get("status") == "ok", 60, "the instance up", process)
        events = stream_events(calm_minutes=20, buzz_minutes=0, tail_minutes=0)
        publish_scored(events, topology.project, topology.scored_topic)
        wait_for(lambda: counted(f"sqlite:///{tmp_path / 'buzzwatch.db'}") == len(events), 60, "counted")
        lock = sqlite3.connect(tmp_path / "buzzwatch.db", isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # another process writing, for longer than the stop
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(60)
        took = time.monotonic() - started
        lock.execute("ROLLBACK")
        lock.close()
    finally:
        stop([process])
    assert took < 9 and code == 0, (took, code)
    assert "Traceback" not in (tmp_path / "a.log").read_text()


def test_a_second_process_with_the_same_id_is_said(tmp_path: Path, caplog) -> None:
    """Two live processes given one DETECTION_INSTANCE_ID: the second takes the database at its start (a
    restart looks the same); it was silent, the first then standing by under its own name."""
    import threading

    from worker.detection_service.settings import DetectionSettings
    from worker.detection_service.single import SingleRunner

    store = DetectionStore(f"sqlite:///{tmp_path / 'buzzwatch.db'}")
    settings = DetectionSettings.from_env({"DETECTION_INSTANCE_ID": "x"})
    first, second = (SingleRunner(store, settings, lambda view: None) for _ in range(2))  # type: ignore[arg-type,return-value]
    stop = threading.Event()
    assert first._take(stop, restarted=True) is not None
    with caplog.at_level("WARNING", logger="buzzwatch.detection"):
        assert second._take(stop, restarted=True) is not None
    (said,) = [r.getMessage() for r in caplog.records if "DETECTION_INSTANCE_ID" in r.getMessage()]
    assert "named x like this one" in said
    store.close()
