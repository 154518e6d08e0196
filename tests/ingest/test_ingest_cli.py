"""`buzzwatch ingest` as a user runs it (subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from google.api_core.exceptions import NotFound

from buzzwatch.pubsub import ReceivedMessage, pull_messages
from buzzwatch.settings import REPO_ROOT

BUZZWATCH = [sys.executable, "-m", "buzzwatch.cli"]


def _env(tmp_path, name: str) -> dict[str, str]:
    """This process's environment with the ingester's var dir, topic and subscription named after `name`."""
    return {
        **os.environ,
        "BUZZWATCH_VAR_DIR": str(tmp_path),
        "PUBSUB_TWEETS_TOPIC": f"{name}-tweets",
        "PUBSUB_TWEETS_SUBSCRIPTION": f"{name}-worker",
        "LOG_LEVEL": "WARNING",
    }


def _summary(stdout: str) -> dict:
    return next(json.loads(line)["summary"] for line in stdout.splitlines() if line.startswith('{"summary"'))


def _ingest(*arguments: str, env: dict[str, str], **run: object) -> subprocess.CompletedProcess:
    """`buzzwatch ingest ARGUMENTS` run to its end, output captured (text unless `input` is bytes)."""
    text = not isinstance(run.get("input"), bytes)
    return subprocess.run(
        [*BUZZWATCH, "ingest", *arguments], env=env, capture_output=True, text=text, timeout=120, **run
    )


def _tweet_lines(count: int) -> list[str]:
    """`count` valid JetBlue tweets as stdin JSON lines, ids '0'...'count-1'."""
    return [
        json.dumps({"id": str(i), "created_at": "2026-11-25T21:00:00Z", "text": f"@JetBlue {i}"})
        for i in range(count)
    ]


def _receive(subscription: str, count: int, timeout_s: float = 30.0) -> list[ReceivedMessage]:
    """Pull (and ack) until `count` messages arrived; fails naming how many did within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    received: list[ReceivedMessage] = []
    while len(received) < count and time.monotonic() < deadline:
        try:
            received += pull_messages("buzzwatch-local", subscription, max_messages=1000, timeout_s=2)
        except NotFound:  # the ingester creates the subscription when it starts
            time.sleep(0.2)
    assert len(received) >= count, f"only {len(received)} of {count} published tweets arrived"
    return received


