"""The API's routes through its app factory: happy paths and every kind of bad input."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine

from api.store import metadata
from buzzwatch.database import make_engine
from buzzwatch.schema import LABELS
from tests.support.api import API_KEY


def test_predict_one_tweet(client: FlaskClient) -> None:
    response = client.post("/v1/predict", json={"text": "The flight was late and the crew rude"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["label"] == "negative"
    assert set(body["probabilities"]) == set(LABELS)
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    assert body["model_version"] == "lexicon-test-1"
    assert len(body["prediction_id"]) == 48


def test_predict_a_list_keeps_order_and_gives_distinct_ids(client: FlaskClient) -> None:
    texts = ["I love this airline, thanks!", "worst service, lost my bag", "boarding at gate 4"]
    response = client.post("/v1/predict", json={"texts": texts})
    assert response.status_code == 200
    body = response.get_json()
    assert [p["label"] for p in body["predictions"]] == ["positive", "negative", "neutral"]
    assert len({p["prediction_id"] for p in body["predictions"]}) == 3
    assert body["model_version"] == "lexicon-test-1"


@pytest.mark.parametrize(
    ("payload", "message_part"),
    [
        ({}, "missing field 'text'"),
        ({"text": ""}, "'text' is empty"),
        ({"text": "   \n"}, "'text' is empty"),
        ({"text": "\u200b\u2060\ufeff"}, "'text' is empty"),  # no visible character: was scored neutral
        ({"text": "x" * 301}, "the limit is 300"),
        ({"text": 42}, "'text' must be a string"),
        ({"text": None}, "'text' must be a string"),
        ({"texts": "just one"}, "'texts' must be an array"),
        ({"texts": []}, "'texts' is empty"),
        ({"texts": ["ok", 3]}, "'texts[1]' must be a string"),
        ({"texts": ["ok", ""]}, "'texts[1]' is empty"),
        ({"texts": ["ok", "\u200d\ufe0f"]}, "'texts[1]' is empty"),
        ({"texts": ["tweet"] * 9}, "the limit is 8 per request"),
        ({"text": "a", "texts": ["b"]}, "not both"),
        ({"txt": "typo"}, "unknown field 'txt'"),
        ({"text": "nul \x00 inside"}, "NUL character"),
        ({"texts": ["ok", "lone \ud800 surrogate"]}, "'texts[1]' contains invalid Unicode"),
        (["a", "list"], "must be a JSON object"),
        ("a string", "must be a JSON object"),
    ],
)
def test_predict_rejects_bad_input_with_a_message(
    client: FlaskClient, payload: object, message_part: str
) -> None:
    response = client.post("/v1/predict", json=payload)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "bad_request"
    assert message_part in body["message"]


@pytest.mark.parametrize(
    ("data", "content_type", "status", "message_part"),
    [
        ('{"text": "hi"}', "text/plain", 415, "Content-Type: application/json"),
        ("text=hi", "application/x-www-form-urlencoded", 415, "application/json"),
        ('{"text": "hi"}', None, 415, "application/json"),
        ('{"text": ', "application/json", 400, "not valid JSON"),
        ("", "application/json", 400, "empty"),
        (b"\xff\xfe{}", "application/json", 400, "not valid JSON"),
        ("[" * 100_00 + "]" * 100_00, "application/json", 400, "not valid JSON"),
        # json.loads keeps a repeated key's last value: "worst airline" was scored, silently
        ('{"text": "good flight", "text": "worst airline"}', "application/json", 400, "key 'text' more than"),
        ('[{"texts": ["a"]}, {"b": 1, "b": 2}]', "application/json", 400, "key 'b' more than once"),
    ],
)
def test_predict_rejects_bodies_that_are_not_json(
    client: FlaskClient, data: str | bytes, content_type: str | None, status: int, message_part: str
) -> None:
    response = client.post("/v1/predict", data=data, content_type=content_type)
    assert response.status_code == status
    assert message_part in response.get_json()["message"]


def test_a_number_too_long_to_read_is_named_without_pythons_advice(client: FlaskClient) -> None:
    """The message went on "; use sys.set_int_max_str_digits() to increase the limit": a server setting."""
    response = client.post(
        "/v1/predict", data='{"text": ' + "9" * 5000 + "}", content_type="application/json"
    )
    assert response.status_code == 400
    assert response.get_json()["message"] == (
        "the body is not readable JSON: Exceeds the limit (4300 digits) for integer string conversion: "
        "value has 5000 digits"
    )


@pytest.mark.parametrize("route", ["/v1/predict", "/v1/feedback"])
def test_a_compressed_body_is_415_naming_the_encoding(client: FlaskClient, route: str) -> None:
    """A gzipped JSON body was '400 the body is not valid JSON: 'utf-8' codec can't decode byte 0x8b'."""
    body = gzip.compress(json.dumps({"text": "hi"}).encode())
    response = client.post(
        route, data=body, content_type="application/json", headers={"Content-Encoding": "gzip"}
    )
    assert response.status_code == 415
    assert response.get_json()["message"] == "the body must be sent uncompressed, got Content-Encoding 'gzip'"
    for identity in ("identity", "IDENTITY", "Identity"):  # codings are case-insensitive (RFC 9110)
        plain = client.post("/v1/predict", json={"text": "hi"}, headers={"Content-Encoding": identity})
        assert plain.status_code == 200


