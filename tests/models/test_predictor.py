"""The scoring core: contract, Keras/ONNX parity, batching independence, loading errors, light imports."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from models.predictor import ModelLoadError, Prediction, Predictor

pytestmark = pytest.mark.model


def test_keras_onnx_parity_on_1000_tweets(tiny_model):
    from models.lstm import predict_proba

    predictor = Predictor.load(str(tiny_model.artifact_dir))
    texts = tiny_model.texts[:1000]
    assert len(texts) == 1000
    keras_probabilities = predict_proba(tiny_model.model, predictor.encode(texts), tiny_model.config)
    onnx_probabilities = predictor.predict_proba(texts)
    assert np.max(np.abs(keras_probabilities - onnx_probabilities)) < 1e-4


def test_contract(tiny_model):
    predictor = Predictor.load(str(tiny_model.artifact_dir))
    assert predictor.labels == ("negative", "neutral", "positive")
    assert predictor.model_version.startswith("tiny-")
    assert predictor.metrics == {"validation_macro_f1": 0.5}
    texts = ["@united worst flight ever", "", "thanks for the great service! http://t.co/x"]
    predictions = predictor.predict(texts)
    assert len(predictions) == 3
    for prediction in predictions:
        assert isinstance(prediction, Prediction)
        assert prediction.model_version == predictor.model_version
        assert set(prediction.probabilities) == set(predictor.labels)
        assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert prediction.label == max(prediction.probabilities, key=prediction.probabilities.get)
    with pytest.raises(dataclasses.FrozenInstanceError):
        predictions[0].label = "positive"
    probabilities = predictor.predict_proba(texts)
    assert probabilities.shape == (3, 3)
    assert predictor.predict_proba([]).shape == (0, 3)
    with pytest.raises(TypeError):
        predictor.predict_proba("one string")


def test_scores_do_not_depend_on_the_batch(tiny_model):
    predictor = Predictor(tiny_model.artifact_dir, batch_size=7)
    texts = tiny_model.texts[:50]
    together = predictor.predict_proba(texts)
    alone = np.vstack([predictor.predict_proba([text]) for text in texts[:10]])
    reversed_order = predictor.predict_proba(texts[::-1])[::-1]
    np.testing.assert_allclose(alone, together[:10], atol=1e-6)
    np.testing.assert_allclose(reversed_order, together, atol=1e-6)


def test_loads_from_a_parent_directory(tiny_model):
    predictor = Predictor.load(str(tiny_model.artifact_dir.parent))
    assert predictor.model_version.startswith("tiny-")


def test_load_errors_are_clear(tmp_path, tiny_model):
    with pytest.raises(ModelLoadError, match="does not exist"):
        Predictor.load(str(tmp_path / "missing"))
    with pytest.raises(ModelLoadError, match="no BuzzWatch model artifact"):
        Predictor.load(str(tmp_path))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.onnx").write_bytes(b"not onnx")
    (broken / "vocab.json").write_text(json.dumps(["<pad>", "<unk>"]))
    meta = json.loads((tiny_model.artifact_dir / "meta.json").read_text())
    (broken / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="ONNX Runtime cannot load"):
        Predictor.load(str(broken))


def test_serving_imports_no_tensorflow():
    code = (
        "import sys, models.predictor, models.scoring; "
        "heavy = [m for m in ('tensorflow', 'keras', 'sklearn', 'mlflow', 'gensim') if m in sys.modules]; "
        "print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def _scores(onnx_path, token_ids):
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return session.run(None, {"token_ids": token_ids})[0]


def test_the_pruned_graph_scores_bit_for_bit_as_exported(tiny_model, tmp_path):
    import onnx

    from models.export import export_onnx, prune_graph
    from models.vocab import pad_batch

    exported = export_onnx(tiny_model.model, tmp_path / "exported.onnx")
    pruned = tmp_path / "pruned.onnx"
    pruned.write_bytes(exported.read_bytes())
    assert prune_graph(pruned, len(tiny_model.vocab)) == 17  # the id wrap (9 nodes) and the zero states (8)
    assert prune_graph(pruned, len(tiny_model.vocab)) == 0
    ops = [node.op_type for node in onnx.load(str(pruned)).graph.node]
    assert "Less" not in ops and "Expand" not in ops and ops.count("LSTM") == 1
    predictor = Predictor.load(str(tiny_model.artifact_dir))
    for length in (8, 24, 48):  # what the Predictor feeds: a batch padded to one length bucket
        ids = pad_batch(predictor.encode(tiny_model.texts[:300]), length)
        assert np.array_equal(_scores(exported, ids), _scores(pruned, ids))
    served = [node.op_type for node in onnx.load(str(tiny_model.artifact_dir / "model.onnx")).graph.node]
    assert served == ops  # write_artifact prunes


def test_pruning_keeps_initial_states_that_are_not_zeros(tiny_model, tmp_path):
    import onnx
    from onnx import numpy_helper

    from models.export import export_onnx, prune_graph

    model = onnx.load(str(export_onnx(tiny_model.model, tmp_path / "exported.onnx")))
    expand = next(node for node in model.graph.node if node.op_type == "Expand")
    zero = next(item for item in model.graph.initializer if item.name == expand.input[0])
    model.graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(zero) + 0.5, "half"))
    expand.input[0] = "half"  # the states start at 0.5, not 0
    changed = tmp_path / "changed.onnx"
    onnx.save(model, str(changed))
    assert prune_graph(changed, len(tiny_model.vocab)) == 9  # only the id wrap: those states are not zeros
    assert any(node.op_type == "Expand" for node in onnx.load(str(changed)).graph.node)


def test_ids_kept_per_chunk_of_text_are_the_tokenizers_ids(tiny_model, monkeypatch):
    """`encode` keeps ids per chunk of text: `vocab.encode(tokenize(text))`, cold, warm and forgetful."""
    import models.predictor as predictor_module
    from models.text import tokenize
    from tests.models.test_text import EDGE_CASES

    texts = [*tiny_model.texts, *EDGE_CASES, "", None, 3.5, "a " * 60]
    predictor = Predictor.load(str(tiny_model.artifact_dir))
    expected = [predictor.vocab.encode(tokenize(text or ""), predictor.max_length) for text in texts]
    assert predictor.encode(texts) == expected
    assert predictor.encode(texts[::-1]) == expected[::-1]
    monkeypatch.setattr(predictor_module, "CHUNK_IDS_KEPT", 50)
    forgetful = Predictor.load(str(tiny_model.artifact_dir))
    assert forgetful.encode(texts) == expected and len(forgetful._vocab_ids.kept) <= 50


@pytest.mark.slow
def test_the_champions_probabilities_on_20000_real_tweets_are_the_same_bits(tmp_path):
    """The champion scores 20,000 real tweets bit for bit as it did with ids from `tokenize` (before the
    ids were kept per chunk), and the same bits whatever batch a tweet is in (what replay's one verdict per
    distinct text rests on)."""
    import pandas as pd

    from models.text import tokenize
    from tests.models.conftest import CHAMPION_DIR, REPO_ROOT

    frame = pd.concat(
        pd.read_csv(REPO_ROOT / "data" / name, dtype=str, keep_default_na=False)
        for name in ("airline_us/train.csv", "semeval2017_task4a/twitter-2016test.csv")
    )
    texts = frame["text"].drop_duplicates().sample(20_000, random_state=7).tolist()
    predictor = Predictor.load(str(CHAMPION_DIR))
    ids = [predictor.vocab.encode(tokenize(text), predictor.max_length) for text in texts]
    before = predictor.predict_ids(ids)
    assert np.array_equal(predictor.predict_proba(texts).view(np.uint32), before.view(np.uint32))
    shuffled = np.random.default_rng(7).permutation(len(texts))
    in_other_batches = np.empty_like(before)
    for start in range(0, len(texts), 700):
        rows = shuffled[start : start + 700]
        in_other_batches[rows] = predictor.predict_proba([texts[row] for row in rows])
    assert np.array_equal(in_other_batches.view(np.uint32), before.view(np.uint32))
    alone = np.vstack([predictor.predict_proba([text]) for text in texts[:500]])
    assert np.array_equal(alone.view(np.uint32), before[:500].view(np.uint32))
