"""Word2Vec/FastText training, save/load, pretrained text files and the embedding matrix."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from gensim.models.keyedvectors import KeyedVectors

from models.embeddings import (
    PretrainedFileError,
    embedding_matrix,
    load_pretrained,
    load_vectors,
    save_vectors,
    train_embeddings,
)
from models.vocab import PAD_ID

CORPUS = [
    ["the", "flight", "was", "late", "again"],
    ["great", "flight", "thanks", "<user>"],
    ["the", "crew", "was", "great"],
    ["lost", "my", "bag", "again", "<url>"],
] * 30


@pytest.mark.parametrize("kind", ["word2vec", "fasttext"])
def test_train_save_load_round_trip(tmp_path, kind):
    vectors = train_embeddings(CORPUS, kind, dim=8, epochs=2, min_count=1, workers=1)
    assert vectors.vector_size == 8
    assert "flight" in vectors.key_to_index
    save_vectors(vectors, tmp_path / f"{kind}.kv")
    loaded = load_vectors(tmp_path / f"{kind}.kv")
    np.testing.assert_array_equal(loaded["flight"], vectors["flight"])


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown embedding kind"):
        train_embeddings(CORPUS, "glove")


def test_fasttext_gives_unseen_words_subword_vectors():
    vectors = train_embeddings(CORPUS, "fasttext", dim=8, epochs=2, min_count=1, workers=1)
    matrix, coverage = embedding_matrix(["<pad>", "<unk>", "flight", "flightss"], vectors)
    assert coverage == pytest.approx(0.5)
    np.testing.assert_allclose(matrix[3], vectors["flightss"], rtol=1e-6)
    assert not np.allclose(matrix[3], 0)
    assert np.all(matrix[PAD_ID] == 0)


def test_word2vec_unseen_words_get_random_rows():
    vectors = train_embeddings(CORPUS, "word2vec", dim=8, epochs=2, min_count=1, workers=1)
    matrix, coverage = embedding_matrix(["<pad>", "<unk>", "crew", "zebra"], vectors, seed=1)
    assert coverage == pytest.approx(0.5)
    np.testing.assert_allclose(matrix[2], vectors["crew"])
    assert np.abs(matrix[3]).sum() > 0
    again, _ = embedding_matrix(["<pad>", "<unk>", "crew", "zebra"], vectors, seed=1)
    np.testing.assert_array_equal(matrix, again)


def _write_vectors(path, rows, header):
    lines = [f"{len(rows)} 3"] if header else []
    lines += [f"{word} {' '.join(str(value) for value in values)}" for word, values in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize("header", [False, True], ids=["glove", "word2vec"])
def test_load_pretrained_text_formats(tmp_path, header):
    rows = [("good", (0.1, 0.2, 0.3)), ("bad", (-0.1, -0.2, -0.3)), ("✈️", (1.0, 0.0, 0.5))]
    path = tmp_path / "vectors.txt"
    _write_vectors(path, rows, header)
    vectors = load_pretrained(path)
    assert vectors.vector_size == 3
    assert len(vectors) == 3
    np.testing.assert_allclose(vectors["bad"], [-0.1, -0.2, -0.3], rtol=1e-6)
    np.testing.assert_allclose(vectors["✈️"], [1.0, 0.0, 0.5], rtol=1e-6)
    matrix, coverage = embedding_matrix(["<pad>", "<unk>", "good", "meh"], vectors)
    assert coverage == pytest.approx(0.5)
    np.testing.assert_allclose(matrix[2], [0.1, 0.2, 0.3], rtol=1e-6)


def test_a_vectors_file_saved_with_a_byte_order_mark_keeps_its_first_word(tmp_path):
    """Notepad's BOM became part of the first word ("\ufeffthe"): "the" silently lost its vector."""
    path = tmp_path / "vectors.txt"
    _write_vectors(path, [("the", (0.1, 0.2, 0.3)), ("crew", (0.3, 0.2, 0.1))], header=False)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    np.testing.assert_allclose(load_pretrained(path)["the"], [0.1, 0.2, 0.3], rtol=1e-6)


