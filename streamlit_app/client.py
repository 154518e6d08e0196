"""A small client for the scoring API; the app never scores by itself, it goes through the API."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import requests


class ApiError(Exception):
    """The API answered with an error (or could not be reached); the message is the API's own."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class ApiClient:
    """Calls the BuzzWatch API at `base_url` (BUZZWATCH_API_URL).

    With an app token (BUZZWATCH_APP_TOKEN, the same secret the API is given) the app's feedback is
    recorded as the app's, which training trusts, and the API's per-client rate limits do not apply.
    """

    base_url: str
    timeout_s: float = 10.0
    app_token: str | None = field(default_factory=lambda: os.environ.get("BUZZWATCH_APP_TOKEN") or None)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self._session = requests.Session()
        if self.app_token:
            self._session.headers["Authorization"] = f"Bearer {self.app_token}"

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._session.request(method, self.base_url + path, timeout=self.timeout_s, **kwargs)
        except requests.RequestException as exc:
            raise ApiError(f"the API at {self.base_url} cannot be reached: {exc.__class__.__name__}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            message = body.get("message") if isinstance(body, dict) else None
            raise ApiError(message or f"HTTP {response.status_code}", response.status_code)
        if not isinstance(body, dict):  # another server at that URL (a proxy's login page, the app itself)
            kind = response.headers.get("Content-Type") or "no content type"
            raise ApiError(
                f"{self.base_url}{path} answered HTTP {response.status_code} with {kind}, not the API's "
                "JSON: is this the BuzzWatch API?",
                response.status_code,
            )
        return body

    def not_ready(self) -> str | None:
        """None when the API answers /readyz with 200, else why not."""
        try:
            self._call("GET", "/readyz")
        except ApiError as exc:
            return exc.message
        return None

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """Score a batch of texts (at most the API's batch limit)."""
        return self._call("POST", "/v1/predict", json={"texts": list(texts)})["predictions"]

    def predict_one(self, text: str) -> dict[str, Any]:
        """Score one text."""
        return self._call("POST", "/v1/predict", json={"text": text})

    def feedback(self, prediction_id: str, label: str, comment: str | None = None) -> dict[str, Any]:
        """Send the right label for a prediction; ApiError with status 409 when it was already sent."""
        payload: dict[str, Any] = {"prediction_id": prediction_id, "label": label}
        if comment:
            payload["comment"] = comment
        return self._call("POST", "/v1/feedback", json=payload)

    def model(self) -> dict[str, Any]:
        """Version, labels and evaluation metrics of the served model."""
        return self._call("GET", "/v1/model")

    def feedback_stats(self) -> dict[str, Any]:
        """Feedback received so far."""
        return self._call("GET", "/v1/feedback/stats")
