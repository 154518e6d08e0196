"""Why an alert fired: over-represented terms, phrases and hashtags, negative reasons, representative tweets.

Pure functions over plain records (the shipped term background is read once, when first needed).
Retweets and copies (same `retweet_of`, or the same text once the "RT @user:" prefix, links, mentions,
case and punctuation are ignored) count in the volume but are grouped here: a group is one opinion in the
term counts and is shown once, with its size. One author's groups (`TweetRecord.author`, when known) are
one voice: a term counts once per voice, so one person repeating a word is no trend. The sample tweets
are diverse: at most one per author, and none a near copy of one already shown (most of its words
shared, `NEAR_COPY_OVERLAP`); an alert shows fewer samples rather than the same voice twice.

Over-represented terms: the buzz's negatives are compared with the brand's USUAL NEGATIVES (the detector
keeps its recent negative tweets outside episodes as the reference), not with all its tweets: against
all tweets every complaint word stands out ("bad", "delayed", "hate"); against usual negatives only what
this buzz is about does. Each term's rate in the reference gets a Beta posterior whose prior is
`BACKGROUND_PRIOR_DOCS` pseudo-tweets at the term's rate in a background corpus of airline negatives (an
informative prior in the spirit of Monroe, Colaresi & Quinn 2008), so a young brand with an empty
reference is compared with typical complaints, and a brand with a full reference with its own. The
candidates are the terms that at least `CANDIDATE_TWEETS` distinct voices of the window use. A
candidate's p-value is the posterior-predictive (beta-binomial) probability of its count given that it
is a candidate: conditioning on the selection means that a rare word that happens to be in two tweets is
no discovery (a term needs a third voice, at least, to be reported). It is the mid-p value (the chance of
a higher count plus half that of the count seen, Lancaster 1961): a count's plain tail is conservative,
much more so in the few voices of a first alert, where a small buzz's topic went unnamed
(`bench/detection.py --half tuning`, README). The candidates that pass the
Benjamini-Hochberg procedure at `TERM_FDR` are reported, most surprising first: a window like the
reference reports nothing rather than noise. Phrases (two terms next to each other once function words
are skipped, "customer service", "bag lost") are tested the same way; a reported phrase stands alone
when its words are weak, and replaces its words when it is clearly more surprising than they are.
Sentiment words (`SENTIMENT_WORDS`: "bad", "hate", "worst"...) say how people feel, not what about:
they are never a term. The accounts a tweet mentions are words too ("@apple fix this" is about apple, and
the tokenizer alone makes every mention "<user>"), but for the retweeted author of an "RT @user:" prefix,
and the brand's own name never is a term: a buzz addresses its brand more than its usual complaints do.

Words that mean one thing: a topic is often spread over synonyms and spellings, each written by one or
two people ("iphone", "ipad"; "bag", "luggage", "baggage"; "cancelled", "canceled"), so no word has the
voices to stand out. Fixed groups of such words (`GROUPS_PATH`, clustered from the champion model's word
vectors by scripts/build_term_groups.py) are counted like words: a tweet uses a group when it uses any of
its words, in the window, the reference and the background alike, and each group used by
`CANDIDATE_TWEETS` voices, more than any one of its words, is tested in the words' Benjamini-Hochberg
family, once the brand's own reference holds `BACKGROUND_PRIOR_DOCS` tweets (a group adds up many
words' rates, and the airline prior's are off for a young general brand's dates and names). The groups
are fixed in advance, not made of the words a window happens to use (which would count their own
selection as evidence), so a window like its reference names no group. A reported group replaces its
reported words when clearly more surprising than them (as a phrase does) and is named by its
`GROUP_NAMED` words that most voices used ("iphone / ipad").

Reasons: the share of each negative reason (already on the tweets, or from the reason model). The reason
model knows airline complaints only and answers "can't tell" for others: `main_reason` is the reason
that stands out (most of the negatives that have a known reason, and more than "can't tell"), None when
none does, so the alert can say so plainly instead of naming a reason that does not fit.

Shares: `samples_share` is the share of the window's negative tweets that the samples and their copies
are; `terms_share` the share of them that use a reported term or phrase (what the terms stand for).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

if TYPE_CHECKING:
    from models.reasons import ReasonModel

log = logging.getLogger(__name__)

Tokenizer = Callable[[str], list[str]]

NORMALISED_TEXTS_KEPT = 1 << 16  # distinct texts whose normalised form is kept (`_normalised`)
TEXT_FORMS_KEPT = 1 << 14  # distinct (text, tokenizer, brand) whose term forms are kept (`text_forms`)
_RETWEET_PREFIX_RE = re.compile(r"^\s*rt\s+@\w+:?\s*", re.IGNORECASE)
_URL_RE = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_MENTION_RE = re.compile(r"@\w+")
_NON_WORD_RE = re.compile(r"[\W_]+")
_HASHTAG_RE = re.compile(r"(?<![\w&])#(\w*[A-Za-z]\w*)")
_TERM_RE = re.compile(r"^[^\W\d_][\w'-]*$")
# Document frequencies over the US airline NEGATIVE tweets of data/ (scripts/build_term_background.py).
BACKGROUND_PATH = Path(__file__).with_name("term_background.json")
# Groups of words that mean one thing, from the champion's word vectors (scripts/build_term_groups.py).
GROUPS_PATH = Path(__file__).with_name("term_groups.json")
GROUP_MARK = "~"  # a group's key is this mark and its most frequent word ("~bag": bag, luggage, baggage)
GROUP_NAMED = 2  # a reported group is named by this many of its words, those most voices used
BACKGROUND_PRIOR_DOCS = 191.0  # tweets; how much brand-days vary around it (what the build script prints)
TERM_FDR = 0.05  # expected share of reported terms that are chance, at most
CANDIDATE_TWEETS = 2  # a term is tested when this many voices (authors, or copy groups) use it
NEAR_COPY_OVERLAP = 0.7  # two samples sharing this share of their words (Jaccard) are near copies
# Function words carry no "why": never reported as terms. The bare negations "not", "no" and "nor" are
# among them: every complaint uses them more than normal tweets do, whatever it is about ("never" stays);
# so are the modal verbs and "rt", the retweet marker (a buzz with retweets named "rt", one with dates "may").
_STOPWORD_TEXT = """
    a about above after again all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further get got
    had has have having he her here hers herself him himself his how i if in into is it its itself
    just let me more most my myself of off on once only or other our ours ourselves out over own
    same she should so some such than that the their theirs them themselves then there these they
    this those through to too under until up us very was we were what when where which while who
    whom why will with would you your yours yourself yourselves im ive id ill youre its thats dont
    cant wont not no nor may might must shall rt
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
# Words that say how people feel or how strongly, not what about: never a term, never part of a phrase.
_SENTIMENT_TEXT = """
    bad worse worst terrible horrible awful hate hated hates hating sucks suck sucked crap crappy
    disappointed disappointing disappointment disgusting disgusted ridiculous unacceptable pathetic
    angry annoyed annoying frustrated frustrating upset sad mad furious shame shameful fail epic
    poor poorly love loved great good best better amazing awesome thanks thank nice happy excellent
    wow omg lol ugh seriously really ever never again still even
"""
SENTIMENT_WORDS = frozenset(_SENTIMENT_TEXT.split())
# Tokens the models' tokenizer adds to describe a word (emphasis, repeats): skipped inside a phrase.
_ANNOTATIONS = frozenset({"<allcaps>", "<elong>", "<repeat>"})
CANT_TELL = "can't tell"  # the reason model's "none of the known reasons" (any case)
PHRASE_MARGIN = math.log(10.0)  # a phrase replaces its reported words when 10 times less likely than them
REASON_MIN_SHARE = 1 / 3  # a reason stands out when it is at least this share of the known reasons ...
REASON_LEAD = 2.0  # ... and this many times the next one (or half of the known reasons on its own)


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