def test_load_pretrained_keeps_words_with_spaces_and_skips_blank_lines(tmp_path):
    """GloVe 840B has tokens holding spaces; a blank line is skipped, a repeated word keeps its first
    vector, and `limit` reads only the first vectors."""
    path = tmp_path / "vectors.txt"
    path.write_text(
        "the 0.1 0.2 0.3\n\n. . . 1 2 3\nat name@x.com 4 5 6\nthe 7 8 9\nlast 1 1 1\n", encoding="utf-8"
    )
    vectors = load_pretrained(path)
    assert vectors.index_to_key == ["the", ". . .", "at name@x.com", "last"]
    np.testing.assert_allclose(vectors["the"], [0.1, 0.2, 0.3], rtol=1e-6)
    np.testing.assert_allclose(vectors["at name@x.com"], [4, 5, 6])
    assert load_pretrained(path, limit=2).index_to_key == ["the", ". . ."]


def test_load_pretrained_reads_as_gensim_does(tmp_path):
    """The same words and bit-identical vectors as gensim's own reader, over more than one parse chunk."""
    rng = np.random.default_rng(3)
    path = tmp_path / "vectors.txt"
    rows = [(f"w{i}", rng.normal(size=5)) for i in range(45_000)]
    path.write_text("".join(f"{w} {' '.join(f'{x:.6f}' for x in v)}\n" for w, v in rows), encoding="utf-8")
    ours = load_pretrained(path)
    theirs = KeyedVectors.load_word2vec_format(str(path), binary=False, no_header=True)
    assert ours.index_to_key == theirs.index_to_key
    assert ours.vectors.dtype == np.float32 and np.array_equal(ours.vectors, theirs.vectors)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "the 0.1 0.2 0.3\ncat 0.4 0.5\ndog 1 2 3\n",
            r"vectors\.txt, line 2: 2 numbers after the word, expected 3",
        ),
        ("the 0.1 0.2 0.3\ncat 0.4 0.5 0.6 0.7\n", r"line 2: 4 numbers after the word, expected 3"),
        ("the 0.1 0.2 0.3\ncat 0.4\n", r"line 2: 1 number after the word, expected 3"),  # was "1 numbers"
        ("2 3\nthe 0.1 0.2 0.3 0.4\ncat 1 2 3\n", r"line 2: 4 numbers after the word, expected 3"),
        ("the 1 2 3\n" * 3 + "cat 0.4 x 0.5\n", r"line 4: 'x' is not a number"),
        ("the 1 2 3\ncat 0.4  0.5\n", r"line 2: '' is not a number"),
        ("the 1 2 3\ncat 0.4 nan 0.5\n", r"line 2: 'nan' is not a finite number"),
        ("the 1 2 3\ncat 0.4 1e39 0.5\n", r"line 2: '1e39' is not a finite number"),
        (" 1 2 3\n", r"line 1: no word before the numbers"),
        ("the\n", r"line 1: a word without numbers"),
        ("3 3\nthe 0.1 0.2 0.3\n", r"the header says 3 vectors, the file holds 1"),
        ("", r"no vectors"),
        ("\n\n", r"no vectors"),
    ],
    ids=[
        "short",
        "long",
        "one-number",
        "wider-than-header",
        "word",
        "empty-value",
        "nan",
        "overflow",
        "no-word",
        "no-numbers",
        "truncated",
        "empty",
        "blank",
    ],
)
def test_load_pretrained_names_the_damaged_line(tmp_path, text, message):
    path = tmp_path / "vectors.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PretrainedFileError, match=message):
        load_pretrained(path)


def test_load_pretrained_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_pretrained(tmp_path / "nope.txt")


def test_training_is_reproducible_across_processes():
    """Same corpus and seed give the same vectors even under different PYTHONHASHSEED values."""
    code = (
        "from models.embeddings import train_embeddings; import hashlib; "
        "corpus = [['the', 'flight', 'was', 'late'], ['great', 'crew', 'thanks']] * 20; "
        "vectors = train_embeddings(corpus, 'fasttext', dim=8, epochs=2, min_count=1, seed=5); "
        "print(hashlib.sha256(vectors.vectors.tobytes()).hexdigest())"
    )
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        digests.add(result.stdout.strip())
    assert len(digests) == 1
