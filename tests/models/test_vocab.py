"""The padding scheme shared by training and serving."""

from __future__ import annotations

import numpy as np
import pytest

from models.vocab import PAD_ID, UNK_ID, Vocabulary, bucket_length, group_by_bucket, pad_batch


def test_build_is_deterministic_and_frequency_ordered(tmp_path):
    token_lists = [["b", "a", "a"], ["c", "b", "a"], ["d"]]
    vocab = Vocabulary.build(token_lists, min_count=2)
    assert vocab.tokens == ("<pad>", "<unk>", "a", "b")
    assert Vocabulary.build(list(reversed(token_lists)), min_count=2).tokens == vocab.tokens
    vocab.save(tmp_path / "vocab.json")
    assert Vocabulary.load(tmp_path / "vocab.json").tokens == vocab.tokens


def test_encode_maps_unknown_and_truncates():
    vocab = Vocabulary(["<pad>", "<unk>", "good", "flight"])
    assert vocab.encode(["good", "bad", "flight"], max_length=10) == [2, UNK_ID, 3]
    assert vocab.encode(["good"] * 20, max_length=5) == [2] * 5


def test_vocabulary_rejects_missing_specials():
    with pytest.raises(ValueError):
        Vocabulary(["good", "bad"])


@pytest.mark.parametrize(
    ("n_tokens", "expected"), [(0, 8), (1, 8), (8, 8), (9, 16), (30, 32), (47, 48), (48, 48), (90, 48)]
)
def test_bucket_length(n_tokens, expected):
    assert bucket_length(n_tokens, bucket_size=8, max_length=48) == expected


def test_pad_batch_post_pads_and_groups():
    batch = pad_batch([[5, 6], [7]], 4)
    assert batch.dtype == np.int32
    assert batch.tolist() == [[5, 6, PAD_ID, PAD_ID], [7, PAD_ID, PAD_ID, PAD_ID]]
    groups = group_by_bucket([[1] * 3, [1] * 12, [1] * 5], bucket_size=8, max_length=48)
    assert groups == {8: [0, 2], 16: [1]}
