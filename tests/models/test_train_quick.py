"""`buzzwatch train --quick`: the whole champion path in seconds, on a temporary MLflow store."""

from __future__ import annotations

import contextlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

import models.train as train_module
from buzzwatch.cli import main
from models.predictor import ModelLoadError, Predictor
from models.text import NEGATORS
from models.train import CHAMPION_VARIANT, choose_champion
from tests.models.conftest import airline_sample

# A quick train takes about a minute alone; the timeout leaves room for a loaded machine.
pytestmark = [pytest.mark.model, pytest.mark.slow, pytest.mark.timeout(900)]


@dataclass
class Trained:
    """One `buzzwatch train` in a shared store: its exit code, stdout, stderr and the artifacts it made."""

    code: int
    out: str
    err: str
    artifacts: dict[str, Predictor]  # by variant


@dataclass
class QuickStore:
    """A var dir that several quick trains share (MLflow store, cached embeddings, artifacts, Keras files),
    so that tests asking the same of one training read one run instead of training again."""

    var_dir: Path

    def train(self, *args: str) -> Trained:
        """`buzzwatch train --quick ARGS` on this store, its output captured."""
        before = set(self.var_dir.glob("artifacts/*/meta.json"))
        out, err = io.StringIO(), io.StringIO()
        with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
            patch.setenv("BUZZWATCH_VAR_DIR", str(self.var_dir))
            with contextlib.redirect_stderr(err):
                code = main(["train", "--quick", *args])
        made = [Predictor(meta.parent) for meta in set(self.var_dir.glob("artifacts/*/meta.json")) - before]
        return Trained(code, out.getvalue(), err.getvalue(), {p.meta["details"]["variant"]: p for p in made})


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> QuickStore:
    return QuickStore(tmp_path_factory.mktemp("quick-train-var"))


def quick_train(tmp_path, extra_args: tuple[str, ...] = ()) -> int:
    extra = tmp_path / "feedback.csv"
    pd.DataFrame(
        {
            "text": ["@united the new lounge is lovely", "@united still waiting for my refund"],
            "label": ["positive", "negative"],
        }
    ).to_csv(extra, index=False)
    args = ["train", "--quick", "--extra-data", str(extra), "--output", str(tmp_path / "champion")]
    return main([*args, "--skip-reasons", *extra_args])


def test_a_candidate_failing_the_behavioural_checks_is_never_promoted(tmp_path, capsys):
    """A one-epoch model ignores negation: nothing is registered @champion or exported, the command fails."""
    assert quick_train(tmp_path, ("--skip-baseline",)) == 2
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["champion"] is None
    assert all(metrics["behaviour_failures"] > 0 for metrics in summary["variants"].values())
    assert "behavioural checks" in captured.err and "the champion in place stays" in captured.err
    for name, metrics in summary["variants"].items():  # each candidate with its count of failed checks
        assert f"{name} {metrics['behaviour_failures']:.0f}" in summary["refused"]
    assert "registered" not in summary
    assert not (tmp_path / "champion").exists()
    with pytest.raises(ModelLoadError):
        Predictor.load("models:/buzzwatch-sentiment@champion")


def test_choose_champion_never_picks_a_failing_candidate():
    failing = {"name": "best-score", "metrics": {"behaviour_failures": 1.0, "selection_score": 0.9}}
    passing = {"name": "passing", "metrics": {"behaviour_failures": 0.0, "selection_score": 0.6}}
    better = {"name": "better", "metrics": {"behaviour_failures": 0.0, "selection_score": 0.7}}
    assert choose_champion([failing, passing, better])["name"] == "better"
    assert choose_champion([failing]) is None


