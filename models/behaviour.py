"""Behavioural checks of a sentiment model (invariance, direction, minimum functionality).

One table of cases, used by the behavioural tests on the shipped champion (tests/models/test_behaviour.py)
and by `buzzwatch train` as a gate when it picks the champion among variants: a model that ignores
negation, calls plainly negated negatives negative past the issue's bar, or flips on an @mention must not
ship, whatever its validation score. Nor does one whose scores depend on the batch a tweet is scored in: the
detection's alerts must be the same live (pushes of any size) as in a sorted replay, so a tweet's
probabilities must be the same bits batched and alone.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MENTION_SETS: tuple[tuple[str, ...], ...] = (
    (
        "@united thanks for the great flight",
        "@Delta thanks for the great flight",
        "@AmericanAir thanks for the great flight",
        "thanks for the great flight @JetBlue",
    ),
    ("@united lost my bag again, worst service", "@SouthwestAir lost my bag again, worst service"),
    ("@VirginAmerica flight 714 to Boston boards at 6pm", "@USAirways flight 714 to Boston boards at 6pm"),
)
# The same tweet in the "fonts" tweets are styled with (mathematical bold and italic, fullwidth, circled):
# a model reads them as the plain text (models.text rule 1; bold "worst airline ever" was neutral).
STYLE_SETS: tuple[tuple[str, ...], ...] = (
    (
        "@united worst airline ever, lost my bag",
        "@united 𝐰𝐨𝐫𝐬𝐭 𝐚𝐢𝐫𝐥𝐢𝐧𝐞 𝐞𝐯𝐞𝐫, lost my bag",
        "@united ｗｏｒｓｔ ａｉｒｌｉｎｅ ｅｖｅｒ, lost my bag",
    ),
    ("love the crew, best flight ever", "𝒍𝒐𝒗𝒆 the crew, 𝒃𝒆𝒔𝒕 flight ever", "ⓛⓞⓥⓔ the crew, best flight ever"),
)
URL_BASES: tuple[str, ...] = (
    "@united thanks for the great flight",
    "@united lost my bag again, worst service",
    "new phone comes out on friday",
    "so happy with my new laptop",
)
URL_SUFFIXES: tuple[str, ...] = ("", " http://t.co/Ab12Cd", " https://www.example.com/a?b=c")
NEGATION_PAIRS: tuple[tuple[str, str], ...] = (
    ("the flight was good", "the flight was not good"),
    ("the service was great", "the service was not great"),
    ("I love this airline", "I don't love this airline"),
    ("the crew was helpful", "the crew was not helpful"),
)
OBVIOUS_CASES: tuple[tuple[str, str], ...] = (
    ("@united thanks for the great flight, the crew was amazing!", "positive"),
    ("I love this airline", "positive"),
    ("This movie is awesome :)", "positive"),
    ("@united worst airline ever, lost my bag and no help", "negative"),
    ("@united my flight was delayed 5 hours. terrible service", "negative"),
    ("so sad that the concert got cancelled :(", "negative"),
    ("What time does the flight leave tomorrow?", "neutral"),
    ("@JetBlue flight 123 from JFK to LAX departs at 5pm", "neutral"),
)
# Plainly negated negatives: none of them is a negative tweet. The first six are the issue's, which asks
# that at most one in six be labelled negative. None of their negated words is among the sentences
# `models.augment` adds to training, so meeting the bar means generalising to them. A gate since 2026-12-07
# (`behaviour_failures`): the default recipe meets it since it learns negation pairs for its last epochs
# (README, "Negation on the valence recipe"), but not at every seed (seed 16 called 9 of 12 negative).
NEGATED_NEGATIVES: tuple[str, ...] = (
    "not bad",
    "no complaints",
    "the flight was not bad at all",
    "the crew was not rude",
    "not disappointed with the service",
    "no problems with my booking",
    "never had a problem with them",
    "nothing to complain about",
    "the wait was not bad",
    "no hassle at all with check in",
    "the staff were not rude to us",
    "I was not disappointed",
)
MAX_NEGATED_NEGATIVES_SHARE = 1 / 6  # the bar
# Emoji-only tweets, whose feeling is the emoji's (issue 11 found them all called neutral). Measured for every
# candidate (`emoji_only_wrong`), not a gate: the shipped champion calls half of them neutral (README,
# "Emoji-only tweets": some are outside its vocabulary, some unrated by VADER).
EMOJI_ONLY: tuple[tuple[str, str], ...] = (
    ("😡😡😡", "negative"),
    ("💔", "negative"),
    ("🤬", "negative"),
    ("👎", "negative"),
    ("@united 😤", "negative"),
    ("😢 @united", "negative"),
    ("😍", "positive"),
    ("😊", "positive"),
    ("👍👍", "positive"),
    ("@united ❤️❤️", "positive"),
    ("🎉🎉🎉", "positive"),
    ("🙏😊", "positive"),
)
MAX_INVARIANCE_SHIFT = 0.15
MIN_NEGATION_DROP = 0.3


def invariance_failures(predictor: Any, variants: tuple[str, ...] | list[str]) -> list[str]:
    """Texts that should score alike but do not (different label or a probability shift too large)."""
    probabilities = predictor.predict_proba(list(variants))
    labels = {predictor.labels[index] for index in probabilities.argmax(axis=1)}
    if len(labels) > 1 or np.max(np.abs(probabilities - probabilities[0])) >= MAX_INVARIANCE_SHIFT:
        return [f"not invariant: {list(variants)}"]
    return []


def negation_failures(predictor: Any, positive: str, negated: str) -> list[str]:
    """A positive text whose negation stays positive or barely moves."""
    before, after = predictor.predict([positive, negated])
    if before.label != "positive":
        return [f"not positive: {positive!r} -> {before.label}"]
    drop = before.probabilities["positive"] - after.probabilities["positive"]
    if after.label == "positive" or drop < MIN_NEGATION_DROP:
        return [f"negation ignored: {negated!r} -> {after.label} (positive drops {drop:.2f})"]
    return []


def batch_probe() -> list[str]:
    """Every text of the checks above, scored together and one at a time by `batch_failures`."""
    texts = [text for variants in MENTION_SETS for text in variants]
    texts += [base + suffix for base in URL_BASES for suffix in URL_SUFFIXES]
    texts += [text for pair in NEGATION_PAIRS for text in pair]
    return texts + [text for text, _ in OBVIOUS_CASES] + list(NEGATED_NEGATIVES)


def batch_failures(predictor: Any) -> list[str]:
    """Texts whose probabilities are not the same bits in one batch as alone (an ensemble's float32 sums)."""
    texts = batch_probe()
    together = np.asarray(predictor.predict_proba(texts))
    alone = np.vstack([predictor.predict_proba([text]) for text in texts])
    return [
        f"scores depend on the batch: {text!r} moves by {np.abs(row - single).max():.1e}"
        for text, row, single in zip(texts, together, alone, strict=True)
        if not np.array_equal(row, single)
    ]


def behaviour_failures(predictor: Any) -> list[str]:
    """Every failed behavioural check of a predictor (empty when the model passes them all)."""
    failures: list[str] = batch_failures(predictor)
    for variants in (*MENTION_SETS, *STYLE_SETS):
        failures += invariance_failures(predictor, variants)
    for base in URL_BASES:
        failures += invariance_failures(predictor, [base + suffix for suffix in URL_SUFFIXES])
    for positive, negated in NEGATION_PAIRS:
        failures += negation_failures(predictor, positive, negated)
    texts = [text for text, _ in OBVIOUS_CASES]
    for prediction, (text, expected) in zip(predictor.predict(texts), OBVIOUS_CASES, strict=True):
        if prediction.label != expected:
            failures.append(f"wrong on an obvious case: {text!r} -> {prediction.label}, expected {expected}")
    called, allowed = negated_negatives_called_negative(predictor), max_negated_negatives()
    if called > allowed:
        failures.append(
            f"negated negatives called negative: {called} of {len(NEGATED_NEGATIVES)} (at most {allowed})"
        )
    return failures


def max_negated_negatives() -> int:
    """How many of NEGATED_NEGATIVES a model may label negative (the issue's bar, one in six: 2 of 12)."""
    return math.floor(MAX_NEGATED_NEGATIVES_SHARE * len(NEGATED_NEGATIVES) + 1e-9)


def negated_negatives_called_negative(predictor: Any) -> int:
    """How many of NEGATED_NEGATIVES the model labels negative (the bar: MAX_NEGATED_NEGATIVES_SHARE)."""
    return sum(prediction.label == "negative" for prediction in predictor.predict(list(NEGATED_NEGATIVES)))


def emoji_only_wrong(predictor: Any) -> int:
    """How many of EMOJI_ONLY the model labels otherwise than their emoji say."""
    predictions = predictor.predict([text for text, _ in EMOJI_ONLY])
    return sum(
        prediction.label != expected
        for prediction, (_, expected) in zip(predictions, EMOJI_ONLY, strict=True)
    )
