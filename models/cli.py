"""`buzzwatch train | evaluate | score`: the model pipeline's subcommands (heavy imports inside handlers)."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from buzzwatch.cli import positive_count, terminated_as_interrupted
from buzzwatch.settings import CommandError

if TYPE_CHECKING:
    from buzzwatch.replay import CsvRow

# The report sets (airline and general in-distribution, the shifted hold-out) and the selection sets.
PROXY_SETS = ("airline_test", "semeval_test", "semeval2016test", "validation_airline", "tweeteval_val")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the model subcommands to the `buzzwatch` parser."""
    train = subparsers.add_parser(
        "train",
        help="train embeddings, LSTM variants, baseline and reason classifier; export the champion",
        description=(
            "Train Word2Vec/FastText embeddings on every tweet text, the BiLSTM variants, "
            "the TF-IDF baseline and the negative-reason classifier; track every run in MLflow; "
            "register the best sentiment model with alias 'champion' and export its serving artifact "
            "(ONNX + vocab + meta.json)."
        ),
    )
    train.add_argument(
        "--variants",
        default="champion",
        help="comma-separated LSTM variants, or 'all' (see models/train.py VARIANTS; default: champion)",
    )
    train.add_argument(
        "--extra-data",
        type=Path,
        action="append",
        default=[],
        metavar="FILE.csv",
        help="extra labelled rows (columns text,label; e.g. the API feedback export) added to training",
    )
    train.add_argument(
        "--include-untrusted-feedback",
        action="store_true",
        help="also train on feedback-export rows not written with the API key or the app token "
        "(anonymous feedback, or an export without a provenance column); left out by default",
    )
    train.add_argument(
        "--output",
        type=Path,
        default=None,
        metavar="DIR",
        help="where to export the champion artifact (default: models/artifacts/champion)",
    )
    train.add_argument(
        "--embeddings-file",
        type=Path,
        default=None,
        metavar="FILE.txt",
        help="pretrained vectors (a GloVe or word2vec text file; nothing is downloaded) for the variants "
        "glove-frozen-air5 and glove-tuned-air5",
    )
    train.add_argument("--quick", action="store_true", help="tiny data and 1 epoch (seconds; for tests)")
    train.add_argument(
        "--epochs", type=positive_count, default=None, help="override the number of LSTM epochs (1 or more)"
    )
    train.add_argument(
        "--seed",
        type=_seeds,
        default=(13,),
        metavar="SEED[,SEED...]",
        help="random seed for embeddings and weights (the splits are fixed, models.data.DEFAULT_SEED; "
        "--quick samples them with it); several (13,14,15): each LSTM variant is trained at each, on the "
        "first seed's embeddings, and the champion is chosen among them all",
    )
    train.add_argument(
        "--embedding-seed",
        type=int,
        default=None,
        help="the embeddings' own seed (default: --seed), so LSTM seeds can share cached vectors",
    )
    train.add_argument(
        "--first-phase",
        type=Path,
        default=None,
        metavar="RUN.keras",
        help="a saved LSTM of the same recipe without negation examples (var/keras/): a variant whose "
        "negation examples join for its last epochs continues from it instead of training that phase, "
        "its dropout generators where RUN.rng.json (saved beside it) left them",
    )
    train.add_argument(
        "--skip-baseline", action="store_true", help="do not train the TF-IDF baseline (nor the ensembles)"
    )
    train.add_argument(
        "--skip-reasons", action="store_true", help="do not train the negative-reason classifier"
    )
    train.add_argument("--no-register", action="store_true", help="do not register the champion in MLflow")
    train.add_argument(
        "--no-export", action="store_true", help="do not overwrite the champion artifact directory"
    )
    train.set_defaults(handler=_interruptible(_train))

    evaluate = subparsers.add_parser(
        "evaluate",
        help="evaluate a model on a labelled CSV (text,label)",
        description="Score a labelled CSV (columns text,label) or a named proxy set and print accuracy, "
        "macro-F1, macro-recall, per-class precision/recall/F1/support. Rows whose text cannot be scored "
        "(empty, over 10,000 characters) are skipped and counted; macro averages cover the classes present.",
    )
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, metavar="FILE.csv", help="CSV with text,label")
    source.add_argument(
        "--proxy",
        choices=PROXY_SETS,
        help="a proxy set of the README's table, rebuilt from data/ as `buzzwatch train` splits it",
    )
    evaluate.add_argument("--json", action="store_true", help="print one JSON object (else a readable table)")
    evaluate.add_argument(
        "--model-uri",
        default=None,
        help="artifact dir, models:/buzzwatch-sentiment@champion or runs:/... "
        "(default: BUZZWATCH_MODEL_URI or the shipped champion)",
    )
    evaluate.set_defaults(handler=_interruptible(_evaluate))

    score = subparsers.add_parser(
        "score",
        help="add the predicted label and probabilities to every row of a CSV",
        description="Read a CSV with a text column and write it, every input column kept, with "
        "predicted_label, p_negative, p_neutral, p_positive, language, language_supported (whether the model "
        "was trained on that language) and error (set for rows that cannot be scored: "
        "empty text, over 10,000 characters). The output appears only once complete and is never the input.",
    )
    score.add_argument("--input", type=Path, required=True, metavar="FILE.csv", help="CSV with a text column")
    score.add_argument(
        "--output", type=Path, required=True, metavar="OUT.csv", help="where to write the scores"
    )
    score.add_argument("--model-uri", default=None, help="as for evaluate (default: the champion)")
    score.add_argument(
        "--batch-size",
        type=positive_count,
        default=1024,
        help="rows read and scored at a time (default 1024): memory grows with it, not with the file",
    )
    score.set_defaults(handler=_interruptible(_score))


