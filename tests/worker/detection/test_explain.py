"""The alert explanation: grouped copies, over-represented terms and hashtags, reasons, and the stats."""

from __future__ import annotations

import csv
import itertools
import math
import random
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta

import pytest

from buzzwatch.settings import REPO_ROOT
from tests.support.streams import START, background, burst, in_order, run, simple_tokenize
from worker.detection import BuzzDetector, DetectorConfig, TweetRecord, copy_key, explain
from worker.detection.explain import (
    ReferenceCounts,
    _relevance,
    default_tokenizer,
    log_betabinomial_mid_tail,
    log_betabinomial_tail,
    named_words,
    reference_counts,
    shipped_background,
    shipped_groups,
)
from worker.detection.stats import binomial_z, poisson_z

SPIKE = START + timedelta(hours=38)  # day 2: every hour of the day has a baseline
NO_BACKGROUND = ReferenceCounts({}, {}, 0)
# A Zipf-like vocabulary of everyday complaint words, for windows that look like their reference.
VOCABULARY = [f"word{i}" for i in range(400)]
WEIGHTS = [1.0 / (rank + 1) for rank in range(len(VOCABULARY))]


def record(tweet_id: str, text: str, negative: bool = True, **extra: object) -> TweetRecord:
    return TweetRecord(
        ts=SPIKE.timestamp() + len(tweet_id),
        id=tweet_id,
        negative=negative,
        text=text,
        p_negative=0.9 if negative else 0.1,
        **extra,
    )


class FixedReasons:
    """A stand-in for models.reasons.ReasonClassifier that labels by keyword."""

    def predict(self, texts: list[str]) -> list[str]:
        return ["Lost Luggage" if "bag" in text else "Late Flight" for text in texts]


@pytest.mark.parametrize(
    ("first", "second", "same_group"),
    [
        ("My bag is lost http://t.co/x", "my bag is LOST!! https://t.co/y", True),
        ("RT @angry: my bag is lost", "my bag is lost", True),
        ("@united my bag is lost", "@delta my bag is lost", True),
        ("my bag is lost", "my flight is late", False),
    ],
)
def test_copy_key_groups_retweets_and_copies(first: str, second: str, same_group: bool) -> None:
    assert (copy_key(record("1", first)) == copy_key(record("2", second))) is same_group


def test_retweet_of_groups_whatever_the_text() -> None:
    assert copy_key(record("1", "a", retweet_of="9")) == copy_key(record("2", "b", retweet_of="9"))


def test_explanation_groups_copies_and_finds_the_buzz_words() -> None:
    storm = [
        record(f"rt{i}", "RT @angry: lost my bag again #lostbaggage", retweet_of="100") for i in range(30)
    ]
    others = [
        record(f"n{i}", f"my bag never arrived, lost at the airport {i} #lostbaggage") for i in range(8)
    ]
    others += [record(f"d{i}", f"delayed for hours at gate {i}") for i in range(3)]
    calm = [record(f"p{i}", "nice flight today", negative=False) for i in range(5)]
    reference = [f"great crew and a smooth flight number {i}" for i in range(200)]
    counts = reference_counts(reference, simple_tokenize)
    result = explain(storm + others + calm, counts, simple_tokenize, FixedReasons(), samples=5)
    ids = result["sample_ids"]
    assert len(ids) == len(set(ids)) <= 5
    storm_samples = [s for s in result["samples"] if s["id"].startswith("rt")]
    assert len(storm_samples) == 1 and storm_samples[0]["group_size"] == 30
    assert {"lost", "bag"} <= named_words(result["top_terms"][:4])  # as words or inside phrases
    assert "flight" not in result["top_terms"] and "delayed" not in result["top_terms"]  # in 3 tweets of 12
    assert result["top_hashtags"] == ("#lostbaggage",)
    assert result["reasons"]["Lost Luggage"] == pytest.approx(38 / 41, abs=1e-3)
    assert not any(s["id"].startswith("p") for s in result["samples"])
    assert storm_samples[0]["reason"] == "Lost Luggage"  # classified once for the whole group


def test_reasons_already_on_the_tweets_are_used_without_a_model() -> None:
    window = [record(f"a{i}", f"late again {i}", reason="Late Flight") for i in range(3)]
    window += [record("b", "rude agent", reason="Customer Service Issue")]
    result = explain(window, reference_counts([], simple_tokenize), simple_tokenize, reason_model=None)
    assert result["reasons"] == {"Late Flight": 0.75, "Customer Service Issue": 0.25}


