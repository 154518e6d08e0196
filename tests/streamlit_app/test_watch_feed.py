"""The Watch page reads every detection instance's feed: one instance per brand partition set."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from buzzwatch.telemetry import LocalTelemetry, RecordingTelemetry
from stack.ports import free_port
from streamlit_app.watch import FeedError, load_records
from worker.detection_service.server import serve_health

pytestmark = pytest.mark.integration  # serves two feeds


def serve_feed(tmp_path: Path, brand: str, request: pytest.FixtureRequest) -> str:
    """A detection service's feed holding one metric of `brand`; its URL."""
    feed = RecordingTelemetry(LocalTelemetry(tmp_path / brand, role="detection"))
    feed.metric("negative_share", 0.5, {"brand": brand})
    port = free_port()
    server = serve_health(port, SimpleNamespace(totals={}, brand_states={}), feed)  # type: ignore[arg-type]
    request.addfinalizer(server.shutdown)
    return f"http://127.0.0.1:{port}"


def test_the_records_of_every_instance_are_merged(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    urls = [serve_feed(tmp_path, brand, request) for brand in ("acme", "globex")]
    one = load_records("metrics", tmp_path, urls[0])
    both = load_records("metrics", tmp_path, " ".join(urls))
    assert {r["dimensions"]["brand"] for r in one.records} == {"acme"}
    assert sorted(r["dimensions"]["brand"] for r in both.records) == ["acme", "globex"]
    assert both.unreachable == {}


def test_an_unreachable_instance_is_named_and_the_others_still_read(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """One instance down made the whole Watch page an error, hiding every other instance's brands."""
    url = serve_feed(tmp_path, "acme", request)
    feed = load_records("metrics", tmp_path, f"{url} http://127.0.0.1:9")
    assert {r["dimensions"]["brand"] for r in feed.records} == {"acme"}
    assert list(feed.unreachable) == ["http://127.0.0.1:9"]
    assert "metrics at http://127.0.0.1:9:" in feed.unreachable["http://127.0.0.1:9"]
    with pytest.raises(FeedError, match=re.escape("at http://127.0.0.1:9:")):
        load_records("metrics", tmp_path, "http://127.0.0.1:9")
