"""Feedback: stored once per prediction, exported as training data, traced, and the drift alert."""

from __future__ import annotations

import csv
import dataclasses
import io
import sqlite3
import time
from datetime import timedelta
from email import message_from_bytes
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.app import create_app
from api.settings import ApiSettings
from api.store import FeedbackStore
from buzzwatch.cells import from_spreadsheet_cell
from buzzwatch.notify import Mailer
from buzzwatch.schema import LABELS
from buzzwatch.telemetry import (
    FEEDBACK_RECEIVED,
    MISPREDICTION,
    MODEL_DRIFT_ALERT,
    LocalTelemetry,
    read_local,
)
from tests.support.api import API_KEY, APP_TOKEN, FakeClock, LexiconPredictor, RecordingSleep


def _predict(client: FlaskClient, text: str) -> dict:
    response = client.post("/v1/predict", json={"text": text})
    assert response.status_code == 200
    return response.get_json()


def _export(client: FlaskClient) -> list[dict[str, str]]:
    response = client.get("/v1/admin/feedback.csv", headers={"X-API-Key": API_KEY})
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_feedback_by_prediction_id_is_stored_once(client: FlaskClient) -> None:
    prediction = _predict(client, "great crew, thanks")
    first = client.post(
        "/v1/feedback",
        json={"prediction_id": prediction["prediction_id"], "label": "neutral", "comment": "sarcasm"},
    )
    assert first.status_code == 201
    assert first.get_json() == {
        "prediction_id": prediction["prediction_id"],
        "label": "neutral",
        "predicted_label": "positive",
        "correct": False,
        "model_version": "lexicon-test-1",
    }
    again = client.post(
        "/v1/feedback", json={"prediction_id": prediction["prediction_id"], "label": "negative"}
    )
    assert again.status_code == 409
    assert "already stored" in again.get_json()["message"]
    rows = _export(client)
    assert len(rows) == 1
    assert rows[0]["text"] == "great crew, thanks"
    assert rows[0]["label"] == "neutral"
    assert rows[0]["comment"] == "sarcasm"


def test_feedback_by_text_and_predicted_label_is_stored_once(client: FlaskClient) -> None:
    payload = {"text": "meh, ok flight", "predicted_label": "negative", "label": "neutral"}
    key = {"X-API-Key": API_KEY}
    assert client.post("/v1/feedback", json=payload, headers=key).status_code == 201
    assert client.post("/v1/feedback", json=payload, headers=key).status_code == 409
    other_text = {**payload, "text": "a different tweet"}
    assert client.post("/v1/feedback", json=other_text, headers=key).status_code == 201
    assert [row["text"] for row in _export(client)] == ["meh, ok flight", "a different tweet"]


@pytest.mark.parametrize(
    ("payload", "status", "message_part"),
    [
        ({"prediction_id": "abc"}, 400, "missing field 'label'"),
        ({"prediction_id": "abc", "label": "angry"}, 400, "not a known label"),
        ({"prediction_id": "abc", "label": 1}, 400, "'label' must be a string"),
        ({"prediction_id": "", "label": "neutral"}, 400, "'prediction_id' must be a non-empty string"),
        ({"prediction_id": 12, "label": "neutral"}, 400, "'prediction_id' must be a non-empty string"),
        ({"prediction_id": "x" * 65, "label": "neutral"}, 400, "longer than 64"),
        ({"prediction_id": "a b;--", "label": "neutral"}, 400, "letters, digits"),
        (
            {"prediction_id": "a", "label": "neutral", "comment": "\ud83d"},
            400,
            "'comment' contains invalid Unicode",
        ),
        ({"text": "a\x00", "predicted_label": "neutral", "label": "neutral"}, 400, "NUL character"),
        ({"label": "neutral"}, 400, "missing field 'prediction_id'"),
        ({"text": "hi", "label": "neutral"}, 400, "'predicted_label'"),
        ({"text": "hi", "predicted_label": "sad", "label": "neutral"}, 400, "'predicted_label' is 'sad'"),
        ({"text": "", "predicted_label": "neutral", "label": "neutral"}, 400, "'text' is empty"),
        ({"text": "\u200b", "predicted_label": "neutral", "label": "neutral"}, 400, "'text' is empty"),
        (
            {"prediction_id": "a", "text": "hi", "predicted_label": "neutral", "label": "neutral"},
            400,
            "not both",
        ),
        ({"prediction_id": "a", "label": "neutral", "comment": 5}, 400, "'comment' must be a string"),
        ({"prediction_id": "a", "label": "neutral", "comment": "c" * 2001}, 400, "the limit is 2000"),
        ({"prediction_id": "a", "label": "neutral", "extra": True}, 400, "unknown field 'extra'"),
        ({"prediction_id": "never-issued", "label": "neutral"}, 404, "unknown prediction id"),
    ],
)
def test_feedback_rejects_bad_input(
    client: FlaskClient, payload: dict, status: int, message_part: str
) -> None:
    response = client.post("/v1/feedback", json=payload)
    assert response.status_code == status
    assert message_part in response.get_json()["message"]


