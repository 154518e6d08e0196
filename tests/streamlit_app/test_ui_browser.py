"""End to end in a real headless Chromium: the app served by Streamlit on localhost shows a prediction.

Set BUZZWATCH_SCREENSHOT=docs/images/streamlit_try.png to refresh the README's screenshot.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.cli import streamlit_command
from tests.support.integration import server_fixture

from .cdp_browser import Browser, find_chromium

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@server_fixture
def streamlit_url(api_url: str, tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "BUZZWATCH_API_URL": api_url, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    command = streamlit_command("127.0.0.1", port)  # what `buzzwatch ui` runs
    log = (tmp_path / "streamlit.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((tmp_path / "streamlit.log").read_text())
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    if find_chromium() is None:
        pytest.fail("chromium is missing: apt-get install -y chromium (scripts/ensure-system-packages.sh)")
    chromium = Browser(tmp_path / "chromium-profile")
    yield chromium
    chromium.close()


def test_a_prediction_appears_in_the_browser(streamlit_url: str, browser: Browser, tmp_path: Path) -> None:
    browser.goto(streamlit_url)
    browser.wait_for("document.querySelector('textarea') !== null", timeout_s=60)
    browser.evaluate("document.querySelector('textarea').focus()")
    browser.type_text("@AirParadis thanks, the crew was amazing and the flight was great!")
    browser.evaluate(
        "[...document.querySelectorAll('button')].find(b => b.innerText.trim() === 'Score').click()"
    )
    heading = browser.wait_for(
        "[...document.querySelectorAll('h3')].map(h => h.innerText)"
        ".find(t => /^Positive \\(\\d+%\\)/.test(t))"
    )
    assert heading.startswith("Positive")
    browser.wait_for("document.body.innerText.includes('Is this right?')")
    browser.wait_for(  # the probabilities chart is drawn before the screenshot
        "[...document.querySelectorAll('.vega-embed canvas, .vega-embed svg')]"
        ".some(chart => chart.getBoundingClientRect().width > 0)"
    )
    screenshot = Path(os.environ.get("BUZZWATCH_SCREENSHOT") or tmp_path / "streamlit_try.png")
    browser.screenshot(screenshot)
    assert screenshot.stat().st_size > 10_000
