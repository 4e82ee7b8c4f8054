"""Every feature name and vocabulary, in one place (signature names and the
rest of the wire contract: trainer/contract.py).

ExampleGen writes these keys, the curated schema declares them, Transform reads
them, the Trainer consumes their transformed versions and the exported
signatures accept them raw. Nothing else spells a feature name as a literal.
"""
from typing import Dict

import tensorflow as tf

# Raw interaction features (one tf.Example per rating), as ExampleGen writes
# them. Those a caller sends are named by the wire contract; HISTORY holds the
# user's earlier items, oldest first, strictly before this interaction's time.
from trainer.contract import AGE  # noqa: F401
from trainer.contract import GENDER  # noqa: F401
from trainer.contract import GENRES  # noqa: F401
from trainer.contract import HISTORY  # noqa: F401
from trainer.contract import ITEM_ID  # noqa: F401
from trainer.contract import OCCUPATION  # noqa: F401
from trainer.contract import TITLE  # noqa: F401
from trainer.contract import USER_ID  # noqa: F401
from trainer.contract import YEAR  # noqa: F401

RATING = "rating"
TIMESTAMP = "timestamp"
# Every item the user rated strictly before this interaction, however many:
# eval examples only (absent from train), so the Evaluator excludes all of
# them from the top k as recommend_unseen would for a user who sends their
# whole history. HISTORY, the model's input, keeps only the newest
# MAX_HISTORY; two thirds of ML-100K's eval interactions have more.
RATED_BEFORE = "rated_before_item_ids"
# Eval examples only: 1 when nobody rated the item in the training split
# (the cold-start slice the Evaluator reports beside the whole eval set).
COLD_ITEM = "cold_item"
# Eval examples only: 1 when the user rated nothing in the training split
# (a new user: their history holds only eval-period ratings, if any).
COLD_USER = "cold_user"
# The Evaluator slices on each (pipeline/eval_config.py).
COLD_FLAGS = (COLD_ITEM, COLD_USER)

LABEL_KEY = RATING
USER_FEATURES = (USER_ID, AGE, GENDER, OCCUPATION, HISTORY)
ITEM_FEATURES = (ITEM_ID, TITLE, YEAR, GENRES)

# The 19 MovieLens genres, "unknown" included: it is a real genre column there.
GENRE_VOCAB = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy",
    "Crime", "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror",
    "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")
GENDER_VOCAB = ("M", "F")

# Year 0 means "unknown" (MovieLens has titles without a parseable year).
UNKNOWN_YEAR = 0
# How many earlier items each example carries; the model may use fewer.
MAX_HISTORY = 50

# Example splits written by ExampleGen. The catalogue split holds one example
# per item (item features only) so the Trainer can index every item, including
# those nobody rated before the cutoff.
TRAIN_SPLIT = "train"
EVAL_SPLIT = "eval"
CATALOG_SPLIT = "items"

# Transform's named vocabularies, read back by the Trainer.
USER_VOCAB = "user_id_vocab"
ITEM_VOCAB = "item_id_vocab"
ITEM_FREQ_VOCAB = "item_id_freq"
OCCUPATION_VOCAB = "occupation_vocab"


def transformed_name(key: str) -> str:
  """Name of the Transform output derived from raw feature `key`."""
  return key + "_xf"


# Raw feature types; the schema in schemas/ must agree (a test checks).
_STRING_SCALARS = (USER_ID, ITEM_ID, GENDER, OCCUPATION, TITLE)
_INT_SCALARS = (TIMESTAMP, AGE, YEAR)
_FLOAT_SCALARS = (RATING,)
_STRING_LISTS = (GENRES, HISTORY, RATED_BEFORE)
_INT_LISTS = COLD_FLAGS


def raw_feature_spec() -> Dict[str, tf.io.FixedLenFeature]:
  """tf.io parsing spec of an interaction example, as ExampleGen writes it.

  Scalars have shape [1], as the schema declares them, so parsed batches are
  [batch, 1]: the shape Transform's saved graph expects.
  """
  spec = {}
  for key in _STRING_SCALARS:
    spec[key] = tf.io.FixedLenFeature([1], tf.string)
  for key in _INT_SCALARS:
    spec[key] = tf.io.FixedLenFeature([1], tf.int64)
  for key in _FLOAT_SCALARS:
    spec[key] = tf.io.FixedLenFeature([1], tf.float32)
  for key in _STRING_LISTS:
    spec[key] = tf.io.VarLenFeature(tf.string)
  for key in _INT_LISTS:
    spec[key] = tf.io.VarLenFeature(tf.int64)
  return spec


def gather_rows(batch: Dict[str, tf.Tensor], rows) -> Dict[str, tf.Tensor]:
  """The examples at `rows` of a batch of raw features, in that order.

  Dense and sparse features alike: a sparse one is gathered as ragged rows,
  so a list feature keeps each example's own values.
  """
  rows = tf.constant(rows, tf.int64)
  out = {}
  for key, value in batch.items():
    if isinstance(value, tf.SparseTensor):
      out[key] = tf.gather(tf.RaggedTensor.from_sparse(value), rows).to_sparse()
    else:
      out[key] = tf.gather(value, rows)
  return out


def complete_raw_features(partial: Dict[str, tf.Tensor],
                          batch_size: tf.Tensor) -> Dict[str, tf.Tensor]:
  """Fills the raw features a caller did not send with neutral defaults.

  The Transform graph is one function of all raw features, but a recommend
  request has no item and a catalogue row has no user. Missing string ids
  become "" (which Transform maps to the out-of-vocabulary bucket), numbers 0
  and lists empty, so the outputs we read are unaffected by the filler.
  """
  full = dict(partial)
  for key, spec in raw_feature_spec().items():
    if key in full:
      continue
    if isinstance(spec, tf.io.VarLenFeature):
      full[key] = tf.SparseTensor(
          indices=tf.zeros([0, 2], tf.int64),
          values=tf.constant([], spec.dtype),
          dense_shape=tf.stack([tf.cast(batch_size, tf.int64), 0]))
    elif spec.dtype == tf.string:
      full[key] = tf.fill([batch_size, 1], "")
    else:
      full[key] = tf.zeros([batch_size, 1], spec.dtype)
  return full

