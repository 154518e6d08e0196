"""The detection service's small HTTP server: `/healthz` with each brand's phase, and the app's feed."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from buzzwatch.schema import SchemaError, parse_timestamp
from buzzwatch.settings import CommandError
from buzzwatch.telemetry import RecordingTelemetry
from worker.auth import GoogleTokenVerifier, IdTokenPolicy, TokenVerifier


class HealthSource(Protocol):
    """What /healthz reports: a `DetectionService`, or a `GroupRunner` summing its groups' services."""

    @property
    def totals(self) -> Mapping[str, Any]:
        """Counters (counted, duplicates, not_owned, ...)."""

    @property
    def brand_states(self) -> Mapping[str, Any]:
        """Each brand's phase as of the last commit."""

    @property
    def failing(self) -> Mapping[str, Any] | None:
        """While commits fail: the database, since when, how many failures, the last error."""


def serve_health(
    port: int,
    service: HealthSource,
    feed: RecordingTelemetry | None = None,
    host: str = "127.0.0.1",
    feed_auth: IdTokenPolicy | None = None,
    verifier: TokenVerifier | None = None,
) -> ThreadingHTTPServer:
    """`/healthz` for the container platform and, with a `feed`, the stream's latest figures for the app.

    While the store refuses commits, `/healthz` answers 503, `"status": "failing"`, with `"checkpoint":
    {"database", "since", "failures", "error"}` (no tweet is counted meanwhile). It also says each brand's
    phase as of the last commit: `"brands": {brand: {"state": "learning" | "normal" | "bad_buzz",
    "learning_progress", "minutes_seen", "episode_id"}}`; the feed carries it as the `brand_state` metric
    (dimensions brand and state, value the learning progress).

    `GET /v1/watch/metrics?since=ISO` and `/v1/watch/events?since=ISO` answer `{"records": [...]}` in the
    local sink's line format: what the Streamlit app's Watch it page reads where it cannot read that sink
    (Cloud Run). With `feed_auth` (DETECTION_FEED_AUTH_*), they need the app's ID token (401 otherwise), on
    top of Cloud Run's IAM. It binds loopback unless told otherwise (DETECTION_HOST=0.0.0.0 in a container).
    """
    checker = verifier or GoogleTokenVerifier()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            kind = url.path.removeprefix("/v1/watch/")
            if url.path in ("/healthz", "/readyz"):
                failing = service.failing
                health = {"status": "ok"} if failing is None else {"status": "failing", "checkpoint": failing}
                self._json(
                    200 if failing is None else 503,
                    {**health, **service.totals, "brands": service.brand_states},
                )
            elif feed is not None and url.path.startswith("/v1/watch/") and kind in ("metrics", "events"):
                if feed_auth is not None and not feed_auth.allows(
                    self.headers.get("Authorization", ""), checker
                ):
                    self._json(401, {"error": "missing or invalid ID token for the detection feed"})
                    return
                raw_since = (parse_qs(url.query).get("since") or [None])[0]
                try:  # compared as a moment (an offset, a fraction of a second), not as text
                    since = None if raw_since is None else parse_timestamp(raw_since, "since")
                except SchemaError as exc:
                    self._json(400, {"error": f"{exc} (e.g. 2026-12-05T10:00:00Z)"})
                    return
                self._json(200, {"records": feed.recent(kind, since)})
            else:
                self._json(404, {"error": f"no route {url.path}"})

        def _json(self, status: int, payload: Mapping[str, Any]) -> None:
            body = json.dumps(payload, ensure_ascii=False, default=str).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except (OSError, OverflowError) as exc:  # in use, not an address of this machine, out of range
        raise CommandError(f"cannot serve /healthz on {host}:{port}: {exc}") from None
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
