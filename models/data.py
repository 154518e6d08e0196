"""The labelled tweet table, the distant-label and unlabelled corpora, and fixed, seeded splits.

`load_labelled()` gives one clean table: `text, label, source, id, created_at, brand, negativereason,
source_split, in_tweeteval_val, norm_text` (`norm_text` is `models.text.normalise(text)`, the dedupe key).
Sources (names in `LABELLED_SOURCES`) and what they contribute:

| source | file(s) | id | brand | notes |
|---|---|---|---|---|
| `airline` | airline_us/train.csv | tweet id | airline | created_at, negativereason |
| `semeval` | semeval2017_task4a/*.csv (all 11) | tweet id | | source_split = the SemEval file |
| `tweeteval_val` | tweeteval_sentiment/val.csv | none | | the TweetEval validation set |
| `sanders` | sanders/all.csv | tweet id | topic | created_at |
| `sentiment140_manual` | sentiment140/test_manual.csv | row id | query | created_at |
| `tse` | tweet_sentiment_extraction/{train,test}.csv | hash | | source_split = train/test |

Deduplication, in this order, deterministic whatever the order of rows in the files:
1. **By id within a source** (the SemEval files overlap; the Kaggle airline file repeats ids): an id
   whose copies carry different labels is dropped; otherwise one row is kept. For SemEval that row's
   `source_split` is `twitter-2016test` when any copy is in it (so the proxy set stays whole), else the
   first file in name order; `in_tweeteval_val` is 1 when any copy has it.
2. **TweetEval validation twins:** when `tweeteval_val` is loaded, SemEval rows with
   `in_tweeteval_val == 1` are dropped: they are the same tweets (TweetEval replaced mentions and removed
   URLs, so texts differ) and the TweetEval copy is kept as the standard validation set.
3. **By normalised text across all sources:** texts whose normalised form is empty are dropped; rows with
   the same `dedupe_key(norm_text)` (the normalised text without the emphasis markers `<allcaps>`,
   `<elong>`, `<repeat>`) form a group; the majority label wins and a tie drops the whole group (the text
   is ambiguous); the row kept is the first by source priority (`LABELLED_SOURCES` order: airline
   first, the target domain), then SemEval's `twitter-2016test` first, then id, then text.

`make_splits()` then assigns every row to train/early_stop/validation/test/shifted (see `Splits`);
`Splits.proxies()` gives the named evaluation sets (airline test, SemEval test, the shifted SemEval
2016test, and the selection sets airline validation and TweetEval val).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from buzzwatch.schema import LABELS
from models.text import normalise

DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent / "data"
LABELLED_SOURCES: tuple[str, ...] = (
    "airline",
    "semeval",
    "tweeteval_val",
    "sanders",
    "sentiment140_manual",
    "tse",
)
DISTANT_SOURCE = "sentiment140_distant"
SEMEVAL_PROXY_SPLIT = "twitter-2016test"
DEFAULT_SEED = 20261125
COLUMNS: tuple[str, ...] = (
    "text",
    "label",
    "source",
    "id",
    "created_at",
    "brand",
    "negativereason",
    "source_split",
    "in_tweeteval_val",
    "norm_text",
)
_UNLABELLED_FILES = (
    "tweeteval_emoji_corpus/train.csv",
    "tweeteval_emoji_corpus/val.csv",
    "tweeteval_emoji_corpus/test.csv",
    "sentiment140/train_subset_100k.csv",
)


class DataError(ValueError):
    """A data file is missing or malformed; the message names the file."""


def _read_csv(path: Path, required: Sequence[str] = ("text", "label")) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"missing data file {path}")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise DataError(f"{path} lacks column(s) {', '.join(missing)}")
    if "label" in required:
        bad = sorted(set(frame["label"]) - set(LABELS))
        if bad:
            raise DataError(f"{path} has labels outside {LABELS}: {bad[:5]}")
    return frame


def _parse_time(values: pd.Series, fmt: str) -> pd.Series:
    return pd.to_datetime(values, format=fmt, utc=True, errors="coerce")


def _frame(source: str, raw: pd.DataFrame, **columns: object) -> pd.DataFrame:
    """One source's rows in the shared column layout (missing columns empty)."""
    out = pd.DataFrame(
        {
            "text": raw["text"].astype(str),
            "label": raw["label"].astype(str),
            "source": source,
            "id": raw["id"].astype(str) if "id" in raw else "",
            "created_at": pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]"),
            "brand": "",
            "negativereason": "",
            "source_split": "",
            "in_tweeteval_val": 0,
        },
        index=raw.index,
    )
    for name, value in columns.items():
        out[name] = value
    return out