def test_made_up_prediction_ids_get_their_404_at_once(
    client: FlaskClient, store_sleep: RecordingSleep
) -> None:
    import time

    genuine = _predict(client, "great crew, thanks")["prediction_id"]
    soon_ms = f"{time.time_ns() // 1_000_000 + 300:012x}"
    for forged in (soon_ms + genuine[12:32], soon_ms + genuine[12:]):  # old format; a stolen tag
        response = client.post("/v1/feedback", json={"prediction_id": forged, "label": "neutral"})
        assert response.status_code == 404
        assert store_sleep.waits == []
    assert client.post("/v1/feedback", json={"prediction_id": genuine, "label": "neutral"}).status_code == 201


def _slow_worker(settings: ApiSettings, mailer: Mailer) -> tuple[FeedbackStore, FlaskClient]:
    """A second API worker on the same database whose predictions are written only by hand (flush())."""
    slow_store = FeedbackStore(settings.common.database_url, flush_interval_s=3600)
    slow_worker = create_app(
        settings,
        predictor=LexiconPredictor(),
        store=slow_store,
        telemetry=LocalTelemetry(settings.common.var_dir, role="api"),
        mailer=mailer,
    ).test_client()
    return slow_store, slow_worker


def test_feedback_on_a_prediction_another_worker_has_not_written_yet_is_asked_again(
    settings: ApiSettings, client: FlaskClient, store: FeedbackStore, mailer: Mailer
) -> None:
    """A worker slow to write its predictions (a busy database) made a genuine id a 404 "unknown"."""
    slow_store, slow_worker = _slow_worker(settings, mailer)
    prediction_id = _predict(slow_worker, "they lost my bag")["prediction_id"]
    response = client.post("/v1/feedback", json={"prediction_id": prediction_id, "label": "negative"})
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert (
        "is not in the log yet; the feedback is not stored: send it again" in response.get_json()["message"]
    )
    assert store.feedback_stats()["total"] == 0
    slow_store.flush()
    response = client.post("/v1/feedback", json={"prediction_id": prediction_id, "label": "negative"})
    assert response.status_code == 201
    slow_store.close()


def test_a_later_prediction_written_first_does_not_make_a_queued_one_unknown(
    settings: ApiSettings, client: FlaskClient, store: FeedbackStore, mailer: Mailer
) -> None:
    """After a busy spell another worker wrote a later prediction first: the log's oldest id was newer than
    the one still queued here, which read as 'pruned' and made a genuine id a 404 "unknown"."""
    slow_store, slow_worker = _slow_worker(settings, mailer)
    queued_id = _predict(slow_worker, "they lost my bag")["prediction_id"]
    _predict(client, "and cancelled my flight")
    store.flush()  # the later prediction is the log's only row
    response = client.post("/v1/feedback", json={"prediction_id": queued_id, "label": "negative"})
    assert response.status_code == 503 and "is not in the log yet" in response.get_json()["message"]
    slow_store.flush()
    response = client.post("/v1/feedback", json={"prediction_id": queued_id, "label": "negative"})
    assert response.status_code == 201
    slow_store.close()


def test_export_is_what_training_takes(client: FlaskClient) -> None:
    for text, label in [
        ("love it", "positive"),
        ("so late, again", "neutral"),
        ('a "quoted",\nline', "negative"),
    ]:
        prediction = _predict(client, text)
        client.post("/v1/feedback", json={"prediction_id": prediction["prediction_id"], "label": label})
    response = client.get("/v1/admin/feedback.csv", headers={"X-API-Key": API_KEY})
    header = response.get_data(as_text=True).splitlines()[0]
    assert header.startswith("text,label,")
    rows = _export(client)
    assert [(row["text"], row["label"]) for row in rows] == [
        ("love it", "positive"),
        ("so late, again", "neutral"),
        ('a "quoted",\nline', "negative"),
    ]
    assert all(row["label"] in LABELS and row["model_version"] == "lexicon-test-1" for row in rows)


