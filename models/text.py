"""Tweet normalisation: the one tokenizer every BuzzWatch model sees.

`tokenize(text)` turns a raw tweet into the tokens the models see; `normalise(text)` is the same tokens
joined by single spaces (also the key used to deduplicate texts). The rules, in order:

1. Repairs: HTML entities unescaped (twice, for double-escaped `&amp;lt;`), literal `\\u2019`-style
   escapes decoded, the U+FFFD left by lost apostrophes (`she�s`) and backtick/curly apostrophes turned
   into `'`, variation selectors and skin-tone modifiers dropped (so 👍🏽 is 👍), text composed (NFC: "é"
   one character however it was typed), and letters and digits in the "fonts" tweets are styled with
   (fullwidth `ｗｏｒｓｔ`, mathematical bold `𝐰𝐨𝐫𝐬𝐭`, circled, superscript `ˢᴵᴺᶜᴱ`, ligatures)
   written as the plain letters they stand for (their NFKC form), emoji excepted (Ⓜ️ and ™️ stay
   emoji). The airline data set's artefact is undone: its source replaced every "late" with "Late
   Flight" and every "cancel" with "Cancelled Flight", even inside words ("Cancelled Flightled", "Late
   Flightr"), so those exact capitalised phrases are mapped back to "late" / "cancel".
2. Special tokens: URLs -> `<url>`; @mentions -> `<user>`; `#BadService2015` -> `<hashtag> bad service
   <number>` (camel case and digits split); numbers, times, prices, ordinals -> `<number>`; emoticons ->
   `<smile> <laugh> <wink> <sad> <cry> <tong> <annoyed> <surprise> <heart>`; each emoji -> its `emoji`
   package name (`:face_with_tears_of_joy:`); runs of `!`/`?` -> the marks once plus `<repeat>`; runs of
   dots and `…` -> `...`. Punctuation kept: `! ? . , ; : ...`; other symbols and quotes are dropped.
3. Words: lowercased; a shouted word (3+ letters, all capitals) gets a following `<allcaps>`; a letter
   repeated 3+ times is cut to two and the word gets a following `<elong>` ("sooooo" -> "soo <elong>");
   contractions are expanded so negation is a word of its own (`don't` -> `do not`, `can't` -> `can not`,
   `won't` -> `will not`, `I'd` -> `i would`, apostrophe-less `dont`/`cant`/`im` too); a possessive
   `'s` is dropped (`john's` -> `john`) except after pronouns (`it's` -> `it is`).
4. Negation scope (optional, `mark_negation=True`): word tokens after a negator (not, no, never,
   nothing, nobody, none, nowhere, neither, nor, without) up to the next clause punctuation or "but"
   get a `neg_` prefix (`not good at all .` -> `not neg_good neg_at neg_all .`). Off by default: a
   sequence model (embedding + LSTM) sees the `not` token and its position, and prefixing would split
   every word's embedding and counts in two; a bag-of-words model (the TF-IDF baseline) cannot see
   order, so it turns the option on.

The result is deterministic and depends only on the standard library and `emoji`; `NORMALISER_VERSION`
changes whenever any output changes, and travels inside every model artifact.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable
from itertools import chain

__all__ = [
    "MENTION_PATTERN",
    "NEGATION_PREFIX",
    "NEGATION_SCOPE_END",
    "NEGATORS",
    "NORMALISER_VERSION",
    "READS_LIKE",
    "URL_PATTERN",
    "can_carry_negation",
    "chunk_tokens",
    "mark_negation",
    "normalise",
    "repair",
    "token_chunks",
    "tokenize",
]

NORMALISER_VERSION = "2"
# Versions whose models read this version's tokens as they learned them. 2 composes text (NFC) and writes
# styled letters plainly (rule 1): 54 of the 298,494 texts in data/ tokenize otherwise (mojibake and
# styled tweets of sentiment140 and the emoji corpus; no labelled airline, SemEval or TweetEval sentiment
# text), too few to move a model's vocabulary or weights; on such texts a version-1 model now meets words
# it knows.
READS_LIKE = frozenset({"1", NORMALISER_VERSION})
NEGATION_PREFIX = "neg_"

_MAX_CACHE = 200_000

# ---- repairs ---------------------------------------------------------------------------------------

_APOSTROPHES = {ord(c): "'" for c in "\u2019\u2018\u0060\u00b4\u2032\u02bc"}
_DROPPED_CHARS = {cp: None for cp in (0xFE0E, 0xFE0F, *range(0x1F3FB, 0x1F400))}
_PLACEHOLDER = "\ue000"  # a private-use character: marks an emoji already found (see `_Tokenizer`)
# Blocks holding styled forms of Latin letters and digits: Latin-1 and Extended, modifier and phonetic
# letters, super- and subscripts, letterlike symbols and number forms, enclosed alphanumerics, ligatures,
# fullwidth forms, mathematical alphanumerics, enclosed alphanumeric supplement. Left as they are: the
# ordinal indicators ª and º (tweets use º as a degree sign, "30º") and the emoji among those letters
# (`emoji` is imported only when the first tweet is tokenized; a test checks this list against it).
_STYLED_BLOCKS = (
    (0x80, 0x250),
    (0x2B0, 0x370),
    (0x1D00, 0x1DC0),
    (0x2070, 0x21A0),
    (0x2460, 0x2500),
    (0xFB00, 0xFB07),
    (0xFF00, 0xFFF0),
    (0x1D400, 0x1D800),
    (0x1F100, 0x1F200),
)


_STYLED_KEPT = "ªº™ℹⓂ"


def _styled_letters() -> dict[int, str]:
    """Each styled letter or digit -> the plain ASCII letters or digits it stands for (rule 1)."""
    plain: dict[int, str] = {}
    for start, end in _STYLED_BLOCKS:
        for code in range(start, end):
            character = chr(code)
            folded = unicodedata.normalize("NFKC", character)
            plain_alphanumeric = folded.isascii() and folded.isalnum()
            if folded != character and plain_alphanumeric and character not in _STYLED_KEPT:
                plain[code] = folded
    return plain


_NON_ASCII_TABLE = {
    **_styled_letters(),
    **_APOSTROPHES,
    **_DROPPED_CHARS,
    ord("\u2026"): "...",
    ord("\u00a0"): " ",
    ord(_PLACEHOLDER): None,
}
_UNICODE_ESCAPE_RE = re.compile(r"\\u([0-9a-fA-F]{4})")
_LOST_APOSTROPHE_RE = re.compile(r"(?<=[A-Za-z])\ufffd(?=[A-Za-z])")
_AIRLINE_ARTEFACTS = (("Late Flight", "late"), ("Cancelled Flight", "cancel"))
# What a link and a mention are, for every model (each chooses what to replace them with).
URL_PATTERN = r"(?:https?://|www\.)\S+"
MENTION_PATTERN = r"(?<!\w)@\w+"


def repair(text: str) -> str:
    """Undo encoding and data-set artefacts (rule 1 above): every model's first step, BERT's included."""
    if "&" in text:
        text = html.unescape(text)
        if "&" in text:
            text = html.unescape(text)
    if "\\u" in text:
        text = _UNICODE_ESCAPE_RE.sub(lambda match: chr(int(match.group(1), 16)), text)
    if "Flight" in text:
        for artefact, original in _AIRLINE_ARTEFACTS:
            text = text.replace(artefact, original)
    if "`" in text:
        text = text.replace("`", "'")
    if not text.isascii():
        if "\ufffd" in text:
            text = _LOST_APOSTROPHE_RE.sub("'", text)
        if not unicodedata.is_normalized("NFC", text):
            text = unicodedata.normalize("NFC", text)
        text = text.translate(_NON_ASCII_TABLE)
    return text


# ---- emoticons -------------------------------------------------------------------------------------

_EMOTICONS: dict[str, tuple[str, ...]] = {
    "<smile>": (":)", ":-)", ":]", ":-]", "=)", "=]", ":}", ":o)", "(:", "(-:", "^_^", "^^", ":3"),
    "<laugh>": (":D", ":-D", "=D", "xD", "XD", ":'D"),
    "<wink>": (";)", ";-)", ";D", ";-D", ";]", ";P", ";p"),
    "<sad>": (":(", ":-(", ":[", ":-[", "=(", "=[", "):", ")-:", ":c", "</3", ":{"),
    "<cry>": (":'(", ":'-(", ";(", ";-(", "T_T", ";_;"),
    "<tong>": (":P", ":-P", ":p", ":-p", "=P", "=p", ":b", "xP", "XP"),
    "<annoyed>": (":/", ":-/", ":\\", ":-\\", "=/", ":|", ":-|", "-_-", ":S", ":s", ">:(", ">:-("),
    "<surprise>": (":O", ":-O", ":o", ":-o", "O_O", "o_O", "O_o", ":0"),
    "<heart>": ("<3", "<33", "<333"),
}
_EMOTICON_TOKEN = {face: token for token, faces in _EMOTICONS.items() for face in faces}
# An emoticon must stand on its own: one that starts (ends) with a letter, digit or bracket must not follow
# (be followed by) a letter or digit, so "(hi):" and ":pizza" are not faces but "thanks:)" is.


def _emoticon_alternative(face: str) -> str:
    before = r"(?<!\w)" if face[0].isalnum() or face[0] in "()" else ""
    after = r"(?!\w)" if face[-1].isalnum() else ""
    return before + re.escape(face) + after


# Faces that start with a letter ("xD", "T_T") are read as words and looked up in `_word_tokens`.
_EMOTICON_PATTERN = "|".join(
    _emoticon_alternative(face)
    for face in sorted(_EMOTICON_TOKEN, key=len, reverse=True)
    if not face[0].isalpha()
)

# ---- words -----------------------------------------------------------------------------------------

NEGATORS = frozenset(
    {"not", "no", "never", "nothing", "nobody", "none", "nowhere", "neither", "nor", "without"}
)
NEGATION_SCOPE_END = frozenset({".", ",", "!", "?", ";", ":", "...", "but"})

_WHOLE_WORDS: dict[str, tuple[str, ...]] = {
    "can't": ("can", "not"),
    "cannot": ("can", "not"),
    "won't": ("will", "not"),
    "shan't": ("shall", "not"),
    "ain't": ("is", "not"),
    "let's": ("let", "us"),
    "y'all": ("you", "all"),
    "dont": ("do", "not"),
    "doesnt": ("does", "not"),
    "didnt": ("did", "not"),
    "cant": ("can", "not"),
    "wont": ("will", "not"),
    "isnt": ("is", "not"),
    "arent": ("are", "not"),
    "wasnt": ("was", "not"),
    "werent": ("were", "not"),
    "couldnt": ("could", "not"),
    "shouldnt": ("should", "not"),
    "wouldnt": ("would", "not"),
    "havent": ("have", "not"),
    "hasnt": ("has", "not"),
    "hadnt": ("had", "not"),
    "aint": ("is", "not"),
    "im": ("i", "am"),
    "ive": ("i", "have"),
    "youre": ("you", "are"),
    "theyre": ("they", "are"),
    "thats": ("that", "is"),
    "whats": ("what", "is"),
}
_SUFFIXES = (("n't", "not"), ("'re", "are"), ("'ve", "have"), ("'ll", "will"), ("'d", "would"), ("'m", "am"))
_IS_CONTRACTIONS = frozenset(
    {"it", "that", "what", "there", "here", "he", "she", "who", "where", "how", "when", "why", "everything"}
)
_ELONGATION_RE = re.compile(r"(\w)\1{2,}")
_HASHTAG_PART_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+|[^\W\d_]+")


def _expand(word: str) -> tuple[str, ...]:
    """Contraction expansion of one lowercased word."""
    whole = _WHOLE_WORDS.get(word)
    if whole is not None:
        return whole
    if "'" not in word:
        return (word,)
    word = word.strip("'")
    whole = _WHOLE_WORDS.get(word)
    if whole is not None:
        return whole
    for suffix, expansion in _SUFFIXES:
        if word.endswith(suffix) and len(word) > len(suffix):
            return (*_expand(word[: -len(suffix)]), expansion)
    if word.endswith("'s") and len(word) > 2:
        stem = word[:-2]
        return (stem, "is") if stem in _IS_CONTRACTIONS else (stem,)
    return (word,) if word else ()


def _word_tokens(raw: str) -> tuple[str, ...]:
    """Tokens for one word as written: lowercased, elongation cut, contractions expanded, markers."""
    face = _EMOTICON_TOKEN.get(raw)
    if face is not None:
        return (face,)
    lowered = raw.lower()
    shouted = len(raw) >= 3 and raw.isupper()
    shortened = _ELONGATION_RE.sub(r"\1\1", lowered)
    tokens = _expand(shortened)
    if shortened != lowered:
        tokens = (*tokens, "<elong>")
    if shouted:
        tokens = (*tokens, "<allcaps>")
    return tokens


def _hashtag_tokens(raw: str) -> tuple[str, ...]:
    """`#BadService2015` -> `<hashtag> bad service <number>`."""
    tokens = ["<hashtag>"]
    for part in _HASHTAG_PART_RE.findall(raw[1:]):
        if part.isdigit():
            tokens.append("<number>")
        else:
            tokens.extend(_expand(_ELONGATION_RE.sub(r"\1\1", part.lower())))
    return tuple(tokens)


def _punct_tokens(raw: str) -> tuple[str, ...]:
    """Runs of `!`/`?` become the marks once plus `<repeat>`; a run of dots becomes `...`."""
    first = raw[0]
    if first == ".":
        return ("...",) if len(raw) > 1 else (".",)
    if len(raw) == 1:
        return (raw,)
    marks = tuple(mark for mark in "!?" if mark in raw) if first in "!?" else (first,)
    return (*marks, "<repeat>")


# ---- the tokenizer ---------------------------------------------------------------------------------


class _Tokenizer:
    """Holds the compiled regex (built once, on first use: the emoji alternation is large) and a cache."""

    def __init__(self) -> None:
        import emoji  # deferred: only needed when the first tweet is tokenized

        names: dict[str, str] = {}
        for emoji_text, data in emoji.EMOJI_DATA.items():
            key = emoji_text.translate(_DROPPED_CHARS)
            if not key or key.isascii():
                continue
            plain = key == emoji_text.replace("\ufe0f", "").replace("\ufe0e", "")
            if key not in names or plain:
                names[key] = data["en"].lower()
        # Emojis are found in a separate pass over non-ASCII texts only (a big alternation inside the main
        # regex would be tried at every position of every tweet); each becomes a placeholder the main regex
        # reads back: PLACEHOLDER + its index in `emoji_tokens`.
        self.emoji_tokens = list(names.values())
        self.emoji_index = {key: index for index, key in enumerate(names)}
        self.emoji_start = re.compile("[" + "".join(sorted({re.escape(key[0]) for key in names})) + "]")
        self.emoji_trie = re.compile(_trie_pattern(names))
        pattern = "|".join(
            (
                f"(?P<url>{URL_PATTERN})",
                r"(?P<word>[^\W\d_][\w']*)",
                f"(?P<user>{MENTION_PATTERN})",
                r"(?P<hashtag>(?<![\w&])#\w*[^\W\d_]\w*)",
                r"(?P<number>[-+]?(?<![\w.])\d+(?:[.,:/]\d+)*(?:[a-zA-Z%]{1,3})?(?!\w))",
                r"(?P<digitword>\d+[^\W\d_][\w']*)",
                f"(?P<emoticon>{_EMOTICON_PATTERN})",
                r"(?P<punct>[!?]+|\.+|[,;:])",
                f"(?P<emoji>{_PLACEHOLDER}\\d+)",
            )
        )
        self.regex = re.compile(pattern)
        self.chunk_cache: dict[str, tuple[str, ...]] = {}
        self.word_cache: dict[str, tuple[str, ...]] = {}

    def mark_emojis(self, text: str) -> str:
        """Replace each emoji (longest match) by a spaced placeholder token."""
        parts: list[str] = []
        position = 0
        while True:
            start = self.emoji_start.search(text, position)
            if start is None:
                break
            found = self.emoji_trie.match(text, start.start())
            if found is None:
                parts.append(text[position : start.end()])
                position = start.end()
                continue
            parts.append(text[position : start.start()])
            parts.append(f" {_PLACEHOLDER}{self.emoji_index[found.group()]} ")
            position = found.end()
        if not parts:
            return text
        parts.append(text[position:])
        return "".join(parts)

    def chunks(self, text: str) -> list[str]:
        """A repaired text's whitespace-separated chunks, each emoji a chunk of its own (a placeholder)."""
        if not text.isascii():
            text = self.mark_emojis(text)
        return text.split()

    def chunk_tokens(self, chunk: str) -> tuple[str, ...]:
        """One chunk's tokens, scanned once per distinct chunk ("the", "@united", "thanks!!") and kept.

        No token spans whitespace and every look-around of `regex` treats whitespace as it treats the
        text's ends, so a chunk's tokens do not depend on its neighbours: a text's tokens are its chunks'
        tokens in order, the list `scan` gives for the whole text (the tests hold them equal on every data
        file).
        """
        tokens = self.chunk_cache.get(chunk)
        if tokens is None:
            if len(self.chunk_cache) >= _MAX_CACHE:
                self.chunk_cache.clear()
            tokens = self.chunk_cache[chunk] = tuple(self.scan(chunk))
        return tokens

    def tokens(self, text: str) -> list[str]:
        """The token list for one repaired text."""
        chunks = self.chunks(text)
        found = list(map(self.chunk_cache.get, chunks))
        if None in found:
            for position, tokens in enumerate(found):
                if tokens is None:
                    found[position] = self.chunk_tokens(chunks[position])
        return list(chain.from_iterable(found))

    def scan(self, text: str) -> list[str]:
        """The tokens of a repaired, emoji-marked text (or of one chunk of it), match by match."""
        out: list[str] = []
        extend = out.extend
        append = out.append
        cache = self.word_cache
        for match in self.regex.finditer(text):
            kind = match.lastgroup
            raw = match.group()
            if kind == "word" or kind == "digitword":
                tokens = cache.get(raw)
                if tokens is None:
                    if len(cache) >= _MAX_CACHE:
                        cache.clear()
                    tokens = cache[raw] = _word_tokens(raw)
                extend(tokens)
            elif kind == "punct":
                extend(_punct_tokens(raw))
            elif kind == "user":
                append("<user>")
            elif kind == "url":
                append("<url>")
            elif kind == "number":
                append("<number>")
            elif kind == "hashtag":
                extend(_hashtag_tokens(raw))
            elif kind == "emoticon":
                append(_EMOTICON_TOKEN[raw])
            else:
                append(self.emoji_tokens[int(raw[1:])])
        return out


