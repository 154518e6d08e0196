"""The Flask app factory: routes over the injected predictor, feedback store, telemetry and mailer.

    app = create_app()                                   # production: everything from the environment
    app = create_app(settings, predictor=tiny, store=s)  # tests: hand in your own collaborators

Every client mistake is answered with a JSON 4xx whose message says what is wrong; a 500 means a bug.
"""

from __future__ import annotations

import atexit
import csv
import hashlib
import hmac
import io
import itertools
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import wraps
from typing import Any, Protocol

from flask import Flask, Response, current_app, g, jsonify, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

from api.drift import DriftMonitor, MailerLike, TelemetryLike
from api.limits import RateLimiter
from api.openapi import build_openapi
from api.settings import ApiSettings, load_predictor
from api.store import (
    EXPORT_COLUMNS,
    DuplicateFeedback,
    FeedbackRecord,
    FeedbackStore,
    LoggedPrediction,
    StoreBusy,
    StoreUnwritable,
)
from api.validation import RequestError, error_code, parse_feedback, parse_predict
from buzzwatch.cells import CSV_LINE_END, spreadsheet_cell
from buzzwatch.database import is_lock_timeout, lock_wait_budget
from buzzwatch.logs import configure_logging
from buzzwatch.schema import SchemaError, load_json
from buzzwatch.telemetry import API_REQUEST_LATENCY_MS, FEEDBACK_RECEIVED, MISPREDICTION, GuardedTelemetry
from models.language import Language, gate_for

logger = logging.getLogger(__name__)

JSON_MIMETYPES = {"application/json"}
# A prediction the API issued this recently and cannot find yet is still queued in another worker (503, send
# again); older than this, it is gone (that worker stopped before writing it, or it was pruned): 404.
RECENTLY_ISSUED_S = 60.0
BUSY_RETRY_AFTER_S = 5  # Retry-After of a 503 for a database lock held by another process


class PredictorLike(Protocol):
    """The part of `models.predictor.Predictor` the API uses."""

    model_version: str
    labels: tuple[str, ...]
    metrics: dict[str, Any]

    def predict(self, texts: Any) -> list[Any]: ...


