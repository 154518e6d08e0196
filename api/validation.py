"""Validation of request bodies at the edge: every problem becomes a RequestError a person can act on."""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from buzzwatch.schema import LABELS, is_blank

PREDICTION_ID_MAX_CHARS = 64
PREDICTION_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
MODEL_VERSION_MAX_CHARS = 128
MODEL_VERSION_CHARACTERS = "A-Za-z0-9._:+@/-"  # what a model version is written with ("bilstm-0ed7982b76")
MODEL_VERSION_RE = re.compile(f"[{MODEL_VERSION_CHARACTERS}]{{1,{MODEL_VERSION_MAX_CHARS}}}")


def error_code(status: int) -> str:
    """The `error` field of an error body: the status phrase in snake case (415: unsupported_media_type)."""
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


class RequestError(Exception):
    """A client mistake, answered with `status` and this message."""

    def __init__(self, message: str, status: int = 400, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after_s = retry_after_s  # sent as Retry-After (a 429 or 503)


@dataclass(frozen=True)
class PredictRequest:
    """Texts to score; `single` when the client sent one `text` rather than a `texts` list."""

    texts: list[str]
    single: bool


@dataclass(frozen=True)
class FeedbackRequest:
    """The right label for a prediction, named by its id or by its text and predicted label."""

    label: str
    prediction_id: str | None
    text: str | None
    predicted_label: str | None
    model_version: str | None
    comment: str | None


def _require_object(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise RequestError(f"the body must be a JSON object, got {_json_type(payload)}")
    return payload


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _reject_unknown(payload: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise RequestError(f"unknown field {unknown[0]!r}; allowed fields: {', '.join(sorted(allowed))}")


def _check_storable(value: str, where: str) -> str:
    """Refuse what no database can store: NUL characters and lone UTF-16 surrogates."""
    if "\x00" in value:
        raise RequestError(f"{where} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RequestError(f"{where} contains invalid Unicode (a lone surrogate)") from None
    return value


def _check_text(value: Any, where: str, max_chars: int) -> str:
    if not isinstance(value, str):
        raise RequestError(f"{where} must be a string, got {_json_type(value)}")
    if is_blank(value):
        raise RequestError(f"{where} is empty")
    if len(value) > max_chars:
        raise RequestError(f"{where} is {len(value)} characters long; the limit is {max_chars}")
    return _check_storable(value, where)


def _check_label(value: Any, field_name: str) -> str:
    if not isinstance(value, str):
        raise RequestError(f"'{field_name}' must be a string, one of {', '.join(LABELS)}")
    if value not in LABELS:
        raise RequestError(
            f"'{field_name}' is {value[:40]!r}, not a known label; use one of {', '.join(LABELS)}"
        )
    return value


def _optional_str(payload: dict[str, Any], field_name: str, max_chars: int) -> str | None:
    if field_name not in payload:  # absent, not null: null is a string's wrong type, as the schema says
        return None
    value = payload[field_name]
    if not isinstance(value, str):
        raise RequestError(f"'{field_name}' must be a string, got {_json_type(value)}")
    if len(value) > max_chars:
        raise RequestError(f"'{field_name}' is {len(value)} characters long; the limit is {max_chars}")
    return _check_storable(value, f"'{field_name}'")


def _model_version(body: dict[str, Any]) -> str | None:
    """The optional `model_version` of feedback sent by text: a version's name, as /v1/predict writes it."""
    version = _optional_str(body, "model_version", MODEL_VERSION_MAX_CHARS)
    if version is not None and not MODEL_VERSION_RE.fullmatch(version):
        raise RequestError(
            f"'model_version' must be a model version as /v1/predict returns it: 1 to "
            f"{MODEL_VERSION_MAX_CHARS} letters, digits and . _ : + @ / - (no spaces)"
        )
    return version


def parse_predict(payload: Any, *, max_batch: int, max_text_chars: int) -> PredictRequest:
    """`{"text": "..."}` or `{"texts": ["...", ...]}` (1 to max_batch texts)."""
    body = _require_object(payload)
    _reject_unknown(body, {"text", "texts"})
    if "text" in body and "texts" in body:
        raise RequestError("send either 'text' (one tweet) or 'texts' (a list), not both")
    if "text" in body:
        return PredictRequest([_check_text(body["text"], "'text'", max_text_chars)], single=True)
    if "texts" not in body:
        raise RequestError("missing field 'text' (one tweet) or 'texts' (a list of tweets)")
    texts = body["texts"]
    if not isinstance(texts, list):
        raise RequestError(f"'texts' must be an array of strings, got {_json_type(texts)}")
    if not texts:
        raise RequestError(f"'texts' is empty; send 1 to {max_batch} texts")
    if len(texts) > max_batch:
        raise RequestError(f"'texts' has {len(texts)} items; the limit is {max_batch} per request")
    checked = [_check_text(text, f"'texts[{index}]'", max_text_chars) for index, text in enumerate(texts)]
    return PredictRequest(checked, single=False)


def parse_feedback(payload: Any, *, max_text_chars: int, max_comment_chars: int) -> FeedbackRequest:
    """`{"prediction_id", "label", "comment"?}` or `{"text", "predicted_label", "label", ...}`."""
    body = _require_object(payload)
    _reject_unknown(body, {"prediction_id", "text", "predicted_label", "model_version", "label", "comment"})
    if "label" not in body:
        raise RequestError(f"missing field 'label': the right label, one of {', '.join(LABELS)}")
    label = _check_label(body["label"], "label")
    comment = _optional_str(body, "comment", max_comment_chars)
    if "prediction_id" in body:
        prediction_id = body["prediction_id"]
        if not isinstance(prediction_id, str) or not prediction_id.strip():
            raise RequestError("'prediction_id' must be a non-empty string, as returned by /v1/predict")
        if len(prediction_id) > PREDICTION_ID_MAX_CHARS:
            raise RequestError(f"'prediction_id' is longer than {PREDICTION_ID_MAX_CHARS} characters")
        if not PREDICTION_ID_RE.fullmatch(prediction_id):
            raise RequestError(
                "'prediction_id' has characters no prediction id has (letters, digits, - and _)"
            )
        by_text = [name for name in ("text", "predicted_label", "model_version") if name in body]
        if by_text:  # the logged prediction says what was predicted, and by which model
            raise RequestError(
                f"send either 'prediction_id' or 'text' with 'predicted_label', not both: "
                f"{', '.join(repr(name) for name in by_text)} go with 'text' only"
            )
        return FeedbackRequest(label, prediction_id, None, None, None, comment)
    if "text" not in body or "predicted_label" not in body:
        raise RequestError("missing field 'prediction_id' (or both 'text' and 'predicted_label')")
    return FeedbackRequest(
        label=label,
        prediction_id=None,
        text=_check_text(body["text"], "'text'", max_text_chars),
        predicted_label=_check_label(body["predicted_label"], "predicted_label"),
        model_version=_model_version(body),
        comment=comment,
    )
