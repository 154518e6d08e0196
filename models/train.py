"""`buzzwatch train`: embeddings, LSTM variants, baseline and reasons, tracked in MLflow; export the champion.

One command reproduces the shipped artifact (`buzzwatch train` with the default seed). Steps:
1. data: `models.data.load_labelled` + `make_splits` (fixed seed; the splits' jobs are in
   `models.data.Splits`); `--extra-data` rows (text,label, e.g. the API feedback export) are added to
   *train* only, minus any text held out in another split;
2. embeddings: Word2Vec and/or FastText (gensim) on every tweet text available minus every held-out
   text, cached under var_dir/embeddings by a digest of corpus + parameters; or, for the `glove-*`
   variants, the pretrained GloVe or word2vec text file the user gives (`--embeddings-file`);
3. each LSTM variant: one MLflow run (parameters, per-epoch metrics on the early-stop split, evaluation
   reports + confusion matrices on the selection and report sets, the serving artifact);
4. the TF-IDF baseline (same train split) and the negative-reason classifier when asked;
5. the champion among the candidates: only one passing every behavioural check (models.behaviour:
   negation, negated negatives, @mention/URL invariance, obvious cases, the same bits batched and alone)
   can be promoted; among those the best selection score (mean of airline validation macro-F1 and
   TweetEval validation macro-recall: one champion serves both domains) wins; it is registered with alias
   `champion` and exported to models/artifacts/champion/. When no candidate passes, nothing is registered
   or exported and the command fails.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from buzzwatch.cells import from_spreadsheet_cell
from buzzwatch.schema import LABELS, TRUSTED_FEEDBACK_PROVENANCES, is_blank
from buzzwatch.settings import REPO_ROOT, CommonSettings
from buzzwatch.tables import read_string_csv
from models import tracking
from models.text import NORMALISER_VERSION, normalise, tokenize

LOGGER = logging.getLogger(__name__)
DEFAULT_OUTPUT = REPO_ROOT / "models" / "artifacts" / "champion"


@dataclass(frozen=True)
class Variant:
    """One LSTM configuration to compare."""

    embedding: str  # "word2vec" | "fasttext" | "pretrained" (TrainOptions.embeddings_file)
    trainable_embeddings: bool
    distant_pretraining: bool = False
    pooling: str = "maxavg"
    lstm_units: int = 64
    conv_filters: int = 0  # CNN+LSTM: a Conv1D of this many filters (width 3) before the LSTM; 0 for none
    learning_rate: float = 2e-3
    dropout: float = 0.3
    patience: int = 2
    airline_weight: float = 1.0  # sample-weight multiplier for airline rows (the target domain)
    # Knowledge distillation: the share of the MiniLM teacher's probabilities (data/teacher/, models.teacher)
    # in each training row's target, the rest its one-hot label; 0 trains on the labels alone.
    teacher_share: float = 0.0
    # How many unlabelled texts (never held out, not in train) join training with the teacher's
    # probabilities alone as their target; 0 adds none.
    teacher_unlabelled: int = 0
    # How many negation minimal pairs (models.augment: a word plainly, then negated) join training.
    negation_examples: int = 0
    # 0: the pairs join from the first epoch. N: the LSTM first trains (and stops early) without them, then
    # trains N more epochs with them added (its best of those N on the early-stop split is kept).
    negation_epochs: int = 0
    epochs: int = 6
    # FastText hashing buckets for character n-grams (unused by Word2Vec); `subwords` ships them.
    fasttext_buckets: int = 200_000
    # Unknown tokens get the FastText vector of their character n-grams (in training and in serving)
    # instead of the one <unk> row: coverage beyond the vocabulary (needs frozen FastText embeddings).
    subwords: bool = False
    # Epochs of DeepMoji-style pre-training: the same network predicts which of 20 emojis was removed from
    # each tweet of the TweetEval emoji corpus (distant supervision), then learns sentiment; 0 for none.
    emoji_pretraining_epochs: int = 0
    # Each token's VADER valence (models.lexicon: positive and negative, frozen) read beside its embedding.
    lexicon_valence: bool = False
    # The vocabulary also takes every rated lexicon token it lacks (rare words, emoji; FastText sub-word
    # rows), so their valence reaches the model where training data never showed them.
    lexicon_vocabulary: bool = False
    # In-graph negation scope (needs lexicon_valence): the valence of the N tokens after a negator is
    # swapped and damped (VADER's rule, N = 3; `models.lstm.NegationScope`); 0 for none.
    negation_scope: int = 0
    # Emoji valued by the Emoji Sentiment Ranking (annotated tweets) instead of VADER's description words
    # where the ranking has them (`models.lexicon.emoji_ranking_valence`; needs lexicon_valence).
    emoji_ranking: bool = False


VARIANTS: dict[str, Variant] = {
    "w2v-frozen": Variant("word2vec", trainable_embeddings=False),
    "w2v-tuned": Variant("word2vec", trainable_embeddings=True),
    "ft-frozen": Variant("fasttext", trainable_embeddings=False),
    "ft-tuned": Variant("fasttext", trainable_embeddings=True),
    "ft-tuned-s140": Variant("fasttext", trainable_embeddings=True, distant_pretraining=True),
    "ft-tuned-attention": Variant("fasttext", trainable_embeddings=True, pooling="attention"),
    "ft-tuned-air3": Variant("fasttext", trainable_embeddings=True, learning_rate=1e-3, airline_weight=3.0),
    "ft-tuned-s140-air3": Variant(
        "fasttext",
        trainable_embeddings=True,
        distant_pretraining=True,
        learning_rate=1e-3,
        airline_weight=3.0,
    ),
    "ft-tuned-air5": Variant("fasttext", trainable_embeddings=True, learning_rate=1e-3, airline_weight=5.0),
    "ft-tuned-s140-air5": Variant(
        "fasttext",
        trainable_embeddings=True,
        distant_pretraining=True,
        learning_rate=1e-3,
        airline_weight=5.0,
    ),
    "ft-frozen-air5": Variant(
        "fasttext", trainable_embeddings=False, learning_rate=3e-3, airline_weight=5.0, epochs=14, patience=3
    ),
    "ft-tuned-air3-u128": Variant(
        "fasttext", trainable_embeddings=True, learning_rate=1e-3, airline_weight=3.0, lstm_units=128
    ),
    "ft-frozen-air3": Variant(
        "fasttext", trainable_embeddings=False, learning_rate=3e-3, airline_weight=3.0, epochs=10, patience=3
    ),
    "ft-frozen-air5-distil": Variant(
        "fasttext",
        trainable_embeddings=False,
        learning_rate=3e-3,
        airline_weight=5.0,
        epochs=14,
        patience=3,
        teacher_share=0.5,
        teacher_unlabelled=60_000,
    ),
}
VARIANTS["ft-frozen-air5-distil-neg"] = replace(VARIANTS["ft-frozen-air5-distil"], negation_examples=4_800)
# Issue 11's negation levers at a lower cost: half the pairs; the pairs only for the last two epochs.
NEGATION = VARIANTS["ft-frozen-air5-distil-neg"]
VARIANTS["ft-frozen-air5-distil-neg2400"] = replace(NEGATION, negation_examples=2_400)
VARIANTS["ft-frozen-air5-distil-neglast"] = replace(NEGATION, negation_epochs=2)
VARIANTS["ft-frozen-air5-distil-neglast1200"] = replace(NEGATION, negation_examples=1_200, negation_epochs=2)
VARIANTS["ft-frozen-air5-distil-neglast2400"] = replace(NEGATION, negation_examples=2_400, negation_epochs=2)
# Its control: the same two more epochs without the pairs.
VARIANTS["ft-frozen-air5-distil-more2"] = replace(VARIANTS["ft-frozen-air5-distil"], negation_epochs=2)
# Issue 11's coverage and emoji levers, each against the same recipe on the same (100,000-bucket) FastText
# vectors: that control, unknown tokens as sub-word vectors, DeepMoji-style emoji pre-training, and both.
VARIANTS["ft-frozen-air5-b100k"] = replace(VARIANTS["ft-frozen-air5"], fasttext_buckets=100_000)
VARIANTS["ft-frozen-air5-sub"] = replace(VARIANTS["ft-frozen-air5-b100k"], subwords=True)
VARIANTS["ft-frozen-air5-emoji"] = replace(VARIANTS["ft-frozen-air5-b100k"], emoji_pretraining_epochs=2)
VARIANTS["ft-frozen-air5-sub-emoji"] = replace(VARIANTS["ft-frozen-air5-sub"], emoji_pretraining_epochs=2)
# Issue 11's lexicon lever: the distilled recipe with a VADER valence channel per token.
VARIANTS["ft-frozen-air5-distil-lex"] = replace(VARIANTS["ft-frozen-air5-distil"], lexicon_valence=True)
VARIANTS["ft-frozen-air5-distil-lexvocab"] = replace(
    VARIANTS["ft-frozen-air5-distil-lex"], lexicon_vocabulary=True
)
# Negation on the valence recipe: VADER's scope rule inside the graph; minimal pairs for the last epochs.
LEXVOCAB = VARIANTS["ft-frozen-air5-distil-lexvocab"]
VARIANTS["ft-frozen-air5-distil-lexvocab-scope"] = replace(LEXVOCAB, negation_scope=3)
VARIANTS["ft-frozen-air5-distil-lexvocab-neglast1200"] = replace(
    LEXVOCAB, negation_examples=1_200, negation_epochs=2
)
VARIANTS["ft-frozen-air5-distil-lexvocab-neglast2400"] = replace(
    LEXVOCAB, negation_examples=2_400, negation_epochs=2
)
# Issue 11's emoji lever: the champion's recipe with emoji valued by how annotators read tweets holding them.
VARIANTS["ft-frozen-air5-distil-lexvocab-neglast1200-esr"] = replace(
    VARIANTS["ft-frozen-air5-distil-lexvocab-neglast1200"], emoji_ranking=True
)
# Issue 11's CNN+LSTM lever: the champion's recipe with 128 convolution filters (width 3) before the LSTM.
VARIANTS["ft-frozen-air5-distil-lexvocab-neglast1200-cnn"] = replace(
    VARIANTS["ft-frozen-air5-distil-lexvocab-neglast1200"], conv_filters=128
)
# Issue 11's "larger LSTM" lever, and the airline rows' weight doubled: the champion's recipe otherwise.
VARIANTS["ft-frozen-air5-distil-lexvocab-neglast1200-u128"] = replace(
    VARIANTS["ft-frozen-air5-distil-lexvocab-neglast1200"], lstm_units=128
)
VARIANTS["ft-frozen-air10-distil-lexvocab-neglast1200"] = replace(
    VARIANTS["ft-frozen-air5-distil-lexvocab-neglast1200"], airline_weight=10.0
)
# The same two recipes over a pretrained GloVe or word2vec text file the user supplies (nothing is downloaded;
# `buzzwatch train --embeddings-file FILE`): frozen as `ft-frozen-air5`, fine-tuned as `ft-tuned-air5`.
VARIANTS["glove-frozen-air5"] = replace(VARIANTS["ft-frozen-air5"], embedding="pretrained")
VARIANTS["glove-tuned-air5"] = replace(VARIANTS["ft-tuned-air5"], embedding="pretrained")
TEACHER_PROBS = REPO_ROOT / "data" / "teacher" / "teacher_probs.npz"
# The default since 2026-12-05: the valence recipe (it beat the distilled one on the shifted set at seeds 13
# and 14, README "Lexicon valence channel") plus 1,200 negation pairs for its last two epochs, which meets the
# negated-negatives bar at both seeds (README "Negation on the valence recipe").
CHAMPION_VARIANT = "ft-frozen-air5-distil-lexvocab-neglast1200"


@dataclass(frozen=True)
class TrainOptions:
    """What `buzzwatch train` was asked to do."""

    variants: tuple[str, ...] = ("champion",)
    extra_data: tuple[Path, ...] = ()
    output_dir: Path | None = None
    quick: bool = False
    epochs: int | None = None
    seed: int = 13
    # More LSTM seeds of each variant, trained after `seed` on the same data and vectors (`--seed 13,14,15`):
    # the champion is chosen among every seed's candidates, so a seed that loses a behavioural check is
    # passed over instead of refusing the whole run.
    more_seeds: tuple[int, ...] = ()
    # The embeddings' own seed (None: `seed`), so several LSTM seeds can share one set of vectors.
    embedding_seed: int | None = None
    train_baseline: bool = True
    train_reasons: bool = True
    register: bool = True
    export: bool = True
    # A saved LSTM (var/keras/RUN_ID.keras) of the same recipe without negation examples: a variant with
    # `negation_epochs` continues from it instead of training that first phase again.
    first_phase: Path | None = None
    # Feedback rows whose provenance is not trusted (anonymous, or from before it was recorded) are left out
    # of --extra-data unless this is set.
    include_untrusted_feedback: bool = False
    # A GloVe or word2vec text file: the vectors of the variants whose embedding is "pretrained".
    embeddings_file: Path | None = None

    def as_command(self) -> str:
        """The `buzzwatch train` command line that reproduces this run (recorded in the artifact)."""
        parts = ["buzzwatch", "train"]
        if self.variants != ("champion",):
            parts += ["--variants", ",".join(self.variants)]
        for path in self.extra_data:
            parts += ["--extra-data", shlex.quote(str(path))]
        flags = {
            "--quick": self.quick,
            "--skip-baseline": not self.train_baseline,
            "--skip-reasons": not self.train_reasons,
            "--include-untrusted-feedback": self.include_untrusted_feedback,
        }
        parts += [flag for flag, enabled in flags.items() if enabled]
        if self.epochs is not None:
            parts += ["--epochs", str(self.epochs)]
        if self.seed != 13:
            parts += ["--seed", str(self.seed)]
        if self.embedding_seed is not None:
            parts += ["--embedding-seed", str(self.embedding_seed)]
        if self.first_phase is not None:
            parts += ["--first-phase", shlex.quote(str(self.first_phase))]
        if self.embeddings_file is not None:
            parts += ["--embeddings-file", shlex.quote(str(self.embeddings_file))]
        return " ".join(parts)


@dataclass
class Prepared:
    """Data ready for training: the splits (train with the extra rows), evaluation sets, embedding corpus."""

    labelled: pd.DataFrame
    splits: Any  # models.data.Splits
    evaluation_sets: dict[str, pd.DataFrame]
    corpus_tokens: list[list[str]]

    @property
    def train(self) -> pd.DataFrame:
        """What every model learns from."""
        return self.splits.train

    @property
    def early_stop(self) -> pd.DataFrame:
        """What an LSTM stops on."""
        return self.splits.early_stop

    @property
    def validation(self) -> pd.DataFrame:
        """The selection split."""
        return self.splits.validation


def _log(message: str) -> None:
    print(f"[train {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def resolve_variants(names: tuple[str, ...], embeddings_file: Path | None = None) -> list[str]:
    """Variant names in order; 'champion' is the production configuration, 'all' every variant (those over
    pretrained vectors only with an embeddings file).

    A variant over pretrained vectors without a file, or a file that no chosen variant reads, is an error.
    """
    resolved: list[str] = []
    every = [name for name, v in VARIANTS.items() if embeddings_file or v.embedding != "pretrained"]
    for name in names:
        expanded = every if name == "all" else [CHAMPION_VARIANT if name == "champion" else name]
        for item in expanded:
            if item not in VARIANTS:
                raise ValueError(
                    f"unknown variant {item!r}; choose from champion, all, {', '.join(VARIANTS)}"
                )
            if item not in resolved:
                resolved.append(item)
    pretrained = [name for name in resolved if VARIANTS[name].embedding == "pretrained"]
    if pretrained and embeddings_file is None:
        raise ValueError(
            f"{pretrained[0]} reads pretrained vectors: give their file with --embeddings-file FILE "
            "(GloVe or word2vec text format)"
        )
    if embeddings_file is not None and not pretrained:
        choices = ", ".join(name for name, v in VARIANTS.items() if v.embedding == "pretrained")
        raise ValueError(f"--embeddings-file is read only by the variants {choices}: add one with --variants")
    return resolved


def read_extra_data(paths: tuple[Path, ...], include_untrusted: bool = False) -> pd.DataFrame:
    """Labelled rows from CSV files with text,label (the feedback export); bad rows are refused clearly.

    The API's feedback export says who wrote each row (`provenance`): rows not written with the API key or
    the app token are left out unless `include_untrusted`, and an export without that column is refused.
    """
    frames = []
    for path in paths:
        frame = read_string_csv(path.read_bytes(), path)  # the one CSV reader: a bad line is named
        missing = {"text", "label"} - set(frame.columns)
        if missing:
            raise ValueError(f"{path} lacks column(s) {', '.join(sorted(missing))}")
        if not include_untrusted and "provenance" in frame.columns:
            trusted = frame["provenance"].isin(TRUSTED_FEEDBACK_PROVENANCES)
            if not trusted.all():
                _log(
                    f"{path}: {int((~trusted).sum())} feedback rows without trusted provenance left out "
                    "(--include-untrusted-feedback keeps them)"
                )
            frame = frame[trusted]
        elif not include_untrusted and "prediction_id" in frame.columns:
            raise ValueError(
                f"{path} is a feedback export without a provenance column: export it again from the API, "
                "or pass --include-untrusted-feedback to train on every row"
            )
        if "prediction_id" in frame.columns:  # the API's export: its cells are escaped for spreadsheets
            frame = frame.assign(text=frame["text"].map(from_spreadsheet_cell))
        frame = frame.assign(label=frame["label"].str.strip().str.lower(), text=frame["text"].astype(str))
        bad = sorted(set(frame["label"]) - set(LABELS))
        if bad:
            raise ValueError(f"{path} has labels outside {LABELS}: {bad[:5]}")
        visible = ~frame["text"].map(is_blank).astype(bool)  # bool even when the frame has no row
        frames.append(frame.loc[visible, ["text", "label"]].assign(source="feedback"))
    return (
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["text", "label", "source"])
    )


def merge_extra(
    train: pd.DataFrame, extra: pd.DataFrame, held_keys: set[str]
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The train split with the extra rows (feedback, labelled files) in it, the extra rows it took (the
    embedding corpus takes their texts too), and what was done, in words.

    Texts of the held-out splits are left out (evaluation and selection must not see them in training, nor
    in the embedding corpus: they reached it while left out of train); a text given more than once keeps its
    last row (a feedback export is in the order the corrections came); a train text the extra rows label
    is replaced by their row: a correction wins over the data set's label, which the model got wrong.
    """
    from models.data import dedupe_key

    keys = pd.Series([dedupe_key(normalise(text)) for text in extra["text"]], index=extra.index)
    held = keys.isin(held_keys)
    labels = extra.loc[~held, "label"].groupby(keys[~held]).nunique()
    last = ~keys.duplicated(keep="last") & ~held
    kept, kept_keys = extra[last], set(keys[last])
    corrected = pd.Series(
        [dedupe_key(normalise(text)) in kept_keys for text in train["text"]], index=train.index
    )
    merged = pd.concat([train[~corrected], kept], ignore_index=True)
    note = (
        f"{len(extra)} rows, {len(kept)} added to train; left out: {int(held.sum())} held-out texts, "
        f"{int((~held).sum()) - len(kept)} earlier rows of a text given again ({int((labels > 1).sum())} "
        f"texts with different labels: the last row kept); {int(corrected.sum())} train rows replaced by "
        "a correction"
    )
    return merged, kept, note