class ApiServices:
    """The collaborators of one app instance, reachable from routes as `current_app.extensions`."""

    def __init__(
        self,
        settings: ApiSettings,
        predictor: PredictorLike,
        store: FeedbackStore,
        telemetry: GuardedTelemetry,
        drift: DriftMonitor,
        clock: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.predictor = predictor
        self.store = store
        self.telemetry = telemetry
        self.drift = drift
        self.clock = clock
        self.latency = LatencyAggregator(telemetry)
        self.texts_limiter = RateLimiter(settings.anonymous_texts_per_min)
        self.feedback_limiter = RateLimiter(settings.anonymous_feedback_per_min)
        self.wrong_secret_limiter = RateLimiter(settings.wrong_secrets_per_min)
        self.openapi = build_openapi(
            max_batch=settings.max_batch,
            max_text_chars=settings.max_text_chars,
            max_comment_chars=settings.max_comment_chars,
        )


class LatencyAggregator:
    """Request latency per (route, status), sent as one mean per interval rather than one line a request."""

    def __init__(self, telemetry: TelemetryLike, interval_s: float = 10.0) -> None:
        self.telemetry = telemetry
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._series: dict[tuple[str, int], list[float]] = {}
        self._last_emit = time.monotonic()

    def record(self, route: str, status: int, seconds: float) -> None:
        """Add one request; emit the interval's means when it is over."""
        with self._lock:
            totals = self._series.setdefault((route, status), [0.0, 0])
            totals[0] += seconds * 1000.0
            totals[1] += 1
            if time.monotonic() - self._last_emit < self.interval_s:
                return
        self.emit()

    def emit(self) -> None:
        """Send the mean latency of each series recorded since the last emit."""
        with self._lock:
            series, self._series = self._series, {}
            self._last_emit = time.monotonic()
        for (route, status), (total_ms, count) in series.items():
            self.telemetry.metric(
                API_REQUEST_LATENCY_MS, total_ms / count, {"route": route, "status": str(status)}
            )


def services() -> ApiServices:
    """The collaborators of the app serving the current request."""
    return current_app.extensions["buzzwatch"]


def create_app(
    settings: ApiSettings | None = None,
    predictor: PredictorLike | None = None,
    store: FeedbackStore | None = None,
    telemetry: TelemetryLike | None = None,
    mailer: MailerLike | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Flask:
    """Build the WSGI app; anything not injected is built from the environment (the real services)."""
    if settings is None:  # the production entry point (gunicorn): settings and logging from the environment
        settings = ApiSettings.from_env()
        configure_logging(settings.common.log_level)
    clock = clock or (lambda: datetime.now(UTC))
    if predictor is None:
        predictor = load_predictor(settings)
    if store is None:
        store = FeedbackStore(
            settings.common.database_url,
            retention_s=settings.prediction_retention_s,
            max_logged=settings.prediction_log_max_rows,
            clock=clock,
        )
        atexit.register(store.close)  # the last queued predictions reach the database at shutdown
    own_telemetry = telemetry is None
    if telemetry is None or mailer is None:
        telemetry, mailer = _default_telemetry_and_mailer(settings, telemetry, mailer)
    guarded_telemetry = GuardedTelemetry(telemetry)  # type: ignore[arg-type]
    drift = DriftMonitor(
        store,
        window_s=settings.drift_window_s,
        min_wrong=settings.drift_min_wrong,
        min_wrong_share=settings.drift_min_wrong_share,
        cooldown_s=settings.drift_cooldown_s,
        telemetry=guarded_telemetry,
        mailer=mailer,
        clock=clock,
    )
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.wsgi_app = _with_lock_wait_budget(app.wsgi_app, settings.db_wait_s)  # type: ignore[method-assign]
    if settings.proxy_hops > 0:  # behind a load balancer: the client is in X-Forwarded-For (rate limits)
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops)  # type: ignore[method-assign]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.url_map.merge_slashes = False  # "/v1//predict" is an unknown route (JSON 404), not an HTML redirect
    api_services = ApiServices(settings, predictor, store, guarded_telemetry, drift, clock)
    app.extensions["buzzwatch"] = api_services
    if own_telemetry:  # at exit: the last latency figures, then the exporters' buffers (atexit runs LIFO)
        atexit.register(api_services.latency.emit)
    _register_hooks(app)
    _register_errors(app)
    _register_routes(app)
    return app


def _default_telemetry_and_mailer(
    settings: ApiSettings, telemetry: TelemetryLike | None, mailer: MailerLike | None
) -> tuple[TelemetryLike, MailerLike]:
    from buzzwatch.notify import Mailer
    from buzzwatch.telemetry import Telemetry

    if telemetry is None:
        telemetry = Telemetry.from_settings(settings.common, role="api")
    if mailer is None:
        mailer = Mailer.from_settings(settings.common)
        mailer.start()  # delivers at once what an earlier API process left queued, not at the next alert
        atexit.register(mailer.close)
    return telemetry, mailer


# ---- hooks: lock-wait budget, timing, CORS ----------------------------------------------------------


def _with_lock_wait_budget(wsgi_app: Callable[..., Any], seconds: float) -> Callable[..., Any]:
    """Each request waits at most `seconds` in all for database locks (a 503 after), not 15 s a statement:
    with a few threads per worker, requests stuck behind another process's lock would starve the rest."""

    def budgeted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        with lock_wait_budget(seconds):
            return wsgi_app(environ, start_response)

    return budgeted


def _register_hooks(app: Flask) -> None:
    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        _discard_unread_body()
        svc = services()
        origin = request.headers.get("Origin")
        if origin and origin in svc.settings.cors_origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = "Content-Type, X-API-Key, Authorization"
            response.headers["Access-Control-Max-Age"] = "600"
        if svc.settings.cors_origins:  # the answer depends on the Origin: a shared cache must key on it
            response.vary.add("Origin")
        started = g.get("started")
        if started is not None and request.url_rule is not None:
            svc.latency.record(request.url_rule.rule, response.status_code, time.perf_counter() - started)
        return response


def _discard_unread_body() -> None:
    """Read the rest of a body the route did not read (a 404, a 415, a refused key) before answering.

    Left on the socket, it is the start of the "next request" on a keep-alive connection; gunicorn drains
    at most 64 KB of it and then drops the connection without saying so, and the client's next request on
    it fails or hangs. A body over the size limit (413) is not read: that connection is dropped.
    """
    try:
        while request.stream.read(64 * 1024):
            pass
    except (HTTPException, OSError):  # over the size limit, or the client went away
        pass


# ---- errors: always JSON ----------------------------------------------------------------------------


def _error(status: int, code: str, message: str) -> tuple[Response, int]:
    return jsonify(error=code, message=message), status


def _register_errors(app: Flask) -> None:
    @app.errorhandler(RequestError)
    def _request_error(exc: RequestError) -> tuple[Response, int]:
        response, status = _error(exc.status, error_code(exc.status), exc.message)
        if exc.retry_after_s is not None:
            response.headers["Retry-After"] = str(exc.retry_after_s)
        return response, status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        code = error_code(status)
        if status == 404:
            message = f"no route {request.method} {request.path}; the routes are listed at /openapi.json"
        elif status == 405:
            allowed = ", ".join(sorted(exc.valid_methods or [])) if hasattr(exc, "valid_methods") else ""
            message = f"{request.method} is not allowed on {request.path}; use {allowed}"
        elif status == 413:
            message = f"the body is larger than {services().settings.max_request_bytes} bytes"
        else:
            message = exc.description or exc.name
        response, status = _error(status, code, message)
        if status == 405 and getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response, status

    @app.errorhandler(OperationalError)
    def _database_unavailable(exc: OperationalError) -> tuple[Response, int]:
        """The database cannot be reached or opened (a server down, a missing folder): not the caller's
        fault nor a bug, so a 503 naming it, not a 500."""
        where = services().store.location
        busy = is_lock_timeout(exc)
        logger.error(
            "database busy" if busy else "database unavailable",
            extra={"path": request.path, "database": where, "error": str(exc.orig)},
        )
        problem = "is busy (another process holds a lock)" if busy else "cannot be read"
        response, status = _error(
            503, error_code(503), f"the database {where} {problem}: {exc.orig}; try again later"
        )
        response.headers["Retry-After"] = str(BUSY_RETRY_AFTER_S if busy else 30)
        return response, status

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        logger.exception("unhandled error", extra={"path": request.path})
        return _error(500, "internal_error", "internal error; the request was logged")


# ---- routes -----------------------------------------------------------------------------------------


def _json_body() -> Any:
    """The decoded JSON body: 415 when it is not JSON, 400 when it does not parse."""
    if request.mimetype not in JSON_MIMETYPES and not request.mimetype.endswith("+json"):
        raise RequestError(
            "the body must be JSON sent with Content-Type: application/json, "
            f"got {request.mimetype or 'none'!r}",
            status=415,
        )
    # A compressed body's bytes were "not valid JSON: 0x8b" (Content-Encoding), or dropped and "empty"
    # (a Transfer-Encoding gzip gunicorn passes on). Codings are case-insensitive (RFC 9110).
    for header, allowed in (("Content-Encoding", {"identity"}), ("Transfer-Encoding", {"chunked"})):
        given = request.headers.get(header, "")
        if {coding.strip().lower() for coding in given.split(",") if coding.strip()} - allowed:
            raise RequestError(f"the body must be sent uncompressed, got {header} {given!r}", status=415)
    raw = request.get_data(cache=False)
    limit = services().settings.max_request_bytes
    if request.content_length is None and len(raw) >= limit and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()  # chunked: werkzeug stops reading at the limit without saying so
    if not raw.strip():
        raise RequestError("the body is empty; send a JSON object")
    try:
        return load_json(raw, object_pairs_hook=_object_with_each_key_once)
    except SchemaError as exc:
        raise RequestError(f"the body is {exc}") from exc


def _object_with_each_key_once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object of the body; a key given twice is a 400 (`json.loads` silently keeps the last value, so
    `{"text": "a", "text": "b"}` scored "b" where the caller may have meant "a")."""
    document = dict(pairs)
    if len(document) < len(pairs):
        repeated = next(key for key, count in Counter(key for key, _ in pairs).items() if count > 1)
        raise RequestError(f"the body gives the key {repeated!r} more than once in one object: send it once")
    return document


def _presented_secret() -> str:
    """The key or token the caller sent: X-API-Key, else Authorization: Bearer."""
    given = request.headers.get("X-API-Key", "")
    authorization = request.headers.get("Authorization", "")
    if not given and authorization.lower().startswith("bearer "):
        given = authorization[7:].strip()
    return given


def _matches(given: str, expected: str | None) -> bool:
    return bool(given and expected) and hmac.compare_digest(given.encode(), (expected or "").encode())


def require_api_key(view: Callable[..., Any]) -> Callable[..., Any]:
    """Guard an admin route with the configured API key (X-API-Key or Authorization: Bearer)."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        expected = services().settings.api_key
        if not expected:
            raise RequestError("admin routes are disabled: no BUZZWATCH_API_KEY is configured", status=403)
        given = _presented_secret()
        if not _matches(given, expected):
            if given:
                _count_wrong_secret()
            raise RequestError("missing or wrong API key: send it in the X-API-Key header", status=401)
        return view(*args, **kwargs)

    return guarded


@dataclass(frozen=True)
class Caller:
    """Who sent a request: `provenance` of what they write (None: anonymous), `client` for rate limits."""

    provenance: str | None
    client: str


def _caller() -> Caller:
    """The API key or the app token identify a trusted caller; anyone else is anonymous, by address.

    A key or token that matches neither is a 401, not an anonymous call, so a misconfigured app finds out.
    """
    settings = services().settings
    given = _presented_secret()
    if _matches(given, settings.api_key):
        return Caller("api_key", "api-key")
    if _matches(given, settings.app_token):
        return Caller("app_token", "app-token")
    if given:
        _count_wrong_secret()
        raise RequestError(
            "wrong API key or app token (X-API-Key or Authorization: Bearer); send none to call anonymously",
            status=401,
        )
    return Caller(None, request.remote_addr or "unknown")


def _count_wrong_secret() -> None:
    """Count a wrong key or token against its address: past `wrong_secrets_per_min` a minute, a 429 with
    Retry-After instead of the 401, so a secret cannot be guessed at the server's speed."""
    limiter = services().wrong_secret_limiter
    _spend(limiter, request.remote_addr or "unknown", 1, "wrong API keys or tokens", "at most")


def _rate_limit(limiter: RateLimiter, caller: Caller, units: int, what: str) -> None:
    """Anonymous callers only: a 429 with Retry-After once they are over the limit."""
    if caller.provenance is None:
        _spend(limiter, caller.client, units, what, "without a key the limit is")


def _spend(limiter: RateLimiter, client: str, units: int, what: str, limit: str) -> None:
    """Take `units` from the client's bucket: a 429 with Retry-After, "too many {what}", once it is empty."""
    wait_s = limiter.take(client, units)
    if wait_s > 0:
        raise RequestError(
            f"too many {what} from {client}: {limit} {limiter.per_minute} a minute; "
            f"retry in {math.ceil(wait_s)} s",
            status=429,
            retry_after_s=math.ceil(wait_s),
        )


def _prediction_payload(prediction_id: str, prediction: Any, language: Language) -> dict[str, Any]:
    return {
        "prediction_id": prediction_id,
        "label": prediction.label,
        "probabilities": {label: float(p) for label, p in prediction.probabilities.items()},
        "model_version": prediction.model_version,
        "language": language.code,
        "language_supported": language.supported,
    }


def _text_prediction_id(text: str, predicted_label: str, model_version: str) -> str:
    """A stable id for feedback sent by text, so the same correction is stored once."""
    digest = hashlib.sha256(f"{model_version}\x1f{predicted_label}\x1f{text}".encode()).hexdigest()
    return f"text-{digest[:40]}"


def _refuse_anonymous_text_feedback(settings: ApiSettings) -> None:
    """Feedback by free text becomes training data: only a caller with the key or the app token sends it."""
    if not (settings.api_key or settings.app_token):
        raise RequestError(
            "feedback by text is off: no BUZZWATCH_API_KEY or BUZZWATCH_APP_TOKEN is configured; send the "
            "prediction_id that /v1/predict returned instead",
            status=403,
        )
    raise RequestError(
        "feedback by text needs the API key or the app token (X-API-Key or Authorization: Bearer); "
        "without one, send the prediction_id that /v1/predict returned",
        status=401,
    )


def _logged_prediction(store: FeedbackStore, prediction_id: str) -> LoggedPrediction:
    """The prediction a feedback names: 404 if unknown; 503 for one the API issued that may still be queued
    (the log cannot be written, or it was issued under RECENTLY_ISSUED_S ago by a worker slow to write it
    (a busy database, a slow disk) and the log has not dropped predictions that old)."""
    logged = store.find_prediction(prediction_id)
    if logged is not None:
        return logged
    age_s = store.ids.issued_age_s(prediction_id)
    if age_s is not None:
        write_problem = store.write_problem()  # a fresh look: an idle worker's last error may be stale
        if write_problem:  # issued here: perhaps still queued in another worker, waiting for the database
            raise RequestError(
                f"prediction {prediction_id!r} is not in the log yet: {write_problem}",
                503,
                BUSY_RETRY_AFTER_S if isinstance(write_problem, StoreBusy) else 30,
            )
        if age_s < RECENTLY_ISSUED_S and not store.dropped_from_log(prediction_id):  # still queued elsewhere
            raise RequestError(
                f"prediction {prediction_id!r} was made {max(age_s, 0.0):.1f} s ago and is not in the log "
                "yet; the feedback is not stored: send it again in a few seconds",
                503,
                5,
            )
    raise RequestError(
        f"unknown prediction id {prediction_id[:64]!r}: use an id returned by /v1/predict in the last days, "
        "or send 'text' and 'predicted_label' with the API key or the app token",
        status=404,
    )


def _register_routes(app: Flask) -> None:
    @app.post("/v1/predict")
    def predict() -> Any:
        svc = services()
        caller = _caller()
        body = parse_predict(
            _json_body(), max_batch=svc.settings.max_batch, max_text_chars=svc.settings.max_text_chars
        )
        _rate_limit(svc.texts_limiter, caller, len(body.texts), "texts to score")
        predictions = svc.predictor.predict(body.texts)
        ids = [svc.store.ids.new() for _ in predictions]
        svc.store.log_predictions(
            [
                LoggedPrediction(pid, text, p.label, p.model_version)
                for pid, text, p in zip(ids, body.texts, predictions, strict=True)
            ],
            [p.probabilities for p in predictions],
        )
        languages = gate_for(svc.predictor).identify_many(body.texts)
        payloads = [
            _prediction_payload(pid, p, language)
            for pid, p, language in zip(ids, predictions, languages, strict=True)
        ]
        if body.single:
            return payloads[0]
        return {"predictions": payloads, "model_version": svc.predictor.model_version}

    @app.post("/v1/feedback")
    def feedback() -> Any:
        svc = services()
        caller = _caller()
        _rate_limit(svc.feedback_limiter, caller, 1, "feedback posts")
        body = parse_feedback(
            _json_body(),
            max_text_chars=svc.settings.max_text_chars,
            max_comment_chars=svc.settings.max_comment_chars,
        )
        if body.prediction_id is None and caller.provenance is None:
            _refuse_anonymous_text_feedback(svc.settings)
        if body.prediction_id is not None:
            logged = _logged_prediction(svc.store, body.prediction_id)
            prediction_id, text = logged.prediction_id, logged.text
            predicted_label, model_version = logged.label, logged.model_version
        else:
            assert body.text is not None and body.predicted_label is not None  # parse_feedback ensures it
            text, predicted_label = body.text, body.predicted_label
            model_version = body.model_version or svc.predictor.model_version
            prediction_id = _text_prediction_id(text, predicted_label, model_version)
        record = FeedbackRecord(
            prediction_id=prediction_id,
            text=text,
            predicted_label=predicted_label,
            correct_label=body.label,
            comment=body.comment,
            model_version=model_version,
            created_at=svc.clock(),
            provenance=caller.provenance or "anonymous_by_id",
        )
        try:
            svc.store.add_feedback(record)
        except DuplicateFeedback:
            raise RequestError(
                f"feedback for prediction {prediction_id!r} is already stored (once per prediction)",
                status=409,
            ) from None
        except StoreBusy as exc:
            raise RequestError(
                f"{exc}; the feedback is not stored: send it again in a few seconds", 503, BUSY_RETRY_AFTER_S
            ) from None
        except StoreUnwritable as exc:
            raise RequestError(f"{exc}; the feedback is not stored: send it again later", 503, 30) from None
        # Stored: from here on nothing may fail the request (telemetry is guarded, the drift check too).
        svc.telemetry.metric(FEEDBACK_RECEIVED, 1.0, {"correct": "true" if record.correct else "false"})
        if not record.correct:
            svc.telemetry.trace(
                MISPREDICTION,
                severity="WARNING",
                properties={
                    "prediction_id": prediction_id,
                    "predicted_label": predicted_label,
                    "correct_label": body.label,
                    "model_version": model_version,
                    "text": text[:280],
                    "text_length": str(len(text)),
                    "comment": (body.comment or "")[:280],
                    "provenance": record.provenance,
                },
            )
            try:
                svc.drift.check(svc.predictor.model_version)
            except Exception:
                logger.exception(
                    "drift check failed; the feedback is stored", extra={"prediction_id": prediction_id}
                )
        stored = {
            "prediction_id": prediction_id,
            "label": body.label,
            "predicted_label": predicted_label,
            "correct": record.correct,
            "model_version": model_version,
        }
        return stored, 201

    @app.get("/v1/feedback/stats")
    def feedback_stats() -> Any:
        return services().store.feedback_stats()

    @app.get("/v1/model")
    def model() -> Any:
        svc = services()
        return {
            "model_version": svc.predictor.model_version,
            "labels": list(svc.predictor.labels),
            "metrics": svc.predictor.metrics,
            "limits": {  # the app sizes its inputs by these, so it never offers what the API refuses
                "max_text_chars": svc.settings.max_text_chars,
                "max_comment_chars": svc.settings.max_comment_chars,
                "max_batch": svc.settings.max_batch,
            },
        }

    @app.get("/v1/admin/feedback.csv")
    @require_api_key
    def export_feedback() -> Response:
        if request.args:  # `?since=yesterday` gave every row with a 200: taken for a filtered export
            raise RequestError(
                f"the feedback export takes no query parameters (got {', '.join(sorted(request.args))}): it "
                "gives every correction; filter the CSV afterwards (its created_at column)"
            )
        records = services().store.iter_feedback()
        first = next(records, None)  # an unreadable database is a 503 here, not a cut-off 200 (headers sent)

        def rows() -> Iterator[str]:
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator=CSV_LINE_END)
            writer.writerow(EXPORT_COLUMNS)
            for record in itertools.chain([first] if first is not None else [], records):
                cells = [
                    record.text,
                    record.correct_label,
                    record.predicted_label,
                    record.model_version,
                    record.created_at.isoformat().replace("+00:00", "Z"),
                    record.prediction_id,
                    record.comment or "",
                    record.provenance or "",
                ]
                writer.writerow([spreadsheet_cell(cell) for cell in cells])  # typed by callers: no formulas
                if buffer.tell() > 64 * 1024:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
            yield buffer.getvalue()

        return Response(
            rows(),
            mimetype="text/csv",
            headers={"Content-Disposition": "attachment; filename=buzzwatch-feedback.csv"},
        )

    @app.get("/v1/admin/drift")
    @require_api_key
    def drift_status() -> Any:
        svc = services()
        return svc.drift.status(svc.predictor.model_version)

    @app.get("/healthz")
    def healthz() -> Any:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> Any:
        svc = services()
        if not svc.store.ping():
            return {"status": "database unavailable", "database": svc.store.location}, 503
        ready: dict[str, Any] = {"status": "ready", "model_version": svc.predictor.model_version}
        telemetry_problem = svc.telemetry.problem()
        if telemetry_problem:  # scoring and feedback still work: reported, not a reason to take traffic away
            ready["telemetry"] = telemetry_problem
        write_problem = svc.store.write_problem()
        if write_problem:
            return {**ready, "status": "database not writable", "database": str(write_problem)}, 503
        return ready

    @app.get("/openapi.json")
    def openapi() -> Any:
        return services().openapi