def _seeds(value: str) -> tuple[int, ...]:
    """`--seed`'s value: one seed or several, comma-separated, each once ("13,14,15")."""
    try:
        seeds = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a seed or seeds (13,14)") from None
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{value!r} names a seed twice")
    return seeds


def _load_predictor(model_uri: str | None) -> tuple[object, str | None]:
    from buzzwatch.settings import CommonSettings
    from models.predictor import ModelLoadError, Predictor

    uri = model_uri or CommonSettings.from_env().model_uri
    try:
        return Predictor.load(uri), None
    except ModelLoadError as exc:
        return None, str(exc)


def _proxy_frame(name: str) -> object:
    """A proxy evaluation set, split from data/ exactly as `buzzwatch train` splits it by default."""
    from models.data import load_labelled, make_splits

    return make_splits(load_labelled()).proxies()[name]


def _evaluate(args: argparse.Namespace) -> int:
    from buzzwatch.replay import SkippedRows
    from buzzwatch.tables import open_string_csv, readable_chunks
    from models.scoring import SCORING_BATCH, evaluate_rows

    skipped = SkippedRows()
    with contextlib.ExitStack() as held:
        if args.proxy:
            frame, source = _proxy_frame(args.proxy), f"proxy set {args.proxy}"
            chunks = [_frame_rows(frame)]
        else:
            rows = held.enter_context(open_string_csv(args.data, ("text", "label")))
            source = str(args.data)
            chunks = readable_chunks(rows, skipped, SCORING_BATCH)
        predictor, error = _load_predictor(args.model_uri)
        if error:
            raise CommandError(error)
        try:
            report = evaluate_rows(predictor, chunks)
        except ValueError as exc:
            raise CommandError(f"{source}: {exc}") from None
        finally:
            skipped.print(sys.stderr)
    for reason, count in report["skipped"].items():
        print(f"warning: skipped {count} row(s) of {source}: {reason}", file=sys.stderr)
    if report["absent_labels"]:
        print(
            f"warning: no {', '.join(report['absent_labels'])} row in {source}: macro averages cover "
            f"{', '.join(report['per_class'])} only",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(report))
    else:
        print(f"model {predictor.model_version} on {source} ({report['n']} tweets)")
        print(
            f"accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}  "
            f"macro-recall {report['macro_recall']:.4f}"
        )
        for label, scores in report["per_class"].items():
            print(
                f"  {label:<9} precision {scores['precision']:.4f}  recall {scores['recall']:.4f}  "
                f"f1 {scores['f1']:.4f}  support {scores['support']}"
            )
    return 0


def _frame_rows(frame: Any) -> list[CsvRow]:
    """A proxy set's rows as the CSV reader gives a file's (line: the data row's, counting the header)."""
    from buzzwatch.replay import CsvRow

    return [
        CsvRow(line, {"text": text, "label": label})
        for line, (text, label) in enumerate(zip(frame["text"], frame["label"], strict=True), start=2)
    ]


