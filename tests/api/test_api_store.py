"""The feedback store's contract on SQLite (the default) and on a real throwaway PostgreSQL server.

PostgreSQL comes from Debian (`apt-get install -y postgresql`); without it the PostgreSQL cases are
skipped with that message, the SQLite ones still run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from api.store import (
    DuplicateFeedback,
    FeedbackRecord,
    FeedbackStore,
    LoggedPrediction,
    StoreBusy,
    predictions_table,
)
from buzzwatch.database import lock_wait_budget
from tests.support.api import RecordingSleep

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, isolated_var_dir: Path) -> Iterator[FeedbackStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{isolated_var_dir / 'buzzwatch.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    feedback_store = FeedbackStore(url, flush_interval_s=3600)
    yield feedback_store
    from api.store import metadata

    metadata.drop_all(feedback_store.engine)
    feedback_store.close()


def _record(prediction_id: str, predicted: str, correct: str, at: datetime = NOW) -> FeedbackRecord:
    return FeedbackRecord(prediction_id, f"tweet {prediction_id} é 🙂", predicted, correct, None, "v1", at)


def test_predictions_round_trip(store: FeedbackStore) -> None:
    store.log_predictions(
        [LoggedPrediction("p1", "delayed again 😡", "negative", "v1")], [{"negative": 0.9, "neutral": 0.05}]
    )
    assert store.find_prediction("p1") == LoggedPrediction("p1", "delayed again 😡", "negative", "v1")
    assert store.find_prediction("p2") is None


def test_feedback_is_stored_once_and_counted(store: FeedbackStore) -> None:
    store.add_feedback(_record("a", "positive", "negative"))
    with pytest.raises(DuplicateFeedback):
        store.add_feedback(_record("a", "positive", "neutral"))
    store.add_feedback(_record("b", "neutral", "neutral", NOW + timedelta(minutes=5)))
    store.add_feedback(_record("c", "neutral", "positive", NOW - timedelta(hours=2)))
    assert store.feedback_counts_since(NOW - timedelta(minutes=1), "v1") == (2, 1)
    before_rollout = dataclasses.replace(_record("d", "neutral", "negative"), model_version="v0")
    store.add_feedback(before_rollout)
    assert store.feedback_counts_since(NOW - timedelta(minutes=1), "v1") == (2, 1)
    assert store.feedback_counts_since(NOW - timedelta(minutes=1), "v0") == (1, 1)
    assert store.wrong_feedback_since(NOW - timedelta(minutes=1), "v1") == (["a"], {"unknown": 1})
    stats = store.feedback_stats()
    assert (stats["total"], stats["wrong"], stats["correct"]) == (4, 3, 1)
    assert stats["last_received_at"] == "2026-03-01T12:05:00Z"
    exported = list(store.iter_feedback())
    assert [r.prediction_id for r in exported] == ["a", "b", "c", "d"]
    assert exported[0].text == "tweet a é 🙂" and exported[0].created_at == NOW


def test_drift_alert_claim_is_atomic_and_respects_the_cooldown(store: FeedbackStore) -> None:
    assert store.last_drift_alert() is None
    assert store.claim_drift_alert(NOW, cooldown_s=3600)
    assert not store.claim_drift_alert(NOW + timedelta(minutes=30), cooldown_s=3600)
    assert store.last_drift_alert() == NOW
    assert store.claim_drift_alert(NOW + timedelta(minutes=61), cooldown_s=3600)
    assert store.last_drift_alert() == NOW + timedelta(minutes=61)


def test_concurrent_drift_claims_let_exactly_one_win(store: FeedbackStore) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=8) as pool:  # no alert yet: racing to insert the first row
        first = list(pool.map(lambda _: store.claim_drift_alert(NOW, cooldown_s=3600), range(16)))
        later = NOW + timedelta(days=1)  # the cooldown is over: racing to update the row
        second = list(pool.map(lambda _: store.claim_drift_alert(later, cooldown_s=3600), range(16)))
    assert first.count(True) == 1
    assert second.count(True) == 1


def test_write_checks_at_once_from_several_workers_all_find_the_database_writable(
    store: FeedbackStore,
) -> None:
    """Each /readyz checks a write. On PostgreSQL two at once made the second's delete wait for the first,
    find nothing, and its insert collide with the first's new row: 69 of 100 checks said "cannot be
    written" (503) of a database taking writes."""
    from concurrent.futures import ThreadPoolExecutor

    workers = [store, *(FeedbackStore(store.engine.url.render_as_string(False)) for _ in range(3))]
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            problems = list(pool.map(lambda i: workers[i % 4].write_problem(), range(80)))
        assert [str(p) for p in problems if p is not None] == []
        assert all(worker.write_error is None for worker in workers)
    finally:
        for worker in workers[1:]:
            worker.close()


