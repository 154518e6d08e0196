"""The scoring worker for Cloud Run: a Flask app factory; its push route is plain WSGI in front of Flask.

    buzzwatch worker --mode push --port $PORT --workers 1 --threads 32   # granian, `production_app`

`POST /pubsub/push`: one push envelope `{"message": {"data": base64, "attributes", "messageId"}, ...}`.
- 204: done (scored and published to the scored topic, or malformed and published to the dead-letter topic)
- 401: the push OIDC token is missing or wrong (when PUSH_AUTH_AUDIENCE is set: signed by Google for that
  audience, from PUSH_AUTH_SERVICE_ACCOUNT with a verified e-mail; see `worker.auth`)
- 500: a transient failure (model, Pub/Sub): Pub/Sub delivers it again
`GET /healthz` (alive) and `GET /readyz` (model loaded).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import Flask, Response, jsonify

from buzzwatch import telemetry as names
from buzzwatch.pubsub import StreamTopology
from buzzwatch.schema import SchemaError, load_json
from buzzwatch.settings import CommonSettings
from buzzwatch.telemetry import GuardedTelemetry, Telemetry
from worker.auth import GoogleTokenVerifier, TokenVerifier
from worker.cli import SERVER_PID_VARIABLE
from worker.scoring import ScoringService, TransientError, WorkerSettings, build_scoring_service

log = logging.getLogger("buzzwatch.worker")


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
    telemetry = telemetry or GuardedTelemetry(Telemetry.from_settings(settings, role="worker"))
    service = service or build_scoring_service(
        settings, StreamTopology.from_settings(settings), worker_settings, telemetry
    )
    worker_settings.push_auth.check()
    verifier = token_verifier or GoogleTokenVerifier()

    app = Flask(__name__)
    app.extensions["buzzwatch"] = {"service": service, "telemetry": telemetry}
    app.wsgi_app = PushRoute(  # type: ignore[method-assign]
        app.wsgi_app, service, telemetry, worker_settings, verifier
    )

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz() -> Response:
        model = getattr(service.pipeline, "model", None)
        return jsonify(status="ready", model_version=getattr(model, "model_version", ""))

    @app.get("/stats")
    def stats() -> Response:
        return jsonify(dict(service.counts))

    return app


def production_app() -> Flask:
    """`create_app()` as the server runs it: the process also stops when its server has died.

    A server killed without warning (SIGKILL, an out-of-memory kill) cannot stop its worker processes; left
    running, they would go on taking pushes on the shared socket. Each one watches its server and, when it is
    gone, stops itself as the server would (SIGTERM: finish the requests in hand, close telemetry). The
    server's pid comes from `buzzwatch worker` (SERVER_PID_VARIABLE), not from `getppid()` here: a process
    that finishes loading after its server died would otherwise take its new parent (1) for the server.
    """
    app = create_app()
    server_pid = int(os.environ.get(SERVER_PID_VARIABLE) or os.getppid())
    threading.Thread(target=_stop_with_parent, args=(server_pid,), name="parent-watch", daemon=True).start()
    return app


def _stop_with_parent(server_pid: int, interval_s: float = 1.0, grace_s: float = 30.0) -> None:
    while os.getppid() == server_pid:
        time.sleep(interval_s)
    log.warning("the server process is gone: stopping this worker", extra={"server_pid": server_pid})
    # SIGTERM again every second: this thread starts as granian starts serving, and granian can lose a signal
    # that comes then (one SIGTERM alone: 3 of 9 runs of the `loading` test timed out, 2026-12-06; in the two
    # logs kept, the signal went about when granian logged "Started worker"). Still running after `grace_s`
    # (more than the server's 20 s to finish requests): killed.
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(interval_s)
    os.kill(os.getpid(), signal.SIGKILL)


class PushRoute:
    """`POST /pubsub/push` as plain WSGI in front of Flask: the hot path, one request per tweet.

    Pub/Sub pushes one message per request, and the emulator sends a subscription's pushes two at a time, one
    after the other, so the time spent around the handler caps the stream. Flask's request machinery costs
    about as much as the emulator's own work per push; this handler reads the body, answers and leaves every
    other path (health, readiness, stats) to the Flask app behind it.
    """

    PATH = "/pubsub/push"

    def __init__(
        self,
        fallback: Callable[..., Any],
        service: ScoringService,
        telemetry: Telemetry,
        worker_settings: WorkerSettings,
        verifier: TokenVerifier,
    ) -> None:
        self.fallback = fallback
        self.service = service
        self.telemetry = telemetry
        self.settings = worker_settings
        self.verifier = verifier

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Serve the push route; hand any other request to the Flask app."""
        if environ.get("PATH_INFO") != self.PATH:
            return self.fallback(environ, start_response)
        if environ.get("REQUEST_METHOD") != "POST":
            return _answer(
                start_response, "405 METHOD NOT ALLOWED", {"error": "use POST"}, [("Allow", "POST")]
            )
        status, body = self.handle(environ)
        return _answer(start_response, status, body)

    def handle(self, environ: dict[str, Any]) -> tuple[str, dict[str, str] | None]:
        """The status line and JSON body (None: empty) for one push request."""
        if not self._authorised(environ.get("HTTP_AUTHORIZATION", "")):
            return "401 UNAUTHORIZED", {"error": "missing or invalid push token"}
        started = time.perf_counter()
        limit = self.settings.max_envelope_bytes
        raw = _read_body(environ, limit)
        if raw is None:
            note = json.dumps(
                {"reason": "oversized push envelope", "bytes": _content_length(environ)}
            ).encode()
            return self._dead_letter(note, f"push envelope larger than {limit} bytes")
        try:
            data, attributes, message_id = parse_envelope(raw)
        except MalformedEnvelope as exc:
            return self._dead_letter(raw, f"malformed push envelope: {exc}", exc.message_id)
        try:
            self.service.handle(data, attributes, message_id)
        except TransientError as exc:
            log.warning(
                "transient failure; Pub/Sub will retry", extra={"message_id": message_id, "error": str(exc)}
            )
            return "500 INTERNAL SERVER ERROR", {"error": str(exc)}
        self.telemetry.metric(
            names.PROCESSING_LATENCY_MS, (time.perf_counter() - started) * 1000, {"stage": "push"}
        )
        return "204 NO CONTENT", None

    def _dead_letter(
        self, data: bytes, reason: str, message_id: str = "unknown"
    ) -> tuple[str, dict[str, str] | None]:
        try:
            self.service.send_to_dead_letter(data, {}, message_id, reason)
        except TransientError:
            return "500 INTERNAL SERVER ERROR", {"error": "dead-letter publish failed; retry"}
        return "204 NO CONTENT", None

    def _authorised(self, header: str) -> bool:
        return self.settings.push_auth.allows(header, self.verifier)


