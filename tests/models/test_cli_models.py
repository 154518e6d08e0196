"""`buzzwatch evaluate` and `buzzwatch score`: the exact command-line contract."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
import tracemalloc
from pathlib import Path

import pandas as pd
import pytest

from buzzwatch.cli import main
from buzzwatch.schema import MAX_TEXT_CHARS
from buzzwatch.settings import REPO_ROOT
from models.scoring import score_columns
from tests.support.disks import small_tmpfs
from tests.support.pipes import pipe_writer

CHAMPION = str(Path(__file__).resolve().parents[2] / "models" / "artifacts" / "champion")

pytestmark = pytest.mark.model


def test_evaluate_json(tiny_model, tmp_path, capsys):
    data = tmp_path / "labelled.csv"
    pd.DataFrame(
        {
            "text": ["@united great crew, thanks!", "my bag is lost again", "flight 123 to Boston"],
            "label": ["positive", "negative", "neutral"],
        }
    ).to_csv(data, index=False)
    code = main(["evaluate", "--data", str(data), "--json", "--model-uri", str(tiny_model.artifact_dir)])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= {"accuracy", "macro_f1", "macro_recall", "n", "per_class"}
    assert report["n"] == 3
    assert set(report["per_class"]) == {"negative", "neutral", "positive"}
    assert set(report["per_class"]["negative"]) == {"precision", "recall", "f1", "support"}


def test_evaluate_rejects_unknown_labels(tiny_model, tmp_path, capsys):
    data = tmp_path / "labelled.csv"
    pd.DataFrame({"text": ["hello", "bye", "ok"], "label": ["angry", "", "angry"]}).to_csv(data, index=False)
    code = main(["evaluate", "--data", str(data), "--json", "--model-uri", str(tiny_model.artifact_dir)])
    assert code == 2
    assert "found '' (line 3), 'angry' (line 2)" in capsys.readouterr().err  # '' was shown as nothing


def test_score_adds_columns_and_flags_empty_text(tiny_model, tmp_path):
    source = tmp_path / "in.csv"
    out = tmp_path / "out.csv"
    pd.DataFrame(
        {
            "id": ["1", "2", "3", "4"],
            "text": [
                "@delta worst delay ever",
                "",
                "love this airline",
                "@AirParadis mon vol est annulé encore une fois, le service client est nul",
            ],
        }
    ).to_csv(source, index=False)
    code = main(
        ["score", "--input", str(source), "--output", str(out), "--model-uri", str(tiny_model.artifact_dir)]
    )
    assert code == 0
    scored = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(scored.columns) == [
        "id",
        "text",
        "predicted_label",
        "p_negative",
        "p_neutral",
        "p_positive",
        "language",
        "language_supported",
        "error",
    ]
    assert scored["language_supported"].tolist() == ["True", "True", "True", "False"]
    assert scored.loc[3, "language"] == "fr"
    assert scored.loc[1, "error"] == "empty text"
    assert scored.loc[1, "predicted_label"] == ""
    for row in (0, 2):
        assert scored.loc[row, "error"] == ""
        assert scored.loc[row, "predicted_label"] in {"negative", "neutral", "positive"}
        total = sum(float(scored.loc[row, f"p_{label}"]) for label in ("negative", "neutral", "positive"))
        assert total == pytest.approx(1.0, abs=1e-4)


def test_score_help_names_every_column_it_adds(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["score", "--help"])
    assert exited.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    labels = tuple(json.loads((Path(CHAMPION) / "meta.json").read_text())["labels"])
    missing = [column for column in score_columns(labels) if column not in help_text]
    assert not missing, help_text  # the help once left out language and language_supported


def test_score_without_text_column_fails_clearly(tiny_model, tmp_path, capsys):
    source = tmp_path / "in.csv"
    pd.DataFrame({"tweet": ["hello"]}).to_csv(source, index=False)
    code = main(
        [
            "score",
            "--input",
            str(source),
            "--output",
            str(tmp_path / "out.csv"),
            "--model-uri",
            str(tiny_model.artifact_dir),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert f"{source}: missing column(s) text; found tweet" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out.csv").exists()


def test_score_skips_and_reports_unreadable_rows_and_scores_the_others(tmp_path, capsys):
    """A first row with an unquoted comma made pandas shift every row's text (refused since); a later row
    with too many fields, or a byte that is not UTF-8, failed the whole file: exit 2, nothing scored."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_bytes(
        b"id,text\n1,late again, as usual\n2,great crew\n3,caf\xe9 froid\n4,lost, my, bag\n5,ok\n"
    )
    assert _score(source, out) == 0
    err = capsys.readouterr().err
    assert "skipped line 2: more fields than the header" in err
    assert "skipped line 4: not UTF-8 text (byte 0xe9); save the file as UTF-8" in err
    assert "skipped line 5: more fields than the header" in err
    assert "scored 2 rows, 0 with an error, 3 unreadable row(s) skipped" in err
    scored = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert scored[["id", "text"]].to_dict("records") == [
        {"id": "2", "text": "great crew"},
        {"id": "5", "text": "ok"},
    ]