@pytest.mark.parametrize("coding", ["gzip", "gzip, chunked", "GZIP,chunked"])
def test_a_body_with_a_compressing_transfer_coding_is_415_naming_it(client: FlaskClient, coding: str) -> None:
    """gunicorn passes `Transfer-Encoding: gzip` on: the body was dropped ("the body is empty") or, with
    chunked after it, "not valid JSON: ... byte 0x8b"."""
    response = client.post(
        "/v1/predict",
        input_stream=io.BytesIO(gzip.compress(b'{"text": "hi"}')),
        headers={"Content-Type": "application/json", "Transfer-Encoding": coding},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 415
    assert (
        response.get_json()["message"]
        == f"the body must be sent uncompressed, got Transfer-Encoding {coding!r}"
    )


def test_oversized_body_is_413_json(client: FlaskClient) -> None:
    response = client.post(
        "/v1/predict", data=json.dumps({"text": "a" * 70_000}), content_type="application/json"
    )
    assert response.status_code == 413
    assert "larger than 65536 bytes" in response.get_json()["message"]


def test_oversized_chunked_body_is_413_json_not_a_cut_json_error(client: FlaskClient) -> None:
    """Sent chunked (no Content-Length; gunicorn sets wsgi.input_terminated), werkzeug read the body up to the
    limit and stopped: the cut JSON was a 400 "Unterminated string", or a padded body answered as if whole."""
    for body in (json.dumps({"text": "a" * 70_000}), json.dumps({"text": "great crew"}) + " " * 70_000):
        response = client.post(
            "/v1/predict",
            input_stream=io.BytesIO(body.encode()),
            headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True},
        )
        assert response.status_code == 413
        assert "larger than 65536 bytes" in response.get_json()["message"]


def test_a_chunked_body_of_exactly_the_limit_is_read_whole(client: FlaskClient) -> None:
    """It was a 413 "larger than 65536 bytes": read up to the limit, a body of that size looked cut."""
    payload = json.dumps({"text": "great crew"}).encode()
    for size, status in ((65_536, 200), (65_537, 413)):
        response = client.post(
            "/v1/predict",
            input_stream=io.BytesIO(payload + b" " * (size - len(payload))),
            headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True},
        )
        assert response.status_code == status, size


def test_unknown_route_and_wrong_method_answer_json(client: FlaskClient) -> None:
    missing = client.get("/v1/nope")
    assert missing.status_code == 404
    assert missing.is_json and "/openapi.json" in missing.get_json()["message"]
    doubled = client.post("/v1//predict", json={"text": "hi"})  # was a 308 redirect with an HTML page
    assert (doubled.status_code, doubled.is_json) == (404, True)
    wrong_method = client.get("/v1/predict")
    assert wrong_method.status_code == 405
    assert "POST" in wrong_method.get_json()["message"]


def test_model_health_and_readiness(client: FlaskClient) -> None:
    model = client.get("/v1/model").get_json()
    assert model["model_version"] == "lexicon-test-1"
    assert model["labels"] == list(LABELS)
    assert model["metrics"]["macro_f1"] == 0.5
    assert model["limits"] == {"max_text_chars": 300, "max_comment_chars": 2000, "max_batch": 8}
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["status"] == "ready"


def test_readiness_fails_when_the_database_is_gone(app: Flask, client: FlaskClient) -> None:
    store = app.extensions["buzzwatch"].store
    store.engine.dispose()
    store.engine = create_engine("sqlite:////nonexistent-dir/buzzwatch.db")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert client.get("/healthz").status_code == 200


def test_a_sqlite_folder_deleted_under_the_running_api_is_a_503_not_a_201_lost_at_the_restart(
    app: Flask, client: FlaskClient
) -> None:
    """The pooled connections wrote on into the deleted file: feedback answered 201 and /readyz 200, and
    after a restart the feedback was gone (a hostile check, `rm -rf var` under `buzzwatch api`)."""
    import shutil

    store = app.extensions["buzzwatch"].store
    prediction_id = client.post("/v1/predict", json={"text": "great crew"}).get_json()["prediction_id"]
    store.flush()
    assert client.get("/readyz").status_code == 200  # every pooled connection opened on the file
    shutil.rmtree(Path(store.location).parent)
    feedback = client.post("/v1/feedback", json={"prediction_id": prediction_id, "label": "neutral"})
    assert feedback.status_code == 503
    assert f"the SQLite file {store.location} is gone" in feedback.get_json()["message"]
    assert client.get("/readyz").status_code == 503
    assert client.post("/v1/predict", json={"text": "great crew"}).status_code == 200  # scoring goes on
    store.engine = make_engine(f"sqlite:///{store.location}")  # as a restart makes a new database
    metadata.create_all(store.engine)  # the queued prediction is written at the store's close


