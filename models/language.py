"""Which language a tweet is in, and whether the model can read it: flag a tweet rather than guess.

The sentiment model learned from English tweets only; a French or Spanish complaint gets a confident but
meaningless score. Each scored tweet therefore carries its language and a `supported` flag. The language is
the X API's `lang` field when the tweet has one, otherwise Google's CLD2 (package `pycld2`, about 20 µs a
tweet, its model compiled in: nothing is downloaded). Tweets too short or too mixed to tell (emoji only, a
mention and a link, a few words) are `und` and count as supported: the model reads emoji, emoticons and
short English, and refusing them would silence most of the stream. A short text none of whose letters is
Latin ("서비스 최악") is not short English: it gets CLD2's best guess from its script (ko), and is not
supported when even that fails.
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
# Letters of the Latin script (ASCII, Latin-1, Latin Extended A-E and Additional, IPA, modifier and phonetic
# letters, super- and subscripts, fullwidth, mathematical alphanumerics: the "fonts" tweets are written in,
# "ˢᴵᴺᶜᴱ", "𝐰𝐨𝐫𝐬𝐭"), and words (runs of two letters or more) of any script: a short text with no Latin letter
# and words of at least FOREIGN_MIN_LETTERS letters is no short English, whatever its language. Lone
# letters do not count: emoticons borrow them ("ಠ_ಠ", "¯\\_(ツ)_/¯", "(づ｡◕‿‿◕｡)づ").
_LATIN_LETTER = re.compile(
    "[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u02ff\u1d00-\u1dbf\u1e00-\u1eff\u2070-\u209f"
    "\u2c60-\u2c7f\ua720-\ua7ff\uab30-\uab6f\uff21-\uff3a\uff41-\uff5a\U0001d400-\U0001d7ff]"
)
_WORD = re.compile(r"[^\W\d_]{2,}")
FOREIGN_MIN_LETTERS = 3
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
    """The language CLD2 reliably finds in the text (links, mentions, hashtags removed), else `und`.

    A text too short to tell whose letters are all of a script other than Latin ("服务太差了") gets CLD2's
    best guess from its script instead (zh), `und` when it has none."""
    content = _NOISE.sub(" ", text or "")
    foreign = foreign_script(content)
    try:
        reliable, text_bytes, details = pycld2.detect(content, isPlainText=True, bestEffort=foreign)
    except (pycld2.error, UnicodeError, ValueError):  # broken Unicode (a lone surrogate) tells nothing
        return UNDETERMINED
    if not details or not (foreign or (reliable and text_bytes >= MIN_TEXT_BYTES)):
        return UNDETERMINED
    code = normalise_code(details[0][1])
    return "en" if code in _ENGLISH_LOOKALIKES else code


def foreign_script(text: str) -> bool:
    """Whether the text has words (FOREIGN_MIN_LETTERS letters in runs of two or more) and no Latin letter:
    Cyrillic, Arabic, Han, Hangul..."""
    if _LATIN_LETTER.search(text) is not None:
        return False
    return sum(len(word) for word in _WORD.findall(text)) >= FOREIGN_MIN_LETTERS


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
        if code == UNDETERMINED:  # short or mixed: read as short English, unless no letter is Latin
            return Language(code, not foreign_script(_NOISE.sub(" ", text or "")))
        return Language(code, code in self.supported)

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
