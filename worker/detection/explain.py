"""Why an alert fired: over-represented terms and hashtags, negative reasons, representative tweets.

Pure functions over plain records (the shipped term background is read once, when first needed).
Retweets and copies (same `retweet_of`, or the same text once the "RT @user:" prefix, links, mentions,
case and punctuation are ignored) count in the volume but are grouped here: a group is one opinion in the
term counts and is shown once, with its size. One author's groups (`TweetRecord.author`, when known) are
one voice: a term counts once per voice, so one person repeating a word is no trend. The sample tweets
are diverse: at most one per author, and none a near copy of one already shown (most of its words
shared, `NEAR_COPY_OVERLAP`); an alert shows fewer samples rather than the same voice twice.

Over-represented terms: each term's rate in the brand's normal tweets (the reference) gets a Beta
posterior whose prior is `BACKGROUND_PRIOR_DOCS` pseudo-tweets at the term's rate in a background corpus
of airline tweets (an informative prior in the spirit of Monroe, Colaresi & Quinn 2008), so a young
brand with an empty reference is compared with typical airline traffic, and a brand with a full
reference with its own. The candidates are the terms that at least `CANDIDATE_TWEETS` distinct negative
tweets of the window use. A candidate's p-value is the posterior-predictive (beta-binomial) probability
of its count given that it is a candidate: conditioning on the selection means that a rare word that
happens to be in two tweets is no discovery (a term needs a third tweet, at least, to be reported). The
candidates that pass the Benjamini-Hochberg procedure at `TERM_FDR` are reported, most surprising first:
a window like the reference reports nothing rather than noise.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol

log = logging.getLogger(__name__)

Tokenizer = Callable[[str], list[str]]

_RETWEET_PREFIX_RE = re.compile(r"^\s*rt\s+@\w+:?\s*", re.IGNORECASE)
_URL_RE = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_MENTION_RE = re.compile(r"@\w+")
_NON_WORD_RE = re.compile(r"[\W_]+")
_HASHTAG_RE = re.compile(r"(?<![\w&])#(\w*[A-Za-z]\w*)")
_TERM_RE = re.compile(r"^[^\W\d_][\w'-]*$")
# Document frequencies over the US airline tweets of data/ (scripts/build_term_background.py).
BACKGROUND_PATH = Path(__file__).with_name("term_background.json")
BACKGROUND_PRIOR_DOCS = 200.0  # tweets; how much brand-days vary around it (the build script prints 201)
TERM_FDR = 0.05  # expected share of reported terms that are chance, at most
CANDIDATE_TWEETS = 2  # a term is tested when this many voices (authors, or copy groups) use it
NEAR_COPY_OVERLAP = 0.7  # two samples sharing this share of their words (Jaccard) are near copies
# Function words carry no "why": never reported as terms. The bare negations "not", "no" and "nor" are
# among them: every complaint uses them more than normal tweets do, whatever it is about ("never" stays).
_STOPWORD_TEXT = """
    a about above after again all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further get got
    had has have having he her here hers herself him himself his how i if in into is it its itself
    just let me more most my myself of off on once only or other our ours ourselves out over own
    same she should so some such than that the their theirs them themselves then there these they
    this those through to too under until up us very was we were what when where which while who
    whom why will with would you your yours yourself yourselves im ive id ill youre its thats dont
    cant wont not no nor
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


class ReasonModel(Protocol):
    """What the explanation needs from `models.reasons.ReasonClassifier`."""

    def predict(self, texts: Sequence[str]) -> list[str]: ...


class TweetRecord(NamedTuple):
    """One tweet as the detector keeps it (plain data; a list of these is JSON-serialisable)."""

    ts: float  # event time, seconds since the epoch (UTC)
    id: str
    negative: bool
    text: str
    p_negative: float
    reason: str | None = None
    retweet_of: str | None = None
    author: str | None = None  # the author's id, when known (a state saved before authors has none)


def _normalised(text: str) -> str:
    """The text without RT prefix, links, mentions, case and punctuation."""
    text = _RETWEET_PREFIX_RE.sub("", text)
    text = _MENTION_RE.sub(" ", _URL_RE.sub(" ", text))
    return _NON_WORD_RE.sub(" ", text.lower()).strip()


def copy_key(record: TweetRecord) -> str:
    """The group a tweet belongs to: the retweeted id, else its text without RT prefix, links, mentions."""
    if record.retweet_of:
        return f"rt:{record.retweet_of}"
    key = _normalised(record.text)
    return f"txt:{key}" if key else f"id:{record.id}"


def near_copies(first: str, second: str) -> bool:
    """Whether two texts share `NEAR_COPY_OVERLAP` of their normalised words or more (Jaccard)."""
    a, b = set(_normalised(first).split()), set(_normalised(second).split())
    return bool(a | b) and len(a & b) >= NEAR_COPY_OVERLAP * len(a | b)


def hashtags(text: str) -> list[str]:
    """The hashtags of a raw tweet, lower-cased with their `#`."""
    return [f"#{tag.lower()}" for tag in _HASHTAG_RE.findall(text)]


