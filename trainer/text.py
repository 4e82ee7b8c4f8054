"""Item text and in-graph tokenisation for the BERT text tower.

The text builder is the one place that decides what an item "says" (title,
year, genres); the tokenizer turns any string tensor, including empty, huge or
non-UTF-8 input, into fixed-length WordPiece ids inside the graph, so exported
signatures take raw strings.
"""
from typing import Sequence, Tuple

import tensorflow as tf
import tensorflow_text as tf_text

from trainer import features

CLS_ID, SEP_ID, PAD_ID = 101, 102, 0
DEFAULT_MAX_LENGTH = 32


def item_text(title: tf.Tensor, year: tf.Tensor, genres: tf.Tensor
              ) -> tf.Tensor:
  """"Toy Story (1995). Animation, Children's, Comedy" from [B] title, [B]
  year (0 = unknown, omitted) and [B, n] genre strings ("" pads)."""
  year_part = tf.where(tf.equal(year, features.UNKNOWN_YEAR), "",
                       tf.strings.join([" (", tf.strings.as_string(year), ")"]))
  return tf.strings.join([title, year_part, ". ", genre_text(genres)])


def genre_text(genres: tf.Tensor) -> tf.Tensor:
  """[B, n] genre strings ("" pads) -> [B] "Animation, Children's"."""
  text = tf.strings.reduce_join(genres, axis=-1, separator=", ")
  text = tf.strings.regex_replace(text, r"(, )+$|^(, )+", "")
  return tf.strings.regex_replace(text, r"(, ){2,}", ", ")


class Tokenizer(tf.Module):
  """WordPiece (uncased) -> [B, max_length] ids and mask, [CLS] ... [SEP].

  Invalid UTF-8 is replaced (U+FFFD) rather than failing the request; text
  longer than max_length - 2 WordPieces is truncated, as the original model's
  tokenizer does; empty text becomes [CLS][SEP].
  """

  def __init__(self, vocab: Sequence[str],
               max_length: int = DEFAULT_MAX_LENGTH):
    super().__init__()
    self.max_length = max_length
    self._tokenizer = tf_text.FastBertTokenizer(
        vocab=list(vocab), lower_case_nfd_strip_accents=True,
        token_out_type=tf.int64)

  def __call__(self, text: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    text = tf.strings.unicode_transcode(
        tf.reshape(text, [-1]), "UTF-8", "UTF-8", errors="replace")
    pieces = self._tokenizer.tokenize(text)[:, : self.max_length - 2]
    ids = _wrap(pieces, tf.shape(text)[0]).to_tensor(
        default_value=PAD_ID, shape=[None, self.max_length])
    return ids, tf.cast(tf.not_equal(ids, PAD_ID), tf.int32)


def _wrap(pieces: tf.RaggedTensor, batch: tf.Tensor) -> tf.RaggedTensor:
  """Adds [CLS] in front of and [SEP] after every row."""
  def column(token_id):
    return tf.RaggedTensor.from_tensor(
        tf.fill([batch, 1], tf.constant(token_id, tf.int64)))
  return tf.concat([column(CLS_ID), pieces, column(SEP_ID)], axis=1)


def read_vocab(path: str) -> list:
  with tf.io.gfile.GFile(path) as f:
    return [line.rstrip("\n") for line in f]
