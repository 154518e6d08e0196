"""The scoring worker for Cloud Run: a Flask app factory whose route receives Pub/Sub push deliveries.

    gunicorn --bind 0.0.0.0:$PORT --threads 8 'worker.app:create_app()'

`POST /pubsub/push`: one push envelope `{"message": {"data": base64, "attributes", "messageId"}, ...}`.
- 204: done (scored and published to the scored topic, or malformed and published to the dead-letter topic)
- 401: the push OIDC token is missing or wrong (when PUSH_AUTH_AUDIENCE is set)
- 500: a transient failure (model, Pub/Sub): Pub/Sub delivers it again
`GET /healthz` (alive) and `GET /readyz` (model loaded).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from buzzwatch import telemetry as names
from buzzwatch.settings import CommonSettings
from buzzwatch.telemetry import Telemetry
from worker.scoring import ScoringService, TransientError, WorkerSettings, build_scoring_service

log = logging.getLogger("buzzwatch.worker")

TokenVerifier = Callable[[str, str], Mapping[str, Any]]


def google_token_verifier(token: str, audience: str) -> Mapping[str, Any]:
    """Verify a Google-signed OIDC token (what Pub/Sub push sends) and return its claims."""
    from google.auth.transport import requests as google_requests
    from google.oauth2 import id_token

    return id_token.verify_oauth2_token(token, google_requests.Request(), audience=audience)


def create_app(
    settings: CommonSettings | None = None,
    worker_settings: WorkerSettings | None = None,
    service: ScoringService | None = None,
    telemetry: Telemetry | None = None,
    token_verifier: TokenVerifier | None = None,
) -> Flask:
    """Build the app; tests hand in their own service, telemetry and token verifier."""
    env = os.environ
    settings = settings or CommonSettings.from_env()
    worker_settings = worker_settings or WorkerSettings.from_env(env)
    if service is None:
        from buzzwatch.logs import configure_logging

        configure_logging(settings.log_level)
    telemetry = telemetry or Telemetry.from_settings(settings, role="worker")
    service = service or build_scoring_service(settings, worker_settings, env, telemetry)
    verifier = token_verifier or google_token_verifier

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = worker_settings.max_envelope_bytes
    app.extensions["buzzwatch"] = {"service": service, "telemetry": telemetry}

    def authorised() -> bool:
        audience = worker_settings.push_audience
        if not audience:
            return True
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return False
        try:
            claims = verifier(header.removeprefix("Bearer ").strip(), audience)
        except Exception as exc:  # any verification failure is a refusal
            log.warning("push token refused", extra={"error": str(exc)})
            return False
        expected = worker_settings.push_service_account
        if expected and (claims.get("email") != expected or not claims.get("email_verified", False)):
            log.warning("push token from an unexpected account", extra={"email": claims.get("email")})
            return False
        return True

    @app.post("/pubsub/push")
    def push() -> Response | tuple[Any, int]:
        if not authorised():
            return jsonify(error="missing or invalid push token"), 401
        started = time.perf_counter()
        raw = request.get_data(cache=False)
        try:
            data, attributes, message_id = parse_envelope(raw)
        except ValueError as exc:
            try:
                service.send_to_dead_letter(raw, {}, "unknown", f"malformed push envelope: {exc}")
            except TransientError:
                return jsonify(error="dead-letter publish failed; retry"), 500
            return Response(status=204)
        try:
            service.handle(data, attributes, message_id)
        except TransientError as exc:
            log.warning(
                "transient failure; Pub/Sub will retry", extra={"message_id": message_id, "error": str(exc)}
            )
            return jsonify(error=str(exc)), 500
        telemetry.metric(
            names.PROCESSING_LATENCY_MS, (time.perf_counter() - started) * 1000, {"stage": "push"}
        )
        return Response(status=204)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error: RequestEntityTooLarge) -> Response | tuple[Any, int]:
        size = request.content_length or 0
        note = json.dumps({"reason": "oversized push envelope", "bytes": size}).encode()
        try:
            service.send_to_dead_letter(
                note, {}, "unknown", f"push envelope larger than {worker_settings.max_envelope_bytes} bytes"
            )
        except TransientError:
            return jsonify(error="dead-letter publish failed; retry"), 500
        return Response(status=204)

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz() -> Response:
        model = getattr(service.batcher, "model", None)
        return jsonify(status="ready", model_version=getattr(model, "model_version", ""))

    @app.get("/stats")
    def stats() -> Response:
        return jsonify(dict(service.counts))

    return app


def parse_envelope(raw: bytes) -> tuple[bytes, dict[str, str], str]:
    """The message data, attributes and id of a push envelope; ValueError says what is wrong."""
    try:
        envelope = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    message = envelope.get("message") if isinstance(envelope, dict) else None
    if not isinstance(message, dict):
        raise ValueError("no 'message' object")
    encoded = message.get("data", "")
    if not isinstance(encoded, str):
        raise ValueError("'message.data' is not a base64 string")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"'message.data' is not base64: {exc}") from exc
    attributes = message.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise ValueError("'message.attributes' is not an object")
    message_id = str(message.get("messageId") or message.get("message_id") or "unknown")
    return data, {str(k): str(v) for k, v in attributes.items()}, message_id
