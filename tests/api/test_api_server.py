"""The real server: `buzzwatch api` under gunicorn with the shipped champion model.

Ready within 1.5 s of start, at most 250 MB resident for the whole process tree (master + workers, PSS), no
TensorFlow loaded, predictions and feedback over HTTP, and a clean stop on SIGTERM with the prediction
log flushed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from sqlalchemy import create_engine, func, select

from api.store import feedback_table, predictions_table
from api.validation import error_code
from buzzwatch.settings import REPO_ROOT
from buzzwatch.telemetry import API_REQUEST_LATENCY_MS, MISPREDICTION, MODEL_DRIFT_ALERT, read_local
from tests.support.integration import server_fixture

pytestmark = [pytest.mark.integration, pytest.mark.model]

# 2.0 s for a few hours on 2026-12-06, when `buzzwatch api` checked the model and the database, then exec'd
# gunicorn, whose workers imported ONNX Runtime and SQLAlchemy again (1.15-1.79 s of CPU idle): gunicorn's
# master is now that process itself, and its workers fork with those libraries imported (README).
READY_BUDGET_S = 1.5
READY_TRIES = 3  # fresh starts at most, when the load inflates the first one's CPU time past the budget
RSS_BUDGET_MB = 250


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _request(url: str, payload: dict | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    ready_after_s: float
    ready_cpu_s: float
    load_per_cpu: float
    var_dir: Path


def _critical_path_cpu_s(master_pid: int) -> float:
    """CPU seconds on the path to the first ready worker: the master's plus the busiest worker's.

    On an idle machine this is the start-up wall time; unlike wall time, other people's jobs on the
    shared cores do not inflate it.
    """
    master = psutil.Process(master_pid)
    workers = master.children(recursive=True)
    master_cpu = sum(master.cpu_times()[:2])
    return master_cpu + max((sum(worker.cpu_times()[:2]) for worker in workers), default=0.0)


@contextmanager
def _started(var_dir: Path) -> Iterator[Server]:
    """`buzzwatch api` on a free port, state in `var_dir`, ready (its start-up measured); stopped after."""
    port = _free_port()
    env = {
        **os.environ,
        "BUZZWATCH_VAR_DIR": str(var_dir),
        "BUZZWATCH_API_KEY": "server-test-key",
        "WEB_CONCURRENCY": "2",
        "BUZZWATCH_DRIFT_MIN_WRONG": "3",
        "BUZZWATCH_DRIFT_MIN_WRONG_SHARE": "0.5",
        "BUZZWATCH_APP_TOKEN": "server-test-app-token",
        "BUZZWATCH_API_FEEDBACK_PER_MIN": "1000",  # one test address sends up to 60 feedback posts
    }
    url = f"http://127.0.0.1:{port}"
    load_per_cpu = os.getloadavg()[0] / len(os.sched_getaffinity(0))
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(REPO_ROOT / ".venv" / "bin" / "buzzwatch"), "api", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        while True:
            try:
                if _request(f"{url}/readyz")[0] == 200:
                    ready_after_s = time.perf_counter() - started
                    break
            except OSError:
                pass
            if process.poll() is not None:
                raise RuntimeError(process.stderr.read().decode() if process.stderr else "server exited")
            if time.perf_counter() - started > 30:
                raise TimeoutError("the API was not ready within 30 s")
            time.sleep(0.01)
        ready_cpu_s = _critical_path_cpu_s(process.pid)
        yield Server(url, process, ready_after_s, ready_cpu_s, load_per_cpu, var_dir)
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


@server_fixture
def server(isolated_var_dir: Path) -> Iterator[Server]:
    """A server of this test's own: for tests that stop it, count what it stored or change its workers."""
    with _started(isolated_var_dir) as started:
        yield started


