"""The BERT port is faithful to the original; bad text has defined results."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from trainer import bert
from trainer import text

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures",
                       "minilm_reference.json")


@pytest.fixture(scope="module")
def encoder(text_encoder_dir):
  return bert.load_encoder(text_encoder_dir)


@pytest.fixture(scope="module")
def tokenizer(text_encoder_dir):
  vocab = text.read_vocab(os.path.join(text_encoder_dir, bert.VOCAB_FILE))
  return text.Tokenizer(vocab, max_length=64)


def _embed(encoder, tokenizer, sentences):
  return encoder(tokenizer(tf.constant(sentences))).numpy()


def test_port_matches_sentence_transformers(encoder, tokenizer):
  reference = json.load(open(FIXTURE))
  ours = _embed(encoder, tokenizer, reference["sentences"])
  theirs = np.array(reference["vectors"], np.float32)
  cosines = (ours * theirs).sum(1) / (
      np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
  worst = int(np.argmin(cosines))
  assert cosines.min() >= 0.999, (reference["sentences"][worst], cosines)


def test_tokenizer_matches_the_vocabulary(tokenizer):
  ids, mask = tokenizer(tf.constant(["Toy Story (1995)"]))
  assert ids.numpy()[0, :7].tolist() == [text.CLS_ID, 9121, 2466, 1006, 2786,
                                         1007, text.SEP_ID]
  assert mask.numpy()[0].sum() == 7


def test_bad_text_has_defined_results(encoder, tokenizer):
  inputs = tf.constant(["", "   ", b"caf\xff\xfe", "word " * 5000,
                        "Heat (1995). Action"])
  ids, mask = tokenizer(inputs)
  assert ids.shape == (5, 64)
  # Empty and whitespace-only text: just [CLS][SEP].
  assert mask.numpy()[0].sum() == 2 and mask.numpy()[1].sum() == 2
  # Non-UTF-8 bytes are replaced, not an error.
  assert mask.numpy()[2].sum() >= 3
  # Over-long text is truncated to max_length and ends with [SEP].
  assert mask.numpy()[3].sum() == 64 and ids.numpy()[3, -1] == text.SEP_ID
  vectors = encoder((ids, mask)).numpy()
  assert np.isfinite(vectors).all()
  np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_item_text_builder():
  out = text.item_text(tf.constant(["Toy Story", "unkonwn"]),
                       tf.constant([1995, 0], tf.int64),
                       tf.constant([["Animation", "Comedy"], ["unknown", ""]]))
  assert out.numpy().tolist() == [b"Toy Story (1995). Animation, Comedy",
                                  b"unkonwn. unknown"]


def test_batch_encoding_matches_one_text_at_a_time(text_encoder_dir):
  """encode_texts encodes each distinct text once, in length-sorted batches
  cut to their longest: the same vectors, in the caller's order."""
  from trainer import text_tower
  encoder = text_tower.TextEncoder(text_encoder_dir)
  texts = [b"Heat (1995). Action, Crime, Thriller", b"Drama", b"",
           b"Drama", b"word " * 100, b"Toy Story (1995)"]
  batched = text_tower.encode_texts(encoder, texts, batch_size=2)
  alone = np.concatenate([encoder(tf.constant([t])).numpy() for t in texts])
  np.testing.assert_allclose(batched, alone, atol=1e-6)
  assert text_tower.encode_texts(encoder, []).shape == (0, encoder.dim)