@pytest.fixture
def ingest_env(emulator_env, unique_name, tmp_path) -> dict[str, str]:
    """The environment of an ingester publishing to this test's own topic on the emulator."""
    return _env(tmp_path, unique_name)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--source", "replay"], "--input is required"),
        (["--source", "replay", "--input", "absent.csv"], "absent.csv does not exist"),
        (["--source", "x-stream"], "missing required setting X_BEARER_TOKEN"),
        (["--source", "stdin", "--brands", "absent.toml"], "brands file not found"),
        # -1 published all but the last tweet of a replay, and stopped stdin after its first
        (["--source", "stdin", "--limit", "-1"], "--limit is a positive number of tweets, got '-1'"),
        (["--source", "stdin", "--limit", "0"], "--limit is a positive number of tweets, got '0'"),
        (["--source", "stdin", "--speed", "nan"], "--speed is a positive number or 'max'"),
        # each meant "never" without a word
        (
            ["--source", "stdin", "--progress-every", "-5"],
            "--progress-every is a number of seconds, 0 for never",
        ),
        (
            ["--source", "stdin", "--progress-every", "nan"],
            "--progress-every is a number of seconds, 0 for never",
        ),
        (  # it waited on stdin and never read the file
            ["--source", "stdin", "--input", "tweets.csv", "--speed", "60"],
            "--input, --speed: only with --source replay (--source stdin does not read it)",
        ),
        (["--source", "x-stream", "--format", "csv"], "--format: only with --source replay"),
    ],
)
def test_configuration_errors_exit_2_with_a_message(tmp_path, arguments, message):
    env = _env(tmp_path, "unused")
    env.pop("X_BEARER_TOKEN", None)
    result = _ingest(*arguments, env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr


@pytest.mark.integration
def test_replay_of_real_tweets_through_the_command(ingest_env, unique_name):
    source = REPO_ROOT / "data" / "airline_us" / "train.csv"
    result = _ingest(
        "--source", "replay", "--input", str(source), "--speed", "max", "--limit", "500", env=ingest_env
    )
    assert result.returncode == 0, result.stderr
    summary = _summary(result.stdout)
    assert (summary["published"], summary["failed"], summary["bad_input"]) == (500, 0, 0)
    assert summary["without_offset"] == 0  # the airline file's times name their offset (-0800)
    received = _receive(f"{unique_name}-worker", 500)
    assert len({message.message_id for message in received}) == 500


@pytest.mark.integration
def test_stdin_ingest_stops_cleanly_on_sigterm_after_publishing_everything(ingest_env, unique_name):
    process = subprocess.Popen(
        [*BUZZWATCH, "ingest", "--source", "stdin"],
        env=ingest_env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = _tweet_lines(50)
    process.stdin.write("\n".join([*lines[:25], "not json", *lines[25:]]) + "\n")
    process.stdin.flush()  # stdin stays open: the process waits for more until told to stop
    try:
        received = _receive(f"{unique_name}-worker", 50)
    finally:
        process.send_signal(signal.SIGTERM)
    # Its input still open when it exits: the reader thread blocked in stdin's buffered read held its lock,
    # and the interpreter's shutdown aborted on it ("Fatal Python error: _enter_buffered_busy", exit 134).
    process.wait(timeout=30)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0 and "Fatal Python error" not in stderr, stderr
    summary = _summary(stdout)
    assert (summary["published"], summary["bad_input"], summary["failed"]) == (50, 1, 0)
    assert {message.attributes["brand"] for message in received} == {"jetblue"}


@pytest.mark.integration
def test_a_replay_interrupted_while_its_file_is_read_stops_at_once_says_so_and_exits_130(
    ingest_env, tmp_path
):
    """Ctrl-C 1 s into a 200,000-row file was ignored until the whole file was read and sorted (11.6 s),
    and the run exited 0 with nothing published: an interrupted replay looked like a finished one."""
    source = tmp_path / "big.csv"
    rows = (f"{i},2015-02-17T10:00:{i % 60:02d}Z,@united flight {i} is late\n" for i in range(200_000))
    source.write_text("id,created_at,text\n" + "".join(rows))
    process = subprocess.Popen(
        [*BUZZWATCH, "ingest", "--source", "replay", "--input", str(source), "--progress-every", "0.2"],
        env={**ingest_env, "LOG_LEVEL": "INFO"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = []  # the first progress line: its signal handlers are in place and it is reading the file
    while not any("ingest progress" in line for line in seen[-1:]):
        seen.append(process.stdout.readline())
        assert seen[-1], "it ended before reading"
    interrupted = time.monotonic()
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    stdout = "".join(seen) + stdout
    assert time.monotonic() - interrupted < 5.0
    assert process.returncode == 130 and "interrupted before the end of the file" in stderr, stderr
    summary = _summary(stdout)
    assert summary["stopped"] and summary["read"] < 200_000 and summary["failed"] == 0


@pytest.mark.integration
def test_stdin_ingest_skips_a_poison_line_and_publishes_the_lines_after_it(ingest_env, unique_name):
    """A lone surrogate, bytes that are not UTF-8, a document too deep: each skipped and counted alone."""
    lines = [line.encode() for line in _tweet_lines(40)]
    poison = [
        b'{"id": "p1", "created_at": "2026-11-25T21:00:00Z", "text": "@JetBlue \\ud800"}',
        b'{"id": "p2", "created_at": "2026-11-25T21:00:00Z", "text": "@JetBlue \xff\xfe"}',
        b"[" * 100_000 + b"]" * 100_000,
    ]
    result = _ingest(
        "--source", "stdin", env=ingest_env, input=b"\n".join([*lines[:20], *poison, *lines[20:]]) + b"\n"
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    summary = _summary(result.stdout.decode())
    assert (summary["read"], summary["bad_input"], summary["published"]) == (43, 3, 40), summary
    received = _receive(f"{unique_name}-worker", 40)
    assert sorted(json.loads(m.data)["id"] for m in received) == sorted(str(i) for i in range(40))


@pytest.mark.integration
def test_a_paced_replay_logs_progress_while_it_runs(ingest_env, tmp_path):
    """`--speed 600` on a real file runs for minutes: progress lines say it is alive and how far it got."""
    source = tmp_path / "paced.csv"
    rows = [f"{i},2015-02-17T10:{i:02d}:00Z,@united flight {i} is late" for i in range(21)]
    source.write_text("id,created_at,text\n" + "\n".join(rows) + "\n")  # 20 event minutes: 2 s at 600x
    paced = ("--source", "replay", "--input", str(source), "--speed", "600", "--progress-every", "0.4")
    result = _ingest(*paced, env={**ingest_env, "LOG_LEVEL": "INFO"})
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    progress = [record for record in records if record.get("message", "").startswith("ingest progress")]
    assert len(progress) >= 3, result.stdout
    published = [record["accepted"] for record in progress]
    assert published == sorted(published) and 0 < published[-1] <= 21
    assert all(record["total"] == 21 for record in progress)
    assert " of 21 tweets sent, " in progress[-1]["message"]
    assert " given up), event time 2015-02-17T10:" in progress[-1]["message"]
    assert all(0 <= record["published"] <= 21 and record["failed"] == 0 for record in progress), progress
    assert _summary(result.stdout)["published"] == 21


@pytest.mark.integration
def test_a_replay_csv_without_a_needed_column_is_one_line_and_exit_2(ingest_env, tmp_path):
    """It passed the header check (only 'text' was checked) and then skipped every row as bad input."""
    source = tmp_path / "no-created-at.csv"
    source.write_text("id,text,airline\n1,@united lost my bag,United\n", encoding="utf-8")
    result = _ingest("--source", "replay", "--input", str(source), env=ingest_env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "buzzwatch ingest: no-created-at.csv: a replay CSV needs a header with id, created_at and text: "
        "missing column(s) created_at; found airline, id, text"
    ]