def _trie_pattern(words: Iterable[str]) -> str:
    """One regex alternation shaped as a trie (fast to match; prefers the longest emoji)."""
    trie: dict[str, dict] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def render(node: dict[str, dict]) -> str:
        terminal = "" in node
        branches = [re.escape(char) + render(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        single_chars = [b for b in branches if len(b) == 1 or (len(b) == 2 and b[0] == "\\")]
        others = [b for b in branches if b not in single_chars]
        parts = others + ([f"[{''.join(single_chars)}]"] if len(single_chars) > 1 else single_chars)
        body = parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"
        if terminal:
            return f"(?:{body})?" if len(parts) > 1 or len(body) > 1 else f"{body}?"
        return body

    return render(trie)


_tokenizer: _Tokenizer | None = None


def _get_tokenizer() -> _Tokenizer:
    global _tokenizer
    if _tokenizer is None:
        _tokenizer = _Tokenizer()
    return _tokenizer


def can_carry_negation(token: str) -> bool:
    """Whether a token inside a negation scope gets the `neg_` mark (words; not markers, emoji, negators)."""
    return token[0] not in "<:" and token not in NEGATORS and token not in NEGATION_SCOPE_END


def mark_negation(tokens: Iterable[str]) -> list[str]:
    """Prefix word tokens in a negation scope with `neg_` (negator up to clause punctuation or 'but')."""
    out: list[str] = []
    in_scope = False
    for token in tokens:
        if token in NEGATION_SCOPE_END:
            in_scope = False
            out.append(token)
        elif token in NEGATORS:
            in_scope = True
            out.append(token)
        elif in_scope and can_carry_negation(token):
            out.append(NEGATION_PREFIX + token)
        else:
            out.append(token)
    return out


def _as_text(text: object) -> str:
    """None as an empty text; any other non-string converted with `str()`."""
    if isinstance(text, str):
        return text
    return "" if text is None else str(text)


def tokenize(text: str, mark_negation_scope: bool = False) -> list[str]:
    """The tokens a model sees for one tweet (see the module docstring for every rule).

    None counts as an empty text; any other non-string is converted with `str()`.
    """
    text = _as_text(text)
    if not text:
        return []
    tokens = _get_tokenizer().tokens(repair(text))
    return mark_negation(tokens) if mark_negation_scope else tokens


def token_chunks(text: str) -> list[str]:
    """A tweet's whitespace-separated chunks: its tokens are their `chunk_tokens`, in order (a cache key).

    None counts as an empty text; any other non-string is converted with `str()`.
    """
    text = _as_text(text)
    return _get_tokenizer().chunks(repair(text)) if text else []


def chunk_tokens(chunk: str) -> tuple[str, ...]:
    """The tokens of one of `token_chunks`' chunks, scanned afresh (a caller keeps what it needs)."""
    return tuple(_get_tokenizer().scan(chunk))


def normalise(text: str, mark_negation_scope: bool = False) -> str:
    """The normalised tweet: its tokens joined by single spaces (also the dedupe key for texts)."""
    return " ".join(tokenize(text, mark_negation_scope))