@functools.lru_cache(maxsize=NORMALISED_TEXTS_KEPT)
def _normalised(text: str) -> str:
    """The text without RT prefix, links, mentions, case and punctuation (kept for the latest texts: a
    stream repeats its copies and retweets, and these four passes were a tenth of a replay's detection)."""
    prefix = _RETWEET_PREFIX_RE.match(text)  # anchored: `sub` would try it at every position
    if prefix is not None:
        text = text[prefix.end() :]
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


def is_term(token: str) -> bool:
    """A word worth reporting: no special token, punctuation, number, stop word, sentiment word, letter."""
    return (
        len(token) > 1
        and token not in STOPWORDS
        and token not in SENTIMENT_WORDS
        and bool(_TERM_RE.match(token))
    )


def term_key(word: str) -> str:
    """A word's key: its singular when it is a plain plural ("bags" and "bag" are one term)."""
    return (
        word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")) else word
    )


@dataclass(frozen=True)
class TermGroups:
    """Words that mean one thing (`GROUPS_PATH`): each word's group key, and each group's words."""

    group_of: dict[str, str]
    members: dict[str, tuple[str, ...]]
    version: str  # what the groups were built from; counts made with other groups are recounted

    @classmethod
    def from_lists(cls, groups: Iterable[Sequence[str]], version: str) -> TermGroups:
        """From lists of term keys, each list's first word naming the group."""
        members = {f"{GROUP_MARK}{words[0]}": tuple(words) for words in groups}
        return cls({word: key for key, words in members.items() for word in words}, members, version)


