"""Why an alert fired: over-represented terms and hashtags, negative reasons, representative tweets.

Pure functions over plain records. Retweets and copies (same `retweet_of`, or the same text once the
"RT @user:" prefix, links, mentions, case and punctuation are ignored) count in the volume but are
grouped here: a group weighs 1 + ln(size) in the term counts and is shown once, with its size.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from worker.detection.stats import weighted_log_odds

log = logging.getLogger(__name__)

Tokenizer = Callable[[str], list[str]]

_RETWEET_PREFIX_RE = re.compile(r"^\s*rt\s+@\w+:?\s*", re.IGNORECASE)
_URL_RE = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_MENTION_RE = re.compile(r"@\w+")
_NON_WORD_RE = re.compile(r"[\W_]+")
_HASHTAG_RE = re.compile(r"(?<![\w&])#(\w*[A-Za-z]\w*)")
_TERM_RE = re.compile(r"^[^\W\d_][\w'-]*$")
_MIN_TERM_Z = 1.96
# Function words carry no "why": never reported as terms (negations stay: "not", "no", "never").
_STOPWORD_TEXT = """
    a about above after again all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further get got
    had has have having he her here hers herself him himself his how i if in into is it its itself
    just let me more most my myself of off on once only or other our ours ourselves out over own
    same she should so some such than that the their theirs them themselves then there these they
    this those through to too under until up us very was we were what when where which while who
    whom why will with would you your yours yourself yourselves im ive id ill youre its thats dont
    cant wont
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


def copy_key(record: TweetRecord) -> str:
    """The group a tweet belongs to: the retweeted id, else its text without RT prefix, links, mentions."""
    if record.retweet_of:
        return f"rt:{record.retweet_of}"
    text = _RETWEET_PREFIX_RE.sub("", record.text)
    text = _MENTION_RE.sub(" ", _URL_RE.sub(" ", text))
    key = _NON_WORD_RE.sub(" ", text.lower()).strip()
    return f"txt:{key}" if key else f"id:{record.id}"


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


def _over_represented(
    focus: Mapping[str, float],
    focus_docs: float,
    reference: Mapping[str, float],
    reference_docs: float,
    limit: int,
    min_count: float = 2.0,
) -> list[tuple[str, float]]:
    scores = weighted_log_odds(focus, focus_docs, reference, reference_docs)
    ranked = sorted(
        ((word, z) for word, z in scores.items() if z >= _MIN_TERM_Z and focus[word] >= min_count),
        key=lambda item: (-item[1], item[0]),
    )
    return ranked[:limit]


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


def explain(
    window: Sequence[TweetRecord],
    reference: ReferenceCounts,
    tokenizer: Tokenizer,
    reason_model: ReasonModel | None = None,
    top_terms: int = 10,
    samples: int = 5,
) -> dict[str, Any]:
    """Terms, hashtags, reason shares and representative negative tweets of an alert window.

    The focus corpus is the window's negative tweets, a copy group counting 1 + ln(size) (a retweet storm
    weighs more than one tweet, not a thousand times more); the reference corpus is the brand's recent
    normal tweets. Representative tweets are the negative groups whose words are most
    over-represented (per word), times the group's weight 1 + ln(size); then larger groups and more
    confident predictions first among equals.
    """
    negatives = [r for r in window if r.negative]
    groups = group_copies(negatives)
    focus_terms: Counter[str] = Counter()  # float weights
    focus_tags: Counter[str] = Counter()
    group_terms: list[set[str]] = []
    for group in groups:
        words = _terms(tokenizer(group[0].text))
        group_terms.append(words)
        weight = 1.0 + math.log(len(group))
        for word in words:
            focus_terms[word] += weight
        for tag in set(hashtags(group[0].text)):
            focus_tags[tag] += weight
    focus_docs = sum(1.0 + math.log(len(group)) for group in groups)
    reference_terms, reference_tags = reference.terms, reference.tags
    reference_docs = float(reference.docs)
    term_scores = _over_represented(focus_terms, focus_docs, reference_terms, reference_docs, top_terms)
    tag_scores = _over_represented(focus_tags, focus_docs, reference_tags, reference_docs, top_terms)
    term_weight = dict(term_scores)

    def representativeness(index: int) -> tuple[float, float, float, str]:
        group = groups[index]
        words = group_terms[index]
        relevance = sum(term_weight.get(w, 0.0) for w in words) / math.sqrt(len(words) + 1.0)
        reach = 1.0 + math.log(len(group))
        return (-relevance * reach, -reach, -group[0].p_negative, group[0].id)

    chosen = sorted(range(len(groups)), key=representativeness)[:samples]
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