def prepare_data(options: TrainOptions) -> Prepared:
    """Splits, extra rows and the embedding corpus (minus every held-out text)."""
    from models.data import dedupe_key, load_labelled, load_unlabelled_texts, make_splits

    sources = ("airline", "tweeteval_val", "sanders") if options.quick else None
    labelled = load_labelled(sources=sources)
    splits = make_splits(labelled)
    held_out = splits.held_out()
    if options.quick:
        splits = splits._replace(
            train=splits.train.sample(n=min(len(splits.train), 1500), random_state=options.seed),
            early_stop=splits.early_stop.head(300),
            validation=splits.validation.sample(
                n=min(len(splits.validation), 400), random_state=options.seed
            ),
            test=splits.test.head(200),
            shifted=splits.shifted.head(200),
        )
    evaluation_sets = {"validation": splits.validation, "test": splits.test, **splits.proxies()}
    held_keys = {dedupe_key(normalise(text)) for text in held_out["text"]}
    extra = read_extra_data(options.extra_data, include_untrusted=options.include_untrusted_feedback)
    train = splits.train
    if len(extra):
        train, extra, note = merge_extra(train, extra, held_keys)
        _log(f"extra data: {note}")
    splits = splits._replace(train=train.reset_index(drop=True))
    if options.quick:
        corpus_texts = list(train["text"])
    else:
        _log("reading every tweet text for the embeddings (minus every held-out text)")
        corpus_texts = load_unlabelled_texts(exclude=held_out["text"]) + list(extra["text"])
    corpus_tokens = [tokens for tokens in (tokenize(text) for text in corpus_texts) if tokens]
    _log(
        f"train {len(train)}, early stop {len(splits.early_stop)}, selection {len(splits.validation)}, "
        f"test {len(splits.test)}, shifted {len(splits.shifted)}, embedding corpus {len(corpus_tokens)}"
    )
    return Prepared(labelled, splits, evaluation_sets, corpus_tokens)