@functools.cache
def shipped_groups() -> TermGroups:
    """The shipped word groups (`GROUPS_PATH`, read once)."""
    payload = json.loads(GROUPS_PATH.read_text(encoding="utf-8"))
    version = f"{payload['model_version']}/{payload['words']}/{payload['similarity']}"
    return TermGroups.from_lists(payload["groups"], version)


def mentioned(text: str) -> list[str]:
    """The accounts a raw tweet mentions, lower-cased without their `@` (not the retweeted author of an
    "RT @user:" prefix: that is whose tweet it copies, not what it is about)."""
    return [name[1:].lower() for name in _MENTION_RE.findall(_RETWEET_PREFIX_RE.sub("", text))]


def own_name(brand: str | None) -> str | None:
    """The term key of a brand's own name (its id, the account its tweets mention), never a term."""
    return term_key(brand.lower()) if brand else None


def is_own_account(account: str, own: str | None) -> bool:
    """Whether a mentioned account is the brand's own: its name, or its name run on (`southwestair`,
    `applesupport` for a brand called Southwest or Apple: a brand's id need not be its handle); names of
    under 4 letters match only whole."""
    if not own:
        return False
    name = own.replace(" ", "")
    return account == name or (len(name) >= 4 and account.startswith(name))


@functools.lru_cache(maxsize=TEXT_FORMS_KEPT)
def text_forms(text: str, tokenizer: Tokenizer, own: str | None = None) -> dict[str, str]:
    """`term_forms` of a raw tweet: its tokens' words and phrases, and the accounts it mentions.

    Kept for the latest texts (an episode's alerts explain the same tweets again, and tokenizing was a
    twentieth of a replay's detection): the same dict is returned, so callers must not modify it.
    """
    return term_forms(tokenizer(text), mentioned(text), own)


def term_forms(tokens: Sequence[str], accounts: Iterable[str] = (), own: str | None = None) -> dict[str, str]:
    """The reportable words and phrases of a token list: key (singular words) -> the form written first.

    A phrase is two reportable words next to each other once function words and annotations are skipped;
    anything else (punctuation, numbers, links, mentions, sentiment words) ends one, so "my bags were lost"
    gives "bags lost" (key "bag lost") and "lost, worst airline" gives none. Each of `accounts` (the
    names a tweet mentions, which the tokenizer turns into "<user>") that is a reportable word is a word
    too, in no phrase: "@apple fix this" is about apple as "apple, fix this" is. The word `own` (the
    brand's own name, `own_name`) is none, nor is an account of the brand's (`is_own_account`). A word
    of a group (`shipped_groups`) also gives the group's key ("luggage" gives "~bag"), with the word's form.
    """
    forms: dict[str, str] = {}
    previous: tuple[str, str] | None = None  # (key, form) of the word before
    for token in tokens:
        if token in STOPWORDS or token in _ANNOTATIONS:
            continue  # a hashtag's word starts a phrase of its own (its "<hashtag>" marker ends one)
        if not is_term(token):
            previous = None
            continue
        key = term_key(token)
        forms.setdefault(key, token)
        if previous is not None and previous[0] != key:
            forms.setdefault(f"{previous[0]} {key}", f"{previous[1]} {token}")
        previous = (key, token)
    for account in accounts:
        if is_term(account) and not is_own_account(account, own):
            forms.setdefault(term_key(account), account)
    forms.pop(own or "", None)
    group_of = shipped_groups().group_of
    for key in [key for key in forms if key in group_of]:
        forms.setdefault(group_of[key], forms[key])
    return forms


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