def test_every_prediction_of_a_batch_is_either_kept_or_known_as_dropped_by_the_row_cap(
    store: FeedbackStore,
) -> None:
    """A batch's rows share their time; the cap dropped some of them in no particular order, while the
    feedback route tells a dropped id (404) from one not written yet (503, "send it again") by id order:
    9 of 20 dropped ids were a 503 for a minute."""
    capped = FeedbackStore(
        str(store.engine.url.render_as_string(False)), flush_interval_s=3600, max_logged=10
    )
    try:
        ids = [capped.ids.new() for _ in range(30)]
        rows = [
            LoggedPrediction(prediction_id, f"tweet {i}", "neutral", "v1")
            for i, prediction_id in enumerate(ids)
        ]
        capped.log_predictions(rows, [{"neutral": 1.0}] * len(rows))
        capped.flush()
        capped.prune()
        with capped.engine.connect() as connection:
            kept = set(connection.execute(select(predictions_table.c.prediction_id)).scalars())
        assert len(kept) == 10
        assert all(capped.dropped_from_log(prediction_id) for prediction_id in set(ids) - set(kept))
    finally:
        capped.close()


def test_a_new_prediction_from_another_worker_is_awaited_an_unknown_id_is_not(isolated_var_dir: Path) -> None:
    import threading

    url = f"sqlite:///{isolated_var_dir / 'shared.db'}"
    worker_a = FeedbackStore(url, flush_interval_s=3600)  # flushed by hand below, late
    sleep = RecordingSleep()
    worker_b = FeedbackStore(url, flush_interval_s=0.2, sleep=sleep)
    prediction_id = worker_a.ids.new()
    assert worker_b.ids.issued_age_s(prediction_id) is not None  # one key for every worker
    worker_a.log_predictions([LoggedPrediction(prediction_id, "hi", "neutral", "v1")], [{"neutral": 1.0}])
    threading.Timer(0.15, worker_a.flush).start()
    assert worker_b.find_prediction(prediction_id) is not None
    sleep.waits.clear()
    assert worker_b.find_prediction("0" * 48) is None  # a bad tag: not issued here
    assert worker_b.find_prediction("not-an-id") is None
    assert sleep.waits == []
    worker_a.close()
    worker_b.close()


