"""Telemetry: the local sink shared by processes, Azure envelopes at a capture server."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from buzzwatch import telemetry
from buzzwatch.settings import CommonSettings
from buzzwatch.telemetry import (
    AzureTelemetry,
    GuardedTelemetry,
    LocalTelemetry,
    RecordingTelemetry,
    Telemetry,
    read_alerts,
    read_local,
)


def test_from_settings_picks_local_without_connection_string(tmp_path: Path) -> None:
    settings = CommonSettings.from_env({"BUZZWATCH_VAR_DIR": str(tmp_path)})
    sink = Telemetry.from_settings(settings, role="worker")
    assert isinstance(sink, LocalTelemetry)
    sink.metric(telemetry.NEGATIVE_SHARE, -0.5, {"brand": "united"})
    sink.event(telemetry.BAD_BUZZ_ALERT, {"alert": {"brand": "united", "volume": 3}}, {"score": 4.5})
    sink.trace(telemetry.MISPREDICTION, "warning", {"label": "negative"})
    sink.close()
    (metric,) = read_local(tmp_path, "metrics")
    assert metric["name"] == "negative_share"
    assert metric["value"] == -0.5
    assert metric["dimensions"] == {"brand": "united"}
    assert metric["role"] == "worker"
    assert read_alerts(tmp_path) == [{"brand": "united", "volume": 3}]
    (trace,) = read_local(tmp_path, "traces")
    assert trace["severity"] == "WARNING"
    assert read_local(tmp_path, "events", name="Other") == []
    with pytest.raises(ValueError, match="kind"):
        read_local(tmp_path, "logs")


def _append_many(var_dir: str, worker_id: int) -> None:
    sink = LocalTelemetry(var_dir, role=f"p{worker_id}")
    for index in range(300):
        sink.event("E", {"worker": worker_id, "index": index, "padding": "x" * 5000})


def test_local_sink_is_safe_for_several_processes(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_append_many, args=(str(tmp_path), n)) for n in range(3)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(30)
        assert process.exitcode == 0
    events = read_local(tmp_path, "events")
    assert len(events) == 900
    assert {(e["properties"]["worker"], e["properties"]["index"]) for e in events} == {
        (w, i) for w in range(3) for i in range(300)
    }


def test_read_local_skips_a_partial_last_line(tmp_path: Path) -> None:
    LocalTelemetry(tmp_path).metric(telemetry.TWEET_VOLUME, 4, {"brand": "delta"})
    with open(tmp_path / "telemetry" / "metrics.jsonl", "a") as handle:
        handle.write('{"name": "tweet_vol')
    assert [m["value"] for m in read_local(tmp_path, "metrics")] == [4.0]


def test_read_local_skips_a_line_cut_inside_a_character_and_reads_on(tmp_path: Path) -> None:
    """A write that hit a full disk leaves part of a line; the next one is appended to it. Cut inside a
    character (an emoji of a sample tweet), it was a UnicodeDecodeError for every reader (Watch it, demo)."""
    sink = LocalTelemetry(tmp_path)
    sink.metric(telemetry.TWEET_VOLUME, 4, {"brand": "delta"})
    with open(tmp_path / "telemetry" / "metrics.jsonl", "ab") as handle:
        handle.write('{"name": "tweet_volume", "brand": "lost my bag \U0001f621'.encode()[:-2])
    sink.metric(telemetry.TWEET_VOLUME, 5, {"brand": "delta"})  # joined to the cut line: both unreadable
    sink.metric(telemetry.TWEET_VOLUME, 6, {"brand": "delta"})
    assert [m["value"] for m in read_local(tmp_path, "metrics")] == [4.0, 6.0]


@pytest.mark.integration
def test_azure_envelopes_arrive_at_capture_server(appinsights_capture) -> None:
    sink = AzureTelemetry(appinsights_capture.connection_string, role="worker", export_interval_s=60)
    for label in ("negative", "negative", "positive"):
        sink.metric(telemetry.TWEETS_SCORED, 1, {"brand": "united", "label": label})
    sink.metric(telemetry.SPIKE_SCORE, 2.0, {"brand": "united"})
    sink.metric(telemetry.SPIKE_SCORE, -1.25, {"brand": "united"})  # negative values must not be dropped
    sink.metric(telemetry.PROCESSING_LATENCY_MS, 10, {"stage": "score"})
    sink.metric(telemetry.PROCESSING_LATENCY_MS, 30, {"stage": "score"})
    sink.event(
        telemetry.BAD_BUZZ_ALERT, {"brand": "united", "top_terms": ["late", "gate"]}, {"negative_share": 0.8}
    )
    sink.trace(telemetry.MISPREDICTION, "WARNING", {"predicted": "positive", "correct": "negative"})
    sink.close()  # close delivers everything: the export interval (60 s) never elapsed
    sink.close()

    assert all(path.endswith("/v2.1/track") for path in appinsights_capture.paths)
    metrics = {}
    for envelope in appinsights_capture.of_type("MetricData"):
        assert envelope["iKey"] == "00000000-0000-0000-0000-000000000000"
        assert envelope["tags"]["ai.cloud.role"] == "worker"
        base = envelope["data"]["baseData"]
        (point,) = base["metrics"]
        metrics[(point["name"], tuple(sorted(base["properties"].items())))] = point["value"]
    assert metrics == {
        ("tweets_scored", (("brand", "united"), ("label", "negative"))): 2.0,
        ("tweets_scored", (("brand", "united"), ("label", "positive"))): 1.0,
        ("spike_score", (("brand", "united"),)): -1.25,
        ("processing_latency_ms", (("stage", "score"),)): 20.0,
    }
    (event,) = appinsights_capture.of_type("EventData")
    assert event["data"]["baseData"]["name"] == "BadBuzzAlert"
    assert event["data"]["baseData"]["properties"] == {"brand": "united", "top_terms": '["late", "gate"]'}
    assert event["data"]["baseData"]["measurements"] == {"negative_share": 0.8}
    (message,) = appinsights_capture.of_type("MessageData")
    assert message["data"]["baseData"]["message"] == "Misprediction"
    assert message["data"]["baseData"]["severityLevel"] == 2
    assert message["data"]["baseData"]["properties"]["correct"] == "negative"


@pytest.mark.integration
def test_sigterm_delivers_buffered_telemetry(appinsights_capture, tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        from buzzwatch.cli import stop_on_signals
        from buzzwatch.telemetry import AzureTelemetry
        stop = stop_on_signals()  # what the entry points do with SIGTERM
        sink = AzureTelemetry({appinsights_capture.connection_string!r}, role="pull", export_interval_s=600)
        try:
            sink.metric("tweet_volume", 7, {{"brand": "delta"}})
            sink.event("BadBuzzAlert", {{"brand": "delta"}})
            print("ready", flush=True)
            assert stop.wait(60)
        finally:
            sink.close()
        """
    )
    env = dict(os.environ, APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL="true")
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env, text=True)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    deadline = time.monotonic() + 5
    while len(appinsights_capture.envelopes) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [
        e["data"]["baseData"]["metrics"][0]["value"] for e in appinsights_capture.of_type("MetricData")
    ] == [7.0]
    assert [e["data"]["baseData"]["name"] for e in appinsights_capture.of_type("EventData")] == [
        "BadBuzzAlert"
    ]


