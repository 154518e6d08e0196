"""The linear model's numpy features and scores match scikit-learn's TF-IDF on the same vocabulary."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from models.linear import LinearModel, char_terms, fit_linear, softmax, word_terms
from models.text import tokenize

pytestmark = pytest.mark.model

TEXTS = [
    "@united the flight was not good, the crew was great",
    "Loved it!!! best airline :)",
    "flight 714 boards at 6pm",
    "",
    "no complaints at all",
]


def test_char_terms_are_scikit_learns_char_wb() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    analyzer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), lowercase=False).build_analyzer()
    for text in TEXTS:
        tokens = tokenize(text)
        assert Counter(char_terms(tokens)) == Counter(analyzer(" ".join(tokens)))


def test_features_are_scikit_learns_tfidf() -> None:
    """Same vocabulary and idf in, same L2-normalised sublinear TF-IDF rows out (two stacked blocks)."""
    from scipy.sparse import coo_matrix, hstack
    from sklearn.feature_extraction.text import TfidfVectorizer

    token_lists = [tokenize(text) for text in TEXTS * 3]
    words = TfidfVectorizer(analyzer=lambda terms: terms, sublinear_tf=True).fit(
        [word_terms(t) for t in token_lists]
    )
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), lowercase=False, sublinear_tf=True)
    chars.fit([" ".join(tokens) for tokens in token_lists])
    word_features = words.get_feature_names_out().tolist()
    char_features = chars.get_feature_names_out().tolist()
    n = len(word_features) + len(char_features)
    model = LinearModel(
        word_features,
        char_features,
        np.concatenate([words.idf_, chars.idf_]),
        np.zeros((3, n), dtype=np.float32),
        np.zeros(3),
    )
    expected = hstack(
        [
            words.transform([word_terms(t) for t in token_lists]),
            chars.transform([" ".join(t) for t in token_lists]),
        ]
    ).toarray()
    rows, columns, values = model.features(token_lists)
    got = coo_matrix((values, (rows, columns)), shape=expected.shape).toarray()
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_fit_scores_and_round_trips(tmp_path) -> None:
    texts = ["love this flight", "worst crew ever", "gate 12 at noon", "not good at all"] * 20
    labels = ["positive", "negative", "neutral", "negative"] * 20
    token_lists = [tokenize(text) for text in texts]
    model = fit_linear(token_lists, labels, ("negative", "neutral", "positive"))
    predicted = softmax(model.logits(token_lists[:4])).argmax(axis=1)
    assert predicted.tolist() == [2, 0, 1, 0]
    model.save(tmp_path)
    loaded = LinearModel.load(tmp_path)
    np.testing.assert_allclose(loaded.logits(token_lists), model.logits(token_lists), atol=1e-5)
    # No feature at all (an empty tweet) scores the intercepts.
    np.testing.assert_allclose(loaded.logits([[]])[0], loaded.intercepts, atol=1e-6)