def test_made_up_ids_stamped_in_the_near_future_are_not_awaited(isolated_var_dir: Path) -> None:
    sleep = RecordingSleep()
    store = FeedbackStore(f"sqlite:///{isolated_var_dir / 'ids.db'}", flush_interval_s=0.2, sleep=sleep)
    soon_ms = f"{time.time_ns() // 1_000_000 + 500:012x}"
    genuine_body = store.ids.new()[:32]
    forged = [
        soon_ms + "0" * 20,  # the old id format: time then random, no tag
        soon_ms + "0" * 20 + "0" * 16,  # the new format with a wrong tag
        soon_ms + genuine_body[12:] + store.ids.new()[32:],  # a real tag moved onto another time
    ]
    for prediction_id in forged:
        assert store.ids.issued_age_s(prediction_id) is None
        assert store.find_prediction(prediction_id) is None
        assert sleep.waits == [], prediction_id
    store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_feedback_table_from_before_provenance_gets_the_column(
    backend: str, request: pytest.FixtureRequest, isolated_var_dir: Path
) -> None:
    from sqlalchemy import MetaData, Table, create_engine, insert

    from api.store import feedback_table, metadata

    if backend == "sqlite":
        url = f"sqlite:///{isolated_var_dir / 'old.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    old_schema = MetaData()
    old_table = Table(
        feedback_table.name,
        old_schema,
        *[column._copy() for column in feedback_table.columns if column.name != "provenance"],
    )
    engine = create_engine(url)
    old_schema.create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            insert(old_table).values(
                prediction_id="old", text="t", predicted_label="neutral", correct_label="neutral",
                correct=True, comment=None, model_version="v0", created_at=NOW,
            )
        )  # fmt: skip
    engine.dispose()
    store = FeedbackStore(url, flush_interval_s=3600)
    store.add_feedback(dataclasses.replace(_record("new", "neutral", "positive"), provenance="app_token"))
    assert [(r.prediction_id, r.provenance) for r in store.iter_feedback()] == [
        ("old", None),
        ("new", "app_token"),
    ]
    metadata.drop_all(store.engine)
    store.close()


@contextlib.contextmanager
def _lock_held_elsewhere(store: FeedbackStore) -> Iterator[Callable[[], None]]:
    """Another process's lock on the feedback table (SQLite: the whole file), as a stray shell would hold it;
    yields a function that releases it early, from any thread, once (a second call waits for the first)."""
    from sqlalchemy import create_engine

    if store.engine.dialect.name == "sqlite":
        holder = sqlite3.connect(store.engine.url.database, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN EXCLUSIVE")
        rollback = holder.rollback
    else:
        engine = create_engine(store.engine.url)
        connection = engine.connect()
        connection.exec_driver_sql("LOCK TABLE api_feedback, api_predictions IN ACCESS EXCLUSIVE MODE")
        rollback = connection.rollback
    once = threading.Lock()
    released = False

    def release() -> None:
        nonlocal released
        with once:  # a timer's release and the exit's must not roll one connection back at once
            if not released:
                rollback()
                released = True

    try:
        yield release
    finally:
        release()
        if store.engine.dialect.name == "sqlite":
            holder.close()
        else:
            connection.close()
            engine.dispose()


def test_under_a_held_lock_a_budget_bounds_the_total_wait_and_work_outside_it_waits_longer(
    store: FeedbackStore,
) -> None:
    """The API's requests give up after their budget (all statements together); its writer, like the other
    services, still waits out a lock held for a few seconds."""
    store.log_predictions([LoggedPrediction("queued", "late again", "negative", "v1")], [{"negative": 1.0}])
    with _lock_held_elsewhere(store):
        started = time.monotonic()
        with lock_wait_budget(1.5), pytest.raises(StoreBusy) as raised:
            with contextlib.suppress(StoreBusy):
                store.flush()  # waits for the lock: the budget's first part
            store.add_feedback(_record("a", "positive", "negative"))  # only what is left of it
        waited_s = time.monotonic() - started
    assert 1.4 < waited_s < 2.7, waited_s  # 1.5 s in all, where a budget per statement would take 3 s
    assert store.location in str(raised.value) and "busy" in str(raised.value)
    assert store.find_prediction("queued") is not None  # kept queued, written now the lock is gone
    store.log_predictions([LoggedPrediction("later", "late again", "negative", "v1")], [{"negative": 1.0}])
    with _lock_held_elsewhere(store) as release:
        threading.Timer(1.0, release).start()
        store.add_feedback(_record("b", "positive", "negative"))  # no budget: waits the second out
        assert store.flush() == 1
    assert [record.prediction_id for record in store.iter_feedback()] == ["b"]
    if store.engine.dialect.name == "postgresql":  # a connection a budget shortened is back to the default
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW lock_timeout").scalar() == "0"
