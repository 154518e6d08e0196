"""The production model: a bidirectional LSTM over word embeddings (Keras 3, TensorFlow backend).

Input: int32 token ids (batch, length) padded by `models.vocab` (post-padding to the tweet's length
bucket; no Masking layer, so tf2onnx exports one fused LSTM op). Output: softmax over LABELS.
Training code only; serving runs the ONNX export through `models.predictor`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import layers, ops

from buzzwatch.schema import LABELS
from models.evaluate import report_from_matrix
from models.lexicon import NEGATION_SCALE, NEGATION_WINDOW
from models.vocab import group_by_bucket, pad_batch


@dataclass(frozen=True)
class LstmConfig:
    """Everything that shapes one LSTM run (logged to MLflow as parameters)."""

    lstm_units: int = 64
    pooling: str = "maxavg"  # "maxavg" (max + mean over time) or "attention"
    conv_filters: int = 0  # a Conv1D (ReLU, width conv_width) over the tokens before the LSTM; 0 for none
    conv_width: int = 3
    trainable_embeddings: bool = True
    spatial_dropout: float = 0.2
    dropout: float = 0.3
    learning_rate: float = 2e-3
    batch_size: int = 128
    epochs: int = 6
    patience: int = 2
    max_length: int = 48
    bucket_size: int = 16
    class_weights: bool = True
    seed: int = 13

    def as_params(self) -> dict[str, object]:
        """Flat parameters for tracking."""
        return asdict(self)


@keras.saving.register_keras_serializable(package="buzzwatch")
class AttentionPooling(layers.Layer):
    """Additive attention over time steps: a learned score per step, softmax, weighted sum."""

    def __init__(self, units: int = 64, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.units = units
        self.hidden = layers.Dense(units, activation="tanh")
        self.score = layers.Dense(1, use_bias=False)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.hidden.build(input_shape)
        self.score.build((*input_shape[:-1], self.units))
        super().build(input_shape)

    def call(self, sequence: object) -> object:
        weights = ops.softmax(self.score(self.hidden(sequence)), axis=1)
        return ops.sum(weights * sequence, axis=1)

    def get_config(self) -> dict[str, object]:
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="buzzwatch")
class NegationScope(layers.Layer):
    """VADER's negation rule on a per-token (positive, negative, negator flag) channel, per row.

    A token with a negator among the `window` tokens before it gets its positive and negative valence
    swapped and multiplied by `scale` (VADER: 3 tokens, x0.74); the flag column is dropped. The scope is a
    causal max-pool over the flags (Pad, Slice, MaxPool in ONNX) and the swap is elementwise with a 0/1
    scope, so a row's values never depend on the other rows of its batch.
    """

    def __init__(
        self, window: int = NEGATION_WINDOW, scale: float = NEGATION_SCALE, **kwargs: object
    ) -> None:
        super().__init__(**kwargs)
        self.window = window
        self.scale = scale

    def call(self, rows: object) -> object:
        positive, negative, negator = rows[..., 0:1], rows[..., 1:2], rows[..., 2:3]
        # Position t of `before` holds the flag of token t - window; the pool over t..t+window-1 then
        # covers tokens t-window..t-1 (padding ids carry no flag).
        before = ops.pad(negator, [[0, 0], [self.window, 0], [0, 0]])[:, :-1]
        scope = ops.max_pool(before, pool_size=self.window, strides=1, padding="valid")
        kept = 1.0 - scope
        damped = scope * self.scale
        return ops.concatenate([positive * kept + negative * damped, negative * kept + positive * damped], -1)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (*input_shape[:-1], 2)

    def get_config(self) -> dict[str, object]:
        return {**super().get_config(), "window": self.window, "scale": self.scale}


def build_model(
    config: LstmConfig,
    embeddings: np.ndarray,
    valence: np.ndarray | None = None,
    negation_scope: int = 0,
) -> keras.Model:
    """BiLSTM classifier initialised with the given (vocab_size, dim) embedding matrix.

    With `config.conv_filters` a convolution over each token and its neighbours (CNN+LSTM) reads the
    embedded tokens first and the LSTM reads its feature maps.

    With `valence` ((vocab_size, k), `models.lexicon.valence_table`) each token's frozen lexicon row joins
    its embedding after the spatial dropout: the LSTM reads both (one more lookup in the exported graph).
    With `negation_scope` N the table has a third column, the negator flag (`models.lexicon.negator_column`),
    and `NegationScope` swaps and damps the valence of the N tokens after each negator before the LSTM.
    """
    keras.utils.set_random_seed(config.seed)
    vocab_size, dim = embeddings.shape
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    embedded = layers.Embedding(
        vocab_size,
        dim,
        embeddings_initializer=keras.initializers.Constant(embeddings),
        trainable=config.trainable_embeddings,
        name="embedding",
    )(token_ids)
    embedded = layers.SpatialDropout1D(config.spatial_dropout)(embedded)
    if valence is not None:
        if len(valence) != vocab_size:
            raise ValueError(f"the valence table has {len(valence)} rows for {vocab_size} embedding rows")
        token_valence = layers.Embedding(
            vocab_size,
            valence.shape[1],
            embeddings_initializer=keras.initializers.Constant(valence),
            trainable=False,
            name="valence",
        )(token_ids)
        if negation_scope:
            if valence.shape[1] != 3:
                raise ValueError("a negation scope needs (positive, negative, negator) valence columns")
            token_valence = NegationScope(negation_scope, name="negation_scope")(token_valence)
        embedded = layers.Concatenate(name="embedding_and_valence")([embedded, token_valence])
    if config.conv_filters:
        embedded = layers.Conv1D(
            config.conv_filters, config.conv_width, padding="same", activation="relu", name="conv"
        )(embedded)
    sequence = layers.Bidirectional(layers.LSTM(config.lstm_units, return_sequences=True), name="bilstm")(
        embedded
    )
    if config.pooling == "attention":
        pooled = AttentionPooling(config.lstm_units, name="attention")(sequence)
    elif config.pooling == "maxavg":
        pooled = layers.Concatenate()(
            [layers.GlobalMaxPooling1D()(sequence), layers.GlobalAveragePooling1D()(sequence)]
        )
    else:
        raise ValueError(f"unknown pooling {config.pooling!r}")
    pooled = layers.Dropout(config.dropout)(pooled)
    probabilities = layers.Dense(len(LABELS), activation="softmax", name="probabilities")(pooled)
    model = keras.Model(token_ids, probabilities, name="buzzwatch_bilstm")
    compile_model(model, config.learning_rate)
    return model


def compile_model(model: keras.Model, learning_rate: float, soft_targets: bool = False) -> None:
    """Adam + categorical cross-entropy: sparse (labels are indices into LABELS) or against probability
    rows (soft targets, e.g. a teacher's)."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=1.0),
        loss="categorical_crossentropy" if soft_targets else "sparse_categorical_crossentropy",
        metrics=[] if soft_targets else ["accuracy"],
    )