def test_quick_train_registers_and_exports_the_ensemble(tmp_path, capsys, monkeypatch):
    """The promotion path, with the behavioural checks passed by decree (a one-epoch model cannot)."""
    import models.behaviour

    monkeypatch.setattr(models.behaviour, "behaviour_failures", lambda predictor: [])
    assert quick_train(tmp_path) == 0
    summary = json.loads(capsys.readouterr().out)
    ensemble = f"ensemble-{CHAMPION_VARIANT}"
    assert set(summary["variants"]) == {CHAMPION_VARIANT, ensemble}
    assert summary["variants"][CHAMPION_VARIANT]["onnx_parity_max_abs"] < 1e-4
    assert 0.0 <= summary["variants"][ensemble]["linear_weight"] <= 1.0
    assert summary["champion"] in summary["variants"]
    assert summary["registered"].endswith("@champion")
    assert summary["companions"]["baseline"]

    shipped = Predictor.load(str(tmp_path / "champion"))
    registered = Predictor.load("models:/buzzwatch-sentiment@champion")
    assert shipped.model_version == registered.model_version == summary["model_version"]
    assert shipped.meta["details"]["extra_data_files"] == str(tmp_path / "feedback.csv")
    assert "validation_macro_f1" in shipped.metrics and "validation_ece" in shipped.metrics
    texts = ["@united the new lounge is lovely", "flight delayed again"]
    assert (shipped.predict_proba(texts) == registered.predict_proba(texts)).all()
    assert (shipped.linear is not None) == (summary["champion"] == ensemble)


def test_train_refuses_bad_extra_data(tmp_path, capsys):
    assert main(["train", "--quick", "--extra-data", str(tmp_path / "missing.csv")]) == 2
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"text": ["hi"], "label": ["furious"]}).to_csv(bad, index=False)
    assert (
        main(
            [
                "train",
                "--quick",
                "--extra-data",
                str(bad),
                "--output",
                str(tmp_path / "out"),
                "--skip-baseline",
                "--skip-reasons",
                "--no-register",
            ]
        )
        == 2
    )
    assert "furious" in capsys.readouterr().err


def test_extra_data_is_read_by_the_one_csv_reader(tmp_path) -> None:
    """pandas read a `;` file (a spreadsheet's export) as one column ("lacks column(s) label"), and an
    unclosed quote swallowed the rows after it into one text, trained on silently."""
    semicolons = tmp_path / "semicolons.csv"
    semicolons.write_bytes('\ufefftext;label\nworst flight ever;negative\n"great, crew";positive\n'.encode())
    rows = train_module.read_extra_data((semicolons,), include_untrusted=True)
    assert rows[["text", "label"]].values.tolist() == [
        ["worst flight ever", "negative"],
        ["great, crew", "positive"],
    ]
    unclosed = tmp_path / "unclosed.csv"
    unclosed.write_text('text,label\nok then,neutral\n"late again,negative\nfine,positive\n')
    with pytest.raises(ValueError, match=r"unclosed.csv: line 3: a quote .* never closed"):
        train_module.read_extra_data((unclosed,), include_untrusted=True)


def test_quick_train_of_the_subword_and_emoji_levers(isolated_var_dir, capsys):
    """Issue 11's levers end to end: emoji pre-training, then sub-word rows for unknown tokens that the
    exported artifact computes as training did (no ensemble is built for a sub-word variant)."""
    args = ["train", "--quick", "--variants", "ft-frozen-air5-sub-emoji", "--skip-reasons", "--no-register"]
    main([*args, "--no-export", "--seed", "14", "--embedding-seed", "13"])
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    metrics = summary["variants"]["ft-frozen-air5-sub-emoji"]
    assert set(summary["variants"]) == {"ft-frozen-air5-sub-emoji"}
    assert metrics["onnx_parity_max_abs"] < 1e-4
    assert "emoji pre-training on" in captured.err and "get sub-word rows" in captured.err
    assert "no ensemble" in captured.err
    artifact = next((isolated_var_dir / "artifacts").glob("*/meta.json")).parent
    predictor = Predictor(artifact)
    assert predictor.subwords is not None
    assert predictor.meta["details"]["command"].endswith("--seed 14 --embedding-seed 13")
    assert predictor.predict_proba(["@united flyyying with yooou is a jooooy"]).shape == (1, 3)