def test_alerts_carry_the_explanation() -> None:
    tweets = background(41, seed=2) + burst(
        SPIKE, 20, 10, text="they lost my bag #lostbaggage", reason="Lost Luggage"
    )
    detector = BuzzDetector(DetectorConfig(), tokenizer=simple_tokenize, reason_model=FixedReasons())
    alert = next(a for a in run(detector, in_order(tweets)) if a.kind == "new")
    assert alert.reasons.get("Lost Luggage", 0) > 0.5
    assert "lost" in named_words(alert.top_terms) and "#lostbaggage" in alert.top_hashtags
    assert alert.sample_ids and len(alert.samples) == len(alert.sample_ids)
    assert alert.baseline_volume > 0 and alert.episode_id.startswith("acme:")
    payload = alert.to_dict()
    assert payload["fired_at"].endswith("Z") and payload["top_terms"]


def test_a_failing_explanation_never_drops_the_alert() -> None:
    def broken(text: str) -> list[str]:
        raise RuntimeError("tokenizer down")

    tweets = background(41, seed=2) + burst(SPIKE, 20, 5)
    alerts = run(BuzzDetector(DetectorConfig(), tokenizer=broken), in_order(tweets))
    assert [a.kind for a in alerts].count("new") == 1 and alerts[0].top_terms == ()


@pytest.mark.parametrize(
    ("count", "expected", "sign"),
    [(10, 2.0, 1), (0, 5.0, -1), (3, 3.0, 0), (2, 0.5, 1)],
)
def test_poisson_z_sign(count: float, expected: float, sign: int) -> None:
    z = poisson_z(count, expected)
    assert (z > 0) - (z < 0) == sign


def test_poisson_z_is_conservative_for_tiny_counts() -> None:
    assert poisson_z(2, 0.5) < 2.0  # two tweets on a quiet night are not an event
    assert poisson_z(20, 5) > 4.5


def test_binomial_z_matches_the_normal_approximation_for_large_counts() -> None:
    n, share = 10_000, 0.25
    k = n * share + 3 * math.sqrt(n * share * (1 - share))
    assert binomial_z(k, n, share) == pytest.approx(3.0, abs=0.1)
    assert binomial_z(0, 0, 0.3) == 0.0


def _everyday_text(rng: random.Random) -> str:
    return " ".join(rng.choices(VOCABULARY, WEIGHTS, k=8))


def _window(texts: list[str], prefix: str = "w") -> list[TweetRecord]:
    return [record(f"{prefix}{i}", text) for i, text in enumerate(texts)]


def _betabinomial_pmf(j: int, n: int, a: float, b: float) -> float:
    def beta(x: float, y: float) -> float:
        return math.exp(math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y))

    return math.comb(n, j) * beta(j + a, n - j + b) / beta(a, b)


@pytest.mark.parametrize(
    ("k", "n", "a", "b"),
    [(3, 10, 0.5, 200.5), (1, 10, 0.5, 200.5), (12, 40, 4.0, 60.0), (2, 40, 4.0, 60.0), (40, 40, 1.0, 1.0)],
)
def test_betabinomial_tail_matches_a_direct_sum(k: int, n: int, a: float, b: float) -> None:
    direct = sum(_betabinomial_pmf(j, n, a, b) for j in range(k, n + 1))
    assert math.exp(log_betabinomial_tail(k, n, a, b)) == pytest.approx(direct, rel=1e-9)


@pytest.mark.parametrize(("k", "n", "a", "b"), [(3, 7, 1.5, 40.0), (10, 10, 0.5, 200.5), (12, 40, 4.0, 60.0)])
def test_mid_tail_is_the_tail_above_plus_half_the_count_seen(k: int, n: int, a: float, b: float) -> None:
    above = sum(_betabinomial_pmf(j, n, a, b) for j in range(k + 1, n + 1))
    assert math.exp(log_betabinomial_mid_tail(k, n, a, b)) == pytest.approx(
        above + _betabinomial_pmf(k, n, a, b) / 2, rel=1e-9
    )


