"""`buzzwatch demo --with-api --with-ui`: the app talks to the demo's API, and both outlive the summary."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from stack.ports import port_is_open
from tests.support.stack import start_demo
from worker.server import children_of

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_app_finds_the_demo_api_and_both_stay_up_until_ctrl_c(tmp_path: Path) -> None:
    env = {**os.environ, "BUZZWATCH_VAR_DIR": str(tmp_path)}
    env.pop("BUZZWATCH_API_URL", None)
    demo, lines = start_demo(env, "--tweets", "300", "--speed", "max", "--outbox", "--with-api", "--with-ui")
    try:
        deadline = time.monotonic() + 240
        while not any("stays up" in line for line in lines):
            assert demo.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.5)
        output = "".join(lines)
        assert "Summary" in output
        replayed, counted = re.search(r"tweets replayed: (\d+); counted once: (\d+)", output).groups()
        assert counted == replayed, output  # what the detection service's /healthz says it counted
        api_url = re.search(r"API on (http://127\.0\.0\.1:\d+)", output).group(1)
        app_url = re.search(r"Streamlit app on (http://127\.0\.0\.1:\d+)", output).group(1)
        time.sleep(2)  # well after the summary: both still answer
        assert requests.get(f"{api_url}/readyz", timeout=5).status_code == 200
        assert requests.get(f"{app_url}/_stcore/health", timeout=5).status_code == 200
        children = children_of(demo.pid)  # the demo starts its services in sessions of their own
        app = [pid for pid in children if b"streamlit" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert len(app) == 1
        app_env = Path(f"/proc/{app[0]}/environ").read_bytes().split(b"\0")
        assert f"BUZZWATCH_API_URL={api_url}".encode() in app_env
        # The detection service's mails link the app the demo serves.
        (detection,) = [
            pid for pid in children if b"detect" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        ]
        detection_env = Path(f"/proc/{detection}/environ").read_bytes().split(b"\0")
        assert f"BUZZWATCH_APP_URL={app_url}".encode() in detection_env
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=60) in (0, 1), "".join(lines)  # the summary's verdict, not an interrupt
        api_port = int(api_url.rsplit(":", 1)[1])
        assert not port_is_open("127.0.0.1", api_port)
    finally:
        if demo.poll() is None:  # a failed assertion: SIGTERM stops the demo's whole tree, SIGKILL only it
            demo.terminate()
            try:
                demo.wait(timeout=60)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.wait()
