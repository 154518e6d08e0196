"""The linear model: its vectors are scikit-learn's binary TF-IDF, negation flips, fit and round trip."""

from __future__ import annotations

import numpy as np
import pytest

from models.baseline import fit_linear
from models.linear import PAD_FEATURE, LinearModel, softmax, word_terms
from models.text import NEGATION_PREFIX, mark_negation, tokenize

pytestmark = pytest.mark.model

TEXTS = [
    "@united the flight was not good, the crew was great",
    "Loved it!!! best airline :)",
    "flight 714 boards at 6pm",
    "",
    "no complaints at all",
]


def test_logits_are_scikit_learns_binary_tfidf_times_the_coefficients() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    token_lists = [tokenize(text) for text in TEXTS * 3]
    vectorizer = TfidfVectorizer(analyzer=lambda terms: terms, binary=True)
    matrix = vectorizer.fit_transform([word_terms(tokens) for tokens in token_lists]).toarray()
    features = vectorizer.get_feature_names_out().tolist()
    coefficients = np.random.default_rng(0).normal(size=(3, len(features))).astype(np.float32)
    intercepts = np.array([0.1, -0.2, 0.3], dtype=np.float32)
    model = LinearModel(features, vectorizer.idf_, coefficients, intercepts)
    expected = matrix @ coefficients.T + intercepts
    np.testing.assert_allclose(model.logits(token_lists), expected, atol=1e-5)


def test_negation_flip_adds_the_signed_twin_of_each_negated_word() -> None:
    features = sorted({"bad", "not", "neg_bad", "not neg_bad", "flight"})
    model = LinearModel(features, np.ones(len(features)), np.zeros((3, len(features))), np.zeros(3), True)
    ids = set(model.id_matrix([tokenize("not bad")])[0].tolist()) - {PAD_FEATURE}
    position = {term: features.index(term) + 1 for term in features}
    assert ids == {
        position["not"],
        position["neg_bad"],
        position["not neg_bad"],
        len(features) + position["bad"],
    }
    # "bad" leaning negative makes "not bad" lean the other way through its flipped twin.
    coefficients = np.zeros((3, len(features)), dtype=np.float32)
    coefficients[0, features.index("bad")] = 2.0
    flipping = LinearModel(features, np.ones(len(features)), coefficients, np.zeros(3), True)
    plain = LinearModel(features, np.ones(len(features)), coefficients, np.zeros(3), False)
    assert flipping.logits([tokenize("not bad")])[0, 0] < 0 == plain.logits([tokenize("not bad")])[0, 0]


SCOPE_TEXTS = [
    "not bad at all, but the crew was not helpful",
    "no complaints!! never late :) nothing wrong <3 really not @united http://t.co/x bad",
    "I don't love this airline... not one bit; nor the food",
    "without a doubt the best, not the worst not",
    "the flight was great great great",
    "not",
    "",
]


@pytest.mark.parametrize("flip", [False, True])
def test_vectorised_features_are_the_terms_of_the_marked_tokens(flip: bool) -> None:
    token_lists = [tokenize(text) for text in SCOPE_TEXTS]
    terms = sorted({term for tokens in token_lists[::2] for term in word_terms(tokens)})
    model = LinearModel(terms, np.ones(len(terms)), np.zeros((3, len(terms))), np.zeros(3), flip)
    position = {term: index + 1 for index, term in enumerate(terms)}
    for tokens, row in zip(token_lists, model.id_matrix(token_lists), strict=True):
        expected = {position[term] for term in word_terms(tokens) if term in position}
        if flip:
            negated = [term.removeprefix(NEGATION_PREFIX) for term in mark_negation(tokens)]
            expected |= {
                len(terms) + position[word]
                for word, marked in zip(negated, mark_negation(tokens), strict=True)
                if marked != word and word in position
            }
        ids = [value for value in row.tolist() if value != PAD_FEATURE]
        assert sorted(ids) == sorted(expected), tokens  # each feature once


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
