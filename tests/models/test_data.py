"""Data loading, deduplication and splits: on the real data/ tree and on tiny files written here."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pandas as pd
import pytest

from buzzwatch.schema import LABELS
from models.data import (
    COLUMNS,
    LABELLED_SOURCES,
    REPORT_SETS,
    SELECTION_SETS,
    SEMEVAL_PROXY_SPLIT,
    DataError,
    dedupe_key,
    drop_shared_texts,
    load_distant,
    load_emoji_corpus,
    load_labelled,
    load_unlabelled_texts,
    make_splits,
)


@pytest.fixture(scope="session")
def labelled() -> pd.DataFrame:
    return load_labelled()


@pytest.fixture(scope="session")
def splits(labelled: pd.DataFrame):
    return make_splits(labelled)


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def semeval_row(tweet_id: str, text: str, label: str, split: str, flag: str = "0") -> dict[str, str]:
    return {"id": tweet_id, "text": text, "label": label, "source_split": split, "in_tweeteval_val": flag}


# ---- the real table ------------------------------------------------------------------------------


def test_schema_and_label_set(labelled: pd.DataFrame) -> None:
    assert tuple(labelled.columns) == COLUMNS
    assert set(labelled["label"]) == set(LABELS)
    assert set(labelled["source"]) == set(LABELLED_SOURCES)
    assert (labelled["text"].str.strip() != "").all()
    assert (labelled["norm_text"] != "").all()
    assert len(labelled) > 90_000


def test_deduplicated_by_id_and_by_normalised_text(labelled: pd.DataFrame) -> None:
    assert labelled["norm_text"].is_unique
    assert labelled["norm_text"].map(dedupe_key).is_unique
    with_id = labelled[labelled["id"] != ""]
    assert not with_id.duplicated(["source", "id"]).any()


def test_known_fields_filled_where_known(labelled: pd.DataFrame) -> None:
    airline = labelled[labelled["source"] == "airline"]
    assert set(airline["brand"]) == {
        "Virgin America",
        "United",
        "Southwest",
        "Delta",
        "US Airways",
        "American",
    }
    assert airline["created_at"].notna().all()
    reasons = airline.loc[airline["negativereason"] != "", "label"]
    assert set(reasons) == {"negative"} and len(reasons) > 6_000
    sanders = labelled[labelled["source"] == "sanders"]
    assert set(sanders["brand"]) == {"apple", "google", "microsoft", "twitter"}
    assert sanders["created_at"].notna().all()


def test_tweeteval_twins_are_not_kept_twice(labelled: pd.DataFrame) -> None:
    semeval = labelled[labelled["source"] == "semeval"]
    assert (semeval["in_tweeteval_val"] == 0).all()
    assert (labelled["source"] == "tweeteval_val").sum() > 1_900


# ---- the real splits -----------------------------------------------------------------------------


def test_no_normalised_text_shared_between_splits(splits) -> None:
    keys = [{dedupe_key(text) for text in frame["norm_text"]} for frame in splits]
    for position, one in enumerate(keys):
        for other in keys[position + 1 :]:
            assert not one & other
    assert sum(len(frame) for frame in splits) == sum(len(one) for one in keys)


def test_each_split_has_its_job(splits, labelled: pd.DataFrame) -> None:
    """Early stopping, selection, in-distribution report and shifted hold-out are different tweets."""
    assert sum(len(frame) for frame in splits) == len(labelled)
    assert 0.03 < len(splits.early_stop) / len(labelled) < 0.06  # 2016test rows drawn to it moved to shifted
    proxy_rows = (labelled["source"] == "semeval") & (labelled["source_split"] == SEMEVAL_PROXY_SPLIT)
    # The shifted hold-out is SemEval 2016test whole: never in train, early stop or selection.
    assert len(splits.shifted) == proxy_rows.sum() > 19_000
    assert (splits.shifted["source_split"] == SEMEVAL_PROXY_SPLIT).all()
    for frame in (splits.train, splits.early_stop, splits.validation, splits.test):
        assert (frame["source_split"] != SEMEVAL_PROXY_SPLIT).all()


def test_proxy_sets_are_held_out(splits, labelled: pd.DataFrame) -> None:
    proxies = splits.proxies()
    assert set(proxies) == {*REPORT_SETS[1:], *SELECTION_SETS}
    assert len(proxies["semeval2016test"]) == len(splits.shifted)
    assert len(proxies["tweeteval_val"]) == (labelled["source"] == "tweeteval_val").sum()
    assert (splits.train["source"] != "tweeteval_val").all()
    assert (splits.early_stop["source"] != "tweeteval_val").all()
    airline_share = len(proxies["airline_test"]) / (labelled["source"] == "airline").sum()
    assert 0.09 < airline_share < 0.11
    assert len(proxies["validation_airline"]) == len(proxies["airline_test"])
    assert len(proxies["semeval_test"]) > 2_000


def test_validation_and_test_are_those_the_shipped_champion_never_trained_on(splits) -> None:
    """Digests of the old validation/test splits (before early_stop and shifted existed), minus 2016test.

    The strata are drawn with the 2016test rows in, as before, so the shipped champion (trained on the old
    train split) never saw a selection or test tweet and can be compared on them.
    """
    expected = {"validation": (9_311, "95624ed66930f506"), "test": (7_406, "5e07d8879bb7d047")}
    for name, (size, digest) in expected.items():
        texts = sorted(getattr(splits, name)["norm_text"])
        assert (len(texts), hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]) == (size, digest)


def test_splits_are_stratified(splits) -> None:
    train = splits.train[splits.train["source"] == "airline"]["label"].value_counts(normalize=True)
    test = splits.proxies()["airline_test"]["label"].value_counts(normalize=True)
    early = splits.early_stop[splits.early_stop["source"] == "airline"]["label"].value_counts(normalize=True)
    assert (train - test).abs().max() < 0.01
    assert (train - early).abs().max() < 0.01


def test_splits_reproducible_and_independent_of_row_order(labelled: pd.DataFrame, splits) -> None:
    sample = labelled.sample(n=5_000, random_state=1)
    first = make_splits(sample, seed=3)
    shuffled = make_splits(sample.sample(frac=1.0, random_state=2), seed=3)
    for one, two in zip(first, shuffled, strict=True):
        assert sorted(one["norm_text"]) == sorted(two["norm_text"])
    other_seed = make_splits(sample, seed=4)
    assert sorted(other_seed.test["norm_text"]) != sorted(first.test["norm_text"])


def test_tweeteval_flagged_semeval_rows_never_train() -> None:
    semeval = load_labelled(sources=["semeval"])
    flagged = semeval["in_tweeteval_val"] == 1
    assert flagged.sum() > 1_500
    splits = make_splits(semeval)
    assert (splits.train["in_tweeteval_val"] == 0).all()
    assert (splits.early_stop["in_tweeteval_val"] == 0).all()
    assert (splits.validation["in_tweeteval_val"] == 1).sum() == flagged.sum()


# ---- the rules, on tiny files --------------------------------------------------------------------


def test_semeval_id_dedupe_conflicts_and_proxy_preference(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "semeval2017_task4a/twitter-2013train.csv",
        [
            semeval_row("1", "same tweet one", "positive", "twitter-2013train"),
            semeval_row("2", "conflicting tweet", "positive", "twitter-2013train"),
            semeval_row("3", "twin of a tweeteval tweet http://t.co/x", "neutral", "twitter-2013train", "1"),
        ],
    )
    write_csv(
        tmp_path / "semeval2017_task4a/twitter-2016test.csv",
        [
            semeval_row("1", "same tweet one", "positive", "twitter-2016test"),
            semeval_row("2", "conflicting tweet", "negative", "twitter-2016test"),
            semeval_row("4", "another tweet", "neutral", "twitter-2016test"),
        ],
    )
    frame = load_labelled(tmp_path, sources=["semeval"])
    assert sorted(frame["id"]) == ["1", "3", "4"]
    assert frame.set_index("id").loc["1", "source_split"] == SEMEVAL_PROXY_SPLIT

    write_csv(
        tmp_path / "tweeteval_sentiment/val.csv",
        [{"text": "twin of a tweeteval tweet", "label": "neutral", "label_id": "1"}],
    )
    both = load_labelled(tmp_path, sources=["semeval", "tweeteval_val"])
    assert "3" not in set(both["id"])
    assert (both["source"] == "tweeteval_val").sum() == 1


def test_text_dedupe_majority_vote_and_ties(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "tweet_sentiment_extraction/train.csv",
        [
            {"id": "a", "text": "Great flight!", "label": "positive"},
            {"id": "b", "text": "great   flight !", "label": "positive"},
            {"id": "c", "text": "great flight!!", "label": "positive"},
            {"id": "d", "text": "so so", "label": "neutral"},
            {"id": "e", "text": "So so", "label": "negative"},
            {"id": "f", "text": "@bob http://t.co/x", "label": "neutral"},
            {"id": "g", "text": "!!!", "label": "neutral"},
        ],
    )
    write_csv(
        tmp_path / "tweet_sentiment_extraction/test.csv",
        [
            {"id": "h", "text": "great flight!", "label": "negative"},
            {"id": "i", "text": "@alice http://t.co/y", "label": "neutral"},
        ],
    )
    write_csv(
        tmp_path / "airline_us/train.csv",
        [
            {
                "id": "9",
                "text": "@united great flight!",
                "label": "positive",
                "airline": "United",
                "negativereason": "",
                "created_at": "2015-02-24 11:35:52 -0800",
            }
        ],
    )
    tse = load_labelled(tmp_path, sources=["tse"])
    # "great flight !" (emphasis ignored): 3 positive against 1 negative; "so so" is a tie and goes;
    # mentions and URLs collapse.
    assert sorted(tse["norm_text"]) == ["! <repeat>", "<user> <url>", "great flight !"]
    assert tse.set_index("norm_text").loc["great flight !", "label"] == "positive"
    assert tse.set_index("norm_text").loc["great flight !", "id"] == "a"
    both = load_labelled(tmp_path, sources=["tse", "airline"])
    airline = both[both["source"] == "airline"]
    assert len(airline) == 1 and airline["created_at"].iloc[0] == pd.Timestamp("2015-02-24 19:35:52Z")


def test_bad_files_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing data file"):
        load_labelled(tmp_path, sources=["sanders"])
    write_csv(tmp_path / "tweeteval_sentiment/val.csv", [{"text": "x", "label": "angry", "label_id": "1"}])
    with pytest.raises(DataError, match="labels outside"):
        load_labelled(tmp_path, sources=["tweeteval_val"])
    with pytest.raises(ValueError, match="unknown source"):
        load_labelled(tmp_path, sources=["nope"])


def test_unlabelled_texts_dedupe_and_exclude(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "tweeteval_emoji_corpus/train.csv",
        [{"text": "sunny day @user"}, {"text": "Sunny day @bob"}, {"text": "held out text"}],
    )
    for name in ("val", "test"):
        write_csv(tmp_path / f"tweeteval_emoji_corpus/{name}.csv", [{"text": f"{name} tweet"}])
    write_csv(tmp_path / "sentiment140/train_subset_100k.csv", [{"text": "distant one", "label": "negative"}])
    texts = load_unlabelled_texts(tmp_path, exclude=["HELD OUT text"])
    assert sorted(texts) == ["distant one", "sunny day @user", "test tweet", "val tweet"]
    assert load_unlabelled_texts(tmp_path, exclude=["HELD OUT text"], limit=2) == texts[:2]


def test_distant_labels(tmp_path: Path) -> None:
    rows = [
        {"text": "bad day", "label": "negative", "source_file": "negative.txt", "source_line": "1"},
        {"text": "BAD day", "label": "negative", "source_file": "negative.txt", "source_line": "2"},
        {"text": "odd one", "label": "negative", "source_file": "negative.txt", "source_line": "3"},
        {"text": "odd one", "label": "positive", "source_file": "positive.txt", "source_line": "1"},
        {"text": "fine day", "label": "positive", "source_file": "positive.txt", "source_line": "2"},
    ]
    write_csv(tmp_path / "sentiment140/train_subset_100k.csv", rows)
    distant = load_distant(tmp_path)
    assert sorted(distant["text"]) == ["bad day", "fine day"]
    assert tuple(distant.columns) == COLUMNS
    assert set(distant["source"]) == {"sentiment140_distant"}


def test_emoji_corpus_labels(tmp_path: Path) -> None:
    """Which emoji each text lost: duplicates kept once, a text seen with two emojis and bad rows dropped."""
    rows = {
        "train": [
            {"text": "sunny day @user", "emoji_label": "0"},
            {"text": "SUNNY day @user", "emoji_label": "0"},
            {"text": "who knows", "emoji_label": "1"},
            {"text": "   ", "emoji_label": "2"},
        ],
        "val": [{"text": "who knows", "emoji_label": "3"}, {"text": "off the map", "emoji_label": "20"}],
        "test": [{"text": "beach time", "emoji_label": "19"}],
    }
    for split, split_rows in rows.items():
        write_csv(tmp_path / f"tweeteval_emoji_corpus/{split}.csv", split_rows)
    corpus = load_emoji_corpus(tmp_path)
    assert list(zip(corpus["text"], corpus["emoji_label"], strict=True)) == [
        ("sunny day @user", 0),
        ("beach time", 19),
    ]


def test_dedupe_key_ignores_emphasis_only() -> None:
    assert dedupe_key("great <allcaps> flight ! <repeat> soo <elong>") == "great flight ! soo"
    assert dedupe_key("<user> hi") == "<user> hi"


def test_drop_shared_texts() -> None:
    frame = pd.DataFrame({"text": ["Good flight", "bad flight", "other"]})
    held_out = pd.DataFrame({"text": ["good FLIGHT"]})
    assert drop_shared_texts(frame, [held_out])["text"].tolist() == ["bad flight", "other"]


def test_split_fractions_validated(labelled: pd.DataFrame) -> None:
    with pytest.raises(ValueError):
        make_splits(labelled.head(10), validation_fraction=0.6, test_fraction=0.5)
