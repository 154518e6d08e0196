"""The OpenAPI 3.1 document of the API, built from the same limits the validation enforces.

A test checks that every Flask route is here with the same methods and back; the fuzz tests generate
requests from these schemas.
"""

from __future__ import annotations

from typing import Any

from api.validation import MODEL_VERSION_CHARACTERS, MODEL_VERSION_MAX_CHARS, error_code
from buzzwatch import __version__
from buzzwatch.schema import INVISIBLE_CLASS, LABELS

API_KEY_SCHEME = "ApiKey"
NO_NUL_PATTERN = "^[^\\u0000]*$"
TEXT_PATTERN = f"^[^\\u0000]*[^{INVISIBLE_CLASS}\\u0000][^\\u0000]*$"  # not blank (is_blank), no NUL
# (?!\n): a Python validator's $ also matches before a final newline, which no prediction id has.
PREDICTION_ID_PATTERN = "^[A-Za-z0-9_-]{1,64}$(?!\\n)"
MODEL_VERSION_PATTERN = f"^[{MODEL_VERSION_CHARACTERS}]{{1,{MODEL_VERSION_MAX_CHARS}}}$(?!\\n)"
BEARER_SCHEME = "Bearer"
# Optional credentials: none (anonymous, rate-limited), the API key, or the app token as a bearer token.
OPTIONAL_CREDENTIALS = [{}, {API_KEY_SCHEME: []}, {BEARER_SCHEME: []}]


def _error_response(status: int, description: str) -> dict[str, Any]:
    """An error answer: the Error schema with the `error` code this status always carries."""
    schema = {
        "allOf": [
            {"$ref": "#/components/schemas/Error"},
            {"properties": {"error": {"const": error_code(status)}}},
        ]
    }
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _json(schema_ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}},
    }