def test_recording_telemetry_forwards_everything_and_keeps_the_latest(tmp_path: Path) -> None:
    from buzzwatch.telemetry import BAD_BUZZ_ALERT, RecordingTelemetry, alerts_in

    feed = RecordingTelemetry(LocalTelemetry(tmp_path, role="detection"), capacity=3)
    for minute in range(5):
        feed.metric("negative_share", 0.1 * minute, {"brand": "united", "minute": minute})
    feed.event(BAD_BUZZ_ALERT, {"alert": {"brand": "united", "volume": 40}}, {"score": 5.0})
    feed.trace("a trace is forwarded, not kept")
    assert [r["value"] for r in read_local(tmp_path, "metrics")] == pytest.approx([0, 0.1, 0.2, 0.3, 0.4])
    assert len(read_local(tmp_path, "traces")) == 1
    kept = feed.recent("metrics")
    assert [r["dimensions"]["minute"] for r in kept] == ["2", "3", "4"]  # the capacity keeps the latest
    assert kept[0].keys() >= {"time", "name", "value", "dimensions", "role", "pid"}
    assert feed.recent("metrics", since=datetime(9999, 1, 1, tzinfo=UTC)) == []
    assert alerts_in(feed.recent("events")) == [{"brand": "united", "volume": 40}]
    with pytest.raises(ValueError):
        feed.recent("traces")