def embedding_params(options: TrainOptions) -> dict[str, int]:
    """gensim parameters (tiny in quick mode)."""
    if options.quick:
        return {"dim": 16, "epochs": 1, "min_count": 1, "window": 3, "workers": 1}
    return {"dim": 100, "epochs": 5, "min_count": 2, "window": 5, "workers": 1}


def get_embeddings(
    kind: str, prepared: Prepared, options: TrainOptions, settings: CommonSettings, buckets: int = 200_000
) -> Any:
    """Trained (or cached) gensim vectors of one kind; each training is its own MLflow run."""
    from models.embeddings import load_vectors, save_vectors, train_embeddings

    seed = options.seed if options.embedding_seed is None else options.embedding_seed
    params = {"kind": kind, "seed": seed, **embedding_params(options)}
    if kind == "fasttext":
        params["buckets"] = buckets
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    digest.update(NORMALISER_VERSION.encode())
    for tokens in prepared.corpus_tokens:
        digest.update(" ".join(tokens).encode())
        digest.update(b"\n")
    path = settings.var_dir / "embeddings" / f"{kind}-{digest.hexdigest()[:16]}.kv"
    if path.exists():
        _log(f"{kind}: cached vectors {path}")
        return load_vectors(path)
    _log(f"{kind}: training on {len(prepared.corpus_tokens)} tweets {params}")
    started = time.monotonic()
    with tracking.start_run(
        f"embeddings-{kind}", params={**params, "corpus_tweets": len(prepared.corpus_tokens)}
    ):
        vectors = train_embeddings(
            prepared.corpus_tokens,
            kind,
            dim=params["dim"],
            window=params["window"],
            min_count=params["min_count"],
            epochs=params["epochs"],
            seed=seed,
            workers=params["workers"],
            buckets=buckets,
        )
        seconds = time.monotonic() - started
        tracking.log_epoch({"train_seconds": seconds, "vocabulary": len(vectors)}, 0)
    save_vectors(vectors, path)
    _log(f"{kind}: {len(vectors)} words in {seconds:.0f}s")
    return vectors


