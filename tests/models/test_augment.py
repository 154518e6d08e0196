"""Negation minimal pairs for training: targets by kind, seeded, and apart from the behavioural checks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from buzzwatch.schema import LABELS
from models import augment, behaviour
from models.text import tokenize

pytestmark = pytest.mark.model

# The negated words of the behavioural checks (models.behaviour); augmentation must never use them, or the
# negation gate would measure memory instead of generalisation.
CHECKED_WORDS = {"bad", "complaints", "complain", "rude", "disappointed", "problems", "problem", "hassle"}
CHECKED_WORDS |= {"good", "great", "love", "helpful"}


def test_each_kind_gets_its_target_and_the_sentences_are_seeded() -> None:
    texts, targets = augment.negation_examples(60, seed=3)
    assert len(texts) == len(targets) == 60 and targets.dtype == np.float32
    np.testing.assert_allclose(targets.sum(axis=1), 1.0)
    negative = LABELS.index("negative")
    for position, (text, target) in enumerate(zip(texts, targets, strict=True)):
        words, _, shares = augment.KINDS[position % len(augment.KINDS)]
        assert any(word in text for word in words)
        assert target[negative] == shares.get("negative", 0.0)
    # A negated negative word is never a negative target; the plain word always is.
    assert targets[1::6, negative].max() == 0.0 and targets[0::6, negative].min() == 1.0
    again, _ = augment.negation_examples(60, seed=3)
    assert again == texts and augment.negation_examples(60, seed=4)[0] != texts


def test_no_word_of_the_behavioural_checks_is_in_the_training_sentences() -> None:
    checked_tokens = {token for text in behaviour.NEGATED_NEGATIVES for token in tokenize(text)}
    checked_tokens |= {token for pair in behaviour.NEGATION_PAIRS for token in tokenize(pair[1])}
    assert checked_tokens >= CHECKED_WORDS  # the list above names words the checks really use
    parts = [*augment.SUBJECTS, *augment.NEGATIVE_WORDS, *augment.POSITIVE_WORDS, *augment.NEGATIVE_NOUNS]
    parts += [
        template.format(subject="", word="") for _, templates, _ in augment.KINDS for template in templates
    ]
    used = {token for part in parts for token in tokenize(part)}
    assert not used & CHECKED_WORDS


def test_training_leaves_out_a_sentence_that_is_a_held_out_text() -> None:
    import pandas as pd

    from models.data import Splits
    from models.train import VARIANTS, Prepared, TrainOptions, negation_examples

    texts, _ = augment.negation_examples(12, seed=13)
    frame = pd.DataFrame({"text": [texts[1].upper()], "label": ["neutral"], "source": ["semeval"]})
    empty = frame.iloc[:0]
    splits = Splits(train=empty, validation=empty, test=frame, early_stop=empty, shifted=empty)
    variant = replace(VARIANTS["ft-frozen-air5-distil-neg"], negation_examples=12)
    kept, targets = negation_examples(Prepared(frame, splits, {}, []), variant, TrainOptions(seed=13))
    assert texts[1] not in kept and len(kept) == len(targets) == len(texts) - texts.count(texts[1])


def test_the_negation_variants_linear_half_learns_the_examples() -> None:
    import pandas as pd

    from models.data import Splits
    from models.linear import softmax
    from models.text import tokenize
    from models.train import VARIANTS, Prepared, TrainOptions, negation_linear

    rows = [("the flight was terrible", "negative"), ("not happy, no help at all", "negative")] * 20
    rows += [("the crew was amazing", "positive"), ("flight 12 boards at noon", "neutral")] * 20
    train = pd.DataFrame(rows, columns=["text", "label"]).assign(source="airline")
    empty = train.iloc[:0]
    splits = Splits(train=train, validation=empty, test=empty, early_stop=empty, shifted=empty)
    variant = replace(VARIANTS["ft-frozen-air5-distil-neg"], negation_examples=600)
    linear = negation_linear(Prepared(train, splits, {}, []), variant, TrainOptions())
    assert "not neg_terrible" in linear.features
    probabilities = softmax(linear.logits([tokenize("the flight was not terrible")]))[0]
    assert LABELS[int(probabilities.argmax())] != "negative"
