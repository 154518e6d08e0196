"""Who may write feedback, what an anonymous writer can do with it, and the prediction log's bounds."""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from api.app import create_app
from api.settings import ApiSettings
from api.store import FeedbackStore, predictions_table
from buzzwatch.notify import Mailer
from buzzwatch.telemetry import MODEL_DRIFT_ALERT, LocalTelemetry, read_local
from tests.support.api import API_KEY, APP_TOKEN, FakeClock, LexiconPredictor

ATTACKER_TEXT = "great deal, claim it at http://evil.example/login now"


def _export_text(client: FlaskClient) -> str:
    response = client.get("/v1/admin/feedback.csv", headers={"X-API-Key": API_KEY})
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _rows(client: FlaskClient) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(_export_text(client))))


def _mail_text(message: EmailMessage) -> str:
    return "\n".join(
        part.get_content() for part in message.walk() if part.get_content_maintype() == "text"
    ) + str(message["Subject"])


def test_feedback_by_text_needs_the_api_key_or_the_app_token(client: FlaskClient) -> None:
    payload = {"text": "meh, ok flight", "predicted_label": "negative", "label": "neutral"}
    anonymous = client.post("/v1/feedback", json=payload)
    assert anonymous.status_code == 401
    assert "send the prediction_id" in anonymous.get_json()["message"]
    wrong = client.post("/v1/feedback", json=payload, headers={"Authorization": "Bearer guessed"})
    assert wrong.status_code == 401 and "wrong API key or app token" in wrong.get_json()["message"]
    app_token = {"Authorization": f"Bearer {APP_TOKEN}"}
    assert client.post("/v1/feedback", json=payload, headers=app_token).status_code == 201
    by_key = {**payload, "text": "another tweet"}
    assert client.post("/v1/feedback", json=by_key, headers={"X-API-Key": API_KEY}).status_code == 201
    prediction_id = client.post("/v1/predict", json={"text": "love it"}).get_json()["prediction_id"]
    assert (
        client.post("/v1/feedback", json={"prediction_id": prediction_id, "label": "positive"}).status_code
        == 201
    )
    assert [(row["text"], row["provenance"]) for row in _rows(client)] == [
        ("meh, ok flight", "app_token"),
        ("another tweet", "api_key"),
        ("love it", "anonymous_by_id"),
    ]
    app_token_is_not_admin = client.get("/v1/admin/feedback.csv", headers=app_token)
    assert app_token_is_not_admin.status_code == 401


def test_feedback_by_text_is_off_without_a_key_or_token(
    settings: ApiSettings, store: FeedbackStore, telemetry: LocalTelemetry, mailer: Mailer
) -> None:
    open_settings = dataclasses.replace(settings, api_key=None, app_token=None)
    client = create_app(
        open_settings, predictor=LexiconPredictor(), store=store, telemetry=telemetry, mailer=mailer
    ).test_client()
    response = client.post(
        "/v1/feedback", json={"text": "hi", "predicted_label": "neutral", "label": "neutral"}
    )
    assert response.status_code == 403
    assert "BUZZWATCH_APP_TOKEN" in response.get_json()["message"]


def test_forged_feedback_pages_no_attacker_text_and_stays_out_of_training(
    client: FlaskClient, settings: ApiSettings, tmp_path: Path
) -> None:
    from models.train import read_extra_data

    forged_by_text = {
        "text": ATTACKER_TEXT,
        "predicted_label": "positive",
        "label": "negative",
        "model_version": "http://evil.example/model",
        "comment": "see http://evil.example",
    }
    for _ in range(5):
        assert client.post("/v1/feedback", json=forged_by_text).status_code == 401
    prediction_ids = []
    for index in range(20):  # what an anonymous caller can do: score its own text, then correct it
        prediction = client.post("/v1/predict", json={"text": f"{ATTACKER_TEXT} {index}"}).get_json()
        assert prediction["label"] == "positive"
        response = client.post(
            "/v1/feedback",
            json={
                "prediction_id": prediction["prediction_id"],
                "label": "negative",
                "comment": ATTACKER_TEXT,
            },
        )
        assert response.status_code == 201
        prediction_ids.append(prediction["prediction_id"])

    assert len(read_local(settings.common.var_dir, "events", MODEL_DRIFT_ALERT)) == 1
    mails = [
        message_from_bytes(path.read_bytes(), policy=policy.default)
        for path in (settings.common.var_dir / "outbox").glob("*.eml")
    ]
    assert len(mails) == 1
    mail = _mail_text(mails[0])
    assert "evil.example" not in mail and "claim it" not in mail
    assert "lexicon-test-1" in mail  # the served model, not a version a caller sent
    assert "3 anonymous (on a prediction id the API issued)" in mail  # the threshold is 3 wrong
    assert prediction_ids[2] in mail

    export = tmp_path / "feedback.csv"
    export.write_text(_export_text(client), encoding="utf-8")
    assert len(read_extra_data((export,))) == 0
    assert len(read_extra_data((export,), include_untrusted=True)) == 20