def test_a_planted_term_is_found_first_and_alone() -> None:
    rng = random.Random(3)
    reference = reference_counts([_everyday_text(rng) for _ in range(1000)], simple_tokenize)
    texts = [_everyday_text(rng) for _ in range(40)]
    texts = [f"{text} meltdown" if i % 4 == 0 else text for i, text in enumerate(texts)]  # 10 of 40
    result = explain(_window(texts), reference, simple_tokenize, background=NO_BACKGROUND)
    assert result["top_terms"] == ("meltdown",)
    assert result["samples"][0]["text"].endswith("meltdown")


def _airline_negatives(airline: str, count: int) -> list[str]:
    with open(REPO_ROOT / "data" / "airline_us" / "train.csv", newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["airline"] == airline and r["label"] == "negative"]
    return [r["text"] for r in sorted(rows, key=lambda r: r["created_at"])[:count]]


@pytest.mark.parametrize("real", [False, True], ids=["synthetic, no background", "airline, background"])
def test_a_window_identical_to_the_reference_names_no_terms(real: bool) -> None:
    rng = random.Random(4)
    if real:  # the models' tokenizer, the shipped background and the brand's name, as in the service
        texts, tokenizer, background = _airline_negatives("United", 300), default_tokenizer(), None
    else:
        texts, tokenizer = [f"{_everyday_text(rng)} #travel" for _ in range(60)], simple_tokenize
        background = NO_BACKGROUND
    reference = reference_counts(texts, tokenizer)
    result = explain(_window(texts), reference, tokenizer, background=background, brand="united")
    assert result["top_terms"] == () and result["top_hashtags"] == ()


def test_windows_like_their_reference_rarely_name_any_term() -> None:
    # The old z >= 1.96 rule named about a dozen chance words in every such 30-tweet window.
    rng = random.Random(5)
    reference = reference_counts([_everyday_text(rng) for _ in range(1000)], simple_tokenize)
    named = [
        explain(_window([_everyday_text(rng) for _ in range(30)]), reference, simple_tokenize)["top_terms"]
        for _ in range(40)
    ]
    assert sum(1 for terms in named if terms) <= 4  # the false discovery rate is 5%


def test_a_new_word_in_two_tweets_is_no_trend_in_four_it_is() -> None:
    rng = random.Random(6)
    reference = reference_counts([_everyday_text(rng) for _ in range(1000)], simple_tokenize)
    texts = [_everyday_text(rng) for _ in range(10)]

    def terms(uses: int) -> tuple[str, ...]:
        planted = [f"{text} zeppelin" if i < uses else text for i, text in enumerate(texts)]
        return explain(_window(planted), reference, simple_tokenize, background=NO_BACKGROUND)["top_terms"]

    assert terms(2) == () and terms(4) == ("zeppelin",)


def test_with_no_reference_yet_the_background_stands_in() -> None:
    rng = random.Random(7)
    background = reference_counts([_everyday_text(rng) for _ in range(5000)], simple_tokenize)
    texts = [f"{_everyday_text(rng)} outage" if i % 3 == 0 else _everyday_text(rng) for i in range(30)]
    empty = ReferenceCounts({}, {}, 0)
    assert explain(_window(texts), empty, simple_tokenize, background=background)["top_terms"] == ("outage",)
    assert explain(_window(texts), empty, simple_tokenize, background=NO_BACKGROUND)["top_terms"] == ()


def test_the_shipped_background_is_what_its_script_builds() -> None:
    background = shipped_background()
    assert background.docs > 7_000 and background.terms["cancelled"] > 100
    assert background.phrases["customer service"] > 100
    _assert_script_check("build_term_background.py")


def _assert_script_check(script: str) -> None:
    """The shipped file a script under scripts/ builds is up to date (its --check passes)."""
    check = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / script), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr


def test_a_failing_reason_model_keeps_the_rest_of_the_explanation() -> None:
    class Broken:
        def predict(self, texts: list[str]) -> list[str]:
            raise RuntimeError("model file missing")

    window = [record(f"a{i}", f"lost bag again {i}") for i in range(4)]
    result = explain(window, reference_counts(["fine"], simple_tokenize), simple_tokenize, Broken())
    assert result["reasons"] == {} and len(result["samples"]) == 4


def test_one_author_repeating_a_new_word_is_no_trend() -> None:
    rng = random.Random(6)
    reference = reference_counts([_everyday_text(rng) for _ in range(1000)], simple_tokenize)
    texts = [f"{_everyday_text(rng)} zeppelin" if i < 4 else _everyday_text(rng) for i in range(10)]

    def terms(authors: list[str]) -> tuple[str, ...]:
        window = [record(f"w{i}", text, author=authors[i % len(authors)]) for i, text in enumerate(texts)]
        return explain(window, reference, simple_tokenize, background=NO_BACKGROUND)["top_terms"]

    assert terms([f"u{i}" for i in range(10)]) == ("zeppelin",)
    assert terms(["ann"] * 4 + [f"u{i}" for i in range(6)]) == ()  # the four uses are one author's


