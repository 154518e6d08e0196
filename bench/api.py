"""Load test of the scoring API with a real load generator (wrk), next to the design it replaces.

    .venv/bin/python bench/api.py                      # champion model, 20 s of load, 2 gunicorn workers
    .venv/bin/python bench/api.py --skip-keras         # only the ONNX API

1. `buzzwatch api` (gunicorn, 2 workers, ONNX Runtime) on a free loopback port; wrk posts single real
   tweets (rotating through 2,000 airline tweets) to /v1/predict, at 2 and at 8 concurrent connections;
   prints requests/s, latency percentiles and the server's memory after the load.
2. In the same run, the replaced design: Flask calling Keras `model.predict` per request
   (bench/api_keras_baseline.py, gunicorn, 1 worker), measured the same way with one connection.

wrk comes from Debian: `apt-get install -y wrk`.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TWEETS_CSV = REPO_ROOT / "data" / "airline_us" / "train.csv"
LUA_SCRIPT = """
local bodies = {}
for line in io.lines("%s") do bodies[#bodies + 1] = line end
local counter = math.random(#bodies)
request = function()
  counter = counter %% #bodies + 1
  return wrk.format("POST", "/v1/predict", {["Content-Type"] = "application/json"}, bodies[counter])
end
"""
UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass
class LoadResult:
    """What wrk measured."""

    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    requests: int
    errors: int

    def line(self) -> str:
        """One human-readable line."""
        return (
            f"{self.requests_per_s:8.1f} req/s   p50 {self.p50_ms:7.2f} ms   p90 {self.p90_ms:7.2f} ms   "
            f"p99 {self.p99_ms:7.2f} ms   ({self.requests} requests, {self.errors} errors)"
        )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _to_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value.strip()).groups()  # type: ignore[union-attr]
    return float(number) * UNITS_MS[unit]


def parse_wrk(output: str) -> LoadResult:
    """Requests/s, latency percentiles and errors from `wrk --latency` output."""
    percentiles = {int(p): _to_ms(v) for p, v in re.findall(r"^\s+(50|90|99)%\s+(\S+)", output, re.MULTILINE)}
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors += int(non_2xx.group(1)) if non_2xx else 0
    return LoadResult(rate, percentiles[50], percentiles[90], percentiles[99], requests, errors)


def tweet_bodies(path: Path, count: int = 2000) -> list[str]:
    """JSON request bodies of real tweets, one per line."""
    with open(TWEETS_CSV, encoding="utf-8", newline="") as handle:
        texts = [row["text"] for row, _ in zip(csv.DictReader(handle), range(count), strict=False)]
    lines = [json.dumps({"text": text}, ensure_ascii=True) for text in texts if text.strip()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lines


def wait_ready(url: str, process: subprocess.Popen, timeout_s: float = 120) -> float:
    """Seconds until /readyz answers 200."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return time.perf_counter() - started
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} not ready after {timeout_s} s")


def run_wrk(url: str, script: Path, connections: int, duration_s: int, threads: int = 1) -> LoadResult:
    """One wrk run against /v1/predict."""
    command = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "--latency", "--timeout", "10s",
        "-s", str(script), url,
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return parse_wrk(output)


def memory_mb(pid: int) -> tuple[float, float]:
    """(RSS summed over the process tree, PSS summed: what the processes really hold together) in MB."""
    import psutil

    master = psutil.Process(pid)
    processes = [master, *master.children(recursive=True)]
    rss = sum(process.memory_info().rss for process in processes) / 2**20
    pss = sum(process.memory_full_info().pss for process in processes) / 2**20
    return rss, pss


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, then wait (gunicorn stops its workers gracefully)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> int:
    """Run both measurements and print them."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-uri", default=None, help="model artifact (default: the shipped champion)")
    parser.add_argument(
        "--duration", type=int, default=20, help="seconds of load on the ONNX API (default 20)"
    )
    parser.add_argument(
        "--connections", default="2,8", help="concurrent connections, one wrk run per value (default 2,8)"
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers of the API (default 2)")
    parser.add_argument(
        "--threads", type=int, default=None, help="threads per worker (default: gunicorn.conf.py)"
    )
    parser.add_argument(
        "--keras-duration", type=int, default=15, help="seconds of load on the Keras baseline"
    )
    parser.add_argument("--skip-keras", action="store_true", help="do not measure the Keras baseline")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is missing: install it with `apt-get install -y wrk` (Debian)", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="buzzwatch-bench-api-") as scratch:
        scratch_dir = Path(scratch)
        bodies = scratch_dir / "bodies.jsonl"
        tweet_count = len(tweet_bodies(bodies))
        script = scratch_dir / "post.lua"
        script.write_text(LUA_SCRIPT % bodies, encoding="utf-8")
        env = {
            **os.environ,
            "BUZZWATCH_VAR_DIR": str(scratch_dir / "var"),
            "WEB_CONCURRENCY": str(args.workers),
            "BUZZWATCH_API_TEXTS_PER_MIN": "0",  # wrk is one client: no per-client limit for the bench
        }
        if args.model_uri:
            env["BUZZWATCH_MODEL_URI"] = args.model_uri
        print(
            f"cores: {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.2f}; "
            f"{tweet_count} tweets"
        )

        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        api = subprocess.Popen(
            [
                str(REPO_ROOT / ".venv" / "bin" / "buzzwatch"),
                "api",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        levels = [int(level) for level in args.connections.split(",")]
        results: dict[int, LoadResult] = {}
        try:
            ready_s = wait_ready(url, api)
            run_wrk(url, script, levels[0], 3)  # warm-up
            for level in levels:
                results[level] = run_wrk(url, script, level, args.duration)
            rss_mb, pss_mb = memory_mb(api.pid)
        finally:
            stop(api)
        memory = f"{pss_mb:.0f} MB PSS for master + workers ({rss_mb:.0f} MB RSS summed)"
        print(
            f"BuzzWatch API (gunicorn x{args.workers}, ONNX Runtime): ready in {ready_s:.2f} s; "
            f"after the load {memory}"
        )
        for level, result in results.items():
            print(f"  {level:3d} connections, {args.duration} s: {result.line()}")
        onnx = max(results.values(), key=lambda result: result.requests_per_s)

        if args.skip_keras:
            return 0
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        keras_server = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", "--pythonpath", str(REPO_ROOT / "bench"),
                "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "1", "--timeout", "120",
                "api_keras_baseline:create_app()",
            ],
            env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"},
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            keras_ready_s = wait_ready(url, keras_server)
            with urllib.request.urlopen(f"{url}/readyz") as response:
                description = json.loads(response.read())["model"]
            run_wrk(url, script, 1, 3)  # warm-up
            keras = run_wrk(url, script, 1, args.keras_duration)
        finally:
            stop(keras_server)
        print(f"Replaced design: Flask + Keras model.predict per request ({description}), "
              f"ready in {keras_ready_s:.2f} s, 1 connection, {args.keras_duration} s:")  # fmt: skip
        print(f"  {keras.line()}")
        speed_up = onnx.requests_per_s / keras.requests_per_s
        p50_ratio = keras.p50_ms / results[levels[0]].p50_ms
        print(f"Speed-up: {speed_up:.0f}x the throughput (best level), p50 {p50_ratio:.0f}x lower")
    return 0


if __name__ == "__main__":
    sys.exit(main())