def log_betabinomial_mid_tail(k: int, n: int, a: float, b: float) -> float:
    """ln of the mid-p tail P(K > k) + P(K = k) / 2 for K ~ BetaBinomial(n, a, b), with 0 < k <= n."""
    at_k = _log_betabinomial_pmf(k, n, a, b) + math.log(0.5)
    if k == n:
        return at_k
    above = log_betabinomial_tail(k + 1, n, a, b)
    return max(above, at_k) + math.log1p(math.exp(-abs(above - at_k)))


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


def named_words(terms: Iterable[str]) -> set[str]:
    """The words an explanation names: its terms, and each word of its phrases."""
    return {word for term in terms for word in term.split()}


def standout_reason(shares: Mapping[str, float]) -> str | None:
    """The reason most negatives share, if one stands out: more than "can't tell", and among the tweets
    with a known reason either half of them, or `REASON_MIN_SHARE` of them and `REASON_LEAD` times the
    next reason; None when none does (reasons spread thin, or the complaints fit no known reason, as a
    non-airline brand's do)."""
    unclear = sum(share for reason, share in shares.items() if reason.lower() == CANT_TELL)
    known = sorted(
        ((share, reason) for reason, share in shares.items() if reason.lower() != CANT_TELL), reverse=True
    )
    if not known:
        return None
    share, reason = known[0]
    runner_up = known[1][0] if len(known) > 1 else 0.0
    total = sum(value for value, _ in known)
    leads = share >= REASON_MIN_SHARE * total and share >= REASON_LEAD * runner_up
    return reason if share > unclear and (share >= total / 2 or leads) else None


def merge_wholes(
    part_scores: Sequence[tuple[str, float]],
    whole_scores: Sequence[tuple[str, float]],
    parts_of: Callable[[str], Iterable[str]],
) -> list[tuple[str, float]]:
    """Reported parts (words) and wholes (phrases, groups of words) in one list, most surprising first.

    A whole whose parts are weak (not reported alone) is kept: it is the only way the topic shows. A
    whole with a reported part is kept only when it is clearly more surprising than its parts
    (`PHRASE_MARGIN`), and then replaces them ("lost bag" for "lost" and "bag"); otherwise the part says
    it already ("wifi", not "wifi delayed" when delays are usual).
    """
    part_score = dict(part_scores)
    kept_wholes: list[tuple[str, float]] = []
    covered: set[str] = set()
    for whole, score in whole_scores:
        parts = list(parts_of(whole))
        reported = [part_score[part] for part in parts if part in part_score]
        if reported and score < max(reported) + PHRASE_MARGIN:
            continue
        kept_wholes.append((whole, score))
        covered.update(parts)
    merged = [(part, score) for part, score in part_scores if part not in covered] + kept_wholes
    return sorted(merged, key=lambda item: (-item[1], item[0]))


@dataclass(frozen=True)
class ReferenceCounts:
    """How many of the reference (usual negative) tweets contain each term, hashtag and phrase."""

    terms: dict[str, int]
    tags: dict[str, int]
    docs: int
    phrases: dict[str, int] = field(default_factory=dict)
    groups: str = ""  # the version of the word groups counted among `terms` ("": none)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "terms": self.terms,
            "tags": self.tags,
            "docs": self.docs,
            "phrases": self.phrases,
            "groups": self.groups,
        }

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> ReferenceCounts:
        """Rebuild from `to_dict` output (a payload saved before phrases or groups were counted has none)."""
        return cls(
            dict(payload["terms"]),
            dict(payload["tags"]),
            int(payload["docs"]),
            dict(payload.get("phrases") or {}),
            str(payload.get("groups") or ""),
        )