def test_score_missing_file_and_bad_model(tmp_path, capsys):
    assert main(["score", "--input", str(tmp_path / "nope.csv"), "--output", str(tmp_path / "o.csv")]) == 2
    assert "not found" in capsys.readouterr().err
    source = tmp_path / "in.csv"
    pd.DataFrame({"text": ["hello"]}).to_csv(source, index=False)
    code = main(
        [
            "score",
            "--input",
            str(source),
            "--output",
            str(tmp_path / "o.csv"),
            "--model-uri",
            str(tmp_path / "no-model"),
        ]
    )
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


def _score(source: Path, out: Path) -> int:
    return main(["score", "--input", str(source), "--output", str(out), "--model-uri", CHAMPION])


def test_score_keeps_a_human_label_column(tmp_path):
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    labels = ["positive", "negative", "neutral", "negative"]
    texts = ["@united thanks, great crew", "lost my bag", "flight 12 to Boston", "love it"]
    pd.DataFrame({"text": texts, "label": labels}).to_csv(source, index=False)
    assert _score(source, out) == 0
    scored = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert scored["label"].tolist() == labels
    assert set(scored["predicted_label"]) <= {"negative", "neutral", "positive"}


def test_score_output_keeps_a_text_with_a_carriage_return_in_one_row(tmp_path):
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    texts = ["lost my bag\ragain", "\r", "love it"]
    pd.DataFrame({"text": texts, "id": ["1", "2", "3"]}).to_csv(source, index=False, lineterminator="\r\n")
    assert _score(source, out) == 0
    scored = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert scored["text"].tolist() == texts and scored["id"].tolist() == ["1", "2", "3"]


def test_score_refuses_to_replace_an_input_column(tmp_path, capsys):
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    pd.DataFrame({"text": ["lost my bag"], "p_negative": ["mine"]}).to_csv(source, index=False)
    assert _score(source, out) == 2
    err = capsys.readouterr().err
    assert "p_negative" in err and "never overwritten" in err
    assert not out.exists()


def test_score_refuses_to_write_over_its_input(tmp_path, capsys):
    source = tmp_path / "in.csv"
    pd.DataFrame({"text": ["lost my bag"]}).to_csv(source, index=False)
    before = source.read_bytes()
    assert _score(source, tmp_path / "." / "in.csv") == 2
    assert "is the input" in capsys.readouterr().err
    assert source.read_bytes() == before


@pytest.fixture
def small_disk(tmp_path: Path):
    with small_tmpfs(tmp_path / "disk", "1m") as disk:
        yield disk


def test_score_on_a_full_disk_leaves_the_old_output_whole(tmp_path, small_disk, capsys):
    """The scores are written as they are made: a disk that fills midway leaves the old output as it was."""
    source, out = tmp_path / "in.csv", small_disk / "out.csv"
    pd.DataFrame({"text": ["lost my bag"] * 4000, "note": ["x" * 300] * 4000}).to_csv(source, index=False)
    out.write_text("previous complete output\n")
    assert _score(source, out) == 2
    assert "No space left" in capsys.readouterr().err
    assert out.read_text() == "previous complete output\n"
    assert sorted(path.name for path in small_disk.iterdir()) == ["out.csv"]


