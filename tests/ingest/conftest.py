"""Fixtures for the ingest tests: a local X API stand-in (the emulator fixtures live in the root conftest)."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests

from tests.support.integration import server_fixture

# ---- a local stand-in for the X API v2, serving the recorded payloads in tests/ingest/recorded ----------

RECORDED = Path(__file__).parent / "recorded"


def recorded_json(name: str) -> dict:
    """A recorded X API payload."""
    return json.loads((RECORDED / name).read_text())


def recorded_stream_lines() -> list[bytes]:
    """The recorded filtered-stream messages, one JSON document per line."""
    return [line.encode() for line in (RECORDED / "stream_lines.jsonl").read_text().splitlines() if line]


@dataclass
class StreamScript:
    """What one stream connection does: a status, some lines (b"" is a keep-alive), then close or silence."""

    status: int = 200
    lines: list[bytes] = field(default_factory=list)
    line_interval_s: float = 0.0
    then: str = "close"  # or "silence": keep the connection open and send nothing
    headers: dict[str, str] = field(default_factory=dict)


class FakeXApi:
    """Serves stream rules (stateful), the filtered stream (scripted per connection) and recent search."""

    Script = StreamScript
    recorded_json = staticmethod(recorded_json)
    recorded_stream_lines = staticmethod(recorded_stream_lines)

    def __init__(self) -> None:
        self.rules: dict[str, tuple[str, str]] = {}
        self.rule_errors: list[int] = []  # statuses returned by the next rules calls before normal service
        self.stream_scripts: list[StreamScript] = []
        self.search_responses: list[tuple[int, dict[str, str], dict]] = []
        self.requests: list[dict] = []
        self.stopping = threading.Event()
        self._ids = itertools.count(1891000000000000901)
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _body(self) -> dict | None:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length)) if length else None

            def _json(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def _record(self, body: dict | None = None) -> str:
                url = urlsplit(self.path)
                with api._lock:
                    api.requests.append(
                        {"method": self.command, "path": url.path, "query": parse_qs(url.query), "json": body}
                    )
                return url.path

            def do_GET(self) -> None:
                path = self._record()
                if path == "/2/tweets/search/stream/rules":
                    self._rules_get()
                elif path == "/2/tweets/search/stream":
                    self._stream()
                elif path == "/2/tweets/search/recent":
                    status, headers, payload = api.search_responses.pop(0)
                    self._json(status, payload, headers)
                else:
                    self._json(404, {"title": "Not Found"})

            def do_POST(self) -> None:
                body = self._body()
                self._record(body)
                if api.rule_errors:
                    self._json(api.rule_errors.pop(0), {"title": "Service Unavailable"})
                    return
                if "add" in body:
                    created = []
                    for rule in body["add"]:
                        rule_id = str(next(api._ids))
                        api.rules[rule_id] = (rule["value"], rule.get("tag"))
                        created.append({"id": rule_id, **rule})
                    summary = {"created": len(created), "not_created": 0, "valid": len(created), "invalid": 0}
                    self._json(
                        201,
                        {"data": created, "meta": {"sent": "2026-11-25T21:00:00.000Z", "summary": summary}},
                    )
                else:
                    ids = body["delete"]["ids"]
                    for rule_id in ids:
                        api.rules.pop(rule_id, None)
                    summary = {"deleted": len(ids), "not_deleted": 0}
                    self._json(200, {"meta": {"sent": "2026-11-25T21:00:00.000Z", "summary": summary}})

            def _rules_get(self) -> None:
                if api.rule_errors:
                    self._json(api.rule_errors.pop(0), {"title": "Service Unavailable"})
                    return
                data = [
                    {"id": rule_id, "value": value, "tag": tag} for rule_id, (value, tag) in api.rules.items()
                ]
                meta = {"sent": "2026-11-25T21:00:00.000Z", "result_count": len(data)}
                self._json(200, {"data": data, "meta": meta} if data else {"meta": meta})

            def _stream(self) -> None:
                script = api.stream_scripts.pop(0) if api.stream_scripts else StreamScript(then="silence")
                if script.status != 200:
                    self._json(script.status, {"title": "error", "status": script.status}, script.headers)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for line in script.lines:
                        chunk = line + b"\r\n"
                        self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                        self.wfile.flush()
                        if script.line_interval_s:
                            api.stopping.wait(script.line_interval_s)
                    if script.then == "silence":
                        api.stopping.wait(60)
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except OSError:
                    pass  # the client cut the connection (watchdog or disconnect)
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def mount(self, session: requests.Session) -> None:
        """Send the session's https://api.twitter.com requests to this server."""
        base_url = self.base_url

        class Redirect(requests.adapters.HTTPAdapter):
            def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
                request.url = request.url.replace("https://api.twitter.com", base_url, 1)
                return super().send(request, **kwargs)

        session.mount("https://api.twitter.com", Redirect())

    def paths(self, method: str | None = None) -> list[str]:
        """The paths requested so far (optionally of one method)."""
        return [r["path"] for r in self.requests if method is None or r["method"] == method]


@server_fixture
def fake_x_api() -> Iterator[FakeXApi]:
    """A running FakeXApi on a free loopback port."""
    api = FakeXApi()
    api.thread.start()
    yield api
    api.stopping.set()
    api.server.shutdown()
    api.server.server_close()
