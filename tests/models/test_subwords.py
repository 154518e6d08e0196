"""FastText sub-words for unknown tokens: gensim's hashing and vectors without gensim, and an artifact whose
graph reads them as the trained Keras model did."""

from __future__ import annotations

import numpy as np
import pytest
from gensim.models import FastText
from gensim.models.fasttext import ft_ngram_hashes

from models.predictor import Predictor
from models.subwords import SubwordTable, ngram_buckets
from models.text import tokenize
from models.train import SubwordIds
from models.vocab import UNK_ID, Vocabulary
from tests.models.conftest import write_test_artifact

WORDS = ["delayed", "flyyyy", "café", "😂x", "<url>", "ab", "x", "jetblue’s", "üßç€", "Ñandú"]
LINES = [
    "the flight was delayed again",
    "my bag was lost and the crew was rude",
    "great crew lovely flight thanks",
    "cancelled flight no refund yet",
]
SENTENCES = [line.split() for line in LINES] * 20


def test_ngram_buckets_are_gensims_for_any_script():
    for word in WORDS:
        assert ngram_buckets(word, 3, 5, 100_000) == list(ft_ngram_hashes(word, 3, 5, 100_000)), word


@pytest.fixture(scope="module")
def fasttext():
    return FastText(SENTENCES, vector_size=8, min_count=1, bucket=500, epochs=2, seed=1, workers=1).wv


def test_an_unseen_word_gets_gensims_vector(fasttext):
    exact = SubwordTable(
        np.asarray(fasttext.vectors_ngrams, dtype=np.float32), fasttext.min_n, fasttext.max_n
    )
    for word in ["delaaayed", "refunds", "crewww", "café"]:
        assert word not in fasttext.key_to_index
        np.testing.assert_allclose(exact.vector(word), fasttext[word], rtol=1e-5, atol=1e-6)
    stored = SubwordTable.from_fasttext(fasttext)  # float16, as shipped
    assert stored.ngram_vectors.dtype == np.float16
    np.testing.assert_allclose(stored.vector("delaaayed"), fasttext["delaaayed"], atol=2e-3)


def test_the_table_round_trips_and_refuses_nonsense(fasttext, tmp_path):
    table = SubwordTable.from_fasttext(fasttext)
    table.save(tmp_path)
    loaded = SubwordTable.load(tmp_path)
    assert (loaded.min_n, loaded.max_n) == (table.min_n, table.max_n)
    np.testing.assert_array_equal(loaded.vectors(["refunds", "x"]), table.vectors(["refunds", "x"]))
    with pytest.raises(ValueError):
        SubwordTable(np.zeros((0, 4), dtype=np.float16), 3, 5)
    with pytest.raises(ValueError):
        SubwordTable(np.zeros((4, 4), dtype=np.float16), 5, 3)


@pytest.mark.model
def test_an_artifact_with_subwords_scores_unknown_tokens_as_keras_did(fasttext, tmp_path):
    """Unknown tokens (outside the vocabulary, some never trained on) read their sub-word rows in ONNX too."""
    from models.export import parity_gap
    from models.lstm import LstmConfig, build_model

    vocab = Vocabulary.build([tokenize(" ".join(words)) for words in SENTENCES], min_count=1, max_size=12)
    subwords = SubwordTable.from_fasttext(fasttext)
    ids = SubwordIds(vocab, subwords)
    config = LstmConfig(lstm_units=4, max_length=48, bucket_size=8, trainable_embeddings=False)
    texts = ["the flight was delaaayed again", "refunds?? never", "crewww lovely", "the flight"]
    keras_ids = [ids.encode(tokenize(text), config.max_length) for text in texts]
    vocabulary_rows = np.random.default_rng(0).normal(0, 0.5, (len(vocab), 8)).astype(np.float32)
    model = build_model(config, ids.matrix(vocabulary_rows))
    assert len(ids.unknown) > 3
    out = tmp_path / "artifact"
    meta = write_test_artifact(out, model, vocab, config, subwords=subwords)
    assert meta["subwords"] == {"buckets": 500, "min_n": fasttext.min_n, "max_n": fasttext.max_n}
    predictor = Predictor(out)
    assert predictor.subwords is not None
    assert parity_gap(model, predictor, texts, keras_ids) < 1e-5
    # Scored alone or in a batch with other unknown tokens: the same probabilities.
    alone = np.vstack([predictor.predict_proba([text]) for text in texts])
    np.testing.assert_allclose(alone, predictor.predict_proba(texts), atol=1e-6)
    # The unknown tokens' rows matter: as <unk> (the vocabulary's ids alone) the graph scores differently.
    as_unknown = predictor.predict_ids(predictor.encode(texts))
    assert all(UNK_ID in row for row in predictor.encode(texts[:3]))
    assert np.abs(as_unknown[:3] - predictor.predict_proba(texts[:3])).max() > 1e-4
    np.testing.assert_allclose(as_unknown[3], predictor.predict_proba(texts[3:])[0], atol=1e-6)