@functools.cache
def pretrained_digest(path: Path) -> str:
    """sha256 of a pretrained vectors file, read once a run (its MLflow run and each variant's record it)."""
    from models.export import file_digest

    return file_digest(path)


def get_pretrained(path: Path) -> Any:
    """The vectors of a user's GloVe or word2vec text file, in an MLflow run recording its name and digest."""
    from models.embeddings import load_pretrained

    _log(f"pretrained vectors: reading {path}")
    started = time.monotonic()
    vectors = load_pretrained(path)
    params = {"kind": "pretrained", "file": Path(path).name, "sha256": pretrained_digest(path)}
    with tracking.start_run("embeddings-pretrained", params={**params, "dim": vectors.vector_size}):
        tracking.log_epoch({"load_seconds": time.monotonic() - started, "vocabulary": len(vectors)}, 0)
    _log(f"pretrained vectors: {len(vectors)} words of dimension {vectors.vector_size}")
    return vectors


def lstm_config(variant: Variant, options: TrainOptions) -> Any:
    """The LstmConfig for a variant (tiny in quick mode)."""
    from models.lstm import LstmConfig

    config = LstmConfig(
        lstm_units=variant.lstm_units,
        conv_filters=variant.conv_filters,
        pooling=variant.pooling,
        learning_rate=variant.learning_rate,
        dropout=variant.dropout,
        epochs=variant.epochs,
        patience=variant.patience,
        trainable_embeddings=variant.trainable_embeddings,
        seed=options.seed,
        max_length=48,
        bucket_size=8,
    )
    if options.quick:
        config = replace(
            config, lstm_units=8, conv_filters=min(config.conv_filters, 8), epochs=1, batch_size=64
        )
    if options.epochs is not None:
        config = replace(config, epochs=options.epochs)
    return config


def _label_ids(frame: pd.DataFrame) -> np.ndarray:
    index = {label: position for position, label in enumerate(LABELS)}
    return np.array([index[label] for label in frame["label"]], dtype=np.int32)


def teacher_targets(train: pd.DataFrame, teacher_share: float, path: Path = TEACHER_PROBS) -> np.ndarray:
    """Per training row: teacher_share x the teacher's probabilities + the rest x the one-hot label.

    Rows the teacher never scored (e.g. --extra-data feedback) keep their one-hot label.
    """
    from models.teacher import load_teacher_probs, text_key

    teacher = load_teacher_probs(path)
    targets = np.eye(len(LABELS), dtype=np.float32)[_label_ids(train)]
    scored = 0
    for row, text in enumerate(train["text"]):
        probabilities = teacher.get(text_key(text))
        if probabilities is not None:
            targets[row] = (1 - teacher_share) * targets[row] + teacher_share * probabilities
            scored += 1
    _log(f"distillation: teacher targets for {scored} of {len(train)} training rows (share {teacher_share})")
    return targets


def teacher_unlabelled(
    prepared: Prepared, count: int, seed: int, pool: int | None = None
) -> tuple[list[str], np.ndarray]:
    """A seeded sample of texts, neither held out nor in train, that the teacher scored; its probabilities.

    `pool` draws from the first that many unlabelled texts only (quick mode: reading and normalising all
    of them took most of a quick train's time).
    """
    from models.data import dedupe_key, load_unlabelled_texts
    from models.teacher import load_teacher_probs, text_key

    splits = prepared.splits
    held_out = splits.held_out()
    train_keys = {dedupe_key(normalise(text)) for text in splits.train["text"]}
    teacher = load_teacher_probs(TEACHER_PROBS)
    candidates = [
        text
        for text in load_unlabelled_texts(exclude=held_out["text"], limit=pool)
        if text_key(text) in teacher and dedupe_key(normalise(text)) not in train_keys
    ]
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(candidates), size=min(count, len(candidates)), replace=False))
    texts = [candidates[position] for position in chosen]
    _log(f"distillation: {len(texts)} unlabelled texts of {len(candidates)} with teacher targets only")
    return texts, np.stack([teacher[text_key(text)] for text in texts]).astype(np.float32)


def negation_examples(
    prepared: Prepared, variant: Variant, options: TrainOptions
) -> tuple[list[str], np.ndarray]:
    """The variant's `models.augment` negation sentences and soft targets, minus any held-out text."""
    from models import augment
    from models.data import dedupe_key

    held_keys = {dedupe_key(normalise(text)) for text in prepared.splits.held_out()["text"]}
    count = min(variant.negation_examples, 60) if options.quick else variant.negation_examples
    texts, targets = augment.negation_examples(count, options.seed)
    keep = [dedupe_key(normalise(text)) not in held_keys for text in texts]
    _log(f"negation examples: {sum(keep)} of {len(texts)} sentences (the rest are held-out texts)")
    return [text for text, kept in zip(texts, keep, strict=True) if kept], targets[np.array(keep, dtype=bool)]


