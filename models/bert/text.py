"""The text the MiniLM tokenizer sees: the shared repairs, then a BERT-friendly form instead of tokens.

The first step is every model's (`models.text.repair`: HTML entities, `\\u2019`-style escapes, apostrophes,
skin tones, the airline data set's "Late Flight"/"Cancelled Flight" artefact), and links and mentions are
found by the same patterns (`models.text.URL_PATTERN`, `MENTION_PATTERN`). After that BERT needs a
different form from `models.text.tokenize`: the encoder has its own WordPiece tokenizer and was trained on
natural sentences, so special tokens such as `<user>` or `<elong>`, lower-casing rules or split hashtags
would only add noise. Mentions become `@user` and links `http` (the TweetEval convention), emojis become
their names (the WordPiece vocabulary has almost no emoji) and whitespace is collapsed.
"""

from __future__ import annotations

import re

from models.text import MENTION_PATTERN, URL_PATTERN, repair

# Changes whenever `prepare_text`'s output changes; recorded in every MiniLM artifact and run.
# 2: the shared `models.text` repairs and link/mention patterns (1 had its own, narrower copies).
PREPARE_VERSION = "2"

_URL_RE = re.compile(URL_PATTERN)
_MENTION_RE = re.compile(MENTION_PATTERN)
_SPACE_RE = re.compile(r"\s+")


def prepare_text(text: str) -> str:
    """Turn a raw tweet into the text the MiniLM tokenizer sees (see the module docstring)."""
    import emoji

    text = _URL_RE.sub(" http ", repair(text))
    text = _MENTION_RE.sub("@user", text)
    text = emoji.demojize(text, delimiters=(" ", " "))
    text = text.replace("_", " ")
    return _SPACE_RE.sub(" ", text).strip()