def reference_counts(
    texts: Sequence[str],
    tokenizer: Tokenizer,
    forms: dict[str, tuple[dict[str, str], tuple[str, ...]]] | None = None,
    brand: str | None = None,
) -> ReferenceCounts:
    """Count terms, hashtags and phrases over the reference tweets (once per tweet), the `brand`'s own
    name not among them (`own_name`).

    `forms`, when given, keeps each text's term forms and hashtags from one count to the next (a corpus
    that is recounted changes by a few tweets, and tokenizing is the cost); it is left holding `texts`' only.
    A text's hashtags are kept in the order written (not as a set, whose order follows the string hash
    seed): the counts' order, saved with the detector state, is the same in every run.
    """
    terms: Counter[str] = Counter()
    tags: Counter[str] = Counter()
    pairs: Counter[str] = Counter()
    known = forms if forms is not None else {}
    counted: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {}
    own = own_name(brand)
    for text in texts:
        forms_and_tags = counted.get(text) or known.get(text)
        if forms_and_tags is None:
            forms_and_tags = (text_forms(text, tokenizer, own), tuple(dict.fromkeys(hashtags(text))))
        counted[text] = forms_and_tags
        keys, text_tags = forms_and_tags
        terms.update(key for key in keys if " " not in key)
        pairs.update(key for key in keys if " " in key)
        tags.update(text_tags)
    if forms is not None:
        forms.clear()
        forms.update(counted)
    return ReferenceCounts(dict(terms), dict(tags), len(texts), dict(pairs), shipped_groups().version)


@functools.cache
def shipped_background() -> ReferenceCounts:
    """The background corpus's term and hashtag counts (`BACKGROUND_PATH`, read once)."""
    return ReferenceCounts.from_dict(json.loads(BACKGROUND_PATH.read_text(encoding="utf-8")))


def over_represented(
    focus: Mapping[str, int],
    focus_docs: int,
    reference: ReferenceCounts,
    background: ReferenceCounts,
    kind: Literal["terms", "tags", "phrases"] = "terms",
) -> list[tuple[str, float]]:
    """The `kind` keys (terms, hashtags or phrases) of `focus` that the reference rate does not explain.

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
                log_betabinomial_mid_tail(k, focus_docs, a, b)
                - log_betabinomial_tail(CANDIDATE_TWEETS, focus_docs, a, b),
            )
        scored.append((log_p, key))
    scored.sort()
    passed = 0  # Benjamini-Hochberg: the largest rank i with p_(i) <= TERM_FDR * i / candidates
    for rank, (log_p, _) in enumerate(scored, start=1):
        if log_p <= math.log(TERM_FDR * rank / len(scored)):
            passed = rank
    return [(key, -log_p) for log_p, key in scored[:passed]]


def _most_written(written: Mapping[tuple[str, str], int], key: str) -> str:
    """The form a term key was written in most often (the first met among equals)."""
    forms = [(count, form) for (term, form), count in written.items() if term == key]
    return max(forms, key=lambda item: item[0])[1]


def _group_name(
    written: Mapping[tuple[str, str], int], voices: Mapping[str, int], words: Sequence[str]
) -> str:
    """A reported group's name: its `GROUP_NAMED` words that most voices used, as written ("iphone / ios")."""
    used = sorted((word for word in words if voices.get(word)), key=lambda word: -voices[word])
    return " / ".join(_most_written(written, word) for word in used[:GROUP_NAMED])


def _relevance(words: Collection[str], term_weight: Mapping[str, float]) -> float:
    """How much a sample's words stand for the reported terms: their weights summed exactly (`math.fsum`, so
    the order a set of words comes in, which follows the string hash seed, cannot break a tie between two
    samples and swap them from one run to the next), over the square root of its words (groups aside) + 1."""
    weight = math.fsum(term_weight.get(word, 0.0) for word in words)
    return weight / math.sqrt(sum(word[0] != GROUP_MARK for word in words) + 1.0)


