"""The OpenAPI document matches the routes, and the fuzzer built from it never gets a 500."""

from __future__ import annotations

import json
import os
import string
from typing import Any

import jsonschema
import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import create_app
from api.settings import ApiSettings
from api.store import FeedbackStore
from buzzwatch.notify import Mailer
from buzzwatch.schema import is_blank
from buzzwatch.telemetry import LocalTelemetry
from tests.support.api import API_KEY

FUZZ_SETTINGS = settings(
    max_examples=120,
    database=None,  # no example database written into the repository
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _documented(app: Flask) -> dict[str, set[str]]:
    doc = app.extensions["buzzwatch"].openapi
    return {path: {method.upper() for method in operations} for path, operations in doc["paths"].items()}


def _served(app: Flask) -> dict[str, set[str]]:
    served: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        served.setdefault(rule.rule, set()).update(set(rule.methods or ()) - {"HEAD", "OPTIONS"})
    return served


def test_openapi_lists_exactly_the_served_routes(app: Flask, client: FlaskClient) -> None:
    assert _documented(app) == _served(app)
    assert client.get("/openapi.json").get_json() == app.extensions["buzzwatch"].openapi


def test_openapi_limits_follow_the_settings(app: Flask) -> None:
    schemas = app.extensions["buzzwatch"].openapi["components"]["schemas"]
    assert schemas["PredictMany"]["properties"]["texts"]["maxItems"] == 8
    assert schemas["PredictOne"]["properties"]["text"]["maxLength"] == 300


def _validator(app: Flask, schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    doc = app.extensions["buzzwatch"].openapi
    return jsonschema.Draft202012Validator({**schema, "components": doc["components"]})


def _response_schema(app: Flask, path: str, method: str, status: int) -> dict[str, Any]:
    responses = app.extensions["buzzwatch"].openapi["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} answered {status}, which is not documented"
    return responses[str(status)].get("content", {}).get("application/json", {}).get("schema", {})


def test_responses_follow_their_documented_schemas(app: Flask, client: FlaskClient) -> None:
    calls = [
        ("post", "/v1/predict", {"json": {"text": "love it"}}),
        ("post", "/v1/predict", {"json": {"texts": ["love it", "bad"]}}),
        ("post", "/v1/predict", {"json": {"text": ""}}),
        ("post", "/v1/feedback", {"json": {"text": "x", "predicted_label": "neutral", "label": "positive"}}),
        ("post", "/v1/feedback", {"json": {"prediction_id": "nope", "label": "positive"}}),
        ("get", "/v1/feedback/stats", {}),
        ("get", "/v1/model", {}),
        ("get", "/v1/admin/drift", {"headers": {"X-API-Key": API_KEY}}),
        ("get", "/v1/admin/drift", {}),
        ("get", "/healthz", {}),
        ("get", "/readyz", {}),
    ]
    for method, path, kwargs in calls:
        response = getattr(client, method)(path, **kwargs)
        schema = _response_schema(app, path, method, response.status_code)
        _validator(app, schema).validate(response.get_json())


# ---- a small JSON-schema -> hypothesis strategy, for the subset the document uses ----------------


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = doc["components"]["schemas"][name]
    return schema


def from_schema(doc: dict[str, Any], schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values valid under the schema (the fuzzer then mutates them)."""
    schema = _resolve(doc, schema)
    if "oneOf" in schema:
        return st.one_of([from_schema(doc, option) for option in schema["oneOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {key: from_schema(doc, properties[key]) for key in required},
            optional={
                key: from_schema(doc, value) for key, value in properties.items() if key not in required
            },
        )
    if kind == "array":
        return st.lists(
            from_schema(doc, schema["items"]),
            min_size=schema.get("minItems", 0),
            max_size=schema.get("maxItems", 5),
        )
    if kind == "string":
        min_size, max_size = schema.get("minLength", 0), min(schema.get("maxLength", 40), 400)
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], alphabet=st.characters(codec="utf-8")).filter(
                lambda value: min_size <= len(value) <= max_size
            )
        return st.text(
            alphabet=st.characters(codec="utf-8") | st.sampled_from(string.printable),
            min_size=min_size,
            max_size=max_size,
        )
    return st.just(None)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def mutated(doc: dict[str, Any], schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Valid bodies, bodies with one field dropped, retyped or added, and arbitrary JSON."""

    def mutate(body: Any, data: st.DataObject) -> Any:
        if not isinstance(body, dict) or not body:
            return body
        action = data.draw(st.sampled_from(["keep", "drop", "retype", "add"]))
        key = data.draw(st.sampled_from(sorted(body)))
        changed = dict(body)
        if action == "drop":
            changed.pop(key)
        elif action == "retype":
            changed[key] = data.draw(json_values)
        elif action == "add":
            changed[data.draw(st.text(max_size=8))] = data.draw(json_values)
        return changed

    return st.one_of(
        st.builds(lambda body, data: mutate(body, data), from_schema(doc, schema), st.data()),
        json_values,
    )


def _check_answer(app: Flask, path: str, method: str, response: Any) -> None:
    """No 5xx, a documented status, and a body that follows the schema documented for that status."""
    assert response.status_code < 500, response.get_data(as_text=True)
    schema = _response_schema(app, path, method, response.status_code)
    assert response.is_json
    _validator(app, schema).validate(response.get_json())


@pytest.mark.parametrize("path", ["/v1/predict", "/v1/feedback"])
def test_fuzz_post_routes_from_the_openapi_document(app: Flask, client: FlaskClient, path: str) -> None:
    doc = app.extensions["buzzwatch"].openapi
    body_schema = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]

    request_schema = _validator(app, body_schema)

    @FUZZ_SETTINGS
    @given(body=mutated(doc, body_schema))
    def fuzz(body: Any) -> None:
        response = client.post(path, data=json.dumps(body), content_type="application/json")
        _check_answer(app, path, "post", response)
        # The document and the route agree: a 400 exactly for the bodies the schema refuses.
        assert (response.status_code == 400) != request_schema.is_valid(body), (body, response.get_json())

    fuzz()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/feedback", {"prediction_id": None, "text": "late again", "predicted_label": "negative"}),
        ("/v1/feedback", {"text": "late again", "predicted_label": "negative", "comment": None}),
        ("/v1/feedback", {"text": "late again", "predicted_label": "negative", "model_version": None}),
        ("/v1/feedback", {"text": "late\x00again", "predicted_label": "negative"}),
        ("/v1/feedback", {"prediction_id": "abc\n"}),
        ("/v1/predict", {"text": "late\x00again"}),
        ("/v1/predict", {"text": "\u200b\ufeff\U000e0041"}),  # no visible character: an empty text
        ("/v1/feedback", {"text": "\u2060\ufe0f", "predicted_label": "negative"}),
    ],
)
def test_a_body_the_schema_refuses_is_a_400(app: Flask, client: FlaskClient, path: str, body: dict) -> None:
    """Null where the schema wants a string, NUL characters, an id with a newline, a text of invisible
    characters: refused by both."""
    if path == "/v1/feedback":
        body = {"label": "negative", **body}
    doc = app.extensions["buzzwatch"].openapi
    schema = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert not _validator(app, schema).is_valid(body)
    response = client.post(path, json=body)
    assert response.status_code == 400, response.get_json()
    _check_answer(app, path, "post", response)


def test_a_415_says_unsupported_media_type(app: Flask, client: FlaskClient) -> None:
    response = client.post("/v1/predict", data="text=hi", content_type="text/plain")
    assert response.status_code == 415
    assert response.get_json()["error"] == "unsupported_media_type"
    _check_answer(app, "/v1/predict", "post", response)


def test_every_post_route_is_fuzzed(app: Flask) -> None:
    posts = {
        path
        for path, operations in app.extensions["buzzwatch"].openapi["paths"].items()
        if "post" in operations
    }
    assert posts == {"/v1/predict", "/v1/feedback"}


@FUZZ_SETTINGS
@given(
    raw=st.binary(max_size=200),
    content_type=st.sampled_from(
        ["application/json", "text/plain", "", "application/problem+json", "multipart/form-data"]
    ),
)
def test_fuzz_raw_bodies_never_500(app: Flask, client: FlaskClient, raw: bytes, content_type: str) -> None:
    for path in ("/v1/predict", "/v1/feedback"):
        response = client.post(path, data=raw, content_type=content_type or None)
        _check_answer(app, path, "post", response)


@FUZZ_SETTINGS
@given(
    path=st.text(alphabet=string.ascii_letters + string.digits + "/._-%~", max_size=30),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    api_key=st.text(alphabet=string.printable.strip(), max_size=20),
)
def test_fuzz_any_route_and_method_answers_json_without_500(
    client: FlaskClient, path: str, method: str, api_key: str
) -> None:
    # One leading slash: Werkzeug's test client reads "//x" as a URL whose host is "x" (and fails on "//.").
    url = "/" + path.lstrip("/")
    response = client.open(url, method=method, headers={"X-API-Key": api_key}, json={"text": "hi"})
    assert response.status_code < 500
    if response.status_code >= 400:
        assert response.is_json and response.get_json()["message"]


@pytest.mark.model
def test_fuzz_the_real_predictor_with_any_unicode(
    settings: ApiSettings, store: FeedbackStore, telemetry: LocalTelemetry, mailer: Mailer
) -> None:
    from models.predictor import Predictor

    predictor = Predictor.load(os.environ.get("BUZZWATCH_MODEL_URI"), threads=1)
    client = create_app(
        settings, predictor=predictor, store=store, telemetry=telemetry, mailer=mailer
    ).test_client()
    any_text = st.text(
        st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=300
    ).filter(lambda text: not is_blank(text))

    @FUZZ_SETTINGS
    @given(texts=st.lists(any_text, min_size=1, max_size=8))
    def fuzz(texts: list[str]) -> None:
        response = client.post("/v1/predict", json={"texts": texts})
        assert response.status_code == 200, response.get_data(as_text=True)
        predictions = response.get_json()["predictions"]
        assert len(predictions) == len(texts)
        assert all(sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-4) for p in predictions)

    fuzz()