def test_routes_that_read_a_database_gone_answer_503_naming_it(app: Flask, client: FlaskClient) -> None:
    """They were 500 "internal error" (the CSV export an exception while streaming its 200)."""
    prediction_id = client.post("/v1/predict", json={"text": "great crew"}).get_json()["prediction_id"]
    store = app.extensions["buzzwatch"].store
    store.flush()
    working, store.engine = store.engine, create_engine("sqlite:////nonexistent-dir/buzzwatch.db")
    admin = {"X-API-Key": API_KEY}
    answers = [
        client.post("/v1/feedback", json={"prediction_id": prediction_id, "label": "neutral"}),
        client.get("/v1/feedback/stats"),
        client.get("/v1/admin/drift", headers=admin),
        client.get("/v1/admin/feedback.csv", headers=admin),
    ]
    for response in answers:
        assert (response.status_code, response.headers["Retry-After"]) == (503, "30"), response.request.path
        assert response.get_json()["message"].startswith(
            "the database /nonexistent-dir/buzzwatch.db cannot be"
        )
    assert client.post("/v1/predict", json={"text": "great crew"}).status_code == 200  # scoring goes on
    store.engine = working  # the database is back: the queued prediction is written at the store's close


def test_cors_only_for_configured_origins(client: FlaskClient) -> None:
    allowed = client.post("/v1/predict", json={"text": "nice"}, headers={"Origin": "http://localhost:8501"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://localhost:8501"
    assert "Origin" in allowed.headers["Vary"]
    other = client.post("/v1/predict", json={"text": "nice"}, headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    # The answers differ by Origin, so each says so: a shared cache must not serve this one to the app.
    assert "Origin" in other.headers["Vary"]
    assert "Origin" in client.post("/v1/predict", json={"text": "nice"}).headers["Vary"]
    preflight = client.options(
        "/v1/predict",
        headers={"Origin": "http://localhost:8501", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 200
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in preflight.headers["Access-Control-Allow-Headers"]


def test_admin_routes_need_the_api_key(client: FlaskClient) -> None:
    for path in ("/v1/admin/feedback.csv", "/v1/admin/drift"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"X-API-Key": "wrong"}).status_code == 401
        assert client.get(path, headers={"X-API-Key": API_KEY}).status_code == 200
        assert client.get(path, headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200


def test_wrong_keys_from_one_address_are_limited(client: FlaskClient) -> None:
    """80 wrong keys in a row were 80 401s: a secret could be guessed at the server's speed. Past 10 a
    minute from one address, a wrong key or token is a 429 with Retry-After; the right key still works,
    and sending none (anonymous) is not a wrong one."""
    wrong = {"X-API-Key": "guess"}
    answers = [client.get("/v1/admin/drift", headers=wrong).status_code for _ in range(6)]
    answers += [
        client.post("/v1/predict", json={"text": "hi"}, headers={"Authorization": "Bearer guess"}).status_code
        for _ in range(6)
    ]
    assert answers == [401] * 10 + [429] * 2
    limited = client.get("/v1/admin/feedback.csv", headers=wrong)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert "too many wrong API keys or tokens" in limited.get_json()["message"]
    assert client.get("/v1/admin/drift", headers={"X-API-Key": API_KEY}).status_code == 200
    assert client.post("/v1/predict", json={"text": "hi"}).status_code == 200
    assert client.get("/v1/admin/drift").status_code == 401  # no key at all: not a guess


def test_admin_routes_are_off_without_a_configured_key(app: Flask) -> None:
    services = app.extensions["buzzwatch"]
    services.settings = dataclasses.replace(services.settings, api_key=None)
    response = app.test_client().get("/v1/admin/feedback.csv", headers={"X-API-Key": ""})
    assert response.status_code == 403
    assert "BUZZWATCH_API_KEY" in response.get_json()["message"]


def test_predictions_say_their_language_and_flag_one_the_model_does_not_read(client: FlaskClient) -> None:
    texts = [
        "@AirParadis mon vol est annulé encore une fois, le service client est nul",
        "The flight was late and the crew rude, never again with this airline",
        "😡",
    ]
    body = client.post("/v1/predict", json={"texts": texts}).get_json()
    languages = [(p["language"], p["language_supported"]) for p in body["predictions"]]
    assert languages == [("fr", False), ("en", True), ("und", True)]
    single = client.post("/v1/predict", json={"text": texts[0]}).get_json()
    assert (single["language"], single["language_supported"]) == ("fr", False)