def explain(
    window: Sequence[TweetRecord],
    reference: ReferenceCounts,
    tokenizer: Tokenizer,
    reason_model: ReasonModel | None = None,
    top_terms: int = 10,
    samples: int = 5,
    background: ReferenceCounts | None = None,
    brand: str | None = None,
) -> dict[str, Any]:
    """Terms, phrases, hashtags, reasons and representative negative tweets of an alert window.

    The focus corpus is the window's negative tweets, one document per voice (an author's copy groups,
    or a copy group by an unknown author); the reference is the brand's usual negative tweets, with
    `background` (default: `shipped_background()`, counted with the models' tokenizer) as its prior.
    Representative tweets are the negative groups whose words are the most over-represented (summed
    surprisal, per word), times the group's weight 1 + ln(size); then larger groups and more confident
    predictions first among equals; at most one per author and no near copy of one already chosen.
    The `brand`'s own name (`own_name`: its id, which tweets mention as its account) is never a term: a
    buzz on a brand addresses it more than its usual complaints do, and that says nothing of what about.
    """
    background = shipped_background() if background is None else background
    term_groups = shipped_groups()
    negatives = [r for r in window if r.negative]
    groups = group_copies(negatives)
    own = own_name(brand)
    group_forms = [text_forms(group[0].text, tokenizer, own) for group in groups]
    group_terms = [set(forms) for forms in group_forms]
    written: Counter[tuple[str, str]] = Counter()  # (term key, form) -> tweets that wrote the key so
    voice_terms: dict[str, set[str]] = {}
    voice_tags: dict[str, set[str]] = {}
    for index, (group, forms) in enumerate(zip(groups, group_forms, strict=True)):
        voice = f"author:{group[0].author}" if group[0].author else f"group:{index}"
        voice_terms.setdefault(voice, set()).update(forms)
        voice_tags.setdefault(voice, set()).update(hashtags(group[0].text))
        for key, form in forms.items():
            written[key, form] += len(group)
    focus = Counter(word for words in voice_terms.values() for word in words)
    # A group is tested against a reference that counted it (not one saved before) and holds at least the
    # prior's weight of the brand's own negatives: a group adds up many words' rates, and the prior's
    # (airline complaints) are off for a young general brand's dates and names more than for one word.
    grouped = (
        reference.groups == term_groups.version
        and background.groups in (term_groups.version, "")
        and reference.docs >= BACKGROUND_PRIOR_DOCS
    )
    focus_words = {key: n for key, n in focus.items() if " " not in key and key[0] != GROUP_MARK}
    # A group all of whose voices use one of its words is that word with a higher rate: never reported.
    focus_groups = {
        key: n
        for key, n in focus.items()
        if grouped
        and key[0] == GROUP_MARK
        and n > max(focus_words.get(w, 0) for w in term_groups.members[key])
    }
    focus_phrases = {key: n for key, n in focus.items() if " " in key}
    focus_tags = Counter(tag for tags in voice_tags.values() for tag in tags)
    voices = len(voice_terms)
    tag_scores = over_represented(focus_tags, voices, reference, background, "tags")[:top_terms]
    tag_words = {term_key(tag.removeprefix("#")) for tag, _ in tag_scores}  # a reported hashtag is no term
    word_scores = over_represented(focus_words | focus_groups, voices, reference, background)  # one family
    term_scores = merge_wholes(
        merge_wholes(
            [(key, score) for key, score in word_scores if key[0] != GROUP_MARK],
            [(key, score) for key, score in word_scores if key[0] == GROUP_MARK],
            term_groups.members.__getitem__,
        ),
        over_represented(focus_phrases, voices, reference, background, "phrases"),
        str.split,
    )
    term_scores = [(term, score) for term, score in term_scores if term not in tag_words][:top_terms]
    term_weight = dict(term_scores)

    def representativeness(index: int) -> tuple[float, float, float, str]:
        group = groups[index]
        words = group_terms[index]
        relevance = _relevance(words, term_weight)
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
    shares = reason_shares(groups, reasons)
    reported = set(term_weight) | {tag for tag, _ in tag_scores}
    with_terms = sum(
        len(group)
        for group, words in zip(groups, group_terms, strict=True)
        if reported & (words | set(hashtags(group[0].text)))
    )
    return {
        "top_terms": tuple(
            _group_name(written, focus_words, term_groups.members[key])
            if key[0] == GROUP_MARK
            else _most_written(written, key)
            for key, _ in term_scores
        ),
        "top_hashtags": tuple(tag for tag, _ in tag_scores),
        "reasons": shares,
        "main_reason": standout_reason(shares),
        "samples": tuple(sample_rows),
        "sample_ids": tuple(row["id"] for row in sample_rows),
        "samples_share": round(sum(len(groups[i]) for i in chosen) / len(negatives), 4)
        if negatives
        else None,
        "terms_share": round(with_terms / len(negatives), 4) if negatives and reported else None,
        "distinct_negative_groups": len(groups),
    }