@pytest.mark.integration
def test_detection_http_serves_health_and_the_watch_feed_only(tmp_path: Path) -> None:
    import json
    import urllib.error
    import urllib.parse
    import urllib.request
    from types import SimpleNamespace

    from buzzwatch.telemetry import RecordingTelemetry
    from stack.ports import free_port
    from worker.detection_service.server import serve_health

    feed = RecordingTelemetry(LocalTelemetry(tmp_path))
    feed.metric("tweet_volume", 12, {"brand": "delta"})
    port = free_port()
    server = serve_health(port, SimpleNamespace(totals={"counted": 7}, brand_states={}, failing=None), feed)  # type: ignore[arg-type]
    try:
        base = f"http://127.0.0.1:{port}"
        assert json.load(urllib.request.urlopen(f"{base}/healthz"))["counted"] == 7
        records = json.load(urllib.request.urlopen(f"{base}/v1/watch/metrics"))["records"]
        assert [(r["name"], r["value"]) for r in records] == [("tweet_volume", 12.0)]
        written = datetime.fromisoformat(records[0]["time"].replace("Z", "+00:00"))
        # Compared as moments: the same second with an offset (it sorted after, as text, and matched
        # nothing), and the whole second before a record written at .5 s (as text, '.' sorts before 'Z').
        paris = written.astimezone(timezone(timedelta(hours=1))).isoformat()
        whole_second = written.replace(microsecond=0).isoformat().replace("+00:00", "Z")
        for since in (paris, whole_second):
            query = urllib.parse.urlencode({"since": since})
            assert len(json.load(urllib.request.urlopen(f"{base}/v1/watch/metrics?{query}"))["records"]) == 1
        later = (written + timedelta(seconds=1)).isoformat()
        query = urllib.parse.urlencode({"since": later})
        assert json.load(urllib.request.urlopen(f"{base}/v1/watch/metrics?{query}"))["records"] == []
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/v1/watch/metrics?since=yesterday")
        assert refused.value.code == 400  # it was a 200 with no record, silently
        assert json.load(urllib.request.urlopen(f"{base}/v1/watch/events"))["records"] == []
        for path in ("/v1/watch/traces", "/v1/watch/", "/nothing"):
            with pytest.raises(urllib.error.HTTPError) as error:
                urllib.request.urlopen(base + path)
            assert error.value.code == 404
    finally:
        server.shutdown()


def test_a_sink_that_cannot_be_written_fails_no_service(tmp_path: Path) -> None:
    """A metrics file that cannot be appended (here a folder in its place; a full or read-only disk alike)
    raised out of the push worker's flush (a 500 after the tweet was published: scored again and again)
    and the detection service's idle tick (it died). The services' telemetry is guarded: counted, logged,
    named by `problem()`, and the other kinds of record still written."""
    sink = LocalTelemetry(tmp_path, role="detection")
    sink.metric(telemetry.NEGATIVE_SHARE, 0.5, {"brand": "united"})  # the files exist, then one breaks
    metrics = tmp_path / "telemetry" / "metrics.jsonl"
    metrics.unlink()
    metrics.mkdir()
    guarded = RecordingTelemetry(GuardedTelemetry(sink))
    for _ in range(3):
        guarded.metric(telemetry.NEGATIVE_SHARE, 0.5, {"brand": "united"})  # raised before
    guarded.event(telemetry.BAD_BUZZ_ALERT, {"alert": {"brand": "united"}}, {"score": 4.5})
    guarded.close()
    inner = guarded.inner
    assert isinstance(inner, GuardedTelemetry) and inner.failures == 3
    assert inner.problem() is None  # the event after them was written: writing works again
    assert [record["name"] for record in read_local(tmp_path, "events")] == [telemetry.BAD_BUZZ_ALERT]
    assert len(guarded.recent("metrics")) == 3  # the app's feed still has them