def default_tokenizer() -> Tokenizer:
    """The models' own tokenizer (`models.text.tokenize`), imported when first needed."""
    from models.text import tokenize

    return tokenize


def _terms(tokens: Iterable[str]) -> set[str]:
    """Word tokens worth reporting (no special tokens, punctuation, numbers, stop words, single letters)."""
    return {t for t in tokens if len(t) > 1 and t not in STOPWORDS and _TERM_RE.match(t)}


def group_copies(records: Sequence[TweetRecord]) -> list[list[TweetRecord]]:
    """Records grouped by `copy_key`, each group in event-time order, groups by first appearance."""
    groups: dict[str, list[TweetRecord]] = {}
    for record in sorted(records, key=lambda r: (r.ts, r.id)):
        groups.setdefault(copy_key(record), []).append(record)
    return list(groups.values())


def _log_betabinomial_pmf(j: int, n: int, a: float, b: float) -> float:
    """ln P(K = j) for K ~ BetaBinomial(n, a, b)."""
    return (
        math.lgamma(n + 1)
        - math.lgamma(j + 1)
        - math.lgamma(n - j + 1)
        + math.lgamma(j + a)
        + math.lgamma(n - j + b)
        - math.lgamma(n + a + b)
        - math.lgamma(a)
        - math.lgamma(b)
        + math.lgamma(a + b)
    )


def log_betabinomial_tail(k: int, n: int, a: float, b: float) -> float:
    """ln P(K >= k) for K ~ BetaBinomial(n, a, b), accurate in both tails.

    Above the mean the terms only fall, so the sum runs from k upwards until they are negligible; at or
    below it the tail is 1 minus the (increasing) terms below k.
    """
    if k <= 0:
        return 0.0
    if k > n:
        return -math.inf
    if k <= n * a / (a + b):
        below = sum(math.exp(_log_betabinomial_pmf(j, n, a, b)) for j in range(k))
        return math.log1p(-min(below, 1.0 - 1e-16))
    relative, total = 1.0, 1.0  # each term of the tail relative to P(K = k)
    for j in range(k, n):
        relative *= (n - j) / (j + 1) * (j + a) / (n - j - 1 + b)
        total += relative
        if relative < total * 1e-12:
            break
    return min(0.0, _log_betabinomial_pmf(k, n, a, b) + math.log(total))


def group_reasons(
    groups: Sequence[Sequence[TweetRecord]], reason_model: ReasonModel | None
) -> list[str | None]:
    """The negative reason of each copy group: the one already on its first tweet (the worker's scoring
    step, or an oracle file), else `reason_model`'s prediction (one call for all groups), else None."""
    reasons: list[str | None] = [group[0].reason for group in groups]
    unknown = [index for index, reason in enumerate(reasons) if reason is None]
    if unknown and reason_model is not None:
        predicted = reason_model.predict([groups[index][0].text for index in unknown])
        for index, reason in zip(unknown, predicted, strict=True):
            reasons[index] = str(reason)
    return reasons


def reason_shares(groups: Sequence[Sequence[TweetRecord]], reasons: Sequence[str | None]) -> dict[str, float]:
    """Share of each negative reason over the negative tweets (copies weigh as many tweets as they are)."""
    counts: Counter[str] = Counter()
    for group, reason in zip(groups, reasons, strict=True):
        if reason is not None:
            counts[reason] += len(group)
    total = sum(counts.values())
    if not total:
        return {}
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return {reason: round(n / total, 4) for reason, n in ranked}


@dataclass(frozen=True)
class ReferenceCounts:
    """How many of the reference (normal) tweets contain each term and hashtag."""

    terms: dict[str, int]
    tags: dict[str, int]
    docs: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"terms": self.terms, "tags": self.tags, "docs": self.docs}

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> ReferenceCounts:
        """Rebuild from `to_dict` output."""
        return cls(dict(payload["terms"]), dict(payload["tags"]), int(payload["docs"]))


def reference_counts(texts: Sequence[str], tokenizer: Tokenizer) -> ReferenceCounts:
    """Count terms and hashtags over the reference tweets (once per tweet)."""
    terms: Counter[str] = Counter()
    tags: Counter[str] = Counter()
    for text in texts:
        terms.update(_terms(tokenizer(text)))
        tags.update(set(hashtags(text)))
    return ReferenceCounts(dict(terms), dict(tags), len(texts))


@functools.cache
def shipped_background() -> ReferenceCounts:
    """The background corpus's term and hashtag counts (`BACKGROUND_PATH`, read once)."""
    return ReferenceCounts.from_dict(json.loads(BACKGROUND_PATH.read_text(encoding="utf-8")))


