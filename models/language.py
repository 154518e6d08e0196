"""Which language a tweet is in, and whether the model can read it: flag a tweet rather than guess.

The sentiment model learned from English tweets only; a French or Spanish complaint gets a confident but
meaningless score. Each scored tweet therefore carries its language and a `supported` flag. The language is
the X API's `lang` field when the tweet has one, otherwise Google's CLD2 (package `pycld2`, about 20 µs a
tweet, its model compiled in: nothing is downloaded). Tweets too short or too mixed to tell (emoji only, a
mention and a link, a few words) are `und` and count as supported: the model reads emoji, emoticons and
short English, and refusing them would silence most of the stream.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pycld2

UNDETERMINED = "und"
DEFAULT_LANGUAGES = ("en",)  # what a model artifact that names no languages was trained on
# X API `lang` values that say "no language" rather than naming one (media, hashtags, emoji, cashtags...).
_X_NON_LANGUAGES = frozenset({"", "und", "zxx", "art", "qam", "qct", "qht", "qme", "qst", "in-und"})
# CLD2's names that differ from the ISO 639-1 codes the X API uses.
_CLD2_TO_X = {"iw": "he", "zh-hant": "zh", "zh": "zh", "un": UNDETERMINED}
# Links, mentions, hashtags, RT and HTML entities; the look-ahead only skips, fast, the places where none of
# them can start (no character folds to h, w or r but those letters), so it finds exactly what it would find
# without (tests/models/test_language.py) at half the cost.
_NOISE = re.compile(r"(?=[hw@#r&])(?:https?://\S+|www\.\S+|[@#]\w+|\bRT\b|&\w+;)", re.IGNORECASE)
MIN_TEXT_BYTES = 24  # less text than this (links, mentions and hashtags removed) cannot be told apart
# CLD2 reads short English as Scots now and then ("I feel sorry for AA"); Scots is no language we serve.
_ENGLISH_LOOKALIKES = frozenset({"sco"})


@dataclass(frozen=True)
class Language:
    """A tweet's language (ISO 639-1, or `und`) and whether the model was trained to read it."""

    code: str
    supported: bool


def normalise_code(code: str | None) -> str:
    """The ISO 639-1 part of a language tag (`en-GB` -> `en`), or `und` for none or a non-language tag."""
    tag = (code or "").strip().lower()
    if tag in _X_NON_LANGUAGES:
        return UNDETERMINED
    tag = _CLD2_TO_X.get(tag, tag)
    return tag.split("-", 1)[0].split("_", 1)[0] or UNDETERMINED


def detect(text: str) -> str:
    """The language CLD2 reliably finds in the text (links, mentions, hashtags removed), else `und`."""
    content = _NOISE.sub(" ", text or "")
    try:
        reliable, text_bytes, details = pycld2.detect(content, isPlainText=True, bestEffort=False)
    except (pycld2.error, UnicodeError, ValueError):  # broken Unicode (a lone surrogate) tells nothing
        return UNDETERMINED
    if not reliable or text_bytes < MIN_TEXT_BYTES or not details:
        return UNDETERMINED
    code = normalise_code(details[0][1])
    return "en" if code in _ENGLISH_LOOKALIKES else code


class LanguageGate:
    """Decides each tweet's language and whether the model supports it (the languages it trained on)."""

    def __init__(self, supported: Iterable[str] = DEFAULT_LANGUAGES) -> None:
        self.supported = frozenset(normalise_code(code) for code in supported) - {UNDETERMINED}
        if not self.supported:
            raise ValueError("a model must support at least one language")

    def identify(self, text: str, hint: str | None = None) -> Language:
        """The tweet's language: the source's tag (X API `lang`) when it names one, else detected."""
        code = normalise_code(hint)
        if code == UNDETERMINED:
            code = detect(text)
        return Language(code, code == UNDETERMINED or code in self.supported)

    def identify_many(
        self, texts: Sequence[str], hints: Sequence[str | None] | None = None
    ) -> list[Language]:
        """`identify` for each text, with its hint when hints are given (same length as texts)."""
        if hints is None:
            return [self.identify(text) for text in texts]
        if len(hints) != len(texts):
            raise ValueError("hints must have one entry per text")
        return [self.identify(text, hint) for text, hint in zip(texts, hints, strict=True)]


def gate_for(model: object) -> LanguageGate:
    """The gate for a sentiment model: the languages its artifact names (`Predictor.languages`) or English."""
    return LanguageGate(getattr(model, "languages", None) or DEFAULT_LANGUAGES)