def test_each_wrong_prediction_is_traced_with_its_dimensions(
    client: FlaskClient, settings: ApiSettings
) -> None:
    right = _predict(client, "love this")
    wrong = _predict(client, "great, thanks, the worst")
    client.post("/v1/feedback", json={"prediction_id": right["prediction_id"], "label": "positive"})
    client.post(
        "/v1/feedback",
        json={"prediction_id": wrong["prediction_id"], "label": "negative", "comment": "irony"},
    )
    traces = read_local(settings.common.var_dir, "traces")
    assert [trace["message"] for trace in traces] == [MISPREDICTION]
    assert traces[0]["properties"] == {
        "prediction_id": wrong["prediction_id"],
        "predicted_label": wrong["label"],
        "correct_label": "negative",
        "model_version": "lexicon-test-1",
        "text": "great, thanks, the worst",
        "text_length": "24",
        "comment": "irony",
        "provenance": "anonymous_by_id",
    }
    counts = [
        (m["dimensions"]["correct"], m["value"])
        for m in read_local(settings.common.var_dir, "metrics", FEEDBACK_RECEIVED)
    ]
    assert counts == [("true", 1.0), ("false", 1.0)]


def _outbox(var_dir: Path) -> list:
    return [message_from_bytes(path.read_bytes()) for path in sorted((var_dir / "outbox").glob("*.eml"))]


def _correct_wrongly(client: FlaskClient, count: int, start: int = 0) -> None:
    for index in range(start, start + count):
        prediction = _predict(client, f"great trip number {index}")
        response = client.post(
            "/v1/feedback", json={"prediction_id": prediction["prediction_id"], "label": "negative"}
        )
        assert response.status_code == 201


def test_drift_alert_fires_once_per_cooldown(
    client: FlaskClient, settings: ApiSettings, clock: FakeClock
) -> None:
    var_dir = settings.common.var_dir
    _correct_wrongly(client, 2)
    assert read_local(var_dir, "events", MODEL_DRIFT_ALERT) == []
    _correct_wrongly(
        client, 5, start=2
    )  # the third wrong one crosses the threshold; the rest are in cooldown
    events = read_local(var_dir, "events", MODEL_DRIFT_ALERT)
    assert len(events) == 1
    assert events[0]["measurements"]["wrong_in_window"] == 3.0
    mails = _outbox(var_dir)
    assert len(mails) == 1
    assert "Model drift" in mails[0]["Subject"]
    status = client.get("/v1/admin/drift", headers={"X-API-Key": API_KEY}).get_json()
    assert status["wrong_in_window"] == 7 and status["last_alert_at"] is not None

    clock.now += timedelta(
        seconds=settings.drift_cooldown_s + 1
    )  # the window has moved on: nothing wrong in it
    _correct_wrongly(client, 2, start=10)
    assert len(read_local(var_dir, "events", MODEL_DRIFT_ALERT)) == 1
    _correct_wrongly(client, 1, start=20)
    assert len(read_local(var_dir, "events", MODEL_DRIFT_ALERT)) == 2
    assert len(_outbox(var_dir)) == 2


def test_a_drift_alert_whose_mail_cannot_be_spooled_is_fired_by_the_next_wrong_feedback(
    app: Flask, client: FlaskClient, settings: ApiSettings, tmp_path: Path
) -> None:
    """The cooldown was claimed before the mail: a full disk refusing the spool meant no alert for 6 hours."""
    drift = app.extensions["buzzwatch"].drift
    working = drift.mailer
    (tmp_path / "full").write_text("")  # a file where the spool's folder should be: every spool write fails
    drift.mailer = Mailer(settings.common.smtp, tmp_path / "full" / "spool", tmp_path / "full" / "outbox")
    _correct_wrongly(client, 3)  # crosses the threshold: the mail fails, the feedback is stored all the same
    assert read_local(settings.common.var_dir, "events", MODEL_DRIFT_ALERT) == []
    drift.mailer = working  # the disk has room again
    _correct_wrongly(client, 1, start=3)
    assert len(read_local(settings.common.var_dir, "events", MODEL_DRIFT_ALERT)) == 1
    assert len(_outbox(settings.common.var_dir)) == 1
    _correct_wrongly(client, 1, start=4)  # and once sent, the cooldown holds
    assert len(_outbox(settings.common.var_dir)) == 1


def test_right_predictions_do_not_raise_drift(client: FlaskClient, settings: ApiSettings) -> None:
    for index in range(6):
        prediction = _predict(client, f"love flight {index}")
        client.post("/v1/feedback", json={"prediction_id": prediction["prediction_id"], "label": "positive"})
    _correct_wrongly(client, 3)  # 3 wrong of 9: over the count, under the 50% share
    assert read_local(settings.common.var_dir, "events", MODEL_DRIFT_ALERT) == []


