"""The Keras BiLSTM: learning works, save/load round-trips, attention pooling builds."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

from models.lstm import (
    BucketBatches,
    LstmConfig,
    balanced_class_weights,
    build_model,
    fit,
    predict_proba,
    pretrain_on_emoji,
)

pytestmark = pytest.mark.model


def _toy_data(n: int, seed: int = 0) -> tuple[list[list[int]], np.ndarray]:
    """Label = which of three marker tokens (2, 3, 4) the sequence contains, among noise tokens."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    id_lists = []
    for label in labels:
        ids = list(rng.integers(5, 40, rng.integers(3, 20)))
        ids.insert(int(rng.integers(0, len(ids))), int(label) + 2)
        id_lists.append([int(token) for token in ids])
    return id_lists, labels


def test_loss_goes_down_and_learns_a_toy_task():
    config = LstmConfig(lstm_units=8, epochs=4, batch_size=32, learning_rate=1e-2, patience=4, bucket_size=8)
    train_ids, train_labels = _toy_data(600)
    val_ids, val_labels = _toy_data(200, seed=1)
    model = build_model(config, np.random.default_rng(0).normal(0, 0.1, (40, 8)).astype(np.float32))
    losses = []
    monitor = fit(
        model,
        train_ids,
        train_labels,
        val_ids,
        val_labels,
        config,
        verbose=0,
        log=lambda _: None,
        on_epoch=lambda epoch, metrics: losses.append(metrics["train_loss"]),
    )
    assert losses[-1] < losses[0]
    assert monitor.best_score > 0.6


def test_save_load_round_trip(tmp_path):
    """A trained model comes back whole: same predictions, and the optimizer state to resume training."""
    config = LstmConfig(lstm_units=4, pooling="attention", epochs=1, batch_size=16, bucket_size=8)
    model = build_model(config, np.random.default_rng(0).normal(0, 0.1, (40, 8)).astype(np.float32))
    ids, labels = _toy_data(50)
    fit(model, ids, labels, ids[:10], labels[:10], config, verbose=0, log=lambda _: None)
    before = predict_proba(model, ids, config)
    model.save(tmp_path / "model.keras")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = keras.models.load_model(tmp_path / "model.keras")
    assert not [str(warning.message) for warning in caught if "optimizer" in str(warning.message).lower()]
    np.testing.assert_allclose(predict_proba(loaded, ids, config), before, atol=1e-6)
    np.testing.assert_allclose(before.sum(axis=1), 1.0, atol=1e-5)
    assert int(loaded.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy()) > 0
    saved_state, loaded_state = model.optimizer.variables, loaded.optimizer.variables
    assert len(loaded_state) == len(saved_state) > 2  # the moments, not only the step counter
    for saved, restored in zip(saved_state, loaded_state, strict=True):  # paths differ, order does not
        np.testing.assert_array_equal(restored.numpy(), saved.numpy(), err_msg=saved.path)


def test_frozen_embeddings_are_not_trained():
    config = LstmConfig(lstm_units=4, trainable_embeddings=False, epochs=1)
    matrix = np.random.default_rng(0).normal(0, 0.1, (40, 8)).astype(np.float32)
    model = build_model(config, matrix)
    ids, labels = _toy_data(100)
    fit(model, ids, labels, ids[:20], labels[:20], config, verbose=0, log=lambda _: None)
    np.testing.assert_array_equal(model.get_layer("embedding").get_weights()[0], matrix)


def test_bucket_batches_pad_each_tweet_to_its_bucket():
    config = LstmConfig(batch_size=4, bucket_size=8, max_length=16)
    ids = [[1] * 3, [1] * 10, [1] * 30, [1] * 5]
    batches = BucketBatches(ids, np.array([0, 1, 2, 0]), config)
    shapes = sorted(batches[index][0].shape for index in range(len(batches)))
    assert shapes == [(2, 8), (2, 16)]


def test_balanced_class_weights():
    weights = balanced_class_weights(np.array([0, 0, 0, 1]))
    np.testing.assert_allclose(weights, [4 / 6, 2.0, 0.0])


def test_emoji_pretraining_trains_the_shared_layers_and_leaves_the_sentiment_head():
    """DeepMoji-style: a second head learns which of 20 emojis a sequence lost; the LSTM learns with it."""
    config = LstmConfig(lstm_units=8, batch_size=32, learning_rate=1e-2, bucket_size=8)
    model = build_model(config, np.random.default_rng(1).normal(0, 0.3, (40, 8)).astype(np.float32))
    id_lists, labels = _toy_data(300)
    emoji_labels = (labels * 6 + np.arange(len(labels)) % 2).astype(np.int32)  # 0..13 of 20 classes
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in model.layers if layer.weights}
    seen: list[dict] = []
    pretrain_on_emoji(
        model, id_lists, emoji_labels, config, epochs=2, verbose=0, on_epoch=lambda e, m: seen.append(m)
    )
    assert len(seen) == 2 and seen[1]["loss"] < seen[0]["loss"]
    after = {layer.name: layer.get_weights() for layer in model.layers if layer.weights}
    assert not all(np.array_equal(a, b) for a, b in zip(before["bilstm"], after["bilstm"], strict=True))
    assert all(
        np.array_equal(a, b) for a, b in zip(before["probabilities"], after["probabilities"], strict=True)
    )
    assert model.output_shape == (None, 3)


def test_a_cnn_lstm_learns_and_its_artifact_scores_as_keras_did_whatever_the_batch(tmp_path):
    from models.export import parity_gap
    from models.predictor import Predictor
    from models.text import tokenize
    from models.vocab import Vocabulary
    from tests.models.conftest import write_test_artifact

    config = LstmConfig(
        lstm_units=8, conv_filters=6, epochs=4, batch_size=32, learning_rate=1e-2, patience=4, bucket_size=8
    )
    train_ids, train_labels = _toy_data(600)
    val_ids, val_labels = _toy_data(200, seed=1)
    model = build_model(config, np.random.default_rng(0).normal(0, 0.1, (40, 8)).astype(np.float32))
    conv = model.get_layer("conv")
    assert conv.filters == 6 and conv.kernel_size == (3,) and conv.output.shape[-1] == 6
    monitor = fit(model, train_ids, train_labels, val_ids, val_labels, config, verbose=0, log=lambda _: None)
    assert monitor.best_score > 0.6
    texts = ["the flight was late again", "great crew", "ok", "delayed delayed delayed and rude staff"]
    vocab = Vocabulary.build([tokenize(text) for text in texts * 2], min_count=1)
    text_model = build_model(
        config, np.random.default_rng(1).normal(0, 0.3, (len(vocab), 8)).astype(np.float32)
    )
    write_test_artifact(tmp_path / "artifact", text_model, vocab, config)
    predictor = Predictor(tmp_path / "artifact")
    assert parity_gap(text_model, predictor, texts) < 1e-6
    batched = predictor.predict_proba(texts * 3)
    assert np.array_equal(batched, np.vstack([predictor.predict_proba([text]) for text in texts * 3]))
