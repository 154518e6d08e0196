"""The scoring core: one Predictor used by the worker, the API, the app, evaluation and the benchmarks.

A batch of raw tweet texts in; labels, probabilities and the model version out. It runs the champion's
ONNX export with ONNX Runtime (no TensorFlow at serving time), normalises with `models.text` and looks
tokens up in the vocabulary shipped inside the artifact. The artifact directory holds:

- `model.onnx`: int32 token ids (batch, length) -> probabilities (batch, 3), dynamic batch and length
- `vocab.json`: the token list (id = position; 0 pads, 1 is unknown)
- `meta.json`: labels, normaliser version, model version, max length, bucket size, metrics, provenance,
  and optionally `languages` (those it reads; English when absent)
- optionally `linear.npz` + `linear_features.json` (`models.linear`): a TF-IDF + logistic regression
  model. Then the artifact is a soft-voting ensemble (`meta["ensemble"]`): `model.onnx` takes the
  tweets' n-gram keys as a second input, `ngram_keys`, and computes the linear model inside the graph;
  probabilities = (1 - linear_weight) * LSTM + linear_weight * linear, then temperature scaling and
  per-class offsets (softmax(log p / temperature + class_offsets), a class-prior correction; zeros
  unless asked for), all chosen on the selection split at training time (`combine`).
  Each token is looked up once for both halves: one index holds the LSTM vocabulary's ids and, after
  them, the linear model's other tokens; numpy maps a batch's ids to each half's (`_encode_ensemble`).
- optionally `subwords.npz` (`models.subwords`, `meta["subwords"]`): FastText's hashed character-n-gram
  vectors. Then a token outside the vocabulary is not `<unk>` but the mean of its n-grams' vectors, fed to
  the graph's second input `oov_vectors` (`models.export.add_oov_input`): id `len(vocab) + k` reads its
  row k (row 0 is zeros). Vectors are computed once per distinct token and cached.

Each tweet is padded to a length bucket that depends on its own token count only (see `models.vocab`),
exactly as in training, so its probabilities do not depend on the batch it is scored in.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from models.language import DEFAULT_LANGUAGES
from models.linear import FEATURES_FILE as LINEAR_FEATURES_FILE
from models.linear import PAD_KEY, LinearModel, softmax
from models.subwords import SubwordTable
from models.text import NORMALISER_VERSION, READS_LIKE, chunk_tokens, token_chunks, tokenize
from models.vocab import UNK_ID, Vocabulary, group_by_bucket, pad_batch

LOGGER = logging.getLogger(__name__)
ARTIFACT_FORMAT = 1
META_FILE = "meta.json"
ONNX_FILE = "model.onnx"
VOCAB_FILE = "vocab.json"
DEFAULT_BATCH_SIZE = 256
OOV_INPUT = "oov_vectors"
# Distinct chunks of text (`models.text.token_chunks`) whose ids a Predictor keeps; then it starts afresh.
CHUNK_IDS_KEPT = 200_000


class ModelLoadError(RuntimeError):
    """The model URI does not lead to a usable BuzzWatch artifact; the message says why."""


def write_meta(directory: Path, meta: Mapping[str, Any]) -> None:
    """Write an artifact's meta.json in its one format (keys sorted, indented, a final newline)."""
    (directory / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class Prediction:
    """One tweet's label, its probability per label, and the model version that produced it."""

    label: str
    probabilities: dict[str, float]
    model_version: str


def default_threads() -> int:
    """ONNX Runtime intra-op threads: the CPUs this process may use, at most 4 (small LSTM matrices)."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        available = os.cpu_count() or 1
    return max(1, min(4, available))


def _find_artifact_dir(root: Path) -> Path:
    """The folder holding meta.json + model.onnx: root itself, or the one below it (an MLflow download)."""
    if (root / META_FILE).is_file() and (root / ONNX_FILE).is_file():
        return root
    for meta in sorted(root.rglob(META_FILE)):
        if (meta.parent / ONNX_FILE).is_file():
            return meta.parent
    raise ModelLoadError(f"no BuzzWatch model artifact ({META_FILE} + {ONNX_FILE}) under {root}")


def resolve_model_uri(model_uri: str | None) -> Path:
    """A local artifact directory for a path, `models:/name@alias`, `models:/name/1` or `runs:/id/path`."""
    if model_uri is None:
        from buzzwatch.settings import DEFAULT_MODEL_URI

        model_uri = DEFAULT_MODEL_URI
    if model_uri.startswith(("models:/", "runs:/")):
        return _download_from_mlflow(model_uri)
    path = Path(model_uri.removeprefix("file://")).expanduser()
    if not path.exists():
        raise ModelLoadError(f"model path does not exist: {path}")
    return _find_artifact_dir(path)


def _download_from_mlflow(model_uri: str) -> Path:
    """Fetch a registered (or run) model from the configured MLflow store into var_dir/model_cache."""
    try:
        from models.tracking import resolve_model_uri as download
    except ImportError as exc:  # pragma: no cover - serving images without the training extras
        raise ModelLoadError(
            f"{model_uri} needs the mlflow package; pass an artifact directory instead"
        ) from exc
    try:
        local = download(model_uri)
    except Exception as exc:
        raise ModelLoadError(f"cannot load {model_uri} from the MLflow store: {exc}") from exc
    return _find_artifact_dir(Path(local))


def combine(
    sequence_probabilities: np.ndarray,
    linear_logits: np.ndarray,
    linear_weight: float,
    temperature: float,
    class_offsets: np.ndarray | None = None,
) -> np.ndarray:
    """Soft vote of the two models' probabilities, temperature scaling, then per-class logit offsets.

    The numpy twin of the fused ONNX graph (`models.export.fuse_ensemble`), for choosing the weight, the
    temperature and the offsets at training time (float32, rows sum to 1).
    """
    mixed = (1.0 - linear_weight) * sequence_probabilities + linear_weight * softmax(linear_logits)
    tempered = np.log(np.maximum(mixed, 1e-12)) / temperature
    if class_offsets is not None:
        tempered = tempered + np.asarray(class_offsets, dtype=tempered.dtype)
    return softmax(tempered).astype(np.float32)


class _ChunkIds:
    """Texts' tokens (`models.text`) as ids in one token index (unknown: UNK_ID), not truncated.

    The ids are kept per whitespace-separated chunk of text (`token_chunks`): a tweet's tokens are its
    chunks' tokens in order, and most chunks ("the", "@united", "thanks!") come again and again.
    """

    def __init__(self, index: Mapping[str, int]) -> None:
        self.index = index
        self.kept: dict[str, tuple[int, ...]] = {}

    def __call__(self, texts: Sequence[str]) -> list[list[int]]:
        """The id list of each text."""
        known = self.kept.get
        id_lists = []
        for text in texts:
            chunks = token_chunks(text or "")
            found = list(map(known, chunks))
            if None in found:
                for position, ids in enumerate(found):
                    if ids is None:
                        found[position] = self._add(chunks[position])
            id_lists.append(list(chain.from_iterable(found)))
        return id_lists

    def _add(self, chunk: str) -> tuple[int, ...]:
        """A new chunk's ids, kept (all forgotten first when `CHUNK_IDS_KEPT` are kept)."""
        if len(self.kept) >= CHUNK_IDS_KEPT:
            self.kept.clear()
        lookup = self.index.get
        ids = self.kept[chunk] = tuple([lookup(token, UNK_ID) for token in chunk_tokens(chunk)])
        return ids


class Predictor:
    """Scores tweets with an exported BuzzWatch model (ONNX Runtime, CPU)."""

    def __init__(
        self,
        artifact_dir: Path,
        *,
        threads: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self.artifact_dir = Path(artifact_dir)
        try:
            self.meta: dict[str, Any] = json.loads(
                (self.artifact_dir / META_FILE).read_text(encoding="utf-8")
            )
            self.vocab = Vocabulary.load(self.artifact_dir / VOCAB_FILE)
            self._vocab_ids = _ChunkIds(self.vocab.index)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"unreadable model artifact in {self.artifact_dir}: {exc}") from exc
        if self.meta.get("format") != ARTIFACT_FORMAT:
            raise ModelLoadError(
                f"unsupported artifact format {self.meta.get('format')!r} in {self.artifact_dir}"
            )
        self.labels: tuple[str, ...] = tuple(self.meta["labels"])
        self.model_version: str = str(self.meta["model_version"])
        self.metrics: dict[str, Any] = dict(self.meta.get("metrics", {}))
        # The languages the model was trained to read (English unless the artifact says otherwise).
        self.languages: tuple[str, ...] = tuple(self.meta.get("languages") or DEFAULT_LANGUAGES)
        self.max_length = int(self.meta["max_length"])
        self.bucket_size = int(self.meta["bucket_size"])
        self.batch_size = max(1, int(batch_size))
        if self.meta.get("normaliser_version") not in READS_LIKE:
            LOGGER.warning(
                "model %s was trained with normaliser version %s but models.text is version %s",
                self.model_version,
                self.meta.get("normaliser_version"),
                NORMALISER_VERSION,
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        # No busy-waiting between calls: the services score small groups, and a spinning thread takes the CPU
        # the rest of the process needs (bench/stream.py: 4.0 -> 2.5 ms of worker CPU a push at 2 in flight).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(self.artifact_dir / ONNX_FILE), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ModelLoadError(f"ONNX Runtime cannot load {self.artifact_dir / ONNX_FILE}: {exc}") from exc
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        # An ensemble artifact: one token index serves both halves (`_encode_ensemble`).
        self.linear: LinearModel | None = None
        if self.meta.get("ensemble"):
            try:
                self.linear = LinearModel.load(self.artifact_dir)
            except (OSError, ValueError, KeyError) as exc:
                raise ModelLoadError(
                    f"ensemble artifact {self.artifact_dir} has no usable {LINEAR_FEATURES_FILE}: {exc}"
                ) from exc
            if "ngram_keys" not in {item.name for item in self.session.get_inputs()}:
                raise ModelLoadError(
                    f"ensemble artifact {self.artifact_dir} predates n-gram keys (its graph has no "
                    "ngram_keys input): build it again with models.ensemble.write_ensemble_artifact"
                )
            self._token_index = dict(self.vocab.index)
            for token in self.linear.token_index:
                self._token_index.setdefault(token, len(self._token_index))
            to_sequence = np.full(len(self._token_index), UNK_ID, dtype=np.int32)
            to_sequence[: len(self.vocab)] = np.arange(len(self.vocab))
            to_linear = np.zeros(len(self._token_index), dtype=np.int64)
            for token, linear_id in self.linear.token_index.items():
                to_linear[self._token_index[token]] = linear_id
            to_linear[UNK_ID] = 0  # a token neither half knows
            self._to_sequence, self._to_linear = to_sequence, to_linear
            self._shared_ids = _ChunkIds(self._token_index)
        # Sub-word vectors for unknown tokens (an artifact trained with them; not with an ensemble yet).
        self.subwords: SubwordTable | None = None
        if self.meta.get("subwords"):
            if self.linear is not None:
                raise ModelLoadError(
                    f"{self.artifact_dir}: an ensemble with sub-word vectors is not supported"
                )
            try:
                self.subwords = SubwordTable.load(self.artifact_dir)
            except (OSError, ValueError, KeyError) as exc:
                raise ModelLoadError(f"unreadable sub-word vectors in {self.artifact_dir}: {exc}") from exc
            self._no_oov = np.zeros((1, self.subwords.dim), dtype=np.float32)

    @classmethod
    def load(cls, model_uri: str | None = None, **kwargs: Any) -> Predictor:
        """Load the shipped champion (None), an artifact directory, or an MLflow `models:/` / `runs:/` URI."""
        return cls(resolve_model_uri(model_uri), **kwargs)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text (normalised by models.text; None counts as an empty text)."""
        max_length = self.max_length
        return [ids[:max_length] for ids in self._vocab_ids(texts)]

    def _encode_subwords(self, texts: Sequence[str]) -> tuple[list[list[int]], np.ndarray]:
        """Token ids per text with unknown tokens as `len(vocab) + k`, and the (1 + k tokens, dim) vectors."""
        lookup = self.vocab.index.get
        first_oov = len(self.vocab) + 1
        unknown: dict[str, int] = {}
        id_lists = []
        for text in texts:
            ids = []
            for token in tokenize(text or "")[: self.max_length]:
                token_id = lookup(token)
                if token_id is None:
                    token_id = first_oov + unknown.setdefault(token, len(unknown))
                ids.append(token_id)
            id_lists.append(ids)
        return id_lists, np.vstack([self._no_oov, self.subwords.vectors(list(unknown))])

    def _run(
        self,
        id_lists: Sequence[Sequence[int]],
        output: str,
        shared_ids: bool = False,
        oov_vectors: np.ndarray | None = None,
    ) -> np.ndarray:
        """One ONNX output for encoded tweets, batched per length bucket.

        With `shared_ids` the ids are `_encode_ensemble`'s (both halves' tokens, not truncated) and the
        linear model's n-gram keys go in beside; otherwise they are the LSTM's own. `oov_vectors`: the
        unknown tokens' rows for a graph with sub-words (`_encode_subwords`; zeros when None).
        """
        result = np.empty((len(id_lists), len(self.labels)), dtype=np.float32)
        groups = group_by_bucket(id_lists, self.bucket_size, self.max_length)
        for length, rows in groups.items():
            for start in range(0, len(rows), self.batch_size):
                chunk = [id_lists[row] for row in rows[start : start + self.batch_size]]
                if shared_ids:
                    ids = pad_batch(chunk, max(length, *map(len, chunk)))
                    inputs = {
                        self.input_name: self._to_sequence[ids[:, :length]],
                        "ngram_keys": self.linear.ngram_keys(self._to_linear[ids]),
                    }
                else:
                    inputs = {self.input_name: pad_batch(chunk, length)}
                    if self.linear is not None:
                        inputs["ngram_keys"] = np.full((len(chunk), 1), PAD_KEY, dtype=np.int64)
                if self.subwords is not None:
                    inputs[OOV_INPUT] = self._no_oov if oov_vectors is None else oov_vectors
                result[rows[start : start + self.batch_size]] = self.session.run([output], inputs)[0]
        return result

    def predict_ids(self, id_lists: Sequence[Sequence[int]]) -> np.ndarray:
        """The sequence model's (LSTM's) probabilities for already-encoded tweets."""
        output = "sequence_probabilities" if self.linear is not None else self.output_name
        return self._run(id_lists, output)

    def _encode_ensemble(self, texts: Sequence[str]) -> list[list[int]]:
        """Shared token ids per text: the LSTM vocabulary's ids, then the linear model's other tokens."""
        return self._shared_ids(texts)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """An (n, len(labels)) array of probabilities, rows in the order of texts."""
        if isinstance(texts, str):
            raise TypeError("predict_proba takes a sequence of texts, not one string")
        if self.subwords is not None:
            id_lists, oov_vectors = self._encode_subwords(texts)
            return self._run(id_lists, self.output_name, oov_vectors=oov_vectors)
        if self.linear is None:
            return self._run(self.encode(texts), self.output_name)
        return self._run(self._encode_ensemble(texts), self.output_name, shared_ids=True)

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """One Prediction per text."""
        probabilities = self.predict_proba(texts)
        labels = self.labels
        version = self.model_version
        winners = probabilities.argmax(axis=1)
        return [
            Prediction(labels[winner], dict(zip(labels, map(float, row), strict=True)), version)
            for winner, row in zip(winners, probabilities, strict=True)
        ]