def negation_linear(prepared: Prepared, variant: Variant, options: TrainOptions) -> Any:
    """The linear model fitted on train plus the variant's negation examples (shares as row weights)."""
    from models.baseline import fit_linear

    texts, targets = negation_examples(prepared, variant, options)
    token_lists = [tokenize(text) for text in prepared.train["text"]]
    labels, weights = list(prepared.train["label"]), [1.0] * len(token_lists)
    for text, target in zip(texts, targets, strict=True):
        for label, share in zip(LABELS, target, strict=True):
            if share > 0:
                token_lists.append(tokenize(text))
                labels.append(label)
                weights.append(float(share))
    _log(f"linear half: train plus {len(texts)} negation examples")
    return fit_linear(token_lists, labels, LABELS, row_weights=np.array(weights))


def selection_score(reports: dict[str, dict]) -> float:
    """Validation-only model choice: mean of airline validation macro-F1 and TweetEval val macro-recall."""
    parts = []
    if "validation_airline" in reports:
        parts.append(reports["validation_airline"]["macro_f1"])
    if "tweeteval_val" in reports:
        parts.append(reports["tweeteval_val"]["macro_recall"])
    if not parts:
        parts.append(reports["validation"]["macro_f1"])
    return float(np.mean(parts))


class SubwordIds:
    """Training-side ids of a sub-word variant: the vocabulary's, then one frozen row per unknown token seen.

    Each unknown token's row is `SubwordTable.vector`, what serving computes for it, so the exported graph
    (which keeps only the vocabulary's rows and takes the unknown tokens' vectors as an input) scores a
    text as the trained model did.
    """

    def __init__(self, vocab: Any, subwords: Any) -> None:
        self.vocab = vocab
        self.subwords = subwords
        self.unknown: dict[str, int] = {}

    def encode(self, tokens: list[str], max_length: int) -> list[int]:
        """Ids of the first max_length tokens; a new unknown token gets the next row."""
        lookup = self.vocab.index.get
        first = len(self.vocab)
        return [
            token_id
            if (token_id := lookup(token)) is not None
            else first + self.unknown.setdefault(token, len(self.unknown))
            for token in tokens[:max_length]
        ]

    def matrix(self, vocabulary_rows: np.ndarray) -> np.ndarray:
        """The vocabulary's rows, then every unknown token's sub-word vector, in id order."""
        return np.vstack([vocabulary_rows, self.subwords.vectors(list(self.unknown))]).astype(np.float32)


def emoji_pretraining_set(prepared: Prepared, options: TrainOptions) -> tuple[list[str], np.ndarray]:
    """The emoji corpus (minus every held-out text): texts and which of the 20 emojis each lost."""
    from models.data import drop_shared_texts, load_emoji_corpus

    corpus = drop_shared_texts(load_emoji_corpus(), [prepared.early_stop, *prepared.evaluation_sets.values()])
    if options.quick:
        corpus = corpus.sample(n=min(len(corpus), 1000), random_state=options.seed)
    return list(corpus["text"]), corpus["emoji_label"].to_numpy(dtype=np.int32)