NO_EXTRAS = ("--skip-reasons", "--skip-baseline", "--no-register", "--no-export")
DISTIL, NEGLAST = "ft-frozen-air5-distil", "ft-frozen-air5-distil-neglast"
LEXVOCAB, SCOPE = "ft-frozen-air5-distil-lexvocab", "ft-frozen-air5-distil-lexvocab-scope"


@dataclass
class ContinuedRuns:
    """The recipe without negation pairs and with them trained in one process, then the second continued
    from the first's saved Keras file: twice with its generator states, twice after they were deleted."""

    one_process: Trained
    first_phase: Path
    with_states: list[Trained]
    without_states: list[Trained]


@pytest.fixture(scope="module")
def continued_runs(store: QuickStore) -> ContinuedRuns:
    one_process = store.train("--variants", f"{DISTIL},{NEGLAST}", *NO_EXTRAS)
    run_id = one_process.artifacts[DISTIL].meta["details"]["mlflow_run_id"]
    saved = store.var_dir / "keras" / f"{run_id}.keras"

    def continued() -> Trained:
        return store.train("--variants", NEGLAST, "--first-phase", str(saved), *NO_EXTRAS)

    with_states = [continued(), continued()]
    saved.with_suffix(".rng.json").unlink()  # a file saved before the states were
    return ContinuedRuns(one_process, saved, with_states, [continued(), continued()])


@pytest.fixture(scope="module")
def valence_run(store: QuickStore) -> Trained:
    """The lexicon lever and its negation scope, trained in one run."""
    return store.train("--variants", f"{LEXVOCAB},{SCOPE}", *NO_EXTRAS)


def test_quick_train_adds_the_negation_examples_for_the_last_epochs_only(store, continued_runs):
    """The pairs join after a first phase trained without them; a saved first phase is continued, not
    trained again, and the command that reproduces the run names it."""
    err = continued_runs.one_process.err
    err = err[err.index(f"variant 2/2: {NEGLAST}") :]
    first_rows = int(re.search(r"training on (\d+) tweets, up to", err).group(1))
    added = int(re.search(r"(\d+) negation examples join for 2 more epochs", err).group(1))
    assert err.index("tweets, up to") < err.index("negation examples join")
    trained = continued_runs.one_process.artifacts[NEGLAST]
    assert added == 60 and trained.meta["details"]["train_rows"] == first_rows + added
    assert trained.meta["details"]["first_phase"] == "trained"

    saved, continued = continued_runs.first_phase, continued_runs.with_states[0]
    assert f"first phase (no negation examples) from {saved}" in continued.err
    assert "tweets, up to" not in continued.err
    assert "60 negation examples join for 2 more epochs" in continued.err
    assert continued.artifacts[NEGLAST].meta["details"]["first_phase"] == str(saved)
    assert continued.artifacts[NEGLAST].meta["details"]["command"].endswith(f"--first-phase {saved}")

    import keras

    other = keras.models.load_model(saved)
    embedding = other.get_layer("embedding")
    embedding.set_weights([embedding.get_weights()[0][::-1]])  # another vocabulary's rows
    other.save(store.var_dir / "other.keras")
    refused = store.train(
        "--variants", NEGLAST, "--first-phase", str(store.var_dir / "other.keras"), *NO_EXTRAS
    )
    assert refused.code == 2 and "other.keras: its embeddings are not this run's" in refused.err


def test_quick_train_of_the_lexicon_valence_channel(valence_run):
    """Issue 11's lexicon lever end to end: the VADER table on a vocabulary that also takes the lexicon's
    tokens (an emoji the training texts never show), recorded in the artifact, scored as Keras did."""
    metrics = json.loads(valence_run.out)["variants"][LEXVOCAB]
    assert metrics["onnx_parity_max_abs"] < 1e-4
    predictor = valence_run.artifacts[LEXVOCAB]
    valence = predictor.meta["details"]["valence"]
    assert valence["lexicon"].startswith("vadersentiment 3.3.2") and valence["columns"] == [
        "positive",
        "negative",
    ]
    assert (
        f"{LEXVOCAB}: lexicon valence for {valence['tokens_with_valence']} of {len(predictor.vocab)} tokens"
        in valence_run.err
    )
    assert ":smiling_face_with_heart-eyes:" in predictor.vocab.index and "abhor" in predictor.vocab.index
    assert predictor.predict_proba(["😍😍", "i abhor this"]).shape == (2, 3)