def build_openapi(*, max_batch: int, max_text_chars: int, max_comment_chars: int) -> dict[str, Any]:
    """The document, for the given request limits."""
    label = {"type": "string", "enum": list(LABELS)}
    # Strings a database can store: no NUL character (lone surrogates cannot travel in JSON text at all).
    storable = {"type": "string", "pattern": NO_NUL_PATTERN}
    text = {**storable, "minLength": 1, "maxLength": max_text_chars, "pattern": TEXT_PATTERN}
    probabilities = {
        "type": "object",
        "properties": {name: {"type": "number", "minimum": 0, "maximum": 1} for name in LABELS},
        "required": list(LABELS),
    }
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
            "required": ["error", "message"],
        },
        "PredictOne": {
            "type": "object",
            "properties": {"text": text},
            "required": ["text"],
            "additionalProperties": False,
        },
        "PredictMany": {
            "type": "object",
            "properties": {"texts": {"type": "array", "items": text, "minItems": 1, "maxItems": max_batch}},
            "required": ["texts"],
            "additionalProperties": False,
        },
        "Prediction": {
            "type": "object",
            "properties": {
                "prediction_id": {"type": "string"},
                "label": label,
                "probabilities": probabilities,
                "model_version": {"type": "string"},
                "language": {
                    "type": "string",
                    "description": "ISO 639-1 code of the tweet's language, or `und` when it cannot be told",
                },
                "language_supported": {
                    "type": "boolean",
                    "description": "false: the model does not read this language, so the label is a guess",
                },
            },
            "required": [
                "prediction_id",
                "label",
                "probabilities",
                "model_version",
                "language",
                "language_supported",
            ],
        },
        "Predictions": {
            "type": "object",
            "properties": {
                "predictions": {"type": "array", "items": {"$ref": "#/components/schemas/Prediction"}},
                "model_version": {"type": "string"},
            },
            "required": ["predictions", "model_version"],
        },
        "FeedbackById": {
            "type": "object",
            "properties": {
                "prediction_id": {"type": "string", "pattern": PREDICTION_ID_PATTERN},
                "label": label,
                "comment": {**storable, "maxLength": max_comment_chars},
            },
            "required": ["prediction_id", "label"],
            "additionalProperties": False,
        },
        "FeedbackByText": {
            "type": "object",
            "properties": {
                "text": text,
                "predicted_label": label,
                "model_version": {"type": "string", "pattern": MODEL_VERSION_PATTERN},
                "label": label,
                "comment": {**storable, "maxLength": max_comment_chars},
            },
            "required": ["text", "predicted_label", "label"],
            "additionalProperties": False,
        },
        "FeedbackStored": {
            "type": "object",
            "properties": {
                "prediction_id": {"type": "string"},
                "label": label,
                "predicted_label": label,
                "correct": {"type": "boolean"},
                "model_version": {"type": "string"},
            },
            "required": ["prediction_id", "label", "predicted_label", "correct", "model_version"],
        },
        "FeedbackStats": {
            "type": "object",
            "properties": {
                "total": {"type": "integer"},
                "correct": {"type": "integer"},
                "wrong": {"type": "integer"},
                "pairs": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"predicted": label, "correct": label, "count": {"type": "integer"}},
                    },
                },
                "last_received_at": {"type": ["string", "null"]},
            },
            "required": ["total", "correct", "wrong", "pairs", "last_received_at"],
        },
        "Model": {
            "type": "object",
            "properties": {
                "model_version": {"type": "string"},
                "labels": {"type": "array", "items": {"type": "string"}},
                "metrics": {"type": "object"},
                "limits": {
                    "type": "object",
                    "description": "What the API accepts (BUZZWATCH_API_MAX_TEXT_CHARS, ...)",
                    "properties": {
                        "max_text_chars": {"type": "integer", "minimum": 1},
                        "max_comment_chars": {"type": "integer", "minimum": 0},
                        "max_batch": {"type": "integer", "minimum": 1},
                    },
                    "required": ["max_text_chars", "max_comment_chars", "max_batch"],
                },
            },
            "required": ["model_version", "labels", "metrics", "limits"],
        },
        "Status": {
            "type": "object",
            "properties": {
                "status": {"type": "string"},
                "model_version": {"type": "string"},
                "database": {"type": "string", "description": "The database, or why it cannot be written"},
                "telemetry": {"type": "string", "description": "Why telemetry writes fail (still ready)"},
            },
            "required": ["status"],
        },
        "DriftStatus": {
            "type": "object",
            "properties": {
                "model_version": {
                    "type": "string",
                    "description": "the served model: only its feedback counts",
                },
                "window_s": {"type": "number"},
                "feedback_in_window": {"type": "integer"},
                "wrong_in_window": {"type": "integer"},
                "min_wrong": {"type": "integer"},
                "min_wrong_share": {"type": "number"},
                "cooldown_s": {"type": "number"},
                "last_alert_at": {"type": ["string", "null"]},
            },
            "required": [
                "model_version",
                "window_s",
                "feedback_in_window",
                "wrong_in_window",
                "last_alert_at",
            ],
        },
    }
    bad_request = _error_response(400, "Invalid input: the message says what is wrong")
    not_json = _error_response(
        415, "The body is not JSON (send Content-Type: application/json), or is compressed (send it plain)"
    )
    too_large = _error_response(413, "The body is larger than the request-size limit")
    unauthorized = _error_response(
        401, "Missing or wrong API key (X-API-Key header or Authorization: Bearer)"
    )
    wrong_credential = _error_response(
        401, "A key or token was sent and matches neither the API key nor the app token"
    )
    retry_after = {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}}
    rate_limited = {
        **_error_response(
            429,
            "Over a per-client limit (an anonymous caller's texts or feedback, or wrong keys or tokens "
            "sent); retry after Retry-After seconds",
        ),
        "headers": retry_after,
    }
    wrong_secrets = {
        **_error_response(
            429, "Too many wrong keys or tokens from this address; retry after Retry-After seconds"
        ),
        "headers": retry_after,
    }
    database_unavailable = {
        **_error_response(503, "The database cannot be read (unreachable, or its folder gone); it is named"),
        "headers": retry_after,
    }
    paths: dict[str, Any] = {
        "/v1/predict": {
            "post": {
                "summary": f"Score one tweet or a list of up to {max_batch}",
                "description": "Anonymous callers are limited in texts a minute per client address; a "
                "caller with the API key or the app token is not.",
                "operationId": "predict",
                "security": OPTIONAL_CREDENTIALS,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [
                                    {"$ref": "#/components/schemas/PredictOne"},
                                    {"$ref": "#/components/schemas/PredictMany"},
                                ]
                            }
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "One prediction for `text`, a list for `texts`",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": "#/components/schemas/Prediction"},
                                        {"$ref": "#/components/schemas/Predictions"},
                                    ]
                                }
                            }
                        },
                    },
                    "400": bad_request,
                    "401": wrong_credential,
                    "413": too_large,
                    "415": not_json,
                    "429": rate_limited,
                },
            }
        },
        "/v1/feedback": {
            "post": {
                "summary": "Tell the model the right label of a prediction (stored once per prediction id)",
                "description": "Anyone may send feedback on a prediction id the API issued (rate-limited per "
                "client address); feedback by text needs the API key or the app token. Each stored row "
                "records its provenance (api_key, app_token, anonymous_by_id); training trusts the first two "
                "by default.",
                "operationId": "feedback",
                "security": OPTIONAL_CREDENTIALS,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [
                                    {"$ref": "#/components/schemas/FeedbackById"},
                                    {"$ref": "#/components/schemas/FeedbackByText"},
                                ]
                            }
                        }
                    },
                },
                "responses": {
                    "201": _json("FeedbackStored", "Stored"),
                    "400": bad_request,
                    "401": _error_response(
                        401, "Feedback by text without the API key or the app token, or a wrong key or token"
                    ),
                    "403": _error_response(
                        403, "Feedback by text is off: no API key or app token is configured"
                    ),
                    "404": _error_response(404, "Unknown prediction id"),
                    "409": _error_response(409, "Feedback for this prediction is already stored"),
                    "413": too_large,
                    "415": not_json,
                    "429": rate_limited,
                    "503": {
                        **_error_response(
                            503,
                            "The database cannot be written (full or read-only disk; the message names it), "
                            "or the prediction, made under a minute ago, is not written yet: send it again",
                        ),
                        "headers": retry_after,
                    },
                },
            }
        },
        "/v1/feedback/stats": {
            "get": {
                "summary": "How much feedback was received, and how often the model was right",
                "operationId": "feedbackStats",
                "responses": {"200": _json("FeedbackStats", "Counts"), "503": database_unavailable},
            }
        },
        "/v1/model": {
            "get": {
                "summary": "The served model: version, labels, evaluation metrics; the input limits",
                "operationId": "model",
                "responses": {"200": _json("Model", "The model")},
            }
        },
        "/v1/admin/feedback.csv": {
            "get": {
                "summary": "All feedback as CSV (text,label,...): input for `buzzwatch train --extra-data`",
                "operationId": "exportFeedback",
                "security": [{API_KEY_SCHEME: []}],
                "responses": {
                    "200": {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}},
                    "400": _error_response(400, "A query parameter: the export takes none"),
                    "401": unauthorized,
                    "403": _error_response(403, "Admin routes are disabled: no API key is configured"),
                    "429": wrong_secrets,
                    "503": database_unavailable,
                },
            }
        },
        "/v1/admin/drift": {
            "get": {
                "summary": "The model-drift monitor: wrong predictions in the window, last alert",
                "operationId": "driftStatus",
                "security": [{API_KEY_SCHEME: []}],
                "responses": {
                    "200": _json("DriftStatus", "Drift monitor"),
                    "401": unauthorized,
                    "403": _error_response(403, "Admin routes are disabled: no API key is configured"),
                    "429": wrong_secrets,
                    "503": database_unavailable,
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness: the process answers",
                "operationId": "healthz",
                "responses": {"200": _json("Status", "Alive")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: the model is loaded and the database answers and takes writes",
                "operationId": "readyz",
                "responses": {"200": _json("Status", "Ready"), "503": _json("Status", "Not ready")},
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "operationId": "openapi",
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "BuzzWatch scoring API",
            "version": __version__,
            "description": "Tweet sentiment on demand (negative, neutral, positive) and the feedback loop.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                API_KEY_SCHEME: {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                BEARER_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The API key, or the app token (BUZZWATCH_APP_TOKEN) that the app sends",
                },
            },
        },
    }
