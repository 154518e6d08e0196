"""FastText sub-word vectors for tokens outside the LSTM's vocabulary, in numpy (the serving side).

A FastText model (gensim, `models.embeddings`) keeps one vector per hashed character n-gram; a word it
never saw gets the mean of its n-grams' vectors. `SubwordTable` holds those n-gram vectors (float16 in
the artifact) and computes exactly what gensim computes for an unseen word, without gensim: the n-grams of
`<word>` of `min_n` to `max_n` characters, each hashed with FastText's 32-bit FNV-1a over its UTF-8 bytes
(bytes of 0x80 and above sign-extended, as the C++ FastText's `char` does), modulo the bucket count.
Training and serving both call `SubwordTable.vector`, so an unknown token gets the same row in both.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

SUBWORDS_FILE = "subwords.npz"
_FNV_OFFSET = 2166136261
_FNV_PRIME = 16777619
_MASK = 0xFFFFFFFF
# Distinct unknown tokens whose vectors a process keeps (a stream repeats its new words).
CACHE_SIZE = 50_000


def ngram_hash(ngram: str) -> int:
    """FastText's hash of one n-gram (gensim's `ft_hash_bytes`)."""
    value = _FNV_OFFSET
    for byte in ngram.encode("utf-8"):
        value ^= byte | 0xFFFFFF00 if byte >= 0x80 else byte
        value = (value * _FNV_PRIME) & _MASK
    return value


def ngram_buckets(token: str, min_n: int, max_n: int, buckets: int) -> list[int]:
    """The bucket of every character n-gram of `<token>` (min_n to max_n characters), in FastText's order."""
    wrapped = f"<{token}>"
    found = []
    for start in range(len(wrapped)):
        for size in range(min_n, max_n + 1):
            if start + size > len(wrapped):
                break
            found.append(ngram_hash(wrapped[start : start + size]) % buckets)
    return found


class SubwordTable:
    """Hashed n-gram vectors and the vector of any token built from them (cached per token)."""

    def __init__(self, ngram_vectors: np.ndarray, min_n: int, max_n: int) -> None:
        if ngram_vectors.ndim != 2 or not len(ngram_vectors):
            raise ValueError("n-gram vectors must be a non-empty (buckets, dim) matrix")
        if not 0 < min_n <= max_n:
            raise ValueError(f"need 0 < min_n <= max_n, got {min_n}, {max_n}")
        self.ngram_vectors = ngram_vectors
        self.min_n, self.max_n = int(min_n), int(max_n)
        self.vector = lru_cache(maxsize=CACHE_SIZE)(self._vector)

    @property
    def dim(self) -> int:
        """The vectors' dimension."""
        return int(self.ngram_vectors.shape[1])

    @classmethod
    def from_fasttext(cls, vectors: Any) -> SubwordTable:
        """The n-gram vectors of gensim FastText keyed vectors, stored as float16 (half the size)."""
        return cls(np.asarray(vectors.vectors_ngrams, dtype=np.float16), vectors.min_n, vectors.max_n)

    def _vector(self, token: str) -> np.ndarray:
        rows = ngram_buckets(token, self.min_n, self.max_n, len(self.ngram_vectors))
        if not rows:
            return np.zeros(self.dim, dtype=np.float32)
        return self.ngram_vectors[rows].astype(np.float32).mean(axis=0)

    def vectors(self, tokens: Sequence[str]) -> np.ndarray:
        """A (len(tokens), dim) float32 matrix of the tokens' sub-word vectors."""
        matrix = np.zeros((len(tokens), self.dim), dtype=np.float32)
        for row, token in enumerate(tokens):
            matrix[row] = self.vector(token)
        return matrix

    def save(self, directory: Path) -> None:
        """Write `subwords.npz` into an artifact directory."""
        np.savez(
            Path(directory) / SUBWORDS_FILE,
            ngram_vectors=self.ngram_vectors,
            n_range=np.array([self.min_n, self.max_n], dtype=np.int64),
        )

    @classmethod
    def load(cls, directory: Path) -> SubwordTable:
        """Read what `save` wrote."""
        with np.load(Path(directory) / SUBWORDS_FILE) as data:
            min_n, max_n = (int(value) for value in data["n_range"])
            return cls(data["ngram_vectors"], min_n, max_n)
