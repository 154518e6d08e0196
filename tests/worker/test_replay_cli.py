"""`buzzwatch replay`: the command-line contract end to end, with --oracle, on small generated files."""

from __future__ import annotations

import csv
import gc
import gzip
import io
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

import models.language
import worker.replay as replay_module
from buzzwatch.cli import main
from buzzwatch.replay import MAX_REPORTED_ERRORS
from buzzwatch.schema import parse_timestamp
from buzzwatch.zones import BrandIds, BrandsFile
from ingest.brands import BrandBook
from tests.support.pipes import pipe_writer
from tests.support.streams import START, background, burst, scored, simple_tokenize
from worker.cli_replay import _wait_saying_so
from worker.detection import BuzzDetector, DetectorConfig
from worker.detection.explain import named_words
from worker.replay import (
    REPLAY_GC_YOUNG,
    ReplaySummary,
    fewer_collections,
    read_rows,
    replay_rows,
    run_replay,
    scored_batches,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SPIKE = START + timedelta(hours=38)  # day 2: every hour of the day has a baseline
CONTRACT_KEYS = {
    "brand",
    "fired_at",
    "window_start",
    "window_end",
    "negative_share",
    "baseline_share",
    "volume",
    "score",
    "top_terms",
    "sample_ids",
}


def write_csv(
    path: Path,
    tweets: list,
    extra_rows: list[dict] | None = None,
    columns: list[str] | None = None,
    reverse: bool = False,
) -> Path:
    columns = columns or ["id", "created_at", "text", "brand", "label"]
    rows = [
        {
            "id": s.tweet.id,
            "created_at": s.tweet.created_at.isoformat().replace("+00:00", "Z"),
            "text": s.tweet.text,
            "brand": s.tweet.brands[0],
            "label": s.label,
            "author": s.tweet.author_id or "",
        }
        for s in tweets
    ]
    rows += extra_rows or []
    if reverse:
        rows.reverse()
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def tweets() -> list:
    """Two brands for 20 hours; `acme` has a bad buzz at 14:00, `globex` a positive promotion."""
    return (
        background(41, seed=1, brand="acme")
        + background(41, seed=2, brand="globex")
        + burst(SPIKE, 25, 6, text="they lost my bag again #lostbaggage", prefix="buzz")
        + burst(SPIKE, 30, 20, label="positive", text="free upgrades today", prefix="promo", brand="globex")
    )


def read_alerts(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_the_exact_command_writes_the_contracted_alerts(tmp_path: Path, tweets: list) -> None:
    source = write_csv(tmp_path / "in.csv", tweets)
    alerts_out = tmp_path / "alerts.jsonl"
    done = subprocess.run(
        [
            str(REPO_ROOT / ".venv" / "bin" / "buzzwatch"),
            "replay",
            "--input",
            str(source),
            "--alerts-out",
            str(alerts_out),
            "--speed",
            "max",
            "--oracle",
            "--no-reasons",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    alerts = read_alerts(alerts_out)
    assert alerts and all(set(a) >= CONTRACT_KEYS for a in alerts)
    new = [a for a in alerts if a["kind"] == "new"]
    assert [a["brand"] for a in new] == ["acme"]
    fired = parse_timestamp(new[0]["fired_at"])
    assert SPIKE <= fired <= SPIKE + timedelta(minutes=10)
    assert parse_timestamp(new[0]["window_start"]) < fired <= parse_timestamp(new[0]["window_end"])
    assert new[0]["negative_share"] > new[0]["baseline_share"] and new[0]["volume"] > 0
    assert "lost" in named_words(new[0]["top_terms"]) and new[0]["sample_ids"]
    assert "brands tracked: 2" in done.stdout and "tweets/s" in done.stdout


@pytest.mark.model
def test_the_command_scores_in_a_child_what_the_predictor_scores_here(
    tmp_path: Path, tweets: list, capsys: pytest.CaptureFixture
) -> None:
    """The model runs in a process of its own (`models.predictor_process`): the same alerts as the
    Predictor in this process gives the same rows; a model that cannot load is one clear error."""
    from models.predictor import Predictor
    from tests.models.conftest import CHAMPION_DIR

    source = write_csv(tmp_path / "in.csv", tweets)
    command = ["replay", "--input", str(source), "--speed", "max", "--no-reasons", "--quiet"]
    champion = ["--model-uri", str(CHAMPION_DIR)]
    assert main([*command, "--alerts-out", str(tmp_path / "child.jsonl"), *champion]) == 0
    here = io.StringIO()
    model = Predictor.load(str(CHAMPION_DIR))
    detector = BuzzDetector(DetectorConfig.from_env(os.environ))
    run_replay(read_rows(source, False, ReplaySummary()), detector, here, ReplaySummary(), model)
    child = (tmp_path / "child.jsonl").read_text(encoding="utf-8")
    assert child == here.getvalue() != ""

    missing = tmp_path / "no-model"
    capsys.readouterr()
    assert main([*command, "--alerts-out", str(tmp_path / "x.jsonl"), "--model-uri", str(missing)]) == 2
    error = capsys.readouterr().err
    assert "cannot load the model (" in error and str(missing) in error and "--oracle replays" in error


def test_in_process_run_matches_an_unsorted_file(tmp_path: Path, tweets: list) -> None:
    sorted_out, shuffled_out = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    common = ["--speed", "max", "--oracle", "--no-reasons", "--quiet"]
    assert (
        main(
            [
                "replay",
                "--input",
                str(write_csv(tmp_path / "a.csv", tweets)),
                "--alerts-out",
                str(sorted_out),
                *common,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "replay",
                "--input",
                str(write_csv(tmp_path / "b.csv", tweets, reverse=True)),
                "--alerts-out",
                str(shuffled_out),
                *common,
            ]
        )
        == 0
    )
    assert sorted_out.read_text() == shuffled_out.read_text() != ""


def test_bad_rows_are_reported_and_skipped(
    tmp_path: Path, tweets: list, capsys: pytest.CaptureFixture
) -> None:
    bad = [
        {"id": "bad-time", "created_at": "yesterday", "text": "x", "brand": "acme", "label": "negative"},
        {
            "id": "past-the-last-day",
            "created_at": "9999-12-31T23:59:59-05:00",
            "text": "x",
            "brand": "acme",
            "label": "negative",
        },
        {
            "id": "bad-label",
            "created_at": "2026-01-05T10:00:00Z",
            "text": "x",
            "brand": "acme",
            "label": "angry",
        },
        {"id": "", "created_at": "2026-01-05T10:00:00Z", "text": "x", "brand": "acme", "label": "neutral"},
        {
            "id": "no-text",
            "created_at": "2026-01-05T10:00:00Z",
            "text": "",
            "brand": "acme",
            "label": "neutral",
        },
        {  # zero-width space, word joiner, byte-order mark: no visible character, was scored as a tweet
            "id": "invisible-text",
            "created_at": "2026-01-05T10:00:00Z",
            "text": "\u200b\u2060\ufeff",
            "brand": "acme",
            "label": "neutral",
        },
    ]
    source = write_csv(tmp_path / "in.csv", tweets, extra_rows=bad)
    code = main(
        [
            "replay",
            "--input",
            str(source),
            "--alerts-out",
            str(tmp_path / "out.jsonl"),
            "--oracle",
            "--no-reasons",
            "--quiet",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert "not an ISO 8601 timestamp" in captured.err and "'angry' is not one of" in captured.err
    assert "created_at is out of range once in UTC" in captured.err
    assert captured.err.count("empty 'text'") == 2
    assert f"(6 of {len(tweets) + 6} rows skipped)" in captured.out
    assert any(a["kind"] == "new" for a in read_alerts(tmp_path / "out.jsonl"))


def test_a_brand_is_one_brand_however_the_file_spells_it_as_the_ingester_names_it(tmp_path: Path) -> None:
    """ "United", "united" and " UNITED " were three brands here (three baselines, three alert streams) where
    the ingester resolves all to `united` (`BrandBook.resolve`): replay now names each as the ingester does,
    and a value with no letter or digit of an id (the ingester attributes it to no brand) is a bad row."""
    spellings = [
        "United",
        " UNITED ",
        "united",
        "United Airlines",
        "@united",
        "Delta",
        "SkyLark",
        "Sky-Lark",
        "united,Delta",
        "United; JetBlue | SkyLark",
        "Éole Air",
        "Aéroflot,",
    ]
    lines = [
        {"id": f"t{i}", "created_at": f"2026-01-05T10:{i:02d}:00Z", "text": "late", "brand": brand}
        for i, brand in enumerate([*spellings, "#!", "東京航空"])
    ]
    summary = ReplaySummary()
    rows = read_rows(write_csv(tmp_path / "in.csv", [], lines), False, summary)
    book = BrandBook.load()
    attributed = [book.attribute("late", declared=brand) for brand in spellings]
    assert [row.tweet.brands for row in rows] == attributed
    assert [row.tweet.brands for row in rows] == [
        *[("united",)] * 5,
        ("jetblue",),
        ("skylark",),
        ("skylark",),
        ("united", "jetblue"),
        ("united", "jetblue", "skylark"),
        ("eoleair",),
        ("aeroflot",),
    ]
    assert summary.skipped.count == 2
    assert "brand '#!' has no Latin letter or digit" in summary.skipped.reported[0]
    assert "brand '東京航空' has no Latin letter or digit" in summary.skipped.reported[1]


def test_a_row_naming_two_brands_counts_for_each_as_the_ingester_attributes_it(
    tmp_path: Path, tweets: list
) -> None:
    """A `brand` cell "acme; Globex" is two brands to the ingester (`BrandBook.attribute`), where replay once
    tracked one brand 'acmeglobex' that no baseline knew: the bad buzz now alerts both brands."""
    shared = [
        {
            "id": s.tweet.id,
            "created_at": s.tweet.created_at.isoformat().replace("+00:00", "Z"),
            "text": s.tweet.text,
            "brand": "acme; Globex",
            "label": s.label,
        }
        for s in tweets
        if s.tweet.id.startswith("buzz")
    ]
    own = [s for s in tweets if not s.tweet.id.startswith(("buzz", "promo"))]
    out = tmp_path / "alerts.jsonl"
    argv = ["replay", "--input", str(write_csv(tmp_path / "in.csv", own, shared)), "--alerts-out", str(out)]
    assert main([*argv, "--speed", "max", "--oracle", "--no-reasons", "--quiet"]) == 0
    assert sorted(a["brand"] for a in read_alerts(out) if a["kind"] == "new") == ["acme", "globex"]


@pytest.mark.parametrize(
    ("columns", "oracle", "message"),
    [
        (
            ["id", "created_at", "text"],
            True,
            "missing column(s) brand, label; found created_at, id, text "
            "(the brand column may also be called 'brands' or 'airline')",
        ),
        (["id", "created_at", "text", "brand"], True, "missing column(s) label"),
        (["id", "text", "brand", "label"], False, "missing column(s) created_at"),
    ],
)
def test_missing_columns_are_a_clear_error(
    tmp_path: Path,
    tweets: list,
    capsys: pytest.CaptureFixture,
    columns: list[str],
    oracle: bool,
    message: str,
) -> None:
    source = write_csv(tmp_path / "in.csv", tweets[:10], columns=columns)
    args = ["replay", "--input", str(source), "--alerts-out", str(tmp_path / "out.jsonl")]
    assert main(args + (["--oracle"] if oracle else [])) == 2
    assert message in capsys.readouterr().err


def test_a_json_lines_file_replays_as_the_same_csv(tmp_path: Path, tweets: list) -> None:
    """One tweet object a line, with the CSV's fields (ids as numbers, brands as a list, unknown fields
    ignored), gives the CSV's alerts exactly."""
    lines = [
        {
            "id": int(s.tweet.id) if s.tweet.id.isdigit() else s.tweet.id,
            "created_at": s.tweet.created_at.isoformat(),
            "text": s.tweet.text,
            **({"brands": list(s.tweet.brands)} if index % 2 else {"brand": s.tweet.brands[0]}),
            "label": s.label,
            "author_id": s.tweet.author_id,
            "public_metrics": {"retweet_count": 0},
        }
        for index, s in enumerate(tweets)
    ]
    source = tmp_path / "in.ndjson"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    common = ["--speed", "max", "--oracle", "--no-reasons", "--quiet"]
    outputs = []
    for path in (source, write_csv(tmp_path / "in.csv", tweets)):
        outputs.append(tmp_path / f"alerts-{path.suffix[1:]}.jsonl")
        assert main(["replay", "--input", str(path), "--alerts-out", str(outputs[-1]), *common]) == 0
    assert outputs[0].read_text() == outputs[1].read_text() != ""


def test_bad_json_lines_are_reported_and_their_neighbours_replayed(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    good = {"created_at": "2026-01-05T10:00:00Z", "text": "late again", "brand": "acme", "label": "negative"}
    lines = [
        json.dumps({**good, "id": "1"}),
        "{not json",
        json.dumps([good]),
        json.dumps({"data": [{"id": "2", "text": "@acme late"}], "meta": {}}),  # an X API search page
        json.dumps({**good, "id": "3", "text": {"full": "late"}}),
        json.dumps({**good, "id": "4", "brand": None}),
        json.dumps("a string"),
        "",
        json.dumps({**good, "id": "5"}),
        # numbers, as the ingester refuses them: a float id had lost its last digits (two tweets one id)
        '{"id": 570306133677760513.0, "created_at": "2026-01-05T10:00:00Z", "text": "x", "brand": "acme"}',
        json.dumps({**good, "id": "11", "text": 12345}),
        json.dumps({**good, "id": "12", "brand": 123}),
        json.dumps({**good, "id": 570306133677760513, "author_id": 42}),  # integer ids, as ingest reads them
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert main(["replay", "--input", str(source), "--alerts-out", str(out), "--oracle", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "line 2: not valid JSON" in captured.err
    assert "line 3: a JSON array: a replay reads one tweet object a line" in captured.err
    assert "line 4: an X API v2 object: `buzzwatch ingest --source replay` reads those" in captured.err
    assert "line 5: field 'text' must be a string, not a JSON object" in captured.err
    assert "line 6: empty 'brand'" in captured.err
    assert "line 7: a line must be a tweet object {...}, not a JSON string" in captured.err
    assert "line 10: field 'id' must be a string, not a JSON number" in captured.err
    assert "line 11: field 'text' must be a string, not a JSON number" in captured.err
    assert "line 12: field 'brand' must be a string, not a JSON number" in captured.err
    assert "replayed 3 tweets (9 of 12 rows skipped)" in captured.out


def test_the_airline_data_sets_own_columns_are_read(tmp_path: Path) -> None:
    """data/airline_us's header (airline for the brand, name for the author, created_at with its offset)
    replays as it is, each tweet under its brand id, by its author, with its negative reason."""
    source = tmp_path / "Tweets.csv"
    source.write_text(
        "id,text,label,airline,negativereason,created_at,name\n"
        "1,@united lost my bag,negative,United,Lost Luggage,2015-02-24 11:35:52 -0800,kbosspotter\n"
        "2,@SouthwestAir thanks,positive,Southwest,,2015-02-24 11:36:00 -0800,ann\n",
        encoding="utf-8",
    )
    rows = read_rows(source, True, ReplaySummary())
    assert [(r.tweet.brands, r.tweet.author_id, r.label, r.reason) for r in rows] == [
        (("united",), "kbosspotter", "negative", "Lost Luggage"),
        (("southwestair",), "ann", "positive", None),
    ]
    assert rows[0].tweet.created_at.isoformat() == "2015-02-24T19:35:52+00:00"


def test_alerts_are_never_written_over_the_input(
    tmp_path: Path, tweets: list, capsys: pytest.CaptureFixture
) -> None:
    """--alerts-out naming the input (or a link to it) emptied the tweet file it was replaying."""
    source = write_csv(tmp_path / "in.csv", tweets[:10])
    before = source.read_bytes()
    (tmp_path / "link.csv").symlink_to(source)
    for target in (source, tmp_path / "link.csv"):
        assert main(["replay", "--input", str(source), "--alerts-out", str(target), "--oracle"]) == 2
        assert f"--alerts-out is the input file {source}" in capsys.readouterr().err
    assert source.read_bytes() == before


def test_an_empty_file_is_called_empty(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """It was "missing column(s) id, created_at, ...; found none (--oracle reads the labels from a 'label'
    column)": a hint about labels for a file with no header at all."""
    source = tmp_path / "in.csv"
    source.write_bytes(b"\xef\xbb\xbf")  # a spreadsheet's empty export: the byte-order mark alone
    args = ["replay", "--input", str(source), "--alerts-out", str(tmp_path / "out.jsonl"), "--oracle"]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert (
        "in.csv: the file is empty: it needs a header line with id, created_at, text, brand, label" in error
    )
    assert "--oracle" not in error


def test_timestamps_without_an_offset_are_counted_as_read_in_utc(
    tmp_path: Path, tweets: list, capsys: pytest.CaptureFixture
) -> None:
    """Local times written without an offset shift every alert by hours: the summary says how many."""
    naive = [
        {
            "id": f"naive-{n}",
            "created_at": "2026-01-05T10:00:00",
            "text": "x",
            "brand": "acme",
            "label": "neutral",
        }
        for n in range(2)
    ]
    source = write_csv(tmp_path / "in.csv", tweets[:10], extra_rows=naive)
    args = ["replay", "--input", str(source), "--alerts-out", str(tmp_path / "out.jsonl"), "--oracle"]
    assert main([*args, "--no-reasons", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "2 rows gave created_at without a UTC offset (Z, +01:00): read as UTC" in out
    source = write_csv(tmp_path / "in.csv", tweets[:10])
    assert main([*args, "--no-reasons", "--quiet"]) == 0
    assert "without a UTC offset" not in capsys.readouterr().out


def test_a_utf16_file_is_named_as_such(tmp_path: Path, tweets: list, capsys: pytest.CaptureFixture) -> None:
    """Read as UTF-8, its header was noise: "missing column(s) id, ...; found  b r a n d ,  c r e a t e d"."""
    source = write_csv(tmp_path / "in.csv", tweets[:5])
    source.write_text(source.read_text(encoding="utf-8"), encoding="utf-16")
    args = ["replay", "--input", str(source), "--alerts-out", str(tmp_path / "out.jsonl"), "--oracle"]
    assert main(args) == 2
    assert f"{source} is UTF-16 text; save it as UTF-8" in capsys.readouterr().err


def test_a_missing_file_and_a_bad_speed_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert (
        main(
            ["replay", "--input", str(tmp_path / "nope.csv"), "--alerts-out", str(tmp_path / "o"), "--oracle"]
        )
        == 2
    )
    assert "input file not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["replay", "--input", "x.csv", "--alerts-out", "o.jsonl", "--speed", "fast"])


def test_a_gzipped_file_or_a_pipe_is_read_as_the_plain_file(tmp_path: Path, tweets: list) -> None:
    """A .csv.gz was "missing column(s) ... found \\udc8b..." and a .jsonl.gz "0 tweets, every line not
    UTF-8"; a pipe (`<(zcat f.gz)`, /dev/stdin) was "input file not found"."""
    plain = write_csv(tmp_path / "in.csv", tweets[:300])
    expected = [row.tweet.id for row in read_rows(plain, True, ReplaySummary())]
    packed = tmp_path / "in.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert [row.tweet.id for row in read_rows(packed, True, ReplaySummary())] == expected
    lines = tmp_path / "in.jsonl.gz"
    with open(plain, newline="", encoding="utf-8") as handle:
        records = [json.dumps(row) for row in csv.DictReader(handle)]
    lines.write_bytes(gzip.compress("\n".join(records).encode()))
    assert [row.tweet.id for row in read_rows(lines, True, ReplaySummary())] == expected
    read_end, write_end = os.pipe()
    writer = threading.Thread(target=lambda: os.write(write_end, packed.read_bytes()) and os.close(write_end))
    writer.start()
    try:
        piped = read_rows(Path(f"/dev/fd/{read_end}"), True, ReplaySummary())
    finally:
        writer.join()
        os.close(read_end)
    assert [row.tweet.id for row in piped] == expected


def test_a_gzipped_file_cut_short_or_damaged_is_one_line_naming_it(
    tmp_path: Path, tweets: list, capsys: pytest.CaptureFixture
) -> None:
    """An interrupted download was an EOFError traceback (and a bad checksum a BadGzipFile one)."""
    packed = gzip.compress(write_csv(tmp_path / "in.csv", tweets[:300]).read_bytes())
    cut, damaged = tmp_path / "cut.csv.gz", tmp_path / "damaged.csv.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    damaged.write_bytes(packed[:-8] + bytes(8))  # its checksum and length zeroed
    for source, says in ((cut, "its gzip data is cut short"), (damaged, "its gzip data is damaged (CRC")):
        assert (
            main(["replay", "--input", str(source), "--alerts-out", str(tmp_path / "o.jsonl"), "--oracle"])
            == 2
        )
        err = capsys.readouterr().err
        assert f"{source}: {says}" in err and "Traceback" not in err


def test_a_folder_or_an_unreadable_file_is_one_line(
    tmp_path: Path, tweets: list, capsys: pytest.CaptureFixture
) -> None:
    """An unreadable file was a PermissionError traceback; a folder "input file not found". (A socket is a
    file no one can open, root included, as root reads a file whatever its mode.)"""
    with socket.socket(socket.AF_UNIX) as listener:
        unreadable = tmp_path / "tweets.sock"
        listener.bind(str(unreadable))
        for source, says in (
            (tmp_path, "is a folder; give a file"),
            (unreadable, "cannot read"),
        ):
            out = str(tmp_path / "out.jsonl")
            assert main(["replay", "--input", str(source), "--alerts-out", out, "--oracle"]) == 2
            err = capsys.readouterr().err
            assert says in err and "Traceback" not in err


def test_speed_n_paces_the_replay_in_event_time(tmp_path: Path, tweets: list) -> None:
    rows = read_rows(write_csv(tmp_path / "in.csv", tweets), True, ReplaySummary())[:200]
    span = (rows[-1].tweet.created_at - rows[0].tweet.created_at).total_seconds()
    slept: list[float] = []
    run_replay(
        rows,
        BuzzDetector(DetectorConfig(), tokenizer=simple_tokenize),
        io.StringIO(),
        ReplaySummary(),
        speed=1000.0,
        wait=lambda seconds: slept.append(seconds) or False,
    )
    # The fake sleep does not pass time, so the last tweet waits for (almost) the whole span / speed.
    assert slept and max(slept) == pytest.approx(span / 1000.0, rel=0.2)


class KeywordModel:
    """A stand-in for the Predictor: 'lost' is negative, everything else neutral."""

    labels = ("negative", "neutral", "positive")
    model_version = "keyword-1"

    def __init__(self) -> None:
        self.calls = 0
        self.texts_scored = 0

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        self.texts_scored += len(texts)
        return np.array(
            [[0.8, 0.1, 0.1] if "lost" in t else [0.1, 0.8, 0.1] for t in texts], dtype=np.float32
        )


def test_model_scoring_runs_in_batches(tmp_path: Path, tweets: list) -> None:
    rows = read_rows(write_csv(tmp_path / "in.csv", tweets), False, ReplaySummary())
    model, summary, out = KeywordModel(), ReplaySummary(), io.StringIO()
    run_replay(
        rows,
        BuzzDetector(DetectorConfig(), tokenizer=simple_tokenize),
        out,
        summary,
        model=model,
        batch_size=500,
        speed=math.inf,
    )
    assert model.calls == math.ceil(len(rows) / 500)
    assert summary.tweets == len(rows) and summary.scoring == "model keyword-1"
    alerts = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [a["brand"] for a in alerts if a["kind"] == "new"] == ["acme"]
    assert all("detected_at" in a for a in alerts)


def test_a_file_larger_than_a_memory_run_replays_the_same_alerts(tmp_path: Path, tweets: list) -> None:
    """Spilled sorted runs merged back: the same rows in (created_at, id) order, so the same alerts."""
    path = write_csv(tmp_path / "in.csv", tweets, reverse=True)
    in_memory = read_rows(path, False, ReplaySummary())
    with replay_rows(path, False, ReplaySummary(), run_items=37) as spilled:
        assert len(spilled) == len(in_memory)
        outputs = []
        for rows in (in_memory, spilled):
            out = io.StringIO()
            run_replay(
                rows,
                BuzzDetector(DetectorConfig(), tokenizer=simple_tokenize),
                out,
                ReplaySummary(),
                KeywordModel(),
            )
            outputs.append(out.getvalue())
    assert outputs[0] == outputs[1] != ""


def test_scoring_reads_the_rows_as_it_goes(tweets: list) -> None:
    """Two batches ahead at most (the one scored, the one being scored), not the whole replay up front."""
    pulled = 0

    def rows() -> Iterator:
        nonlocal pulled
        for index, tweet in enumerate(tweets):
            pulled += 1
            yield replay_module.ReplayRow(index, tweet.tweet, None, None)

    for model in (KeywordModel(), None):
        pulled = 0
        batches = scored_batches(rows(), model, 10)
        assert len(next(batches)) == 10 and pulled <= 20
        assert sum(len(batch) for batch in batches) == len(tweets) - 10 and pulled == len(tweets)


def test_a_file_of_bad_rows_keeps_the_first_messages_and_counts_them_all(tmp_path: Path) -> None:
    lines = [
        {"id": f"b{i}", "created_at": "yesterday", "text": "x", "brand": "acme", "label": "neutral"}
        for i in range(MAX_REPORTED_ERRORS + 30)
    ]
    summary = ReplaySummary()
    assert read_rows(write_csv(tmp_path / "in.csv", [], lines), True, summary) == []
    assert summary.skipped.count == MAX_REPORTED_ERRORS + 30
    assert len(summary.skipped.reported) == MAX_REPORTED_ERRORS
    report = io.StringIO()
    summary.skipped.print(report)
    assert report.getvalue().splitlines()[-1] == "... and 30 more skipped rows"
    assert report.getvalue().count("skipped line") == MAX_REPORTED_ERRORS


def test_help_documents_the_contract() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "buzzwatch.cli", "replay", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0
    for flag in ("--input", "--alerts-out", "--speed", "--oracle"):
        assert flag in done.stdout


def test_the_command_collects_the_youngest_generation_less_often_while_it_replays(
    tmp_path: Path, tweets: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading and replaying run under `fewer_collections` (a collection every 700 allocations cost the
    replay process a tenth of its CPU), and the caller's thresholds are back once the command is done."""
    thresholds_while: list[tuple[int, ...]] = []

    def read_and_note(*args: object, **kwargs: object) -> object:
        thresholds_while.append(gc.get_threshold())
        return real_read(*args, **kwargs)

    def replay_and_note(*args: object, **kwargs: object) -> None:
        thresholds_while.append(gc.get_threshold())
        real_replay(*args, **kwargs)

    real_read, real_replay = replay_module.replay_rows, replay_module.run_replay
    monkeypatch.setattr(replay_module, "replay_rows", read_and_note)
    monkeypatch.setattr(replay_module, "run_replay", replay_and_note)
    before = gc.get_threshold()
    source = write_csv(tmp_path / "in.csv", tweets)
    argv = ["replay", "--input", str(source), "--alerts-out", str(tmp_path / "alerts.jsonl"), "--oracle"]
    assert main([*argv, "--no-reasons", "--quiet"]) == 0
    assert thresholds_while == [(REPLAY_GC_YOUNG, *before[1:])] * 2
    assert gc.get_threshold() == before
    assert read_alerts(tmp_path / "alerts.jsonl")


def test_fewer_collections_puts_the_thresholds_back_when_the_block_fails() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError, match="stop"), fewer_collections(12_345):
        assert gc.get_threshold() == (12_345, *before[1:])
        raise RuntimeError("stop")
    assert gc.get_threshold() == before


def test_identical_texts_are_scored_once_per_replay(tmp_path: Path) -> None:
    storm = burst(SPIKE, 10, 30, label="neutral", text="RT @acme: new routes", retweet_of="42")
    rows = read_rows(write_csv(tmp_path / "in.csv", storm), False, ReplaySummary())
    model, summary = KeywordModel(), ReplaySummary()
    run_replay(
        rows,
        BuzzDetector(DetectorConfig(), tokenizer=simple_tokenize),
        io.StringIO(),
        summary,
        model=model,
        batch_size=100,
    )
    assert summary.tweets == len(rows) == 300 and summary.label_counts == {"neutral": 300}
    assert model.texts_scored == model.calls == 1  # three batches of copies: the first scores the text


def test_a_batchs_languages_are_found_while_the_model_scores_it(
    tmp_path: Path, tweets: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Language detection (CLD2, outside the GIL) runs beside the model's call, not after it: a batch's
    scoring waits for the longer of the two, not their sum. Each text keeps its own language."""
    detecting = threading.Event()
    detect = models.language.detect

    def detect_and_say(text: str) -> str:
        detecting.set()
        return detect(text)

    class WaitingModel(KeywordModel):
        def predict_proba(self, texts: list[str]) -> np.ndarray:
            self.overlapped = detecting.wait(timeout=10)
            return super().predict_proba(texts)

    monkeypatch.setattr(models.language, "detect", detect_and_say)
    rows = read_rows(write_csv(tmp_path / "in.csv", tweets), False, ReplaySummary())[:5]
    model = WaitingModel()
    replayed = next(scored_batches(rows, model, 10))
    assert model.overlapped
    assert [s.language for s in replayed] == [detect(row.tweet.text) for row in rows]


def test_a_replay_that_forgets_scored_texts_scores_them_again_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past SCORED_TEXTS_KEPT distinct texts the replay starts afresh: more model calls, the same verdicts."""
    texts = ["they lost my bag", "new routes today", "lost again", "nice crew"]
    lines = [
        {
            "id": f"t{i}",
            "created_at": (SPIKE + timedelta(seconds=i)).isoformat(),
            "text": texts[i % 4],
            "brand": "acme",
            "lang": "fr" if i == 9 else "",
        }
        for i in range(40)
    ]
    columns = ["id", "created_at", "text", "brand", "lang"]
    rows = read_rows(write_csv(tmp_path / "in.csv", [], lines, columns=columns), False, ReplaySummary())

    def replay(kept: int) -> tuple[list[tuple], KeywordModel]:
        monkeypatch.setattr(replay_module, "SCORED_TEXTS_KEPT", kept)
        model = KeywordModel()
        verdicts = [
            (s.tweet.id, s.label, s.probabilities, s.language, s.language_supported)
            for batch in scored_batches(rows, model, 5)
            for s in batch
        ]
        return verdicts, model

    everything, once = replay(1000)
    forgetful, again = replay(2)
    assert once.texts_scored == 4 and again.texts_scored > 4
    assert forgetful == everything
    assert [v[1] for v in everything[:4]] == ["negative", "neutral", "negative", "neutral"]
    assert everything[9][3:] == ("fr", False)  # the row's own language, not its text's first verdict's
    assert everything[1][3:] == ("und", True)


def test_an_optional_author_column_names_each_tweets_author(tmp_path: Path) -> None:
    tweets = [
        scored(f"t{i}", SPIKE, "negative", "late again", author=a) for i, a in enumerate(("ann", "", "bob"))
    ]
    columns = ["id", "created_at", "text", "brand", "label", "author"]
    rows = read_rows(write_csv(tmp_path / "in.csv", tweets, columns=columns), False, ReplaySummary())
    replayed = next(scored_batches(rows, None, 10))
    assert sorted((s.tweet.id, s.tweet.author_id) for s in replayed) == sorted(
        (t.tweet.id, t.tweet.author_id or None) for t in tweets
    )
    without = read_rows(write_csv(tmp_path / "plain.csv", tweets), False, ReplaySummary())
    assert {r.tweet.author_id for r in without} == {None}


def test_each_distinct_brand_cell_is_resolved_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file names a few brands in many rows: each distinct brand cell is resolved once, to the ids each row
    got resolved on its own (also past BRAND_CELLS_KEPT distinct cells, when cells are resolved again)."""

    calls: list[tuple[str, ...]] = []
    resolve_all = BrandIds.resolve_all

    def counting(self: BrandIds, values: Iterable[str]) -> tuple[str, ...]:
        calls.append(tuple(values))
        return resolve_all(self, calls[-1])

    monkeypatch.setattr(BrandIds, "resolve_all", counting)
    cells = ["United", "JetBlue", "united,JetBlue", "Sky-Lark"]
    lines = [
        {"id": f"t{i}", "created_at": f"2026-01-05T10:{i:02d}:00Z", "text": "late", "brand": cells[i % 4]}
        for i in range(60)
    ]
    path = write_csv(tmp_path / "in.csv", [], lines)
    ids = BrandsFile.read().ids()
    rows = read_rows(path, False, ReplaySummary(), ids)
    assert len(calls) == 4
    assert [row.tweet.brands for row in rows[:4]] == [
        ("united",),
        ("jetblue",),
        ("united", "jetblue"),
        ("skylark",),
    ]
    monkeypatch.setattr(replay_module, "BRAND_CELLS_KEPT", 1)
    assert read_rows(path, False, ReplaySummary(), ids) == rows and len(calls) == 4 + 60


def test_the_detector_gets_each_rows_tweet_as_read(tmp_path: Path) -> None:
    """A row's tweet is validated and built once, when the file is read: the scored tweet is that one (its
    file `lang`, its author, source "replay"), not a copy rebuilt from the row's fields."""
    line = {"id": "t1", "created_at": SPIKE.isoformat(), "text": " late again ", "brand": " Acme "}
    columns = ["id", "created_at", "text", "brand", "lang", "author"]
    path = write_csv(tmp_path / "in.csv", [], [{**line, "lang": "de", "author": "ann"}], columns=columns)
    rows = read_rows(path, False, ReplaySummary())
    (replayed,) = next(scored_batches(rows, KeywordModel(), 10))
    tweet = replayed.tweet
    assert tweet is rows[0].tweet
    assert (tweet.text, tweet.brands, tweet.lang, tweet.source, tweet.author_id) == (
        "late again",
        ("acme",),
        "de",
        "replay",
        "ann",
    )
    assert (replayed.language, replayed.language_supported, replayed.scored_at) == ("de", False, SPIKE)


def test_a_bad_buzz_written_by_one_author_is_one_voice(tmp_path: Path) -> None:
    rant = burst(SPIKE, 25, 6, text="they lost my bag again #lostbaggage", prefix="rant", author="ranter")
    tweets = background(41, seed=1) + rant
    columns = ["id", "created_at", "text", "brand", "label", "author"]

    def new_alerts(path: Path) -> list[str]:
        out = io.StringIO()
        detector = BuzzDetector(DetectorConfig(), tokenizer=simple_tokenize)
        run_replay(read_rows(path, True, ReplaySummary()), detector, out, ReplaySummary())
        return [a["kind"] for a in map(json.loads, out.getvalue().splitlines()) if a["kind"] == "new"]

    assert new_alerts(write_csv(tmp_path / "anonymous.csv", tweets)) == ["new"]
    assert new_alerts(write_csv(tmp_path / "authored.csv", tweets, columns=columns)) == []


def test_tweets_in_languages_the_model_does_not_read_are_counted_apart(tmp_path: Path) -> None:
    """A French complaint storm scored by an English model is flagged and never alerts on its own."""
    text = "bagage lost, encore un vol annulé et le service client ne répond jamais"
    french = burst(SPIKE, 25, 6, text=text, prefix="fr")
    tagged = burst(SPIKE, 5, 2, text="they lost my bag again today", prefix="tag", brand="globex")
    rows = read_rows(write_csv(tmp_path / "in.csv", background(41, seed=1) + french), False, ReplaySummary())
    hinted = [
        {
            "id": t.tweet.id,
            "created_at": t.tweet.created_at.isoformat(),
            "text": t.tweet.text,
            "brand": "globex",
            "lang": "de",
        }
        for t in tagged
    ]
    columns = ["id", "created_at", "text", "brand", "lang"]
    rows += read_rows(write_csv(tmp_path / "tagged.csv", [], hinted, columns=columns), False, ReplaySummary())
    rows.sort(key=lambda r: (r.tweet.created_at, r.tweet.id))
    summary, out = ReplaySummary(), io.StringIO()
    run_replay(
        rows, BuzzDetector(DetectorConfig(), tokenizer=simple_tokenize), out, summary, model=KeywordModel()
    )
    assert summary.unsupported_languages == {"fr": len(french), "de": len(tagged)}
    assert summary.detector_stats["unsupported_language"] == len(french) + len(tagged)
    assert not out.getvalue()
    assert any("languages the model does not read" in line for line in summary.lines())

    class BilingualModel(KeywordModel):
        languages = ("en", "fr")

    bilingual, out = ReplaySummary(), io.StringIO()
    run_replay(
        rows,
        BuzzDetector(DetectorConfig(), tokenizer=simple_tokenize),
        out,
        bilingual,
        model=BilingualModel(),
    )
    assert bilingual.unsupported_languages == {"de": len(tagged)}
    assert [json.loads(line)["brand"] for line in out.getvalue().splitlines()][:1] == ["acme"]


@pytest.mark.parametrize("size", ["0", "-2048", "many"])
def test_a_batch_size_that_is_no_count_is_refused(size: str, capsys: pytest.CaptureFixture) -> None:
    """0 and -2048 replayed one tweet per model call without a word (a typo, thousands of times slower)."""
    with pytest.raises(SystemExit) as raised:
        main(["replay", "--input", "in.csv", "--alerts-out", "out.jsonl", "--batch-size", size])
    assert raised.value.code == 2
    assert f"argument --batch-size: '{size}' is not a positive whole number" in capsys.readouterr().err


def test_a_signal_stops_a_paced_replay_with_its_alerts_written(tmp_path: Path, tweets: list) -> None:
    """Ctrl-C (or SIGTERM, as `docker stop` sends) during `--speed N`: the replay stops at once, mid-wait,
    and what it wrote is what a whole replay writes up to then, with the summary; it said "interrupted"
    and printed nothing else."""
    late = scored("late-1", SPIKE + timedelta(days=10), "neutral", "a tweet much later", ("acme",))
    source = write_csv(tmp_path / "in.csv", [*tweets, late])  # 41 h at 50,000x, then 17 s to wait
    whole = tmp_path / "whole.jsonl"
    assert (
        main(["replay", "--input", str(source), "--alerts-out", str(whole), "--oracle", "--no-reasons"]) == 0
    )
    alerts_out = tmp_path / "alerts.jsonl"
    command = [str(REPO_ROOT / ".venv" / "bin" / "buzzwatch"), "replay", "--input", str(source)]
    command += ["--alerts-out", str(alerts_out), "--speed", "50000", "--oracle", "--no-reasons", "--quiet"]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and child.poll() is None:  # until the buzz's first alert is out
            if alerts_out.exists() and alerts_out.read_text(encoding="utf-8").count("\n"):
                break
            time.sleep(0.05)
        time.sleep(0.5)  # past the buzz: waiting for the late tweet
        signalled = time.monotonic()
        child.send_signal(signal.SIGINT)
        stdout, stderr = child.communicate(timeout=30)
    finally:
        child.kill()
    assert time.monotonic() - signalled < 5  # not after the 17-second wait
    assert child.returncode == 130, stderr
    assert "stopped by a signal at" in stdout and "the rest of the file was not replayed" in stdout
    assert f"replayed {len(tweets)} tweets" in stdout and "interrupted" not in stderr
    written = alerts_out.read_text(encoding="utf-8").splitlines()
    expected = whole.read_text(encoding="utf-8").splitlines()
    assert written and written == expected[: len(written)]
    assert any(json.loads(line)["kind"] == "new" for line in written)


def test_a_sigterm_while_the_file_is_read_is_an_interruption(tmp_path: Path, tweets: list) -> None:
    """SIGTERM before the replay began (the file still being read) ended it at once with status 143 and
    nothing said, where Ctrl-C said "interrupted" (130). The input is a pipe that never ends, so the signal
    comes while the file is read: the replay has opened it once the writer's open returns."""
    fifo = tmp_path / "tweets.csv"
    os.mkfifo(fifo)
    command = [str(REPO_ROOT / ".venv" / "bin" / "buzzwatch"), "replay", "--input", str(fifo)]
    command += ["--alerts-out", str(tmp_path / "out.jsonl"), "--oracle", "--quiet"]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with pipe_writer(fifo, child) as writer:  # once the command reads the pipe
            writer.write(write_csv(tmp_path / "part.csv", tweets[:50]).read_text(encoding="utf-8"))
            writer.flush()
            child.send_signal(signal.SIGTERM)
            _, stderr = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == 130, stderr
    assert "buzzwatch replay: interrupted" in stderr and "Traceback" not in stderr


def test_a_long_wait_at_speed_n_is_announced(capsys: pytest.CaptureFixture) -> None:
    """One tweet days after the rest made a `--speed N` replay wait that long without a word."""
    waited: list[float] = []
    assert not _wait_saying_so(lambda seconds: waited.append(seconds) or False, 7200.0)
    assert not _wait_saying_so(lambda seconds: waited.append(seconds) or False, 30.0)
    assert waited == [7200.0, 30.0]
    assert capsys.readouterr().err == "waiting 2.0 h for the next tweet at this --speed (Ctrl-C stops)\n"
