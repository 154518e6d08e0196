"""The API's gunicorn worker: the answers gunicorn writes itself, before the app sees a request (a request
line or headers too large, a malformed request line or header, an unsupported transfer coding), in the app's
JSON error shape (`{"error": ..., "message": ...}`) rather than gunicorn's HTML page; and a stop that does
not wait for idle keep-alive connections.

gunicorn writes those answers through `gunicorn.util.write_error`; the worker points it at its own
`write_json_error` in its process (the arbiter writes none), so gunicorn still decides the status, logs the
refusal and closes the connection, as it does for every such error.
"""

from __future__ import annotations

import json
import socket

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

from api.validation import error_code


class JsonErrorWorker(ThreadWorker):
    """gunicorn's threaded worker whose own error answers are JSON and whose stop closes idle connections."""

    def init_process(self) -> None:
        """Route gunicorn's error answers through `write_json_error`, then serve."""
        util.write_error = self.write_json_error
        super().init_process()

    def write_json_error(self, sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
        """gunicorn's error answer as the API's JSON error body; the connection is closed after it."""
        message = mesg or reason
        if status_int == 431:  # gunicorn names only the limit's setting: say what the limits are
            message += (
                f" (at most {self.cfg.limit_request_fields} header fields of at most "
                f"{self.cfg.limit_request_field_size} bytes each)"
            )
        body = json.dumps({"error": error_code(status_int), "message": message}).encode()
        head = (
            f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        util.write_nonblock(sock, head.encode("latin-1") + body)

    def murder_keepalived(self) -> None:
        """Close the idle keep-alive connections whose time is up, and all of them once the worker stops.

        gunicorn's graceful stop waits for every open connection until `graceful_timeout`, idle ones
        included, which nothing is in flight on: a front end that keeps connections alive (Cloud Run's)
        made every stop take the whole timeout, past the 10 s Cloud Run allows. gunicorn calls this after
        each wait of its loop, and the stop wakes the loop.
        """
        if not self.alive:
            for connection in self.keepalived_conns:
                connection.timeout = 0.0
        super().murder_keepalived()