def _seed_states(model: keras.Model) -> list[Any]:
    """The model's random generators (each dropout layer's masks), in layer order."""
    return [variable for variable in model.variables if variable.name == "seed_generator_state"]


def _states_path(path: Path) -> Path:
    return path.with_suffix(".rng.json")


def save_model(model: keras.Model, path: Path) -> None:
    """The .keras file and, beside it (RUN.rng.json), its random generators' states, which the file lacks."""
    model.save(path)
    states = [np.asarray(state.numpy()).tolist() for state in _seed_states(model)]
    _states_path(path).write_text(json.dumps(states) + "\n")


def load_model(path: Path, seed: int) -> tuple[keras.Model, bool]:
    """A model saved by `save_model`, its random generators where they were when it was saved (True);
    for a file without their states, drawn from `seed` (False), so training it further stays repeatable.
    """
    keras.utils.set_random_seed(seed)
    model = keras.models.load_model(path)
    if not _states_path(path).exists():
        return model, False
    states, saved = _seed_states(model), json.loads(_states_path(path).read_text())
    if len(saved) != len(states):
        raise ValueError(f"{_states_path(path)}: {len(saved)} generator states for {len(states)} generators")
    for state, value in zip(states, saved, strict=True):
        state.assign(np.asarray(value, dtype=state.dtype))
    return model, True