def _load_airline(data_dir: Path) -> pd.DataFrame:
    raw = _read_csv(data_dir / "airline_us/train.csv", ("id", "text", "label", "airline", "created_at"))
    return _frame(
        "airline",
        raw,
        brand=raw["airline"],
        negativereason=raw.get("negativereason", ""),
        created_at=_parse_time(raw["created_at"], "%Y-%m-%d %H:%M:%S %z"),
    )


def _load_semeval(data_dir: Path) -> pd.DataFrame:
    files = sorted((data_dir / "semeval2017_task4a").glob("twitter-*.csv"))
    if not files:
        raise DataError(f"no SemEval files under {data_dir / 'semeval2017_task4a'}")
    parts = []
    for path in files:
        raw = _read_csv(path, ("id", "text", "label", "in_tweeteval_val"))
        flag = pd.to_numeric(raw["in_tweeteval_val"], errors="coerce").fillna(0).astype(int)
        parts.append(_frame("semeval", raw, source_split=path.stem, in_tweeteval_val=flag))
    frame = pd.concat(parts, ignore_index=True)
    # One row per id: proxy file first, then file name order.
    frame["_rank"] = (frame["source_split"] != SEMEVAL_PROXY_SPLIT).astype(int)
    flagged = frame.groupby("id")["in_tweeteval_val"].transform("max")
    frame["in_tweeteval_val"] = flagged
    return frame.sort_values(["_rank", "source_split"], kind="stable").drop(columns="_rank")


def _load_tweeteval_val(data_dir: Path) -> pd.DataFrame:
    raw = _read_csv(data_dir / "tweeteval_sentiment/val.csv")
    return _frame("tweeteval_val", raw, id="", source_split="val")


def _load_sanders(data_dir: Path) -> pd.DataFrame:
    raw = _read_csv(data_dir / "sanders/all.csv", ("id", "text", "label", "topic", "created_at"))
    created = _parse_time(raw["created_at"], "%a %b %d %H:%M:%S %z %Y")
    return _frame("sanders", raw, brand=raw["topic"], created_at=created)


def _load_sentiment140_manual(data_dir: Path) -> pd.DataFrame:
    raw = _read_csv(data_dir / "sentiment140/test_manual.csv", ("id", "text", "label", "query", "created_at"))
    created = _parse_time(raw["created_at"], "%a %b %d %H:%M:%S UTC %Y")
    return _frame("sentiment140_manual", raw, brand=raw["query"], created_at=created)


def _load_tse(data_dir: Path) -> pd.DataFrame:
    parts = []
    for split in ("train", "test"):
        raw = _read_csv(data_dir / f"tweet_sentiment_extraction/{split}.csv", ("id", "text", "label"))
        parts.append(_frame("tse", raw, source_split=split))
    return pd.concat(parts, ignore_index=True)


_LOADERS = {
    "airline": _load_airline,
    "semeval": _load_semeval,
    "tweeteval_val": _load_tweeteval_val,
    "sanders": _load_sanders,
    "sentiment140_manual": _load_sentiment140_manual,
    "tse": _load_tse,
}


