"""The linear sentiment model: TF-IDF over word n-grams, multinomial logistic regression.

Features of one tweet, from its `models.text.tokenize` tokens (the LSTM's tokens, so one tokenisation
serves both halves of the ensemble): unigrams and bigrams of the tokens with negation scope marked
(`neg_` prefix: a bag of words cannot see order otherwise), each counted once (binary TF). With
`flip_negation`, a word inside a negation scope also enters as its own feature with the sign flipped, so
"not bad" leans away from what "bad" means (as far as the data allows). A tweet's vector is those entries'
IDF, L2-normalised: logits = sum(sign * idf * W[feature]) / sqrt(sum(idf^2)) + b.

The features are saved as readable terms ("not neg_bad"), but scoring never builds a string: the model
compiles its terms into integer keys over its own token ids (a unigram is 2 x token id + negated, a bigram
two unigram keys), and `feature_id_matrix` finds a whole batch's negation scopes, n-gram keys and feature
ids with a few numpy operations on an (n, width) matrix of token ids (`token_ids`): 0 pads, 1..F are the
features, F+1..2F their flipped twins. The Predictor looks each token up once for both halves of the
ensemble and hands the token ids over. The serving artifact computes the logits inside the ONNX graph next
to the LSTM (`models.export.fuse_ensemble`), from the int32 (batch, n) feature id matrix;
`LinearModel.logits` computes the same with numpy (training, evaluation, parity tests). Serving imports
this module, so what trains one (`models.baseline.fit_linear`, scikit-learn) lives with the training code.
Saved as `linear.npz` (idf, coefficients, intercepts) + `linear_features.json` (features in id order).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

from models.text import (
    NEGATION_PREFIX,
    NEGATION_SCOPE_END,
    NEGATORS,
    can_carry_negation,
    mark_negation,
)
from models.vocab import pad_batch

WEIGHTS_FILE = "linear.npz"
FEATURES_FILE = "linear_features.json"
PAD_FEATURE = 0
PAD_KEY = -1  # an n-gram key no feature has


@dataclass(frozen=True)
class LinearConfig:
    """Feature and regularisation settings (logged with the run)."""

    C: float = 2.0
    min_df: int = 2
    max_iter: int = 2000
    flip_negation: bool = False


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (n, classes) decision values."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def word_terms(tokens: Sequence[str]) -> list[str]:
    """Word unigrams and bigrams of the negation-marked tokens."""
    marked = mark_negation(tokens)
    return marked + [f"{first} {second}" for first, second in pairwise(marked)]


class LinearModel:
    """TF-IDF + logistic regression over feature ids (numpy here; inside the ONNX graph at serving)."""

    def __init__(
        self,
        features: Sequence[str],
        idf: np.ndarray,
        coefficients: np.ndarray,
        intercepts: np.ndarray,
        flip_negation: bool = False,
    ) -> None:
        self.features = list(features)
        self.idf = np.asarray(idf, dtype=np.float32)
        self.coefficients = np.asarray(coefficients, dtype=np.float32)
        self.intercepts = np.asarray(intercepts, dtype=np.float32)
        self.flip_negation = bool(flip_negation)
        if self.idf.shape != (len(self.features),) or self.coefficients.shape[1] != len(self.features):
            raise ValueError(
                f"linear model shapes disagree: {len(self.features)} features, idf {self.idf.shape}, "
                f"coefficients {self.coefficients.shape}"
            )
        self._compile()

    def _compile(self) -> None:
        """The model's token ids, each token's role in a negation scope, every n-gram key's feature id."""
        units: list[tuple[tuple[str, bool], ...]] = []
        for term in self.features:
            # A token written "neg_x" is read as x inside a negation scope (the terms cannot tell them apart).
            units.append(
                tuple(
                    (word[len(NEGATION_PREFIX) :], True)
                    if word.startswith(NEGATION_PREFIX)
                    else (word, False)
                    for word in term.split(" ")
                )
            )
        vocabulary = sorted({word for unit in units for word, _ in unit} | NEGATORS | NEGATION_SCOPE_END)
        self.token_index = {token: position + 1 for position, token in enumerate(vocabulary)}
        roles = np.zeros((3, len(vocabulary) + 1), dtype=bool)
        for token, token_id in self.token_index.items():
            roles[:, token_id] = (token in NEGATORS, token in NEGATION_SCOPE_END, can_carry_negation(token))
        self._negator, scope_end, self._markable = roles
        self._event = self._negator | scope_end
        self._base = 2 * (len(vocabulary) + 1)
        keys = []
        for unit in units:
            unigrams = [2 * self.token_index[word] + negated for word, negated in unit]
            keys.append(unigrams[0] if len(unigrams) == 1 else self._base * (1 + unigrams[0]) + unigrams[1])
        ids = list(range(1, len(units) + 1))
        if self.flip_negation:
            # The flipped twin of a plain word's unigram (key 2t) has the negative key -2 - t.
            twins = [
                (-2 - key // 2, len(units) + id_)
                for key, id_ in zip(keys, ids, strict=True)
                if key < self._base and key % 2 == 0
            ]
            keys += [key for key, _ in twins]
            ids += [id_ for _, id_ in twins]
        # Sorted for the search in `lookup`; a last key above every other (feature PAD_FEATURE) keeps each
        # search inside the table, even for a model without features.
        order = np.argsort(keys, kind="stable")
        self.key_table: tuple[np.ndarray, np.ndarray] = (
            np.append(np.asarray(keys, dtype=np.int64)[order], np.iinfo(np.int64).max),
            np.append(np.asarray(ids, dtype=np.int64)[order], PAD_FEATURE),
        )

    def token_ids(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """An int32 (n, longest) matrix of this model's token ids, 0 for padding and unknown tokens."""
        lookup = self.token_index.get
        rows = [[lookup(token, 0) for token in tokens] for tokens in token_lists]
        return pad_batch(rows, max([1, *map(len, rows)]))

    def ngram_keys(self, token_ids: np.ndarray) -> np.ndarray:
        """Each row's distinct n-gram keys (int64; PAD_KEY elsewhere), from a `token_ids` matrix.

        0 in `token_ids` pads and stands for tokens the model does not know. A word is negated when the
        last negator or clause end before it is a negator (`models.text.mark_negation`, vectorised).
        Keys are looked up by `lookup` here and by the fused ONNX graph at serving.
        """
        tokens = np.asarray(token_ids, dtype=np.int64)
        # Each negator or clause end as 2 x its position (+1 for a negator), -2 elsewhere: the running
        # maximum is the last one so far, and its parity says whether it opened a scope.
        events = np.where(self._event[tokens], 2 * np.arange(tokens.shape[1]) + self._negator[tokens], -2)
        negated = (np.maximum.accumulate(events, axis=1) & 1).astype(bool) & self._markable[tokens]
        known = tokens > 0
        unigrams = np.where(known, 2 * tokens + negated, PAD_KEY)
        bigrams = np.where(
            known[:, :-1] & known[:, 1:], self._base * (1 + unigrams[:, :-1]) + unigrams[:, 1:], PAD_KEY
        )
        parts = [unigrams, bigrams]
        if self.flip_negation:
            parts.append(np.where(negated, -2 - tokens, PAD_KEY))
        keys = np.sort(np.concatenate(parts, axis=1), axis=1)
        keys[:, 1:][keys[:, 1:] == keys[:, :-1]] = PAD_KEY  # binary TF: each n-gram once
        return keys

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Feature ids (1..F, twins F+1..2F) of n-gram keys, PAD_FEATURE for keys that are not features."""
        table_keys, table_ids = self.key_table
        positions = np.searchsorted(table_keys, keys)
        return np.where(table_keys[positions] == keys, table_ids[positions], PAD_FEATURE)

    def id_matrix(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """Each tokenised tweet's distinct feature ids, PAD_FEATURE elsewhere (an int64 matrix)."""
        return self.lookup(self.ngram_keys(self.token_ids(token_lists)))

    def tables(self) -> tuple[np.ndarray, np.ndarray]:
        """Per feature id (pad, features, flipped twins): signed idf * coefficients (ids, classes), idf^2."""
        weighted = (self.coefficients * self.idf).T
        zero = np.zeros((1, weighted.shape[1]), dtype=np.float32)
        squares = np.concatenate([[0.0], self.idf**2, self.idf**2]).astype(np.float32)
        return np.concatenate([zero, weighted, -weighted]).astype(np.float32), squares

    def logits(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """(n, classes) decision values (what the fused ONNX graph computes)."""
        weighted, squares = self.tables()
        ids = self.id_matrix(token_lists)
        norms = np.sqrt(np.maximum(squares[ids].sum(axis=1), 1e-12))
        return weighted[ids].sum(axis=1) / norms[:, None] + self.intercepts

    def save(self, directory: Path) -> None:
        """Write linear.npz and linear_features.json into directory."""
        directory = Path(directory)
        np.savez(
            directory / WEIGHTS_FILE,
            idf=self.idf,
            coefficients=self.coefficients,
            intercepts=self.intercepts,
            flip_negation=np.asarray(self.flip_negation),
        )
        text = json.dumps(self.features, ensure_ascii=False)
        (directory / FEATURES_FILE).write_text(text, encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> LinearModel:
        """Read a model written by `save`."""
        directory = Path(directory)
        features = json.loads((directory / FEATURES_FILE).read_text(encoding="utf-8"))
        with np.load(directory / WEIGHTS_FILE) as weights:
            return cls(
                features,
                weights["idf"],
                weights["coefficients"],
                weights["intercepts"],
                bool(weights["flip_negation"]),
            )