def _rows_of_empty_texts(path: Path, rows: int) -> int:
    """A labelled CSV of `rows` rows, a 1,500-character note each, one text in 50 to score; its size."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", "note"])
        for row in range(rows):
            writer.writerow(["lost my bag again" if row % 50 == 0 else "", "negative", "n" * 1500])
    return path.stat().st_size


@pytest.mark.parametrize("command", ["score", "evaluate"])
def test_score_and_evaluate_hold_a_chunk_not_the_file(command, tmp_path, capsys):
    """Both read the whole CSV into memory (a multi-GB export ran out of it): now peak traced memory stays
    far below the file's size (the model's own load excluded: it is loaded once first)."""
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    _rows_of_empty_texts(small, 10)
    size = _rows_of_empty_texts(large, 20_000)  # 30 MB, about 30 chunks of 1,024 rows

    def run(source: Path) -> int:
        if command == "score":
            return _score(source, tmp_path / "out.csv")
        return main(["evaluate", "--data", str(source), "--json", "--model-uri", CHAMPION])

    assert run(small) == 0
    tracemalloc.start()
    try:
        assert run(large) == 0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert size > 30e6 and peak < size / 3  # pandas held the file twice over: peak > 2 x size
    capsys.readouterr()


def _evaluate_json(data: Path, capsys) -> tuple[int, dict, str]:
    code = main(["evaluate", "--data", str(data), "--json", "--model-uri", CHAMPION])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if code == 0 else {}), captured.err


def test_evaluate_averages_over_the_classes_present(tmp_path, capsys):
    data = tmp_path / "labelled.csv"
    pd.DataFrame(
        {
            "text": ["worst airline ever, lost my bag", "thank you so much, great crew!"],
            "label": ["negative", "positive"],
        }
    ).to_csv(data, index=False)
    code, report, err = _evaluate_json(data, capsys)
    assert code == 0
    assert report["absent_labels"] == ["neutral"]
    assert set(report["per_class"]) == {"negative", "positive"}
    present_f1 = [scores["f1"] for scores in report["per_class"].values()]
    assert report["macro_f1"] == pytest.approx(sum(present_f1) / 2)
    assert "no neutral row" in err


def test_evaluate_skips_and_counts_texts_it_cannot_score(tmp_path, capsys):
    data = tmp_path / "labelled.csv"
    pd.DataFrame(
        {
            "text": [
                "lost my bag again",
                "",
                "   ",
                "x" * (MAX_TEXT_CHARS + 1),
                "great crew, thanks",
                "\u200b\u200d\ufe0f",  # no visible character: was scored as the empty text is
            ],
            "label": ["negative", "neutral", "neutral", "negative", "positive", "neutral"],
        }
    ).to_csv(data, index=False)
    code, report, err = _evaluate_json(data, capsys)
    assert code == 0
    assert report["n"] == 2
    assert report["skipped"] == {"empty text": 3, f"text longer than {MAX_TEXT_CHARS:,} characters": 1}
    assert "skipped 3 row(s)" in err and "skipped 1 row(s)" in err


def test_evaluate_registry_uri_without_a_store_fails_clearly_and_creates_nothing(
    tmp_path, capsys, isolated_var_dir
):
    data = tmp_path / "labelled.csv"
    pd.DataFrame({"text": ["lost my bag"], "label": ["negative"]}).to_csv(data, index=False)
    code = main(["evaluate", "--data", str(data), "--model-uri", "models:/buzzwatch-sentiment@champion"])
    assert code == 2
    err = capsys.readouterr().err
    assert "buzzwatch train" in err and "Traceback" not in err
    assert list(isolated_var_dir.iterdir()) == []


@pytest.mark.slow
def test_evaluate_a_named_proxy_set(capsys):
    assert main(["evaluate", "--proxy", "airline_test", "--json", "--model-uri", CHAMPION]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 1132  # the README's airline proxy
    assert report["absent_labels"] == []


@pytest.mark.parametrize("size", ["0", "-1"])
def test_score_refuses_a_batch_size_that_is_no_count(size, tmp_path, capsys):
    with pytest.raises(SystemExit) as raised:
        main(
            [
                "score",
                "--input",
                str(tmp_path / "in.csv"),
                "--output",
                str(tmp_path / "o.csv"),
                "--batch-size",
                size,
            ]
        )
    assert raised.value.code == 2
    assert f"argument --batch-size: '{size}' is not a positive whole number" in capsys.readouterr().err


def test_sigterm_interrupts_score_and_leaves_no_temporary_output(tmp_path):
    """SIGTERM ended `score` at once (143, nothing said) and left a hidden `.out.csv.*.tmp` beside the
    output; it is now Ctrl-C's "interrupted", 130, the temporary file removed. The input is a pipe that
    never ends, so the signal comes mid-run: `score` has opened it once the writer's open returns."""
    fifo, out = tmp_path / "in.csv", tmp_path / "out.csv"
    os.mkfifo(fifo)
    command = [str(REPO_ROOT / ".venv" / "bin" / "buzzwatch"), "score", "--input", str(fifo)]
    child = subprocess.Popen(
        [*command, "--output", str(out), "--model-uri", CHAMPION], stderr=subprocess.PIPE, text=True
    )
    try:
        with pipe_writer(fifo, child) as writer:  # once the command reads the pipe
            writer.write("text\n" + "".join(f"lost my bag again {n}\n" for n in range(3000)))
            writer.flush()
            time.sleep(1.0)  # into the scoring
            child.send_signal(signal.SIGTERM)
            _, stderr = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 130, stderr
    assert "buzzwatch score: interrupted" in stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.csv"]
