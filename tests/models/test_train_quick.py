"""`buzzwatch train --quick`: the whole champion path in seconds, on a temporary MLflow store."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from buzzwatch.cli import main
from models.predictor import ModelLoadError, Predictor
from models.text import NEGATORS
from models.train import CHAMPION_VARIANT, choose_champion
from tests.models.conftest import airline_sample

# A quick train takes about a minute alone; the timeout leaves room for a loaded machine.
pytestmark = [pytest.mark.model, pytest.mark.slow, pytest.mark.timeout(900)]


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
    assert "behavioural checks" in captured.err
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


def test_quick_train_adds_the_negation_examples_for_the_last_epochs_only(isolated_var_dir, capsys):
    """The pairs join after a first phase trained without them; a saved first phase is continued, not
    trained again, and the command that reproduces the run names it."""
    variant = "ft-frozen-air5-distil-neglast"
    args = ["train", "--quick", "--variants", variant, "--skip-reasons", "--skip-baseline", "--no-register"]
    main([*args, "--no-export"])
    err = capsys.readouterr().err
    first_rows = int(re.search(r"training on (\d+) tweets, up to", err).group(1))
    added = int(re.search(r"(\d+) negation examples join for 2 more epochs", err).group(1))
    assert err.index("tweets, up to") < err.index("negation examples join")
    (trained,) = [Predictor(path.parent) for path in (isolated_var_dir / "artifacts").glob("*/meta.json")]
    assert added == 60 and trained.meta["details"]["train_rows"] == first_rows + added
    assert trained.meta["details"]["first_phase"] == "trained"

    saved = next((isolated_var_dir / "keras").glob("*.keras"))
    main([*args, "--no-export", "--first-phase", str(saved)])
    err = capsys.readouterr().err
    assert f"first phase (no negation examples) from {saved}" in err and "tweets, up to" not in err
    assert "60 negation examples join for 2 more epochs" in err
    (continued,) = [
        Predictor(path.parent)
        for path in (isolated_var_dir / "artifacts").glob("*/meta.json")
        if path.parent != trained.artifact_dir
    ]
    assert continued.meta["details"]["first_phase"] == str(saved)
    assert continued.meta["details"]["command"].endswith(f"--first-phase {saved}")

    import keras

    other = keras.models.load_model(saved)
    embedding = other.get_layer("embedding")
    embedding.set_weights([embedding.get_weights()[0][::-1]])  # another vocabulary's rows
    other.save(isolated_var_dir / "other.keras")
    assert main([*args, "--no-export", "--first-phase", str(isolated_var_dir / "other.keras")]) == 2
    assert "other.keras: its embeddings are not this run's" in capsys.readouterr().err


def test_quick_train_of_the_lexicon_valence_channel(isolated_var_dir, capsys):
    """Issue 11's lexicon lever end to end: the VADER table on a vocabulary that also takes the lexicon's
    tokens (an emoji the training texts never show), recorded in the artifact, scored as Keras did."""
    variant = "ft-frozen-air5-distil-lexvocab"
    args = ["train", "--quick", "--variants", variant, "--skip-reasons", "--skip-baseline", "--no-register"]
    main([*args, "--no-export"])
    captured = capsys.readouterr()
    metrics = json.loads(captured.out)["variants"][variant]
    assert metrics["onnx_parity_max_abs"] < 1e-4
    (artifact,) = [path.parent for path in (isolated_var_dir / "artifacts").glob("*/meta.json")]
    predictor = Predictor(artifact)
    valence = predictor.meta["details"]["valence"]
    assert valence["lexicon"].startswith("vadersentiment 3.3.2") and valence["columns"] == [
        "positive",
        "negative",
    ]
    assert (
        f"lexicon valence for {valence['tokens_with_valence']} of {len(predictor.vocab)} tokens"
        in captured.err
    )
    assert ":smiling_face_with_heart-eyes:" in predictor.vocab.index and "abhor" in predictor.vocab.index
    assert predictor.predict_proba(["😍😍", "i abhor this"]).shape == (2, 3)


def test_quick_train_of_the_negation_scope(isolated_var_dir, capsys):
    """VADER's negation scope in the graph: the table's negator column and the rule are recorded in the
    artifact, which scores as Keras did."""
    variant = "ft-frozen-air5-distil-lexvocab-scope"
    args = ["train", "--quick", "--variants", variant, "--skip-reasons", "--skip-baseline", "--no-register"]
    main([*args, "--no-export"])
    metrics = json.loads(capsys.readouterr().out)["variants"][variant]
    assert metrics["onnx_parity_max_abs"] < 1e-4
    (artifact,) = [path.parent for path in (isolated_var_dir / "artifacts").glob("*/meta.json")]
    predictor = Predictor(artifact)
    details = predictor.meta["details"]
    negators = len(NEGATORS & set(predictor.vocab.tokens))
    assert negators >= 5 and details["negation_scope"] == {"window": 3, "scale": 0.74, "negators": negators}
    assert details["valence"]["columns"] == ["positive", "negative"]


def test_a_continued_first_phase_gives_the_one_process_model(isolated_var_dir, capsys):
    """The continued epochs draw the dropout masks of the one-process run: the first phase saved by the
    recipe without pairs, continued with --first-phase, gives the one-process model bit for bit, run after
    run; from a file without its generator states, runs still agree with each other."""
    args = ["train", "--quick", "--skip-reasons", "--skip-baseline", "--no-register", "--no-export"]
    main([*args, "--variants", "ft-frozen-air5-distil,ft-frozen-air5-distil-neglast"])
    capsys.readouterr()
    artifacts = [Predictor(path.parent) for path in (isolated_var_dir / "artifacts").glob("*/meta.json")]
    trained = {predictor.meta["details"]["variant"]: predictor for predictor in artifacts}
    first_phase = trained["ft-frozen-air5-distil"].meta["details"]["mlflow_run_id"]
    saved = isolated_var_dir / "keras" / f"{first_phase}.keras"
    texts = list(airline_sample(300)["text"])

    def continued() -> tuple[np.ndarray, str]:
        before = set((isolated_var_dir / "artifacts").glob("*/meta.json"))
        main([*args, "--variants", "ft-frozen-air5-distil-neglast", "--first-phase", str(saved)])
        (meta,) = set((isolated_var_dir / "artifacts").glob("*/meta.json")) - before
        return Predictor(meta.parent).predict_proba(texts), capsys.readouterr().err

    one_process = trained["ft-frozen-air5-distil-neglast"].predict_proba(texts)
    for _ in range(2):
        probabilities, err = continued()
        assert (probabilities == one_process).all() and "no saved generator states" not in err
    saved.with_suffix(".rng.json").unlink()  # a file saved before the states were
    (first, err), (second, _) = continued(), continued()
    assert "the continued epochs draw their dropout masks from seed 13" in err
    assert (first == second).all()