def train_variant(
    name: str,
    variant: Variant,
    vectors: Any,
    prepared: Prepared,
    vocab: Any,
    options: TrainOptions,
    settings: CommonSettings,
) -> dict[str, Any]:
    """Train, export and evaluate one LSTM variant inside its own MLflow run."""
    import keras

    from models import lstm
    from models.embeddings import embedding_matrix
    from models.export import parity_gap, write_artifact
    from models.predictor import Predictor
    from models.subwords import SubwordTable
    from models.vocab import Vocabulary

    config = lstm_config(variant, options)
    valence, lexicon_details = None, {}
    if variant.negation_scope and not variant.lexicon_valence:
        raise ValueError(f"{name}: a negation scope acts on the lexicon valence channel")
    if variant.emoji_ranking and not variant.lexicon_valence:
        raise ValueError(f"{name}: the emoji ranking values the lexicon valence channel")
    if variant.lexicon_valence:
        from models import lexicon

        if variant.subwords:
            raise ValueError(f"{name}: a valence channel has no rows for sub-word tokens")
        rated = lexicon.emoji_ranking_valence() if variant.emoji_ranking else lexicon.vader_valence()
        if variant.lexicon_vocabulary:
            vocab = Vocabulary([*vocab.tokens, *sorted(set(rated) - set(vocab.index))])
        valence = lexicon.valence_table(vocab.tokens, rated)
        lexicon_details = {"valence": lexicon.provenance(valence, emoji_ranking=variant.emoji_ranking)}
        rated_count = lexicon_details["valence"]["tokens_with_valence"]
        _log(f"{name}: lexicon valence for {rated_count} of {len(vocab)} tokens")
        if variant.negation_scope:
            negators = lexicon.negator_column(vocab.tokens)
            valence = np.hstack([valence, negators])
            lexicon_details["negation_scope"] = {
                "window": variant.negation_scope,
                "scale": lexicon.NEGATION_SCALE,
                "negators": int(negators.sum()),
            }
    matrix, coverage = embedding_matrix(vocab.tokens, vectors, seed=options.seed)
    subword_ids, subwords = None, None
    if variant.subwords:
        if variant.embedding != "fasttext" or variant.trainable_embeddings:
            raise ValueError(f"{name}: sub-word vectors need frozen FastText embeddings")
        subwords = SubwordTable.from_fasttext(vectors)
        subword_ids = SubwordIds(vocab, subwords)
    encode = subword_ids.encode if subword_ids is not None else vocab.encode

    def encode_texts(texts: Any) -> list[list[int]]:
        return [encode(tokenize(text), config.max_length) for text in texts]

    # Every text the Keras model reads is encoded before it is built (a sub-word variant's embedding has a
    # row per unknown token of these texts).
    train_ids = encode_texts(prepared.train["text"])
    stop_ids = encode_texts(prepared.early_stop["text"])
    stop_labels = _label_ids(prepared.early_stop)
    parity_texts = list(prepared.validation["text"][:1000])
    parity_ids = encode_texts(parity_texts)
    distant = None
    if variant.distant_pretraining:
        from models.data import drop_shared_texts, load_distant

        distant = load_distant()
        distant = drop_shared_texts(distant, [prepared.early_stop, *prepared.evaluation_sets.values()])
        if options.quick:
            distant = distant.sample(n=min(len(distant), 1000), random_state=options.seed)
        distant_ids = encode_texts(distant["text"])
    emoji_ids: list[list[int]] = []
    if variant.emoji_pretraining_epochs:
        emoji_texts, emoji_labels = emoji_pretraining_set(prepared, options)
        emoji_ids = encode_texts(emoji_texts)
    soft_targets = None
    train_labels = _label_ids(prepared.train)
    row_weights = np.where(prepared.train["source"] == "airline", variant.airline_weight, 1.0)
    if variant.teacher_share or variant.teacher_unlabelled or variant.negation_examples:
        soft_targets = teacher_targets(prepared.train, variant.teacher_share)
    # Rows beyond the labelled ones, each with a soft target alone (weight 1).
    added = []
    if variant.teacher_unlabelled:
        count = min(variant.teacher_unlabelled, 200) if options.quick else variant.teacher_unlabelled
        pool = 5000 if options.quick else None
        added.append(teacher_unlabelled(prepared, count, options.seed, pool))
    late_rows = []  # rows that join only for the last epochs
    if variant.negation_examples:
        pairs = negation_examples(prepared, variant, options)
        (late_rows if variant.negation_epochs else added).append(pairs)

    def extended(rows: list, base: tuple) -> tuple:
        ids, soft, labels, weights = base
        for texts, targets in rows:
            ids = ids + encode_texts(texts)
            soft = np.concatenate([soft, targets])
            labels = np.concatenate([labels, targets.argmax(axis=1).astype(np.int32)])
            weights = np.concatenate([weights, np.ones(len(texts))])
        return ids, soft, labels, weights

    train_ids, soft_targets, train_labels, row_weights = extended(
        added, (train_ids, soft_targets, train_labels, row_weights)
    )
    late_ids, late_soft, late_labels, late_weights = extended(
        late_rows, (train_ids, soft_targets, train_labels, row_weights)
    )
    first_phase = options.first_phase if variant.negation_epochs else None
    if subword_ids is not None:
        matrix = subword_ids.matrix(matrix)
        _log(f"{name}: {len(subword_ids.unknown)} unknown tokens of the training texts get sub-word rows")
    # What both records of the run carry (MLflow params and the artifact's meta.json details), set once.
    described = {
        "variant": name,
        "embedding": variant.embedding,
        "embedding_dim": int(matrix.shape[1]),
        "distant_pretraining": variant.distant_pretraining,
        "emoji_pretraining_epochs": variant.emoji_pretraining_epochs,
        "subwords": variant.subwords,
        "lexicon_valence": variant.lexicon_valence,
        "emoji_ranking": variant.emoji_ranking,
        "negation_epochs": variant.negation_epochs,
        "first_phase": str(first_phase or "trained"),
        "extra_data_files": ",".join(str(path) for path in options.extra_data) or "none",
    }
    if variant.embedding == "pretrained":
        path = options.embeddings_file
        described["embedding_file"] = f"{path} sha256:{pretrained_digest(path)}"
    params = {
        **described,
        "model": "bilstm",
        **config.as_params(),
        "embedding_coverage": round(coverage, 4),
        "fasttext_buckets": variant.fasttext_buckets,
        "airline_weight": variant.airline_weight,
        "teacher_share": variant.teacher_share,
        "negation_examples": variant.negation_examples,
        "vocab_size": len(vocab),
        "train_rows": len(late_ids),
        "normaliser_version": NORMALISER_VERSION,
        "quick": options.quick,
    }
    verbose = 1 if sys.stderr.isatty() else 2
    started = time.monotonic()
    with tracking.start_run(f"lstm-{name}", params=params, tags={"family": "lstm"}) as run:
        if first_phase is None:
            model = lstm.build_model(config, matrix, valence, negation_scope=variant.negation_scope)
            if emoji_ids:
                epochs = variant.emoji_pretraining_epochs
                _log(f"{name}: emoji pre-training on {len(emoji_ids)} tweets ({epochs} epochs)")
                lstm.pretrain_on_emoji(
                    model,
                    emoji_ids,
                    emoji_labels,
                    config,
                    epochs=epochs,
                    verbose=verbose,
                    on_epoch=lambda epoch, metrics: tracking.log_epoch(
                        {f"emoji_{key}": value for key, value in metrics.items()}, epoch
                    ),
                )
            if distant is not None:
                _log(f"{name}: distant pre-training on {len(distant_ids)} Sentiment140 tweets (1 epoch)")
                distant_config = replace(config, class_weights=False, patience=1)
                lstm.fit(
                    model,
                    distant_ids,
                    _label_ids(distant),
                    stop_ids,
                    stop_labels,
                    distant_config,
                    epochs=1,
                    verbose=verbose,
                    log=_log,
                    on_epoch=lambda epoch, metrics: tracking.log_epoch(
                        {f"distant_{key}": value for key, value in metrics.items()}, epoch
                    ),
                )
                lstm.compile_model(model, config.learning_rate)
            if soft_targets is not None:
                lstm.compile_model(model, config.learning_rate, soft_targets=True)
            _log(f"{name}: training on {len(train_ids)} tweets, up to {config.epochs} epochs")
            monitor = lstm.fit(
                model,
                train_ids,
                train_labels,
                stop_ids,
                stop_labels,
                config,
                verbose=verbose,
                log=_log,
                on_epoch=lambda epoch, metrics: tracking.log_epoch(metrics, epoch),
                row_weights=row_weights,
                soft_targets=soft_targets,
            )
        else:
            _log(f"{name}: first phase (no negation examples) from {first_phase}")
            model, restored = lstm.load_model(first_phase, config.seed)
            if not restored:
                _log(
                    f"{name}: {first_phase} has no saved generator states: the continued epochs draw their "
                    f"dropout masks from seed {config.seed}, not those of the one-process run"
                )
            loaded = model.get_layer("embedding").get_weights()[0]
            if loaded.shape != matrix.shape or not (variant.trainable_embeddings or (loaded == matrix).all()):
                raise ValueError(f"{first_phase}: its embeddings are not this run's (vocabulary or vectors)")
        if variant.negation_epochs:
            added_count = len(late_ids) - len(train_ids)
            _log(f"{name}: {added_count} negation examples join for {variant.negation_epochs} more epochs")
            lstm.compile_model(model, config.learning_rate, soft_targets=True)
            monitor = lstm.fit(
                model,
                late_ids,
                late_labels,
                stop_ids,
                stop_labels,
                config,
                epochs=variant.negation_epochs,
                verbose=verbose,
                log=_log,
                on_epoch=lambda epoch, metrics: tracking.log_epoch(
                    {f"negation_{key}": value for key, value in metrics.items()}, epoch
                ),
                row_weights=late_weights,
                soft_targets=late_soft,
            )
        train_seconds = time.monotonic() - started
        artifact_dir = settings.var_dir / "artifacts" / run.info.run_id
        meta = write_artifact(
            artifact_dir,
            model,
            vocab,
            labels=LABELS,
            max_length=config.max_length,
            bucket_size=config.bucket_size,
            metrics={},
            details={
                **described,
                **lexicon_details,
                "mlflow_run_id": run.info.run_id,
                "seed": options.seed,
                "trainable_embeddings": variant.trainable_embeddings,
                "lstm_units": config.lstm_units,
                "conv_filters": config.conv_filters,
                "pooling": config.pooling,
                "best_epoch": monitor.best_epoch + 1,
                "train_rows": len(late_ids),
                "train_seconds": round(train_seconds, 1),
                "command": options.as_command(),
            },
            subwords=subwords,
        )
        gap = parity_gap(model, Predictor(artifact_dir), parity_texts, parity_ids)
        metrics = judge_candidate(
            name,
            artifact_dir,
            meta,
            prepared,
            {"onnx_parity_max_abs": gap, "train_seconds": train_seconds},
            step=monitor.best_epoch,
        )
        keras_path = settings.var_dir / "keras" / f"{run.info.run_id}.keras"
        keras_path.parent.mkdir(parents=True, exist_ok=True)
        lstm.save_model(model, keras_path)
        keras.backend.clear_session()
    return _candidate(name, run.info.run_id, artifact_dir, meta, metrics)


