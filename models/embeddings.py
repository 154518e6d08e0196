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


PARSE_CHUNK = 20_000  # lines parsed as one string of numbers
FLOAT32_MAX = float(np.finfo(np.float32).max)


class PretrainedFileError(ValueError):
    """A pretrained vectors file that cannot be read as GloVe or word2vec text; the message names the line."""


def _header(first: str) -> tuple[int, int] | None:
    """`(count, dim)` from a word2vec text file's first line; None for GloVe (no header)."""
    parts = first.split()
    if len(parts) == 2 and all(part.isdigit() for part in parts):
        return int(parts[0]), int(parts[1])
    return None


def _split_vector_line(line: str, dim: int, number: int, path: Path) -> tuple[str, str]:
    """A line's word and the text of its `dim` numbers; a word may hold spaces (GloVe 840B's do)."""
    spaces = line.count(" ")
    cut = line.find(" ") if spaces == dim else len(line.rsplit(" ", dim)[0])
    word = line[:cut]
    if not word:
        raise PretrainedFileError(f"{path}, line {number}: no word before the numbers")
    if spaces < dim or (spaces > dim and _is_number(word.rsplit(" ", 1)[-1])):
        count = "1 number" if spaces == 1 else f"{spaces} numbers"
        raise PretrainedFileError(f"{path}, line {number}: {count} after the word, expected {dim}")
    return word, line[cut + 1 :]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_numbers(texts: list[str], numbers: list[int], dim: int, path: Path) -> np.ndarray:
    """The rows of one chunk; a value that is not a finite number is named by its line."""
    try:
        values = np.fromstring(" ".join(texts), dtype=np.float32, sep=" ")
    except ValueError:  # text that is not a number: found line by line below
        values = np.empty(0, dtype=np.float32)
    if values.size == len(texts) * dim and np.isfinite(values).all():
        return values.reshape(len(texts), dim)
    for text, number in zip(texts, numbers, strict=True):
        for value in text.split(" "):
            try:
                parsed = float(value)
            except ValueError:
                raise PretrainedFileError(f"{path}, line {number}: {value[:40]!r} is not a number") from None
            if not abs(parsed) <= FLOAT32_MAX:  # inf, nan, or beyond float32
                raise PretrainedFileError(f"{path}, line {number}: {value[:40]!r} is not a finite number")
    raise PretrainedFileError(f"{path}: unreadable numbers in lines {numbers[0]}-{numbers[-1]}")


def load_pretrained(path: Path, limit: int | None = None) -> KeyedVectors:
    """Vectors from a GloVe or word2vec *text* file (the format is detected from the first line).

    Every line is checked: a line whose width differs from the header's (word2vec) or the first vector's
    (GloVe), a value that is not a finite number, a header whose count disagrees with the file, or a file
    with no vector raises `PretrainedFileError` naming the file and the line. Blank lines are skipped; a
    repeated word keeps its first vector. `limit` reads only the first `limit` vectors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"embedding file not found: {path}")
    keys: list[str] = []
    seen: set[str] = set()
    chunks: list[np.ndarray] = []
    texts: list[str] = []
    numbers: list[int] = []
    duplicates = 0
    header = None
    dim = 0
    with open(path, encoding="utf-8-sig", errors="replace") as handle:  # -sig: a BOM is no part of a word
        for number, raw in enumerate(handle, start=1):
            line = raw.rstrip()
            if number == 1:
                header = _header(line)
                if header is not None:
                    dim = header[1]
                    continue
            if not line:
                continue
            if not dim:
                dim = line.count(" ")
                if dim < 1:
                    raise PretrainedFileError(f"{path}, line {number}: a word without numbers")
            if limit is not None and len(keys) + duplicates >= limit:
                break
            word, text = _split_vector_line(line, dim, number, path)
            if word in seen:
                duplicates += 1
                continue
            seen.add(word)
            keys.append(word)
            texts.append(text)
            numbers.append(number)
            if len(texts) == PARSE_CHUNK:
                chunks.append(_parse_numbers(texts, numbers, dim, path))
                texts, numbers = [], []
    if texts:
        chunks.append(_parse_numbers(texts, numbers, dim, path))
    read = len(keys) + duplicates
    if header is not None and limit is None and read != header[0]:
        raise PretrainedFileError(
            f"{path}: the header says {header[0]} vectors, the file holds {read} (truncated or damaged?)"
        )
    if not keys:
        raise PretrainedFileError(f"{path}: no vectors")
    if duplicates:
        LOGGER.warning("%s: %d repeated words, each kept with its first vector", path, duplicates)
    vectors = KeyedVectors(vector_size=dim, count=0, dtype=np.float32)
    vectors.add_vectors(keys, np.concatenate(chunks))
    return vectors


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