def test_quick_train_of_the_negation_scope(valence_run):
    """VADER's negation scope in the graph: the table's negator column and the rule are recorded in the
    artifact, which scores as Keras did."""
    metrics = json.loads(valence_run.out)["variants"][SCOPE]
    assert metrics["onnx_parity_max_abs"] < 1e-4
    predictor = valence_run.artifacts[SCOPE]
    details = predictor.meta["details"]
    negators = len(NEGATORS & set(predictor.vocab.tokens))
    assert negators >= 5 and details["negation_scope"] == {"window": 3, "scale": 0.74, "negators": negators}
    assert details["valence"]["columns"] == ["positive", "negative"]


def test_a_continued_first_phase_gives_the_one_process_model(continued_runs):
    """The continued epochs draw the dropout masks of the one-process run: the first phase saved by the
    recipe without pairs, continued with --first-phase, gives the one-process model bit for bit, run after
    run; from a file without its generator states, runs still agree with each other."""
    texts = list(airline_sample(300)["text"])
    one_process = continued_runs.one_process.artifacts[NEGLAST].predict_proba(texts)
    for run in continued_runs.with_states:
        probabilities = run.artifacts[NEGLAST].predict_proba(texts)
        assert (probabilities == one_process).all() and "no saved generator states" not in run.err
    first, second = continued_runs.without_states
    assert "the continued epochs draw their dropout masks from seed 13" in first.err
    assert (
        first.artifacts[NEGLAST].predict_proba(texts) == second.artifacts[NEGLAST].predict_proba(texts)
    ).all()