def test_feedback_stats_count_right_and_wrong(client: FlaskClient) -> None:
    assert client.get("/v1/feedback/stats").get_json()["total"] == 0
    right = _predict(client, "love it")
    client.post("/v1/feedback", json={"prediction_id": right["prediction_id"], "label": "positive"})
    _correct_wrongly(client, 2)
    stats = client.get("/v1/feedback/stats").get_json()
    assert (stats["total"], stats["correct"], stats["wrong"]) == (3, 1, 2)
    assert {"predicted": "positive", "correct": "negative", "count": 2} in stats["pairs"]
    assert stats["last_received_at"].endswith("Z")


def test_export_is_read_by_the_training_extra_data_reader(client: FlaskClient, tmp_path: Path) -> None:
    from models.train import read_extra_data

    rows = [
        ("love it", "negative"),
        ("so late, again", "neutral"),
        ("late\ragain", "negative"),  # a lone carriage return: unquoted, it split the row and broke the file
        ("two\nlines", "neutral"),
        ("@AirParadis =HYPERLINK(1)", "negative"),  # stored escaped for spreadsheets, read back as typed
        ("'tis the season", "positive"),
    ]
    for text, label in rows:
        prediction = _predict(client, text)
        client.post(
            "/v1/feedback",
            json={"prediction_id": prediction["prediction_id"], "label": label},
            headers={"Authorization": f"Bearer {APP_TOKEN}"},  # the app's feedback: trusted for training
        )
    export = tmp_path / "feedback.csv"
    export.write_bytes(client.get("/v1/admin/feedback.csv", headers={"X-API-Key": API_KEY}).get_data())
    extra = read_extra_data((export,))
    assert extra[["text", "label"]].values.tolist() == [list(row) for row in rows]


def test_export_cells_cannot_open_as_spreadsheet_formulas(client: FlaskClient) -> None:
    typed = ["=1+2", "+33 1 23", "-2", "@AirParadis late", "\tx", "\rx", "'quoted", "fine = ok"]
    for text in typed:
        prediction = _predict(client, text)
        comment = '=HYPERLINK("http://evil.example")'
        client.post(
            "/v1/feedback",
            json={"prediction_id": prediction["prediction_id"], "label": "neutral", "comment": comment},
        )
    exported = _export(client)
    assert [row["text"] for row in exported] == [
        "'=1+2",
        "'+33 1 23",
        "'-2",
        "'@AirParadis late",
        "'\tx",
        "'\rx",
        "''quoted",
        "fine = ok",
    ]
    assert {row["comment"] for row in exported} == {'\'=HYPERLINK("http://evil.example")'}
    assert [from_spreadsheet_cell(row["text"]) for row in exported] == typed


def test_prediction_log_keeps_rows_while_the_database_is_down_and_bounds_them(settings: ApiSettings) -> None:
    from sqlalchemy import create_engine

    from api.store import FeedbackStore, LoggedPrediction

    store = FeedbackStore(
        settings.common.database_url, max_pending=3, flush_interval_s=3600
    )  # flushed by hand
    working_engine = store.engine
    store.engine = create_engine("sqlite:////nonexistent-dir/x.db")
    rows = [LoggedPrediction(f"id{i}", "text", "neutral", "v1") for i in range(2)]
    store.log_predictions(rows, [{"neutral": 1.0}] * 2)
    with pytest.raises(Exception):  # noqa: B017 - any database error
        store.flush()
    assert store.dropped_predictions == 0
    store.log_predictions([*rows[:1], LoggedPrediction("id9", "t", "neutral", "v1")], [{"neutral": 1.0}] * 2)
    with pytest.raises(Exception):  # noqa: B017
        store.flush()
    assert store.dropped_predictions == 4  # 4 queued > 3 allowed: this batch is dropped, memory stays bounded
    store.engine = working_engine
    store.log_predictions(rows[1:], [{"neutral": 1.0}])
    assert store.flush() == 1
    assert store.find_prediction("id1") is not None
    store.close()


