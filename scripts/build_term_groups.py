"""Build (or check) worker/detection/term_groups.json, the explanation's groups of words that mean one thing.

A bad buzz's topic is often spread over several words, each written by one or two people ("iphone", "ios",
"ipad"; "bag", "baggage", "luggage"; "cancelled", "canceled"), so no single word is over-represented
enough to be named. The explanation also tests each GROUP as one term (a tweet uses the group when it uses
any of its words). The groups are fixed in advance, from the champion model's frozen FastText word
vectors (the embedding matrix inside models/artifacts/champion/model.onnx, rows in vocab.json order):
the `--words` most frequent words of the vocabulary that can be terms (`explain.term_key`, plurals folded),
clustered by average-linkage on cosine similarity and cut where the mean similarity falls below
`--similarity`. Groups of one word are left out. A fixed grouping is what keeps the test honest: a group
made of the words a window happens to use would count its own selection as evidence.

    .venv/bin/python scripts/build_term_groups.py            # rewrite the file
    .venv/bin/python scripts/build_term_groups.py --check    # exit 1 if the file is not what it builds
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from buzzwatch.files import check_or_write  # noqa: E402 - the repository root is on the path first
from worker.detection.explain import GROUPS_PATH, is_term, term_key  # noqa: E402

CHAMPION = REPO_ROOT / "models" / "artifacts" / "champion"
WORDS = 5000  # the vocabulary's most frequent words considered (topic words are common words)
SIMILARITY = 0.68  # a group's words are this similar on average (cosine); chosen on the tuning seeds


def champion_vectors(artifact: Path = CHAMPION) -> tuple[list[str], np.ndarray, str]:
    """The artifact's vocabulary, its embedding matrix (one row a word) and its model version."""
    import onnx
    from onnx import numpy_helper

    meta = json.loads((artifact / "meta.json").read_text(encoding="utf-8"))
    vocab = json.loads((artifact / "vocab.json").read_text(encoding="utf-8"))
    shape = [len(vocab), int(meta["details"]["embedding_dim"])]
    model = onnx.load(str(artifact / "model.onnx"))
    matrix = next(numpy_helper.to_array(t) for t in model.graph.initializer if list(t.dims) == shape)
    return vocab, matrix, str(meta["model_version"])


def build(vocab: list[str], matrix: np.ndarray, words: int, similarity: float) -> list[list[str]]:
    """The groups of two term keys or more, each most frequent word first, groups by their first word."""
    from scipy.cluster.hierarchy import fcluster, linkage

    rows: dict[str, int] = {}
    for row, word in enumerate(vocab[:words]):
        if is_term(word):
            rows.setdefault(term_key(word), row)  # a key's vector is its most frequent form's
    keys = list(rows)
    vectors = matrix[[rows[key] for key in keys]].astype(np.float64)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = fcluster(linkage(vectors, method="average", metric="cosine"), 1.0 - similarity, "distance")
    members: dict[int, list[str]] = {}
    for key, label in zip(keys, labels, strict=True):
        members.setdefault(int(label), []).append(key)  # in vocabulary (frequency) order
    return sorted((group for group in members.values() if len(group) > 1), key=lambda group: rows[group[0]])


def render(groups: list[list[str]], model_version: str, words: int, similarity: float) -> str:
    """The file's text: JSON with one group a line (readable diffs)."""
    lines = ",\n".join(f"  {json.dumps(group, ensure_ascii=False)}" for group in groups)
    head = {"model_version": model_version, "words": words, "similarity": similarity}
    return json.dumps(head, ensure_ascii=False)[:-1] + ', "groups": [\n' + lines + "\n]}\n"


def main(argv: list[str] | None = None) -> int:
    """Write the groups file, or with --check compare it with a fresh build."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only check that the file is up to date")
    parser.add_argument("--words", type=int, default=WORDS, help="most frequent vocabulary words grouped")
    parser.add_argument("--similarity", type=float, default=SIMILARITY, help="mean cosine within a group")
    parser.add_argument("--out", type=Path, default=GROUPS_PATH, help="where to write (default: shipped)")
    args = parser.parse_args(argv)
    vocab, matrix, version = champion_vectors()
    groups = build(vocab, matrix, args.words, args.similarity)
    text = render(groups, version, args.words, args.similarity)
    status = check_or_write({args.out: text}, check=args.check, command="python scripts/build_term_groups.py")
    if not args.check:
        print(f"{len(groups)} groups of {sum(map(len, groups))} words (model {version})")
    return status


if __name__ == "__main__":
    sys.exit(main())