def pretrain_on_emoji(
    model: keras.Model,
    id_lists: Sequence[Sequence[int]],
    emoji_labels: np.ndarray,
    config: LstmConfig,
    *,
    epochs: int = 1,
    verbose: int = 1,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> None:
    """DeepMoji-style distant supervision: the model's layers learn to tell which emoji a tweet lost.

    A second head (softmax over the emoji classes) on the model's pooled features trains with the shared
    layers for `epochs`; the sentiment head is untouched, and the shared layers keep what they learned.
    """
    emoji_labels = np.asarray(emoji_labels, dtype=np.int32)
    pooled = model.get_layer("probabilities").input
    head = layers.Dense(int(emoji_labels.max()) + 1, activation="softmax", name="emoji")(pooled)
    emoji_model = keras.Model(model.inputs, head, name="buzzwatch_bilstm_emoji")
    emoji_model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate, clipnorm=1.0),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    batches = BucketBatches(id_lists, emoji_labels, config, seed=config.seed)
    callbacks = []
    if on_epoch is not None:
        callbacks.append(
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: on_epoch(
                    epoch, {name: float(value) for name, value in (logs or {}).items()}
                )
            )
        )
    emoji_model.fit(batches.dataset(), epochs=epochs, callbacks=callbacks, verbose=verbose, shuffle=False)