def test_training_refuses_a_feedback_export_without_provenance(tmp_path: Path) -> None:
    from models.train import read_extra_data

    old_export = tmp_path / "old.csv"
    old_export.write_text("text,label,prediction_id\nlove it,positive,abc\n", encoding="utf-8")
    with pytest.raises(ValueError, match="without a provenance column"):
        read_extra_data((old_export,))
    assert len(read_extra_data((old_export,), include_untrusted=True)) == 1
    hand_labelled = tmp_path / "mine.csv"
    hand_labelled.write_text("text,label\nlove it,positive\n", encoding="utf-8")
    assert len(read_extra_data((hand_labelled,))) == 1


def test_training_leaves_out_a_feedback_text_with_no_visible_character(tmp_path: Path) -> None:
    """The API took such a text as feedback before it refused it: it trained as a text with no token."""
    from models.train import read_extra_data

    feedback = tmp_path / "mine.csv"
    feedback.write_text(
        "text,label\nlove it,positive\n\u200b\u2060,negative\n \ufeff,neutral\n", encoding="utf-8"
    )
    assert read_extra_data((feedback,))["text"].tolist() == ["love it"]


@pytest.fixture
def limited_client(
    settings: ApiSettings, store: FeedbackStore, telemetry: LocalTelemetry, mailer: Mailer
) -> FlaskClient:
    limited = dataclasses.replace(settings, anonymous_texts_per_min=10, anonymous_feedback_per_min=3)
    return create_app(
        limited, predictor=LexiconPredictor(), store=store, telemetry=telemetry, mailer=mailer
    ).test_client()


def test_anonymous_clients_are_rate_limited_per_address(limited_client: FlaskClient) -> None:
    texts = {"texts": ["love it"] * 8}
    assert limited_client.post("/v1/predict", json=texts).status_code == 200
    over = limited_client.post("/v1/predict", json=texts)
    assert over.status_code == 429
    assert int(over.headers["Retry-After"]) >= 1 and "limit is 10 a minute" in over.get_json()["message"]
    assert limited_client.post("/v1/predict", json=texts, headers={"X-API-Key": API_KEY}).status_code == 200
    other_client = {"REMOTE_ADDR": "203.0.113.9"}
    assert limited_client.post("/v1/predict", json=texts, environ_base=other_client).status_code == 200

    feedback = {"text": "x", "predicted_label": "neutral", "label": "neutral"}
    statuses = [
        limited_client.post("/v1/feedback", json={"prediction_id": f"p{n}", "label": "neutral"}).status_code
        for n in range(4)
    ]
    assert statuses == [404, 404, 404, 429]  # made-up ids count too
    app_token = {"Authorization": f"Bearer {APP_TOKEN}"}
    assert limited_client.post("/v1/feedback", json=feedback, headers=app_token).status_code == 201


def test_prediction_log_keeps_the_newest_rows_under_its_cap(
    settings: ApiSettings, telemetry: LocalTelemetry, mailer: Mailer, clock: FakeClock
) -> None:
    capped = dataclasses.replace(settings, prediction_log_max_rows=20)
    store = FeedbackStore(capped.common.database_url, max_logged=20, clock=clock)
    client = create_app(
        capped, predictor=LexiconPredictor(), store=store, telemetry=telemetry, mailer=mailer, clock=clock
    ).test_client()
    batches = []
    for batch in range(6):
        clock.now += timedelta(seconds=1)
        response = client.post("/v1/predict", json={"texts": [f"batch {batch} tweet {n}" for n in range(8)]})
        batches.append([p["prediction_id"] for p in response.get_json()["predictions"]])
    store.flush()
    with store.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(predictions_table)).scalar_one() == 20
    evicted = client.post("/v1/feedback", json={"prediction_id": batches[0][0], "label": "neutral"})
    assert evicted.status_code == 404
    for prediction_id in batches[-1] + batches[-2]:
        assert store.find_prediction(prediction_id) is not None
    store.close()