def _candidate(
    name: str, run_id: str, artifact_dir: Path, meta: dict[str, Any], metrics: dict[str, float]
) -> dict[str, Any]:
    """One judged candidate as the champion choice and the summary read it (LSTM and ensemble alike)."""
    return {
        "name": name,
        "run_id": run_id,
        "artifact_dir": artifact_dir,
        "metrics": metrics,
        "model_version": meta["model_version"],
    }


def judge_candidate(
    name: str,
    artifact_dir: Path,
    meta: dict[str, Any],
    prepared: Prepared,
    extra_metrics: dict[str, float],
    step: int = 0,
) -> dict[str, float]:
    """Evaluate an exported candidate inside its MLflow run: reports, behavioural checks, selection score.

    The metrics go into the artifact's meta.json and MLflow; the artifact is logged to the run.
    """
    import mlflow

    from models.behaviour import behaviour_failures, emoji_only_wrong, negated_negatives_called_negative
    from models.predictor import Predictor, write_meta

    predictor = Predictor(artifact_dir)
    reports = evaluate_sets(predictor, prepared)
    failures = behaviour_failures(predictor)
    if failures:
        _log(f"{name}: {len(failures)} behavioural check(s) failed: {failures}")
    mlflow.log_dict({"failures": failures}, "evaluation/behaviour.json")
    metrics = summarise(reports)
    metrics["behaviour_failures"] = float(len(failures))
    metrics["negated_negatives_called_negative"] = float(negated_negatives_called_negative(predictor))
    metrics["emoji_only_wrong"] = float(emoji_only_wrong(predictor))
    metrics["selection_score"] = selection_score(reports)
    metrics.update(extra_metrics)
    tracking.log_epoch({"selection_score": metrics["selection_score"], **extra_metrics}, step)
    meta["metrics"] = metrics
    write_meta(artifact_dir, meta)
    tracking.log_model_dir(artifact_dir)
    _log(f"{name}: {json.dumps({key: round(value, 4) for key, value in metrics.items()})}")
    return metrics


def fit_ensemble(
    lstm_artifact_dir: Path,
    linear: Any,
    evaluation_sets: Mapping[str, pd.DataFrame],
    class_offsets: bool = False,
) -> dict[str, Any]:
    """The ensemble's settings, each chosen on the selection split: the linear weight (selection score),
    the temperature (lowest NLL) and, with `class_offsets`, per-class offsets (selection score;
    `models.ensemble.choose_class_offsets`; measured and left out of the default recipe, see the README)."""
    from models.data import SELECTION_SETS
    from models.ensemble import choose_class_offsets, choose_weight, fit_temperature, negative_log_likelihood
    from models.evaluate import evaluation_report, expected_calibration_error
    from models.predictor import Predictor, combine

    lstm = Predictor(lstm_artifact_dir)
    frames = {
        name: evaluation_sets[name] for name in ("validation", *SELECTION_SETS) if name in evaluation_sets
    }
    frames = {name: frame for name, frame in frames.items() if len(frame)}
    sequence, logits, truth = {}, {}, {}
    for set_name, frame in frames.items():
        tokens = [tokenize(text) for text in frame["text"]]
        sequence[set_name] = lstm.predict_ids([lstm.vocab.encode(item, lstm.max_length) for item in tokens])
        logits[set_name] = linear.logits(tokens)
        truth[set_name] = _label_ids(frame)

    chosen_on = [set_name for set_name in SELECTION_SETS if set_name in frames] or ["validation"]

    def score(weight: float, temperature: float = 1.0, offsets: np.ndarray | None = None) -> float:
        reports = {}
        for set_name in chosen_on:
            mixed = combine(sequence[set_name], logits[set_name], weight, temperature, offsets)
            predicted = [LABELS[i] for i in mixed.argmax(axis=1)]
            reports[set_name] = evaluation_report(list(frames[set_name]["label"]), predicted)
        return selection_score(reports)

    weight, tried = choose_weight(score)
    uncalibrated = combine(sequence["validation"], logits["validation"], weight, 1.0)
    temperature = fit_temperature(uncalibrated, truth["validation"])
    offsets, offset_score = np.zeros(len(LABELS)), tried[weight]
    if class_offsets:

        def loss(offsets: np.ndarray) -> float:
            calibrated = combine(sequence["validation"], logits["validation"], weight, temperature, offsets)
            return negative_log_likelihood(calibrated, truth["validation"])

        offsets, offset_score = choose_class_offsets(
            lambda offsets: score(weight, temperature, offsets), loss, len(LABELS), LABELS.index("neutral")
        )
    return {
        "linear_weight": weight,
        "weights_tried": tried,
        "temperature": temperature,
        "class_offsets": offsets,
        "selection_score_without_offsets": tried[weight],
        "selection_score_with_offsets": offset_score,
        "validation_ece_uncalibrated": expected_calibration_error(uncalibrated, truth["validation"]),
    }


def train_ensemble(
    lstm_result: dict[str, Any], linear: Any, prepared: Prepared, settings: CommonSettings
) -> dict[str, Any]:
    """The soft-voting ensemble of one LSTM and the linear model (`fit_ensemble`): one artifact, one MLflow
    run."""
    from models.ensemble import write_ensemble_artifact

    fit = fit_ensemble(lstm_result["artifact_dir"], linear, prepared.evaluation_sets)
    weight, temperature = fit["linear_weight"], fit["temperature"]
    name = f"ensemble-{lstm_result['name']}"
    params = {"lstm_run_id": lstm_result["run_id"], "linear_weight": weight, "temperature": temperature}
    tried = fit["weights_tried"]
    _log(f"{name}: linear weight {weight} (selection scores {tried}), temperature {temperature:.3f}")
    with tracking.start_run(name, params=params, tags={"family": "ensemble"}) as run:
        artifact_dir = settings.var_dir / "artifacts" / run.info.run_id
        meta = write_ensemble_artifact(
            lstm_result["artifact_dir"],
            linear,
            artifact_dir,
            linear_weight=weight,
            temperature=temperature,
            details={"variant": name, "mlflow_run_id": run.info.run_id, "lstm_run_id": lstm_result["run_id"]},
        )
        metrics = judge_candidate(
            name,
            artifact_dir,
            meta,
            prepared,
            {
                "linear_weight": weight,
                "temperature": temperature,
                "validation_ece_uncalibrated": fit["validation_ece_uncalibrated"],
            },
        )
    return _candidate(name, run.info.run_id, artifact_dir, meta, metrics)