def balanced_class_weights(labels: np.ndarray, n_classes: int = len(LABELS)) -> np.ndarray:
    """n / (k * count) per class, as scikit-learn's 'balanced' (classes absent get weight 0)."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights.astype(np.float32)


class BucketBatches:
    """Shuffled batches in which every tweet is padded to its own length bucket (as serving does)."""

    def __init__(
        self,
        id_lists: Sequence[Sequence[int]],
        labels: np.ndarray,
        config: LstmConfig,
        sample_weights: np.ndarray | None = None,
        *,
        seed: int = 13,
    ) -> None:
        self.id_lists = id_lists
        labels = np.asarray(labels)
        # Label indices, or probability rows (soft targets).
        self.labels = labels.astype(np.float32) if labels.ndim == 2 else labels.astype(np.int32)
        self.sample_weights = sample_weights
        self.config = config
        self.rng = np.random.default_rng(seed)
        self.groups = group_by_bucket(id_lists, config.bucket_size, config.max_length)
        self.batches: list[tuple[int, np.ndarray]] = []
        self.reshuffle()

    def reshuffle(self) -> None:
        """Reshuffle within buckets and the order of batches."""
        batches = []
        for length, rows in sorted(self.groups.items()):
            shuffled = self.rng.permutation(rows)
            for start in range(0, len(shuffled), self.config.batch_size):
                batches.append((length, shuffled[start : start + self.config.batch_size]))
        order = self.rng.permutation(len(batches))
        self.batches = [batches[i] for i in order]

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> tuple[np.ndarray, ...]:
        length, rows = self.batches[index]
        inputs = pad_batch([self.id_lists[row] for row in rows], length)
        targets = self.labels[rows]
        if self.sample_weights is None:
            return inputs, targets
        return inputs, targets, self.sample_weights[rows].astype(np.float32)

    def generate(self) -> Iterator[tuple[np.ndarray, ...]]:
        """One epoch of batches (a new shuffle each time it is called)."""
        for index in range(len(self)):
            yield self[index]
        self.reshuffle()

    def dataset(self) -> Any:
        """A tf.data pipeline with a (None, None) input signature: batches differ in length."""
        import tensorflow as tf

        target = (
            tf.TensorSpec((None, self.labels.shape[1]), tf.float32)
            if self.labels.ndim == 2
            else tf.TensorSpec((None,), tf.int32)
        )
        signature = [tf.TensorSpec((None, None), tf.int32), target]
        if self.sample_weights is not None:
            signature.append(tf.TensorSpec((None,), tf.float32))
        dataset = tf.data.Dataset.from_generator(self.generate, output_signature=tuple(signature))
        return dataset.apply(tf.data.experimental.assert_cardinality(len(self))).prefetch(2)


def predict_proba(
    model: keras.Model, id_lists: Sequence[Sequence[int]], config: LstmConfig, batch_size: int = 512
) -> np.ndarray:
    """Keras probabilities with the serving padding scheme (the design the ONNX predictor replaces)."""
    result = np.zeros((len(id_lists), len(LABELS)), dtype=np.float32)
    for length, rows in group_by_bucket(id_lists, config.bucket_size, config.max_length).items():
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            inputs = pad_batch([id_lists[row] for row in chunk], length)
            result[chunk] = np.asarray(model.predict_on_batch(inputs))
    return result


def label_report(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """The shared evaluation report (models.evaluate) for label indices."""
    matrix = np.zeros((len(LABELS), len(LABELS)), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return report_from_matrix(matrix, LABELS)


class EpochMonitor(keras.callbacks.Callback):
    """Validation macro-F1 each epoch, best-weights restore, early stopping, and an overall ETA.

    `on_epoch` receives (epoch, metrics) so the caller can log per-epoch metrics to MLflow.
    """

    def __init__(
        self,
        val_ids: Sequence[Sequence[int]],
        val_labels: np.ndarray,
        config: LstmConfig,
        on_epoch: Callable[[int, dict[str, float]], None] | None = None,
        log: Callable[[str], None] = print,
        total_epochs: int | None = None,
    ) -> None:
        super().__init__()
        self.total_epochs = total_epochs or config.epochs
        self.val_ids = val_ids
        self.val_labels = np.asarray(val_labels)
        self.config = config
        self.on_epoch = on_epoch
        self.log = log
        self.best_score = -math.inf
        self.best_weights: list[np.ndarray] | None = None
        self.best_epoch = -1
        self.started = 0.0
        self.wait = 0

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.started = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        probabilities = predict_proba(self.model, self.val_ids, self.config)
        report = label_report(self.val_labels, probabilities.argmax(axis=1))
        scores = {name: report[name] for name in ("accuracy", "macro_f1", "macro_recall")}
        metrics = {f"val_{name}": value for name, value in scores.items()}
        metrics.update({f"train_{name}": float(value) for name, value in (logs or {}).items()})
        if self.on_epoch is not None:
            self.on_epoch(epoch, metrics)
        elapsed = time.monotonic() - self.started
        remaining = elapsed / (epoch + 1) * (self.total_epochs - epoch - 1)
        self.log(
            f"epoch {epoch + 1}/{self.total_epochs}: val macro-F1 {scores['macro_f1']:.4f}, "
            f"macro-recall {scores['macro_recall']:.4f}; elapsed {elapsed:.0f}s, ETA {remaining:.0f}s at most"
        )
        if scores["macro_f1"] > self.best_score:
            self.best_score = scores["macro_f1"]
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
            self.wait = 0
        else:
            self.wait += 1
            if self.wait >= self.config.patience:
                self.model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


def fit(
    model: keras.Model,
    train_ids: Sequence[Sequence[int]],
    train_labels: np.ndarray,
    val_ids: Sequence[Sequence[int]],
    val_labels: np.ndarray,
    config: LstmConfig,
    *,
    epochs: int | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    verbose: int = 1,
    log: Callable[[str], None] = print,
    row_weights: np.ndarray | None = None,
    soft_targets: np.ndarray | None = None,
) -> EpochMonitor:
    """Train with bucketed batches, class weights (times optional per-row weights, e.g. a domain
    up-weight) and early stopping on validation macro-F1.

    With `soft_targets` ((n, classes) probability rows, e.g. a teacher's mixed with the labels) the model
    learns those instead of the labels, which still set the class weights; it must have been compiled with
    `compile_model(..., soft_targets=True)`.
    """
    train_labels = np.asarray(train_labels, dtype=np.int32)
    weights = None
    if config.class_weights:
        weights = balanced_class_weights(train_labels)[train_labels]
    if row_weights is not None:
        weights = np.asarray(row_weights, dtype=np.float32) * (1.0 if weights is None else weights)
    targets = train_labels if soft_targets is None else soft_targets
    batches = BucketBatches(train_ids, targets, config, weights, seed=config.seed)
    total_epochs = epochs or config.epochs
    monitor = EpochMonitor(val_ids, val_labels, config, on_epoch=on_epoch, log=log, total_epochs=total_epochs)
    model.fit(batches.dataset(), epochs=total_epochs, callbacks=[monitor], verbose=verbose, shuffle=False)
    return monitor