def _content_length(environ: Mapping[str, Any]) -> int:
    try:
        return max(0, int(environ.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0


def _read_body(environ: Mapping[str, Any], limit: int) -> bytes | None:
    """The request body, or None when it is larger than `limit` bytes (the rest is drained, not kept)."""
    stream = environ["wsgi.input"]
    length = _content_length(environ)
    if 0 < length <= limit:
        return stream.read(length)
    body = b"" if length else stream.read(limit + 1)  # no Content-Length (chunked): read up to the limit
    if length or len(body) > limit:
        while stream.read(65536):
            pass
        return None
    return body


def _answer(
    start_response: Callable[..., Any],
    status: str,
    body: dict[str, str] | None,
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    payload = json.dumps(body).encode() if body is not None else b""
    extra = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))] if payload else []
    start_response(status, extra + (headers or []))
    return [payload] if payload else []


class MalformedEnvelope(ValueError):
    """A push envelope that cannot be read; `message_id` is its message's id when that much could be."""

    def __init__(self, reason: str, message_id: str = "unknown") -> None:
        super().__init__(reason)
        self.message_id = message_id


def parse_envelope(raw: bytes) -> tuple[bytes, dict[str, str], str]:
    """The message data, attributes and id of a push envelope; MalformedEnvelope says what is wrong (with
    the message's id when it has one, for the dead letter: Pub/Sub's console finds a message by it)."""
    try:
        envelope = load_json(raw)
    except SchemaError as exc:
        raise MalformedEnvelope(str(exc)) from exc
    message = envelope.get("message") if isinstance(envelope, dict) else None
    if not isinstance(message, dict):
        raise MalformedEnvelope("no 'message' object")
    message_id = str(message.get("messageId") or message.get("message_id") or "unknown")
    encoded = message.get("data", "")
    if not isinstance(encoded, str):
        raise MalformedEnvelope("'message.data' is not a base64 string", message_id)
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedEnvelope(f"'message.data' is not base64: {exc}", message_id) from exc
    attributes = message.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise MalformedEnvelope("'message.attributes' is not an object", message_id)
    return data, {str(k): str(v) for k, v in attributes.items()}, message_id
