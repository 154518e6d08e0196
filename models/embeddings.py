"""Word embeddings for the LSTM: Word2Vec and FastText trained here with gensim, or a pretrained file.

Trained on every tweet text available (the unlabelled TweetEval emoji corpus, the Sentiment140 subset and
every labelled text), tokenized by `models.text.tokenize`, so the vectors cover exactly the tokens the
models see (`<user>`, `<url>`, emoji names, `<elong>`...). Training code only: serving never imports it.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from gensim.models import FastText, Word2Vec
from gensim.models.fasttext import FastTextKeyedVectors
from gensim.models.keyedvectors import KeyedVectors

from models.vocab import PAD_ID, UNK_ID

LOGGER = logging.getLogger(__name__)
KINDS = ("word2vec", "fasttext")


def stable_hash(text: str) -> int:
    """gensim's seed hash for initial vectors; Python's `hash` changes per process (PYTHONHASHSEED)."""
    return zlib.crc32(text.encode("utf-8"))


def train_embeddings(
    token_lists: Sequence[Sequence[str]],
    kind: str = "fasttext",
    *,
    dim: int = 100,
    window: int = 5,
    min_count: int = 2,
    epochs: int = 5,
    seed: int = 13,
    workers: int = 1,
    buckets: int = 200_000,
) -> KeyedVectors:
    """Skip-gram vectors of the given kind; FastText keeps its character n-grams for unseen words.

    With one worker the result is identical run after run (same corpus, same seed); more workers are
    faster but not bit-for-bit reproducible. `buckets` is FastText's number of hashed n-gram vectors.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown embedding kind {kind!r}; choose one of {KINDS}")
    sentences = [list(tokens) for tokens in token_lists if tokens]
    common = {
        "vector_size": dim,
        "window": window,
        "min_count": min_count,
        "sg": 1,
        "negative": 5,
        "epochs": epochs,
        "seed": seed,
        "workers": workers,
        "hashfxn": stable_hash,
    }
    if kind == "word2vec":
        model = Word2Vec(sentences=sentences, **common)
    else:
        model = FastText(sentences=sentences, min_n=3, max_n=5, bucket=buckets, **common)
    LOGGER.info("trained %s: %d words, dim %d", kind, len(model.wv), dim)
    return model.wv


def save_vectors(vectors: KeyedVectors, path: Path) -> None:
    """Save in gensim's native format (keeps FastText n-grams)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    vectors.save(str(path))


def load_vectors(path: Path) -> KeyedVectors:
    """Load vectors saved by `save_vectors`."""
    return KeyedVectors.load(str(path))


def _is_glove(path: Path) -> bool:
    """GloVe text files have no `<count> <dim>` header line; word2vec text files do."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        first = handle.readline().split()
    return not (len(first) == 2 and all(part.isdigit() for part in first))


def load_pretrained(path: Path, limit: int | None = None) -> KeyedVectors:
    """Vectors from a GloVe or word2vec *text* file (the format is detected from the first line)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"embedding file not found: {path}")
    glove = _is_glove(path)
    return KeyedVectors.load_word2vec_format(
        str(path), binary=False, no_header=glove, limit=limit, unicode_errors="replace"
    )


def embedding_matrix(
    vocab_tokens: Sequence[str], vectors: KeyedVectors, *, seed: int = 13
) -> tuple[np.ndarray, float]:
    """Rows for a vocabulary, and the share of tokens that had a vector.

    Row PAD_ID is zero. A token without a vector (and the UNK row) gets a FastText vector built from its
    character n-grams when the vectors have them, else a small random vector with the spread of the
    known ones, so fine-tuning can still move it.
    """
    dim = vectors.vector_size
    rng = np.random.default_rng(seed)
    scale = float(np.std(vectors.vectors)) if len(vectors) else 0.1
    matrix = rng.normal(0.0, scale, size=(len(vocab_tokens), dim)).astype(np.float32)
    has_subwords = isinstance(vectors, FastTextKeyedVectors) and vectors.bucket > 0
    found = 0
    for row, token in enumerate(vocab_tokens):
        if row in (PAD_ID, UNK_ID):
            continue
        if token in vectors.key_to_index:
            matrix[row] = vectors[token]
            found += 1
        elif has_subwords:
            matrix[row] = vectors[token]
    matrix[PAD_ID] = 0.0
    special_rows = 2
    coverage = found / max(1, len(vocab_tokens) - special_rows)
    return matrix, coverage