def test_samples_are_one_per_author_and_never_near_copies() -> None:
    reference = reference_counts([f"great crew and a smooth flight {i}" for i in range(200)], simple_tokenize)
    rant = [
        record(f"ann{i}", f"lost my bag again, lost luggage desk closed {i}", author="ann") for i in range(6)
    ]
    near = [
        record(f"near{i}", f"they lost my bag in denver, luggage gone, flight {i}", author=f"n{i}")
        for i in range(4)
    ]
    others = [
        record("o1", "lost bag and nobody answers the phone", author="bob"),
        record("o2", "my luggage is lost since tuesday", author="cid"),
        record("o3", "lost luggage, no update, no call back", author=None),
    ]
    result = explain(rant + near + others, reference, simple_tokenize, samples=5, background=NO_BACKGROUND)
    ids = result["sample_ids"]
    assert sum(i.startswith("ann") for i in ids) == 1 and sum(i.startswith("near") for i in ids) == 1
    assert {"o1", "o2", "o3"} <= set(ids) and len(ids) == 5


def test_a_small_buzz_first_alert_names_its_topic() -> None:
    # A first alert of a few tweets: 3 of 7 people on a word a thirtieth of the usual complaints use. The
    # plain tail of the count (p = 0.061) was too conservative to name it; its mid-p value (0.032) is not.
    reference = reference_counts(
        [f"usual{i} complaint{i}" + (" hold" if i % 30 == 0 else "") for i in range(1000)], simple_tokenize
    )

    def terms(on_hold: int) -> tuple[str, ...]:
        texts = [f"filler{i} other{i}" + (" hold" if i < on_hold else "") for i in range(7)]
        return explain(_window(texts), reference, simple_tokenize, background=NO_BACKGROUND)["top_terms"]

    assert terms(3) == ("hold",)
    assert terms(2) == ()  # two voices are still no trend


def test_an_account_the_complaints_mention_is_a_word_of_the_topic() -> None:
    # A first alert of 7 people, 3 on apple: one writes "Apple", two only "@apple" (which the tokenizer
    # makes "<user>"). Counted as words, the mentions make the third voice the topic needed.
    rng = random.Random(11)
    reference = reference_counts([_everyday_text(rng) for _ in range(1000)], simple_tokenize)
    texts = [
        "apple broke my screen",
        "thanks for nothing @apple",
        "@Apple the update killed my battery",
        *(_everyday_text(rng) for _ in range(4)),
    ]
    result = explain(_window(texts), reference, simple_tokenize, background=NO_BACKGROUND)
    assert result["top_terms"] == ("apple",)
    assert result["terms_share"] == round(3 / 7, 4)
    # Whose tweet a retweet copies ("RT @apple:") is not what it is about.
    retweets = [texts[0], *(f"RT @apple: {_everyday_text(rng)}" for _ in range(2)), *texts[3:]]
    assert explain(_window(retweets), reference, simple_tokenize, background=NO_BACKGROUND)["top_terms"] == ()


def test_the_brand_own_account_is_never_the_topic() -> None:
    # A young brand's buzz: every complaint addresses @Zephyr, a name its usual complaints (here the
    # background's) never use. Without its brand the explanation would call the brand its own topic.
    rng = random.Random(12)
    reference = reference_counts([_everyday_text(rng) for _ in range(1000)], simple_tokenize)
    texts = [f"@Zephyr {_everyday_text(rng)}" for _ in range(12)]
    assert explain(_window(texts), reference, simple_tokenize, background=NO_BACKGROUND)["top_terms"] == (
        "zephyr",
    )
    named = explain(_window(texts), reference, simple_tokenize, background=NO_BACKGROUND, brand="Zephyr")
    assert named["top_terms"] == () and named["terms_share"] is None
    # A brand's id need not be its handle (the airline file's "Southwest" writes to @SouthwestAir), and a
    # brand has more accounts than one (@ZephyrHelp); another account a buzz names stays a term.
    texts = [f"@SouthwestAir {_everyday_text(rng)}" for _ in range(12)]
    assert (
        explain(_window(texts), reference, simple_tokenize, background=NO_BACKGROUND, brand="Southwest")[
            "top_terms"
        ]
        == ()
    )
    texts = [f"@ZephyrHelp @Boeing {_everyday_text(rng)}" for _ in range(12)]
    named = explain(_window(texts), reference, simple_tokenize, background=NO_BACKGROUND, brand="Zephyr")
    assert named["top_terms"] == ("boeing",)