def _dedupe_ids(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (source, id); ids whose copies disagree on the label are dropped."""
    has_id = frame["id"] != ""
    with_id = frame[has_id]
    labels_per_id = with_id.groupby(["source", "id"])["label"].transform("nunique")
    with_id = with_id[labels_per_id == 1].drop_duplicates(["source", "id"], keep="first")
    return pd.concat([with_id, frame[~has_id]])


def _normalise_all(texts: Iterable[str]) -> list[str]:
    return [normalise(text) for text in texts]


_EMPHASIS_MARKERS = frozenset({"<allcaps>", "<elong>", "<repeat>"})


def dedupe_key(norm_text: str) -> str:
    """The key two tweets are duplicates by: the normalised text without emphasis markers.

    Stricter than `norm_text` ("GREAT flight!!!" and "great flight!" share a key), so texts with distinct
    keys also have distinct normalised texts.
    """
    if "<" not in norm_text:
        return norm_text
    return " ".join(token for token in norm_text.split() if token not in _EMPHASIS_MARKERS)


def _keys(norm_texts: Iterable[str]) -> list[str]:
    return [dedupe_key(text) for text in norm_texts]


def _dedupe_texts(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per normalised text: majority label, ties dropped, highest-priority row kept."""
    frame = frame[frame["norm_text"] != ""]
    priority = {source: rank for rank, source in enumerate(LABELLED_SOURCES)}
    frame = frame.assign(
        _key=_keys(frame["norm_text"]),
        _priority=frame["source"].map(priority).fillna(len(priority)),
        _proxy=(frame["source_split"] != SEMEVAL_PROXY_SPLIT).astype(int),
    ).sort_values(["_priority", "_proxy", "id", "text"], kind="stable")
    counts = frame.groupby(["_key", "label"]).size().rename("_votes").reset_index()
    best = counts.groupby("_key")["_votes"].transform("max")
    winners = counts[counts["_votes"] == best]
    unique_winner = winners.groupby("_key")["label"].transform("size") == 1
    winners = winners[unique_winner][["_key", "label"]]
    kept = frame.merge(winners, on=["_key", "label"], how="inner", sort=False)
    kept = kept.sort_values(["_priority", "_proxy", "id", "text"], kind="stable")
    return kept.drop_duplicates("_key", keep="first").drop(columns=["_key", "_priority", "_proxy"])


def load_labelled(data_dir: str | Path | None = None, sources: Sequence[str] | None = None) -> pd.DataFrame:
    """Every human-labelled tweet as one deduplicated table (columns `COLUMNS`; rules in the module doc)."""
    data_dir = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
    sources = tuple(sources) if sources is not None else LABELLED_SOURCES
    unknown = [source for source in sources if source not in _LOADERS]
    if unknown:
        raise ValueError(f"unknown source(s) {unknown}; choose from {LABELLED_SOURCES}")
    frames = [_dedupe_ids(_LOADERS[source](data_dir)) for source in dict.fromkeys(sources)]
    frame = pd.concat(frames, ignore_index=True)
    if "tweeteval_val" in sources:
        frame = frame[~((frame["source"] == "semeval") & (frame["in_tweeteval_val"] == 1))]
    frame = frame.assign(norm_text=_normalise_all(frame["text"]))
    frame = _dedupe_texts(frame)
    frame = frame.sort_values(["source", "source_split", "id", "norm_text"], kind="stable")
    return frame[list(COLUMNS)].reset_index(drop=True)


def load_distant(data_dir: str | Path | None = None) -> pd.DataFrame:
    """Sentiment140's 100k emoticon-labelled tweets (negative/positive only, noisy), deduped by text.

    Kept apart from `load_labelled`: the labels are distant, for pre-training. Same columns as
    `load_labelled`, source `sentiment140_distant`; a normalised text seen with both labels is dropped.
    """
    data_dir = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
    raw = _read_csv(data_dir / "sentiment140/train_subset_100k.csv", ("text", "label", "source_line"))
    raw = raw.assign(id=raw.get("source_file", "") + ":" + raw["source_line"])
    frame = _frame(DISTANT_SOURCE, raw, source_split="train_subset_100k")
    frame = frame.assign(norm_text=_normalise_all(frame["text"]))
    frame = frame[frame["norm_text"] != ""]
    keys = pd.Series(_keys(frame["norm_text"]), index=frame.index)
    agreeing = frame.groupby(keys)["label"].transform("nunique") == 1
    frame = frame[agreeing.to_numpy()]
    frame = frame[~keys[frame.index].duplicated(keep="first").to_numpy()]
    return frame[list(COLUMNS)].reset_index(drop=True)


def load_emoji_corpus(data_dir: str | Path | None = None) -> pd.DataFrame:
    """The TweetEval emoji corpus (train, val, test): `text, emoji_label` (0-19: the emoji removed from it).

    No sentiment labels: for distant supervision (`models.lstm.pretrain_on_emoji`). Texts are deduplicated
    by normalised form (a text seen with two emojis is dropped) and empty ones left out; `norm_text` is
    kept for `drop_shared_texts`.
    """
    data_dir = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
    frames = [
        _read_csv(data_dir / "tweeteval_emoji_corpus" / f"{split}.csv", ("text", "emoji_label"))
        for split in ("train", "val", "test")
    ]
    frame = pd.concat(frames, ignore_index=True)[["text", "emoji_label"]]
    frame = frame.assign(emoji_label=pd.to_numeric(frame["emoji_label"], errors="coerce"))
    frame = frame.assign(norm_text=_normalise_all(frame["text"]))
    frame = frame[(frame["norm_text"] != "") & frame["emoji_label"].between(0, 19)]
    keys = pd.Series(_keys(frame["norm_text"]), index=frame.index)
    agreeing = frame.groupby(keys)["emoji_label"].transform("nunique") == 1
    frame = frame[agreeing.to_numpy()]
    frame = frame[~keys[frame.index].duplicated(keep="first").to_numpy()]
    return frame.astype({"emoji_label": int}).reset_index(drop=True)


def load_unlabelled_texts(
    data_dir: str | Path | None = None, exclude: Iterable[str] | None = None, limit: int | None = None
) -> list[str]:
    """Every tweet text available (labelled, distant and the emoji corpus), for training embeddings.

    Texts are deduplicated by normalised form (first seen kept, in a fixed file order). `exclude` takes
    texts (raw or normalised) to leave out, e.g. the validation and test texts, so that even unsupervised
    training never sees them. `limit` stops after that many texts: the first ones of the whole list.
    """
    data_dir = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
    excluded = {dedupe_key(normalise(text)) for text in exclude} if exclude is not None else set()
    seen: set[str] = set()
    texts: list[str] = []
    paths = sorted(data_dir.glob("*/*.csv")) + [data_dir / name for name in _UNLABELLED_FILES]
    for path in dict.fromkeys(paths):
        for text in _read_csv(path, ("text",))["text"]:
            key = dedupe_key(normalise(text))
            if key and key not in seen and key not in excluded:
                if len(texts) == limit:
                    return texts
                seen.add(key)
                texts.append(text)
    return texts


def drop_shared_texts(frame: pd.DataFrame, held_out: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """`frame` without the rows whose normalised text is in any held-out frame (e.g. distant vs. test)."""
    keys: set[str] = set()
    for other in held_out:
        norm = other["norm_text"] if "norm_text" in other else _normalise_all(other["text"])
        keys.update(_keys(norm))
    norm = frame["norm_text"] if "norm_text" in frame else _normalise_all(frame["text"])
    shared = pd.Series(_keys(norm)).isin(keys).to_numpy()
    return frame[~shared].reset_index(drop=True)


class Splits(NamedTuple):
    """The evaluation discipline's splits; each has one job, and no normalised text is in two of them.

    - `train`: what models learn from (the TF-IDF baseline and every LSTM alike);
    - `early_stop`: what an LSTM stops on (its best epoch), never used to choose between models;
    - `validation`: the selection split, what candidates, ensemble weights and calibration are chosen on;
    - `test`: in-distribution figures, reported only;
    - `shifted`: SemEval `twitter-2016test` whole (a later period than the other SemEval files), reported
      beside the in-distribution figures and never trained or chosen on.
    """

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    early_stop: pd.DataFrame
    shifted: pd.DataFrame

    def without_early_stopping(self) -> pd.DataFrame:
        """What a model that does not early-stop trains on: the train and early_stop rows together."""
        return pd.concat([self.train, self.early_stop], ignore_index=True)

    def held_out(self) -> pd.DataFrame:
        """Every row no model may train on: early stop, validation, test and shifted together."""
        return pd.concat([self.early_stop, self.validation, self.test, self.shifted], ignore_index=True)

    def proxies(self) -> dict[str, pd.DataFrame]:
        """Named evaluation sets: the reported ones (`REPORT_SETS`) and the selection ones."""
        sets = {
            "airline_test": self.test[self.test["source"] == "airline"],
            "semeval_test": self.test[self.test["source"] == "semeval"],
            "semeval2016test": self.shifted,
            "validation_airline": self.validation[self.validation["source"] == "airline"],
            "tweeteval_val": self.validation[self.validation["source"] == "tweeteval_val"],
        }
        return {name: frame.reset_index(drop=True) for name, frame in sets.items() if len(frame)}


# Figures reported (never chosen on): in-distribution airline and general tweets, and the shifted hold-out.
REPORT_SETS: tuple[str, ...] = ("test", "airline_test", "semeval_test", "semeval2016test")
# What candidates are chosen on (parts of the validation split): one champion serves both domains.
SELECTION_SETS: tuple[str, ...] = ("validation_airline", "tweeteval_val")


@dataclass(frozen=True)
class _Fractions:
    validation: float
    test: float


def _stratified_assign(frame: pd.DataFrame, fractions: _Fractions, seed: int) -> pd.Series:
    """Seeded split per (source, label) stratum; independent of the input row order."""
    assigned = pd.Series("train", index=frame.index, dtype=object)
    rng = np.random.RandomState(seed)
    for _key, stratum in frame.sort_values(["source", "label"]).groupby(["source", "label"], sort=True):
        order = stratum.sort_values(["norm_text", "id"], kind="stable").index.to_numpy()
        order = order[rng.permutation(len(order))]
        n_test = round(fractions.test * len(order))
        n_validation = round(fractions.validation * len(order))
        assigned.loc[order[:n_test]] = "test"
        assigned.loc[order[n_test : n_test + n_validation]] = "validation"
    return assigned


def make_splits(
    frame: pd.DataFrame,
    seed: int = DEFAULT_SEED,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    early_stop_fraction: float = 0.05,
) -> Splits:
    """Fixed, seeded splits (see `Splits`) with no normalised text shared between them.

    - `tweeteval_val` rows all go to validation (the standard TweetEval validation set), and so do
      SemEval rows flagged `in_tweeteval_val` (present when `tweeteval_val` was not loaded), so the
      TweetEval validation tweets never reach training.
    - Every other row is split per (source, label) stratum by `seed`: `test_fraction` to test,
      `validation_fraction` to validation, the rest to train; then `early_stop_fraction` (of all rows)
      of each train stratum goes to early_stop, by `seed + 1`. The airline rows in test are the airline
      proxy set.
    - Then every SemEval `twitter-2016test` row (SemEval-2017's dev set) moves to `shifted`, wherever it
      fell. Drawing the strata with those rows in keeps validation and test exactly as they were before
      `shifted` existed (models trained then never saw them).
    - Rows sharing a `dedupe_key` (so any repeated normalised text) that would land in two splits all go
      to the most held-out one (shifted, test, validation, early_stop, train).
    """
    fractions = (validation_fraction, test_fraction, early_stop_fraction)
    if not all(0 <= fraction < 1 for fraction in fractions):
        raise ValueError("fractions must be in [0, 1)")
    if sum(fractions) >= 1:
        raise ValueError("validation_fraction + test_fraction + early_stop_fraction must be below 1")
    frame = frame.reset_index(drop=True)
    if "norm_text" not in frame:
        frame = frame.assign(norm_text=_normalise_all(frame["text"]))
    for column in ("source", "source_split", "id"):
        if column not in frame:
            frame = frame.assign(**{column: ""})
    fixed = pd.Series("", index=frame.index, dtype=object)
    fixed[frame["source"] == "tweeteval_val"] = "validation"
    if "in_tweeteval_val" in frame:
        fixed[frame["in_tweeteval_val"] == 1] = "validation"
    free = fixed == ""
    split = fixed.copy()
    split[free] = _stratified_assign(frame[free], _Fractions(validation_fraction, test_fraction), seed)
    in_train = split == "train"
    train_share = 1 - validation_fraction - test_fraction
    early = _stratified_assign(frame[in_train], _Fractions(0.0, early_stop_fraction / train_share), seed + 1)
    split[in_train] = early.map({"test": "early_stop", "train": "train"})
    split[free & (frame["source"] == "semeval") & (frame["source_split"] == SEMEVAL_PROXY_SPLIT)] = "shifted"
    # One split per normalised text: the most held-out one wins.
    order = ("shifted", "test", "validation", "early_stop", "train")
    rank = split.map({name: position for position, name in enumerate(order)})
    split = (
        rank.groupby(pd.Series(_keys(frame["norm_text"]), index=frame.index))
        .transform("min")
        .map(dict(enumerate(order)))
    )
    return Splits(
        *(
            frame[split == name].reset_index(drop=True)
            for name in ("train", "validation", "test", "early_stop", "shifted")
        )
    )
