"""Training the MiniLM model's head and top layers (in place, on a `BertSentiment`).

- `fit_frozen_head`: the encoder is fixed; a class-balanced multinomial logistic regression is fitted on
  the embeddings. The cheapest way to use a pretrained encoder.
- `fine_tune`: the last layers above `EncodedTexts.split_layer` and the head are trained (the head
  warm-starts from the frozen solution), everything below stays frozen. Because the lower layers are
  frozen, their output for each tweet never changes: it is computed once, in the same pass that gives the
  frozen embeddings, kept (float16) and fed to the trainable top layers at every step. Training then costs
  about `top_layers / 6` of a full forward plus its backward instead of a full forward and backward, which
  is what makes fine-tuning affordable on two CPU cores.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from buzzwatch.schema import LABELS
from models.bert.model import BertSentiment, EncodedTexts


def _label_ids(labels: Sequence[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(LABELS)}
    unknown = sorted({label for label in labels if label not in index})
    if unknown:
        raise ValueError(f"unknown labels {unknown}; expected {LABELS}")
    return np.array([index[label] for label in labels], dtype=np.int64)


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