def test_a_lock_held_by_another_process_is_a_fast_503_then_the_feedback_is_stored(
    settings: ApiSettings, store: FeedbackStore, mailer: Mailer
) -> None:
    """A stray `sqlite3` shell in BEGIN EXCLUSIVE held a feedback by id for 30 s before its 503 (15 s for the
    prediction log's write, 15 s for the feedback's) and /readyz for 15 s, tying up the worker's threads."""
    client = create_app(
        dataclasses.replace(settings, db_wait_s=0.3),
        predictor=LexiconPredictor(),
        store=store,
        telemetry=LocalTelemetry(settings.common.var_dir, role="api"),
        mailer=mailer,
    ).test_client()
    prediction_id = _predict(client, "they lost my bag")["prediction_id"]  # queued, not written yet
    shell = sqlite3.connect(store.engine.url.database, isolation_level=None)
    shell.execute("BEGIN EXCLUSIVE")
    try:
        for path, body in [
            ("/v1/feedback", {"prediction_id": prediction_id, "label": "negative"}),
            ("/readyz", None),
        ]:
            started = time.monotonic()
            response = client.post(path, json=body) if body else client.get(path)
            assert time.monotonic() - started < 2.0, path
            assert response.status_code == 503, path
            assert "busy" in response.get_data(as_text=True), path
        assert response.get_json()["status"] == "database not writable"
        response = client.post("/v1/feedback", json={"prediction_id": prediction_id, "label": "negative"})
        assert response.headers["Retry-After"] == "5"
        assert response.get_json()["message"].endswith("send it again in a few seconds")
        elsewhere = store.ids.new()  # issued by "another worker" that has not written it yet: busy too
        response = client.post("/v1/feedback", json={"prediction_id": elsewhere, "label": "negative"})
        assert response.status_code == 503 and "busy" in response.get_json()["message"]
        assert response.headers["Retry-After"] == "5"  # a lock passes: sooner than a broken disk's 30
        assert _predict(client, "still scoring")["label"] == "neutral"
    finally:
        shell.rollback()
        shell.close()
    response = client.post("/v1/feedback", json={"prediction_id": prediction_id, "label": "negative"})
    assert response.status_code == 201
    assert client.get("/readyz").status_code == 200


def test_the_export_refuses_a_query_parameter_it_would_ignore(client: FlaskClient) -> None:
    """`?since=yesterday` gave every row with a 200: a caller took it for the day's corrections."""
    _correct_wrongly(client, 1)
    response = client.get("/v1/admin/feedback.csv?since=yesterday&limit=5", headers={"X-API-Key": API_KEY})
    assert response.status_code == 400
    assert "takes no query parameters (got limit, since)" in response.get_json()["message"]
    assert len(_export(client)) == 1


def test_only_the_served_models_corrections_count_towards_drift(
    client: FlaskClient, settings: ApiSettings
) -> None:
    """Feedback sent by text for another model version (an earlier model's predictions, kept by a client
    across a rollout) is stored as that version's, and never counted against the served model."""
    for index in range(5):
        response = client.post(
            "/v1/feedback",
            json={
                "text": f"great trip number {index}",
                "predicted_label": "positive",
                "label": "negative",
                "model_version": "bilstm-before-rollout",
            },
            headers={"X-API-Key": API_KEY},
        )
        assert response.status_code == 201
    assert read_local(settings.common.var_dir, "events", MODEL_DRIFT_ALERT) == []
    status = client.get("/v1/admin/drift", headers={"X-API-Key": API_KEY}).get_json()
    assert (status["model_version"], status["feedback_in_window"], status["wrong_in_window"]) == (
        "lexicon-test-1",
        0,
        0,
    )
    _correct_wrongly(client, 3)  # the served model's: these count
    assert len(read_local(settings.common.var_dir, "events", MODEL_DRIFT_ALERT)) == 1


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"model_version": "evil"}, "'model_version'"),
        ({"text": "great trip", "predicted_label": "positive"}, "'text', 'predicted_label'"),
    ],
)
def test_feedback_by_id_refuses_what_goes_with_a_text(
    client: FlaskClient, extra: dict[str, str], named: str
) -> None:
    """The logged prediction says what was predicted and by which model: a body that also claims it is one
    the schema refuses (FeedbackById has no such field), not one whose extra field is dropped silently."""
    prediction = _predict(client, "love this")
    response = client.post(
        "/v1/feedback", json={"prediction_id": prediction["prediction_id"], "label": "positive", **extra}
    )
    assert response.status_code == 400
    assert named in response.get_json()["message"]
    retried = client.post(
        "/v1/feedback", json={"prediction_id": prediction["prediction_id"], "label": "positive"}
    )
    assert retried.status_code == 201  # nothing was stored by the refused one


@pytest.mark.parametrize("version", ["   ", "m\u0001\n", "two words", "x" * 129, ""])
def test_feedback_by_text_refuses_a_model_version_no_model_has(client: FlaskClient, version: str) -> None:
    response = client.post(
        "/v1/feedback",
        json={
            "text": "great trip",
            "predicted_label": "positive",
            "label": "negative",
            "model_version": version,
        },
        headers={"X-API-Key": API_KEY},
    )
    assert response.status_code == 400
    assert "'model_version'" in response.get_json()["message"]