@server_fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the tests that only send it requests it refuses (nothing stored, nothing changed)."""
    with _started(tmp_path_factory.mktemp("shared-api-var")) as started:
        yield started


@pytest.mark.serial
def test_ready_fast_small_and_without_tensorflow(server: Server, tmp_path: Path) -> None:
    # CPU time is the start-up's own work, but others' jobs on the shared cores still inflate it (caches, the
    # sibling hyperthread, clock speed): one start measured 1.53, 1.81 and 1.54 s at load 6 on 2 cores, and
    # 1.65-1.85 s at load 7-8. Load only adds to it, never takes away, so the least of a few fresh starts is
    # the closest to the start-up's own cost, and a start-up over the budget is over it in every try. Another
    # start only when the ones before all failed it.
    # Wall time means something only when the shared cores are not saturated (under 1 job per core at the
    # start), and is asked of the same starts for the same reason (CI failed once on one start's 1.52 s while
    # the machine ran other work): a start is within budget when both are.
    def within(start: Server) -> bool:
        return start.ready_cpu_s <= READY_BUDGET_S and (
            start.load_per_cpu >= 1.0 or start.ready_after_s <= READY_BUDGET_S
        )

    starts = [server]
    while not any(within(start) for start in starts) and len(starts) < READY_TRIES:
        with _started(tmp_path / f"try-{len(starts)}") as again:
            starts.append(again)
    report = "; ".join(
        f"{start.ready_cpu_s:.2f} s CPU on the critical path, ready after {start.ready_after_s:.2f} s wall "
        f"at load {start.load_per_cpu:.1f} per core"
        for start in starts
    )
    print(f"starts: {report}")
    assert any(within(start) for start in starts), f"no start within {READY_BUDGET_S} s: {report}"
    for _ in range(50):  # warm the workers up before reading their memory
        assert _request(f"{server.url}/v1/predict", {"texts": ["delayed again, thanks a lot"] * 32})[0] == 200
    master = psutil.Process(server.process.pid)
    processes = [master, *master.children(recursive=True)]
    assert len(processes) == 3  # gunicorn master + 2 workers
    # PSS splits each shared page (Python, numpy, ONNX Runtime libraries) between the processes that map
    # it: the sum is what the server holds in memory (what a container limit sees). The RSS sum counts
    # shared pages once per process, so it is printed too, for the record.
    rss_mb = [process.memory_info().rss / 2**20 for process in processes]
    pss_mb = sum(process.memory_full_info().pss for process in processes) / 2**20
    per_process = [round(mb) for mb in rss_mb]
    print(f"{pss_mb:.0f} MB PSS in all; RSS per process {per_process}, summed {sum(rss_mb):.0f} MB")
    assert pss_mb <= RSS_BUDGET_MB, f"{pss_mb:.0f} MB resident (PSS) for master + workers"
    assert max(rss_mb) <= RSS_BUDGET_MB
    for process in processes:
        mapped = Path(f"/proc/{process.pid}/maps").read_text()
        assert "tensorflow" not in mapped and "keras" not in mapped


def test_predict_feedback_and_export_over_http_then_clean_stop(server: Server) -> None:
    status, body = _request(
        f"{server.url}/v1/predict", {"text": "@AirParadis lost my bag, worst airline ever"}
    )
    assert status == 200
    prediction = json.loads(body)
    assert prediction["label"] == "negative"
    status, _ = _request(
        f"{server.url}/v1/feedback", {"prediction_id": prediction["prediction_id"], "label": "negative"}
    )
    assert status == 201
    status, csv_body = _request(
        f"{server.url}/v1/admin/feedback.csv", headers={"X-API-Key": "server-test-key"}
    )
    assert status == 200 and csv_body.decode().startswith("text,label,")
    status, body = _request(f"{server.url}/v1/predict", {"texts": ["ok flight"] * 5})
    assert status == 200 and len(json.loads(body)["predictions"]) == 5
    status, body = _request(f"{server.url}/v1/predict", {"text": ""})
    assert status == 400 and "empty" in json.loads(body)["message"]

    stopping = time.perf_counter()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0
    # Well within Cloud Run's 10 s: workers forked beside ONNX Runtime's telemetry thread hung at their exit
    # and were killed at gunicorn's graceful_timeout (20.4 s, when it was 20 s).
    assert time.perf_counter() - stopping < 10
    engine = create_engine(f"sqlite:///{server.var_dir / 'buzzwatch.db'}")
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(predictions_table)).scalar_one() == 6
        assert connection.execute(select(func.count()).select_from(feedback_table)).scalar_one() == 1
    engine.dispose()
    latencies = read_local(server.var_dir, "metrics", API_REQUEST_LATENCY_MS)
    series = {(m["dimensions"]["route"], m["dimensions"]["status"]) for m in latencies}
    assert {("/v1/predict", "200"), ("/v1/predict", "400"), ("/v1/feedback", "201")} <= series


def _feedback_pids(var_dir: Path) -> set[int]:
    return {trace["pid"] for trace in read_local(var_dir, "traces") if trace["message"] == MISPREDICTION}


def test_two_workers_send_one_drift_alert_and_trace_every_misprediction(server: Server) -> None:
    # A new connection each time: gunicorn spreads them over both workers, though on a loaded machine one
    # worker can take a long run of them (60 in a row once, at load 4), so go on until both have served
    # feedback, for at most 30 s.
    sent, deadline = 0, time.monotonic() + 30
    while sent < 8 or (len(_feedback_pids(server.var_dir)) < 2 and time.monotonic() < deadline):
        status, body = _request(
            f"{server.url}/v1/predict", {"text": f"I love this airline, best crew ever {sent}"}
        )
        prediction = json.loads(body)
        assert prediction["label"] == "positive"
        status, _ = _request(
            f"{server.url}/v1/feedback", {"prediction_id": prediction["prediction_id"], "label": "negative"}
        )
        assert status == 201
        sent += 1
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0
    assert len(read_local(server.var_dir, "events", MODEL_DRIFT_ALERT)) == 1
    assert len(list((server.var_dir / "outbox").glob("*.eml"))) == 1
    traces = [trace for trace in read_local(server.var_dir, "traces") if trace["message"] == MISPREDICTION]
    assert len(traces) == sent
    assert len({trace["pid"] for trace in traces}) == 2, "both workers should have served feedback"


def _read_response(connection: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length, read off a kept-alive socket."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = connection.recv(65536)
        if not chunk:
            raise ConnectionError(f"the server closed the connection; received {buffer[:80]!r}")
        buffer += chunk
    head, body = buffer.split(b"\r\n\r\n", 1)
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in header_lines)}
    while len(body) < int(headers["content-length"]):
        chunk = connection.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection mid-body")
        body += chunk
    return int(status_line.split()[1]), headers, body


def test_keep_alive_connection_survives_an_answer_that_did_not_read_the_body(shared_server: Server) -> None:
    body = json.dumps({"text": "delayed " * 25_000}).encode()  # 200 KB, under the 2 MiB limit
    refusals = [("/no-such-route", "application/json", 404), ("/v1/predict", "text/plain", 415)]
    port = int(shared_server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        for round_number in range(3):
            for path, content_type, status in refusals:
                head = (
                    f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: {content_type}\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                ).encode()
                connection.sendall(head)
                if round_number == 1:  # the body in a second write, after the headers
                    time.sleep(0.05)
                connection.sendall(body)
                answered, headers, _ = _read_response(connection)
                assert (answered, headers.get("connection")) == (status, "keep-alive")
                connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
                assert _read_response(connection)[0] == 200, f"after the {status} of round {round_number}"


def test_a_stop_closes_idle_keep_alive_connections_at_once(server: Server) -> None:
    """Cloud Run's front end keeps connections alive, and kills the container 10 s after its SIGTERM.

    gunicorn's threaded worker waited for every open connection, idle ones too, until its graceful timeout
    (20 s then): the worker was killed before its exit steps (the prediction log's last flush, the mailer's
    close). An idle connection has nothing in flight, so the stop closes it at once."""
    port = int(server.url.rsplit(":", 1)[1])
    connections = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(4)]
    try:
        for number, connection in enumerate(connections):  # new connections: both workers hold some
            payload = json.dumps({"text": f"kept alive {number}"}).encode()
            connection.sendall(
                b"POST /v1/predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(payload)}\r\n\r\n".encode()
                + payload
            )
            answered, headers, _ = _read_response(connection)
            assert (answered, headers.get("connection")) == (200, "keep-alive")
        stopping = time.perf_counter()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
        assert time.perf_counter() - stopping < 5
        for connection in connections:
            assert connection.recv(1) == b""  # closed by the server, not left open
    finally:
        for connection in connections:
            connection.close()
    engine = create_engine(f"sqlite:///{server.var_dir / 'buzzwatch.db'}")
    with engine.connect() as connection:  # the exit steps ran: every prediction was logged
        assert connection.execute(select(func.count()).select_from(predictions_table)).scalar_one() == 4
    engine.dispose()


def test_who_may_write_feedback_over_http(server: Server) -> None:
    by_text = {"text": "free text from anyone", "predicted_label": "positive", "label": "negative"}
    status, body = _request(f"{server.url}/v1/feedback", by_text)
    assert status == 401 and "prediction_id" in json.loads(body)["message"]
    app = {"Authorization": "Bearer server-test-app-token"}
    assert _request(f"{server.url}/v1/feedback", by_text, headers=app)[0] == 201
    status, body = _request(f"{server.url}/v1/predict", {"text": "lovely crew"})
    prediction_id = json.loads(body)["prediction_id"]
    assert (
        _request(f"{server.url}/v1/feedback", {"prediction_id": prediction_id, "label": "neutral"})[0] == 201
    )
    status, csv_body = _request(
        f"{server.url}/v1/admin/feedback.csv", headers={"X-API-Key": "server-test-key"}
    )
    rows = list(csv.DictReader(io.StringIO(csv_body.decode())))
    assert [(row["text"], row["provenance"]) for row in rows] == [
        ("free text from anyone", "app_token"),
        ("lovely crew", "anonymous_by_id"),
    ]


def test_a_disk_that_refuses_writes_is_a_clear_503_then_nothing_is_lost(server: Server) -> None:
    database = str((server.var_dir / "buzzwatch.db").resolve())
    workers = psutil.Process(server.process.pid).children()
    # From here every write of the workers to any file fails (EFBIG), as on a full or read-only disk: a
    # file-size limit of 0 needs no privilege, unlike a mount, and chmod does not stop root.
    for worker in workers:
        worker.rlimit(psutil.RLIMIT_FSIZE, (0, psutil.RLIM_INFINITY))
    try:
        status, body = _request(f"{server.url}/v1/predict", {"texts": [f"lovely crew {n}" for n in range(8)]})
        assert status == 200  # scoring needs no disk
        prediction_ids = [p["prediction_id"] for p in json.loads(body)["predictions"]]
        for prediction_id in prediction_ids[:4]:  # whichever worker answers: a 503 naming the database
            status, body = _request(
                f"{server.url}/v1/feedback", {"prediction_id": prediction_id, "label": "neutral"}
            )
            assert status == 503, body
            assert database in json.loads(body)["message"]
        status, body = _request(f"{server.url}/readyz")
        assert status == 503 and database in json.loads(body)["database"]
    finally:
        for worker in workers:
            worker.rlimit(psutil.RLIMIT_FSIZE, (psutil.RLIM_INFINITY, psutil.RLIM_INFINITY))
    deadline = time.monotonic() + 10
    while _request(f"{server.url}/readyz")[0] != 200:
        assert time.monotonic() < deadline, "still not ready 10 s after the disk came back"
        time.sleep(0.1)
    # Each worker's writer writes its queue again within a flush interval (0.2 s) once it is asked; on a
    # loaded machine that takes longer, and the worker that answers may not be the one holding the id (a 404
    # until the holder has written it), so each id gets until the deadline, and must then be stored once.
    deadline = time.monotonic() + 20
    for prediction_id in prediction_ids:
        while True:
            status, body = _request(
                f"{server.url}/v1/feedback", {"prediction_id": prediction_id, "label": "neutral"}
            )
            if status not in (404, 503) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert status == 201, body


@pytest.mark.parametrize(
    ("request_bytes", "status", "says"),
    [
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 400, "Request Line is too large"),
        (b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431, "8190 bytes each"),
        (b"GET /healthz HTTP/1.1\r\n" + b"X-Many: 1\r\n" * 120 + b"\r\n", 431, "at most 100 header fields"),
        (b"NOT A REQUEST LINE\r\n\r\n", 400, "Invalid"),
        (b"GET /healthz HTTP/9.9\r\nHost: t\r\n\r\n", 400, "HTTP Version"),
        (b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: br\r\n\r\n", 501, "br"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400, "LENGTH"),
    ],
    ids=["request-line-too-long", "header-too-large", "too-many-headers", "bad-request-line",
         "bad-http-version", "unsupported-transfer-coding", "length-and-chunked"],
)  # fmt: skip
def test_gunicorn_s_own_refusals_are_json_like_the_app_s(
    shared_server: Server, request_bytes: bytes, status: int, says: str
) -> None:
    """Refused before the app runs, these were gunicorn's HTML pages while every other error is JSON."""
    port = int(shared_server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request_bytes)
        answered, headers, body = _read_response(connection)
    assert answered == status
    assert headers["content-type"] == "application/json"
    error = json.loads(body)
    assert error["error"] == error_code(status) and says in error["message"]