def _score(args: argparse.Namespace) -> int:
    import csv

    from buzzwatch.cells import CSV_LINE_END
    from buzzwatch.files import atomic_text_output, same_file
    from buzzwatch.replay import SkippedRows
    from buzzwatch.tables import open_string_csv, readable_chunks, row_cells
    from models.scoring import ERROR_COLUMN, clashing_columns, score_columns, scored_chunks

    if same_file(args.input, args.output):
        raise CommandError(f"--output is the input file {args.input}: write the scores to another file")
    skipped = SkippedRows()
    scored = failed = 0
    with open_string_csv(args.input, ("text",)) as rows:
        predictor, error = _load_predictor(args.model_uri)
        if error:
            raise CommandError(error)
        taken = clashing_columns(rows.header, predictor.labels)
        if taken:
            raise CommandError(
                f"{args.input}: the input already has the column(s) {', '.join(taken)} that scoring adds; an "
                "input column is never overwritten: rename or drop them first"
            )
        cells = (
            [row_cells(rows, row) for row in chunk]
            for chunk in readable_chunks(rows, skipped, args.batch_size)
        )
        error_column = len(rows.header) + score_columns(predictor.labels).index(ERROR_COLUMN)
        try:
            with atomic_text_output(args.output) as handle:
                writer = csv.writer(handle, lineterminator=CSV_LINE_END)  # a lone CR stays quoted
                writer.writerow([*rows.header, *score_columns(predictor.labels)])
                for chunk in scored_chunks(predictor, cells, rows.header.index("text"), progress=True):
                    writer.writerows(chunk)
                    scored += len(chunk)
                    failed += sum(1 for row in chunk if row[error_column])
        except OSError as exc:
            raise CommandError(f"cannot write {args.output} (nothing written there): {exc}") from None
        finally:
            skipped.print(sys.stderr)
    unreadable = f", {skipped.count} unreadable row(s) skipped" if skipped.count else ""
    print(
        f"scored {scored - failed} rows, {failed} with an error{unreadable}, into {args.output} "
        f"(model {predictor.model_version})",
        file=sys.stderr,
    )
    return 0


def _interruptible(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """The command with SIGTERM as Ctrl-C: "interrupted", exit status 130, its temporary output removed
    and its MLflow run marked failed (SIGTERM's default ended it at once: 143, a hidden temporary file
    left beside the output, the run left RUNNING)."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        with terminated_as_interrupted():
            return command(args)

    return run


def _check_export_folder(output: Path) -> None:
    """Before hours of training: `--output` must be a new or empty folder, or an earlier export (it holds
    `meta.json`) that the champion replaces; `train --output .` once emptied the folder it was run in."""
    if output.exists() and not output.is_dir():
        raise CommandError(f"--output {output} is a file; give a folder for the champion artifact")
    if output.is_dir() and any(output.iterdir()) and not (output / "meta.json").is_file():
        raise CommandError(
            f"--output {output} holds files and no model artifact (no meta.json): give a new or empty "
            "folder, or an earlier export, which the champion replaces"
        )


def _train(args: argparse.Namespace) -> int:
    from models import tracking
    from models.train import TrainOptions, run_training

    for path in args.extra_data:
        if not path.is_file():
            raise CommandError(f"extra data file not found: {path}")
    if args.embeddings_file is not None and not args.embeddings_file.is_file():
        raise CommandError(f"embeddings file not found: {args.embeddings_file}")
    if args.first_phase is not None and len(args.seed) > 1:
        raise CommandError("--first-phase continues one seed's LSTM: give one --seed with it")
    if args.first_phase is not None and not args.first_phase.is_file():
        raise CommandError(f"--first-phase file not found: {args.first_phase}")
    variants = tuple(part.strip() for part in args.variants.split(",") if part.strip())
    if not variants:
        raise CommandError(f"--variants {args.variants!r} names no variant")
    if args.output is not None and not args.no_export:
        _check_export_folder(args.output)
    try:
        tracking.configure()  # before hours of training: every run is logged there
    except tracking.StoreError as exc:
        raise CommandError(str(exc)) from None
    options = TrainOptions(
        variants=variants,
        extra_data=tuple(args.extra_data),
        output_dir=args.output,
        quick=args.quick,
        epochs=args.epochs,
        first_phase=args.first_phase,
        seed=args.seed[0],
        more_seeds=args.seed[1:],
        embedding_seed=args.embedding_seed,
        train_baseline=not args.skip_baseline,
        train_reasons=not args.skip_reasons,
        register=not args.no_register,
        export=not args.no_export,
        include_untrusted_feedback=args.include_untrusted_feedback,
        embeddings_file=args.embeddings_file,
    )
    try:
        with contextlib.redirect_stdout(
            sys.stderr
        ):  # progress goes to stderr; stdout carries the JSON summary
            summary = run_training(options)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    print(json.dumps(summary, indent=2))
    if summary["champion"] is None:
        raise CommandError(summary["refused"])
    return 0