def over_represented(
    focus: Mapping[str, int],
    focus_docs: int,
    reference: ReferenceCounts,
    background: ReferenceCounts,
    kind: Literal["terms", "tags"] = "terms",
) -> list[tuple[str, float]]:
    """The `kind` keys (terms or hashtags) of `focus` that the reference rate does not explain.

    `focus` maps a key to how many of `focus_docs` tweets use it. Returns (key, -ln p) for each reported
    key, most surprising first; see the module docstring for the test.
    """
    reference_counts: Mapping[str, int] = getattr(reference, kind)
    background_counts: Mapping[str, int] = getattr(background, kind)
    prior_docs = BACKGROUND_PRIOR_DOCS if background.docs else 0.0  # else Jeffreys' prior alone
    scored: list[tuple[float, str]] = []
    for key, k in focus.items():
        if k < CANDIDATE_TWEETS:
            continue
        background_rate = background_counts.get(key, 0) / background.docs if background.docs else 0.0
        seen = reference_counts.get(key, 0)
        a = seen + prior_docs * background_rate + 0.5
        b = reference.docs - seen + prior_docs * (1.0 - background_rate) + 0.5
        log_p = 0.0  # at or below the expected count: not over-represented
        if k > focus_docs * a / (a + b):
            log_p = min(
                0.0,
                log_betabinomial_tail(k, focus_docs, a, b)
                - log_betabinomial_tail(CANDIDATE_TWEETS, focus_docs, a, b),
            )
        scored.append((log_p, key))
    scored.sort()
    passed = 0  # Benjamini-Hochberg: the largest rank i with p_(i) <= TERM_FDR * i / candidates
    for rank, (log_p, _) in enumerate(scored, start=1):
        if log_p <= math.log(TERM_FDR * rank / len(scored)):
            passed = rank
    return [(key, -log_p) for log_p, key in scored[:passed]]


def explain(
    window: Sequence[TweetRecord],
    reference: ReferenceCounts,
    tokenizer: Tokenizer,
    reason_model: ReasonModel | None = None,
    top_terms: int = 10,
    samples: int = 5,
    background: ReferenceCounts | None = None,
) -> dict[str, Any]:
    """Terms, hashtags, reason shares and representative negative tweets of an alert window.

    The focus corpus is the window's negative tweets, one document per voice (an author's copy groups,
    or a copy group by an unknown author); the reference is the brand's recent normal tweets, with
    `background` (default: `shipped_background()`, counted with the models' tokenizer) as its prior.
    Representative tweets are the negative groups whose words are the most over-represented (summed
    surprisal, per word), times the group's weight 1 + ln(size); then larger groups and more confident
    predictions first among equals; at most one per author and no near copy of one already chosen.
    """
    background = shipped_background() if background is None else background
    negatives = [r for r in window if r.negative]
    groups = group_copies(negatives)
    group_terms = [_terms(tokenizer(group[0].text)) for group in groups]
    voice_terms: dict[str, set[str]] = {}
    voice_tags: dict[str, set[str]] = {}
    for index, (group, words) in enumerate(zip(groups, group_terms, strict=True)):
        voice = f"author:{group[0].author}" if group[0].author else f"group:{index}"
        voice_terms.setdefault(voice, set()).update(words)
        voice_tags.setdefault(voice, set()).update(hashtags(group[0].text))
    focus_terms = Counter(word for words in voice_terms.values() for word in words)
    focus_tags = Counter(tag for tags in voice_tags.values() for tag in tags)
    voices = len(voice_terms)
    term_scores = over_represented(focus_terms, voices, reference, background)[:top_terms]
    tag_scores = over_represented(focus_tags, voices, reference, background, "tags")[:top_terms]
    term_weight = dict(term_scores)

    def representativeness(index: int) -> tuple[float, float, float, str]:
        group = groups[index]
        words = group_terms[index]
        relevance = sum(term_weight.get(w, 0.0) for w in words) / math.sqrt(len(words) + 1.0)
        reach = 1.0 + math.log(len(group))
        return (-relevance * reach, -reach, -group[0].p_negative, group[0].id)

    chosen: list[int] = []
    for index in sorted(range(len(groups)), key=representativeness):
        if len(chosen) == samples:
            break
        first = groups[index][0]
        if not any(
            (first.author and first.author == groups[other][0].author)
            or near_copies(first.text, groups[other][0].text)
            for other in chosen
        ):
            chosen.append(index)
    try:
        reasons = group_reasons(groups, reason_model)
    except Exception:  # the alert still goes out, without the reason breakdown
        log.exception("negative-reason classification failed; alert sent without reasons")
        reasons = [group[0].reason for group in groups]
    sample_rows = [
        {
            "id": groups[i][0].id,
            "text": groups[i][0].text,
            "group_size": len(groups[i]),
            "p_negative": round(groups[i][0].p_negative, 4),
            "reason": reasons[i],
        }
        for i in chosen
    ]
    return {
        "top_terms": tuple(word for word, _ in term_scores),
        "top_hashtags": tuple(tag for tag, _ in tag_scores),
        "reasons": reason_shares(groups, reasons),
        "samples": tuple(sample_rows),
        "sample_ids": tuple(row["id"] for row in sample_rows),
        "distinct_negative_groups": len(groups),
    }