def test_a_held_database_lock_costs_a_request_its_budget_and_scoring_goes_on(server: Server) -> None:
    """A stray `sqlite3` shell in BEGIN EXCLUSIVE held each feedback by id 30 s before its 503: eight of them
    took every thread of both workers (2 x 4) and /v1/predict waited behind them."""
    status, body = _request(f"{server.url}/v1/predict", {"texts": [f"lost my bag {n}" for n in range(8)]})
    prediction_ids = [prediction["prediction_id"] for prediction in json.loads(body)["predictions"]]
    shell = sqlite3.connect(server.var_dir / "buzzwatch.db", isolation_level=None)
    shell.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=9) as pool:
            feedback = [
                pool.submit(
                    _request,
                    f"{server.url}/v1/feedback",
                    {"prediction_id": prediction_id, "label": "neutral"},
                )
                for prediction_id in prediction_ids
            ]
            scoring = pool.submit(_request, f"{server.url}/v1/predict", {"text": "still scoring?"})
            assert scoring.result()[0] == 200
            answers = [future.result() for future in feedback]
        waited_s = time.monotonic() - started
    finally:
        shell.rollback()
        shell.close()
    assert [status for status, _ in answers] == [503] * 8
    assert all("busy" in json.loads(body)["message"] for _, body in answers)
    assert waited_s < 8.0, waited_s  # a 2 s budget each (BUZZWATCH_API_DB_WAIT_S); 30 s before
    deadline = time.monotonic() + 10  # nothing lost: each is stored once the workers' writers got the lock
    for prediction_id in prediction_ids:
        while True:
            status, body = _request(
                f"{server.url}/v1/feedback", {"prediction_id": prediction_id, "label": "neutral"}
            )
            if status != 503 or time.monotonic() > deadline:
                break
            time.sleep(0.1)  # still queued in the other worker: "send it again in a few seconds"
        assert status == 201, body
