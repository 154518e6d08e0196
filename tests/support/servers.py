"""Fixtures that start servers, loaded by the root conftest: the Pub/Sub emulator, SMTP, a capture server,
PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from stack.emulator import PubSubEmulator
from stack.ports import free_port
from stack.postgres import PostgresMissing, ThrowawayPostgres
from tests.support.integration import server_fixture


@server_fixture(scope="session")
def pubsub_emulator() -> Iterator[PubSubEmulator]:
    """One emulator for the whole session; tests isolate themselves with unique topic names."""
    with PubSubEmulator() as emulator:
        yield emulator


@pytest.fixture
def emulator_env(pubsub_emulator: PubSubEmulator, monkeypatch: pytest.MonkeyPatch) -> PubSubEmulator:
    """Point google-cloud-pubsub at the shared emulator for this test."""
    for name, value in pubsub_emulator.env().items():
        monkeypatch.setenv(name, value)
    return pubsub_emulator


@server_fixture
def private_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[PubSubEmulator]:
    """An emulator of this test's own, for tests that restart or stop it."""
    with PubSubEmulator() as emulator:
        for name, value in emulator.env().items():
            monkeypatch.setenv(name, value)
        yield emulator


class CaptureServer:
    """A local HTTP server that accepts Application Insights track requests and keeps every envelope."""

    def __init__(self) -> None:
        self.envelopes: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                batch = json.loads(body)
                with capture._lock:
                    capture.paths.append(self.path)
                    capture.envelopes.extend(batch)
                reply = json.dumps({"itemsReceived": len(batch), "itemsAccepted": len(batch), "errors": []})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(reply.encode())

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def connection_string(self) -> str:
        return (
            "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
            f"IngestionEndpoint=http://127.0.0.1:{self.port}/"
        )

    def of_type(self, base_type: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.envelopes if e["data"]["baseType"] == base_type]


@server_fixture(scope="module")
def postgres_server() -> Iterator[ThrowawayPostgres]:
    """A throwaway PostgreSQL server (Debian's postgresql package); the test is skipped without it."""
    try:
        server = ThrowawayPostgres().start()
    except PostgresMissing as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def postgres_url(postgres_server: ThrowawayPostgres) -> str:
    """The throwaway PostgreSQL server's URL."""
    return postgres_server.url()


@server_fixture
def appinsights_capture() -> Iterator[CaptureServer]:
    """A capture server on a free loopback port."""
    capture = CaptureServer()
    capture._thread.start()
    yield capture
    capture.server.shutdown()
    capture.server.server_close()


class SmtpSink:
    """An aiosmtpd Controller that keeps each received message; can be stopped and started again."""

    def __init__(self, port: int = 0, refuse_recipients: bool = False) -> None:
        self.port = port or free_port()
        self.refuse_recipients = refuse_recipients
        self.messages: list[Message] = []
        self.controller: Any = None

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.refuse_recipients:
            return "550 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def start(self) -> SmtpSink:
        from aiosmtpd.controller import Controller

        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@server_fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A running SMTP sink on a free loopback port."""
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@server_fixture
def make_smtp_sink() -> Iterator[Callable[..., SmtpSink]]:
    """Start sinks on demand (a given port, or one that refuses recipients); all stopped at the end."""
    sinks: list[SmtpSink] = []

    def make(port: int = 0, refuse_recipients: bool = False) -> SmtpSink:
        sink = SmtpSink(port, refuse_recipients).start()
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        sink.stop()


class HangingSmtpServer:
    """Accepts TCP connections on a loopback port and never says a word (a stuck SMTP server)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="hanging-smtp", daemon=True)
        self._thread.start()

    @property
    def accepted(self) -> int:
        return len(self.connections)

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return  # closed
            self.connections.append(connection)

    def close(self) -> None:
        """Stop listening and drop every connection (clients see the server disconnect)."""
        for sock in (self.listener, *self.connections):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # also wakes the accept() blocked in the other thread
            sock.close()
        self._thread.join(5)


@server_fixture
def hanging_smtp() -> Iterator[HangingSmtpServer]:
    """An SMTP port that hangs every client until `close()`."""
    server = HangingSmtpServer()
    yield server
    server.close()