def test_each_of_several_seeds_is_a_candidate_and_one_failing_a_check_is_passed_over(tmp_path, monkeypatch):
    """`--seed 13,14`: each seed's LSTM is a candidate on the first seed's embeddings, recorded with the
    command that reproduces it alone; the seed that loses a check (the first, by decree) is passed over
    instead of refusing the whole run, as one seed of the champion's recipe lost negation."""
    import models.behaviour

    def failures(predictor: Predictor) -> list[str]:
        return [] if predictor.meta["details"]["seed"] == 14 else ["negated negatives called negative"]

    monkeypatch.setattr(models.behaviour, "behaviour_failures", failures)
    run = QuickStore(tmp_path).train("--variants", "ft-frozen", "--seed", "13,14", *NO_EXTRAS)
    summary = json.loads(run.out)
    assert run.code == 0 and summary["champion"] == "ft-frozen@14"
    assert {name: m["behaviour_failures"] for name, m in summary["variants"].items()} == {
        "ft-frozen@13": 1.0,
        "ft-frozen@14": 0.0,
    }
    commands = sorted(
        json.loads(meta.read_text())["details"]["command"] for meta in tmp_path.glob("artifacts/*/meta.json")
    )
    options = "--quick --skip-baseline --skip-reasons"
    assert commands == [
        f"buzzwatch train --variants ft-frozen {options} --embedding-seed 13",
        f"buzzwatch train --variants ft-frozen {options} --seed 14 --embedding-seed 13",
    ]
    assert run.err.count("fasttext: training on") == 1  # one set of vectors for both seeds


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--output", "{folder}"], "holds files and no model artifact (no meta.json)"),
        (["--output", "{file}"], "is a file; give a folder"),
        (["--variants", ","], "names no variant"),
        (["--first-phase", "{missing}"], "--first-phase file not found"),
    ],
)
def test_train_refuses_what_it_would_find_wrong_only_after_training(
    tmp_path, capsys, options: list[str], says: str
) -> None:
    """`--output` was emptied before the export (`shutil.rmtree`: `--output .` would empty the folder it ran
    in), a file there was a traceback after the training, and an empty variant list or a missing
    first-phase file showed only after the data was prepared."""
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    (tmp_path / "file.txt").write_text("x")
    paths = {"folder": folder, "file": tmp_path / "file.txt", "missing": tmp_path / "nope.keras"}
    args = ["train", "--quick", *(option.format(**paths) for option in options), "--no-register"]
    assert main(args) == 2
    assert says in capsys.readouterr().err
    assert (folder / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("store", ["http", "not a database"])
def test_train_refuses_an_mlflow_store_it_cannot_use_at_once(
    tmp_path, capsys, monkeypatch, store: str
) -> None:
    """A tracking server that does not answer kept `train` waiting minutes on MLflow's retries (stopped
    after 120 s, still before any training); a file that is not a database was a traceback."""
    import time

    from stack.ports import free_port

    not_a_database = tmp_path / "mlflow.db"
    not_a_database.write_text("notes")
    uri = f"http://127.0.0.1:{free_port()}" if store == "http" else f"sqlite:///{not_a_database}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    started = time.monotonic()
    assert main(["train", "--quick", "--no-export"]) == 2
    assert time.monotonic() - started < 10
    err = capsys.readouterr().err
    assert f"the MLflow store {uri} (MLFLOW_TRACKING_URI)" in err and "Traceback" not in err
    assert "does not answer" in err if store == "http" else "file is not a database" in err


@pytest.mark.parametrize("epochs", ["0", "-3"])
def test_train_refuses_no_epochs(epochs: str) -> None:
    with pytest.raises(SystemExit) as refused:
        main(["train", "--quick", "--epochs", epochs])
    assert refused.value.code == 2


def test_an_export_replaces_the_earlier_one_whole_or_not_at_all(tmp_path, monkeypatch) -> None:
    """The export removed the folder the services load, then copied: a stop in between left it empty."""
    source, target = tmp_path / "run" / "artifact", tmp_path / "champion"
    source.mkdir(parents=True)
    (source / "meta.json").write_text('{"model_version": "new"}')
    target.mkdir()
    (target / "meta.json").write_text('{"model_version": "old"}')
    (target / "model.onnx").write_text("old weights")

    def stopped(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module.shutil, "copytree", stopped)
    with pytest.raises(KeyboardInterrupt):
        train_module._replace_folder(source, target)
    assert sorted(path.name for path in target.iterdir()) == ["meta.json", "model.onnx"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["champion", "run"]  # no copy left
    monkeypatch.undo()
    train_module._replace_folder(source, target)
    assert [path.name for path in target.iterdir()] == ["meta.json"]
    assert (target / "meta.json").read_text() == '{"model_version": "new"}'
    assert sorted(path.name for path in tmp_path.iterdir()) == ["champion", "run"]


def test_extra_rows_leave_held_out_texts_out_and_corrections_win() -> None:
    """Held-out texts in a feedback file were left out of train but went into the embedding corpus; a text
    given twice with two labels, or a train text the feedback corrects, was trained both ways."""
    from models.data import dedupe_key
    from models.text import normalise

    train = pd.DataFrame({"text": ["great crew", "lost my bag", "on time"], "label": ["positive"] * 3})
    extra = pd.DataFrame(
        {
            "text": ["a test tweet", "Lost my bag", "new one", "new one", "late again"],
            "label": ["neutral", "negative", "positive", "negative", "negative"],
        }
    )
    held = {dedupe_key(normalise("a test tweet"))}
    merged, kept, note = train_module.merge_extra(train, extra, held)
    assert list(kept["text"]) == ["Lost my bag", "new one", "late again"]  # what the corpus takes too
    assert list(kept["label"]) == ["negative", "negative", "negative"]
    assert sorted(zip(merged["text"], merged["label"], strict=True)) == [
        ("Lost my bag", "negative"),
        ("great crew", "positive"),
        ("late again", "negative"),
        ("new one", "negative"),
        ("on time", "positive"),
    ]
    assert note == (
        "5 rows, 3 added to train; left out: 1 held-out texts, 1 earlier rows of a text given again (1 texts "
        "with different labels: the last row kept); 1 train rows replaced by a correction"
    )