def evaluate_sets(predictor: Any, prepared: Prepared) -> dict[str, dict]:
    """Reports (logged with confusion matrices) on the selection and report sets."""
    from models.evaluate import expected_calibration_error

    reports = {}
    for set_name, frame in prepared.evaluation_sets.items():
        probabilities = predictor.predict_proba(list(frame["text"]))
        predicted = [predictor.labels[winner] for winner in probabilities.argmax(axis=1)]
        reports[set_name] = tracking.log_evaluation(set_name, list(frame["label"]), predicted)
        reports[set_name]["ece"] = expected_calibration_error(probabilities, _label_ids(frame))
    return reports


def summarise(reports: dict[str, dict]) -> dict[str, float]:
    """Flat headline metrics for meta.json and the summary."""
    flat = {}
    for set_name, report in reports.items():
        for key in ("accuracy", "macro_f1", "macro_recall", "ece"):
            if key in report:
                flat[f"{set_name}_{key}"] = float(report[key])
        flat[f"{set_name}_n"] = float(report["n"])
    return flat


def train_companions(prepared: Prepared, options: TrainOptions, settings: CommonSettings) -> dict[str, Any]:
    """The negative-reason classifier."""
    results: dict[str, Any] = {}
    if options.train_reasons:
        from models.reasons import train_reasons

        # Logged to MLflow; the shipped models/artifacts/reasons/ is models-data's to replace.
        output = settings.var_dir / "artifacts" / "reasons"
        _log(f"reasons: negative-reason classifier -> {output}")
        report = train_reasons(prepared.labelled, output_dir=output, settings=settings)
        results["reasons"] = {"test_macro_f1": report["macro_f1"], "test_accuracy": report["accuracy"]}
    return results


def seed_runs(options: TrainOptions) -> list[TrainOptions]:
    """One set of options per LSTM seed (`seed`, then `more_seeds`), each sharing the first seed's
    embeddings (its `embedding_seed`) so that its artifact's command line reproduces it alone."""
    if not options.more_seeds:
        return [options]
    shared = options.seed if options.embedding_seed is None else options.embedding_seed
    return [
        replace(options, seed=seed, more_seeds=(), embedding_seed=shared)
        for seed in (options.seed, *options.more_seeds)
    ]


def choose_champion(results: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The candidate to promote: the best selection score among those passing every behavioural check.

    None when every candidate fails a check: a model that ignores negation or flips on an @mention never
    ships, whatever its score.
    """
    passing = [result for result in results if result["metrics"]["behaviour_failures"] == 0]
    return max(passing, key=lambda result: result["metrics"]["selection_score"], default=None)


def _replace_folder(source: Path, target: Path) -> None:
    """Copy `source` beside `target`, then swap it in by renames: the services load `target`, and the old
    way (remove it, then copy) left it empty or half-copied to a stop in between."""
    target.parent.mkdir(parents=True, exist_ok=True)
    incoming = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.new-"))
    outgoing = incoming.with_name(incoming.name.replace(".new-", ".old-"))
    try:
        shutil.copytree(source, incoming, dirs_exist_ok=True)
        if target.exists():
            target.rename(outgoing)
        incoming.rename(target)
    except BaseException:
        if outgoing.exists() and not target.exists():
            outgoing.rename(target)  # the earlier export back in place
        shutil.rmtree(incoming, ignore_errors=True)
        raise
    shutil.rmtree(outgoing, ignore_errors=True)


def run_training(options: TrainOptions) -> dict[str, Any]:
    """The whole pipeline; returns a JSON-serialisable summary."""
    from models.vocab import Vocabulary

    settings = CommonSettings.from_env()
    names = resolve_variants(options.variants, options.embeddings_file)
    started = time.monotonic()
    tracking.configure(settings)
    # A user's vectors file is read first: a damaged one fails before minutes of data preparation.
    pretrained = (
        get_pretrained(options.embeddings_file)
        if any(VARIANTS[name].embedding == "pretrained" for name in names)
        else None
    )
    prepared = prepare_data(options)
    vocab = Vocabulary.build(
        prepared.corpus_tokens,
        min_count=1 if options.quick else 3,
        max_size=3000 if options.quick else 20_000,
    )
    vectors: dict[str, Any] = {}
    results = []
    linear = None
    baseline_summary: dict[str, Any] = {}
    if options.train_baseline:
        from models.baseline import train_baseline

        _log("baseline: TF-IDF + logistic regression on the same train split (the ensembles' linear half)")
        baseline = train_baseline(splits=prepared.splits, settings=settings)
        linear = baseline.model.linear
        baseline_summary = {name: summarise({name: report}) for name, report in baseline.reports.items()}
    for position, name in enumerate(names):
        variant = VARIANTS[name]
        kind = (variant.embedding, variant.fasttext_buckets)
        if kind not in vectors and variant.embedding == "pretrained":
            vectors[kind] = pretrained
        elif kind not in vectors:
            vectors[kind] = get_embeddings(
                variant.embedding, prepared, options, settings, buckets=variant.fasttext_buckets
            )
        _log(f"variant {position + 1}/{len(names)}: {name}")
        if linear is not None and variant.subwords:  # said once, not once per seed
            _log(f"{name}: no ensemble (an ensemble artifact cannot carry sub-word vectors yet)")
        for seed_options in seed_runs(options):
            result = train_variant(name, variant, vectors[kind], prepared, vocab, seed_options, settings)
            if options.more_seeds:
                result["name"] = f"{name}@{seed_options.seed}"
            results.append(result)
            if linear is not None and not variant.subwords:
                # A variant that learns from negation examples is voted with a linear half that learns them.
                partner = (
                    negation_linear(prepared, variant, seed_options) if variant.negation_examples else linear
                )
                results.append(train_ensemble(result, partner, prepared, settings))
    best = choose_champion(results)
    champion_seconds = time.monotonic() - started
    summary: dict[str, Any] = {
        "champion": best["name"] if best else None,
        "variants": {result["name"]: result["metrics"] for result in results},
        "seconds_to_champion": round(champion_seconds, 1),
    }
    if best is None:
        failed = ", ".join(
            f"{result['name']} {result['metrics']['behaviour_failures']:.0f}" for result in results
        )
        summary["refused"] = (
            f"no candidate passed the behavioural checks (checks failed: {failed}; which ones: the log "
            "above, and evaluation/behaviour.json in each MLflow run): nothing registered or exported, the "
            "champion in place stays. A recipe may fail a check at one seed and pass at another (--seed 14, "
            "or several: --seed 13,14,15)"
        )
        _log(summary["refused"])
    else:
        summary.update(model_version=best["model_version"], run_id=best["run_id"])
        if options.register:
            version = tracking.register_model(run_id=best["run_id"], alias=tracking.CHAMPION_ALIAS)
            summary["registered"] = (
                f"{tracking.REGISTERED_MODEL} version {version} @{tracking.CHAMPION_ALIAS}"
            )
        if options.export:
            output = Path(options.output_dir or DEFAULT_OUTPUT)
            _replace_folder(Path(best["artifact_dir"]), output)
            summary["exported_to"] = str(output)
    summary["companions"] = {**train_companions(prepared, options, settings), "baseline": baseline_summary}
    summary["total_seconds"] = round(time.monotonic() - started, 1)
    _log(f"champion {summary['champion']} ({summary.get('model_version')}); {summary['total_seconds']:.0f}s")
    return summary
