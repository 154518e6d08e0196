"""Negation minimal pairs for training: a word, the same sentence with the word negated, and their targets.

Tweets with a negated negative word ("not bad", "no complaints") are rare in the labelled data, while
negated positives ("not happy", "no help") are common complaints, so a model learns that a negator means
negative whatever it negates (issue 11: every candidate labelled half the plainly negated negatives
negative). `negation_examples` writes short sentences from templates: a negative word plainly (negative),
the same word negated (not negative: half neutral, half positive as a soft target), a positive word plainly
(positive) and negated (negative), so what the model can learn from them is what the negation does.

Held out on purpose: no word of the behavioural checks (`models.behaviour`: "bad", "complaints", "rude",
"disappointed", "problems", "good", "great", "love", "helpful", ...) appears here, so the negation gate
measures whether the model generalises to words it never saw negated in these sentences
(tests/models/test_augment.py checks the two stay apart). Training code only.
"""

from __future__ import annotations

import numpy as np

from buzzwatch.schema import LABELS

SUBJECTS: tuple[str, ...] = (
    "the flight",
    "the crew",
    "the service",
    "my trip",
    "the food",
    "the staff",
    "the seat",
    "the wifi",
    "check in",
    "the boarding",
    "the hotel",
    "the movie",
    "the show",
    "the game",
    "this phone",
    "the update",
    "the app",
    "the concert",
    "customer service",
    "the gate agent",
    "the pilot",
    "the layover",
)
# Adjectives: a sentence "SUBJECT was WORD" is plainly negative (positive) for these.
NEGATIVE_WORDS: tuple[str, ...] = (
    "terrible",
    "awful",
    "horrible",
    "slow",
    "late",
    "dirty",
    "boring",
    "annoying",
    "useless",
    "uncomfortable",
    "unfriendly",
    "noisy",
    "crowded",
    "frustrating",
    "disgusting",
    "painful",
    "stressful",
    "a disaster",
    "a nightmare",
    "a joke",
)
POSITIVE_WORDS: tuple[str, ...] = (
    "amazing",
    "excellent",
    "wonderful",
    "fantastic",
    "pleasant",
    "friendly",
    "comfortable",
    "clean",
    "fun",
    "smooth",
    "awesome",
    "perfect",
    "worth it",
    "on time",
)
# Nouns: "no WORD" negates them.
NEGATIVE_NOUNS: tuple[str, ...] = ("issues", "delays", "trouble", "glitches", "worries", "regrets", "drama")
PLAIN: tuple[str, ...] = ("{subject} was {word}", "{subject} is {word}", "wow {subject} was so {word}")
NEGATED: tuple[str, ...] = (
    "{subject} was not {word}",
    "{subject} is not {word}",
    "{subject} wasn't {word}",
    "{subject} was not {word} at all",
    "{subject} was never {word}",
    "honestly {subject} was not {word}",
)
PLAIN_NOUN: tuple[str, ...] = (
    "so many {word} with {subject}",
    "{subject} had {word} again",
    "{word} everywhere",
)
NEGATED_NOUN: tuple[str, ...] = (
    "no {word} with {subject}",
    "{subject} had no {word}",
    "never any {word} with {subject}",
    "no {word} at all",
)
NEGATIVE = {"negative": 1.0}
POSITIVE = {"positive": 1.0}
NOT_NEGATIVE = {"neutral": 0.5, "positive": 0.5}
# (words, templates, target): the sentences come from these in turn.
KINDS: tuple[tuple[tuple[str, ...], tuple[str, ...], dict[str, float]], ...] = (
    (NEGATIVE_WORDS, PLAIN, NEGATIVE),
    (NEGATIVE_WORDS, NEGATED, NOT_NEGATIVE),
    (NEGATIVE_NOUNS, PLAIN_NOUN, NEGATIVE),
    (NEGATIVE_NOUNS, NEGATED_NOUN, NOT_NEGATIVE),
    (POSITIVE_WORDS, PLAIN, POSITIVE),
    (POSITIVE_WORDS, NEGATED, NEGATIVE),
)


def negation_examples(count: int, seed: int) -> tuple[list[str], np.ndarray]:
    """`count` seeded sentences, each kind in turn, and their soft targets (columns in LABELS order)."""
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    targets = np.zeros((count, len(LABELS)), dtype=np.float32)
    for position in range(count):
        words, templates, shares = KINDS[position % len(KINDS)]
        template = templates[rng.integers(len(templates))]
        subject = SUBJECTS[rng.integers(len(SUBJECTS))]
        texts.append(template.format(subject=subject, word=words[rng.integers(len(words))]))
        targets[position] = [shares.get(label, 0.0) for label in LABELS]
    return texts, targets