def test_a_buzz_without_a_topic_names_no_retweet_marker_or_modal_verb() -> None:
    # Ordinary complaints, retweeted by their own people: "rt" and "may" were named as the buzz's terms.
    rng = random.Random(8)
    reference = reference_counts([_everyday_text(rng) for _ in range(1000)], simple_tokenize)
    texts = [f"RT @fan{i}: we may {_everyday_text(rng)}" for i in range(8)]
    result = explain(_window(texts), reference, simple_tokenize, background=NO_BACKGROUND)
    assert result["top_terms"] == () and result["top_hashtags"] == ()


LUGGAGE = ("bag", "luggage", "baggage")  # one group of the shipped word groups (scripts/build_term_groups.py)


def _sometimes_luggage(rng: random.Random) -> str:
    """An everyday complaint that uses each word of the luggage group a thirtieth of the time."""
    extra = [word for word in LUGGAGE if rng.random() < 1 / 30]
    return " ".join([_everyday_text(rng), *extra])


def test_the_shipped_groups_put_synonyms_together_and_are_what_their_script_builds() -> None:
    groups = shipped_groups()
    assert {groups.group_of[word] for word in LUGGAGE} == {"~bag"}
    assert groups.group_of["cancelled"] == groups.group_of["canceled"]
    assert groups.group_of["school"] != groups.group_of["bag"]
    _assert_script_check("build_term_groups.py")


def test_a_topic_spread_over_synonyms_by_different_people_is_named() -> None:
    # 2 of 12 people each say "bag", "luggage" or "baggage": no word has the third voice a trend needs,
    # but half of the people are on the topic that a tenth of the usual complaints are about.
    rng = random.Random(9)
    reference = reference_counts([_sometimes_luggage(rng) for _ in range(1000)], simple_tokenize)
    texts = [_everyday_text(rng) for _ in range(12)]
    texts = [f"{text} {LUGGAGE[i // 2]}" if i < 6 else text for i, text in enumerate(texts)]
    result = explain(_window(texts), reference, simple_tokenize, background=NO_BACKGROUND)
    assert result["top_terms"] == ("bag / luggage",)  # its two words most voices used (ties: most frequent)
    assert result["terms_share"] == 0.5
    # A reference counted before the groups (a saved state) does not know them: no group is tested; nor
    # while the brand's own negatives are fewer than the prior's weight (a young brand).
    assert explain(_window(texts), replace(reference, groups=""), simple_tokenize)["top_terms"] == ()
    young = reference_counts([_sometimes_luggage(rng) for _ in range(150)], simple_tokenize)
    assert explain(_window(texts), young, simple_tokenize, background=NO_BACKGROUND)["top_terms"] == ()


def test_windows_of_ordinary_negatives_name_no_group() -> None:
    # The group's words are in these windows as often as in the usual complaints: a group counts a tweet
    # once whichever of its words it uses, against the reference's tweets that use any of them.
    rng = random.Random(10)
    reference = reference_counts([_sometimes_luggage(rng) for _ in range(1000)], simple_tokenize)
    for _ in range(60):
        window = _window([_sometimes_luggage(rng) for _ in range(30)])
        terms = explain(window, reference, simple_tokenize, background=NO_BACKGROUND)["top_terms"]
        assert not any("/" in term or term in LUGGAGE for term in terms)


def test_a_samples_relevance_does_not_depend_on_the_order_of_its_words() -> None:
    # A sample's words are a set, iterated in an order that follows the string hash seed: summed in that
    # order, two samples tied on the same terms could swap from one run to the next (report seed 2's
    # AirNova alert did: 0.1 + 0.2 + 0.3 and 0.3 + 0.2 + 0.1 differ in the last bit).
    weights = {"cancelled": 0.1, "hold": 0.2, "hours": 0.3}
    words = [*weights, "flight"]
    relevances = {_relevance(order, weights) for order in itertools.permutations(words)}
    assert relevances == {0.6 / math.sqrt(5.0)}
