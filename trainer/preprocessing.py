"""Transform's preprocessing_fn: one feature graph for training and serving.

The Trainer attaches this graph to the exported model, so requests carrying raw
strings and numbers go through exactly the transformation training saw.
"""
from typing import Any, Dict, Optional

import tensorflow as tf
import tensorflow_transform as tft

from trainer import features

_xf = features.transformed_name
OOV_BUCKETS = 1
# Pads history positions that hold no item; the model masks them out.
HISTORY_PAD = -1
# Transform's custom_config key for the history length (--max-history).
MAX_HISTORY_KEY = "max_history"


def _dense(x, default):
  """A scalar feature, [batch, 1] dense or sparse if optional -> [batch]."""
  if isinstance(x, tf.SparseTensor):
    x = tf.sparse.to_dense(
        tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]), default)
  return tf.reshape(x, [-1])


def genre_multi_hot(genres: tf.SparseTensor) -> tf.Tensor:
  """[batch, len(GENRE_VOCAB)] float indicators; unknown strings are ignored."""
  table = tf.lookup.StaticHashTable(
      tf.lookup.KeyValueTensorInitializer(
          tf.constant(features.GENRE_VOCAB),
          tf.range(len(features.GENRE_VOCAB), dtype=tf.int64)), -1)
  ids = tf.SparseTensor(genres.indices, table.lookup(genres.values),
                        genres.dense_shape)
  ids = tf.sparse.retain(ids, ids.values >= 0)
  ids = tf.SparseTensor(ids.indices, ids.values,
                        [ids.dense_shape[0], tf.maximum(ids.dense_shape[1], 1)])
  return tf.cast(tf.sparse.to_indicator(ids, len(features.GENRE_VOCAB)),
                 tf.float32)


def recent_history(item_idx: tf.SparseTensor, length: int) -> tf.Tensor:
  """Last `length` history indices as [batch, length], most recent last.

  Shorter histories are left-padded with HISTORY_PAD so the newest item always
  sits in the last column, which is what a sequence encoder wants.
  """
  rows = tf.RaggedTensor.from_sparse(item_idx)
  n = rows.row_lengths()
  picked = rows[:, -length:]
  padded = picked.to_tensor(default_value=HISTORY_PAD, shape=[None, length])
  pad = length - tf.minimum(n, length)
  # Right-align: roll each row by its padding amount.
  cols = (tf.range(length, dtype=tf.int64)[tf.newaxis, :] -
          pad[:, tf.newaxis]) % length
  return tf.gather(padded, cols, batch_dims=1)


def z_score(values: tf.Tensor, among: Optional[tf.Tensor] = None
            ) -> tf.Tensor:
  """Integer `values` z-scored by the mean and standard deviation of
  `among` (default: `values`) over the whole dataset, as float32.

  The moments come from exact int64 sums, not from tft.mean/tft.var: Beam
  adds floats in whatever order its bundles arrive, so two runs over the
  same data (two pipeline roots) gave constants one float apart, and every
  model trained on them came out different, by seed-noise amounts. Integer
  sums do not depend on order, so the same data gives the same Transform
  graph bit for bit.
  """
  among = tf.cast(values if among is None else among, tf.int64)
  count = tf.cast(tft.size(among), tf.float64)
  mean = tf.cast(tft.sum(among), tf.float64) / tf.maximum(count, 1.0)
  mean_square = (tf.cast(tft.sum(among * among), tf.float64)
                 / tf.maximum(count, 1.0))
  std = tf.sqrt(tf.maximum(mean_square - mean * mean, 0.0))
  centred = tf.cast(values, tf.float64) - mean
  # A constant column is centred only (as tft.scale_to_z_score does).
  return tf.cast(tf.where(std > 0, centred / tf.where(std > 0, std, 1.0),
                          centred), tf.float32)


def scale_year(year: tf.Tensor) -> tf.Tensor:
  """Release years z-scored among the known ones; an unknown year is 0,
  the mean, rather than a pull towards year 0."""
  known = tf.not_equal(year, features.UNKNOWN_YEAR)
  return tf.where(known, z_score(year, among=tf.boolean_mask(year, known)),
                  0.0)


def preprocessing_fn(inputs: Dict[str, tf.Tensor],
                     custom_config: Optional[Dict[str, Any]] = None
                     ) -> Dict[str, tf.Tensor]:
  """Raw interaction features -> model inputs.

  custom_config: {MAX_HISTORY_KEY: n}, the pipeline's --max-history: how
  many recent history items each example keeps (default MAX_HISTORY). The
  Trainer reads it back from the transformed feature spec.

  Ids get vocabularies with an OOV bucket (unknown users and items at serving
  time land there instead of failing), numbers are z-scored, genres become
  multi-hot, and history ids share the item vocabulary so the model can share
  item embeddings between the candidate tower and the history encoder.
  """
  out = {}
  user_id = _dense(inputs[features.USER_ID], "")
  item_id = _dense(inputs[features.ITEM_ID], "")
  out[_xf(features.USER_ID)] = tft.compute_and_apply_vocabulary(
      user_id, num_oov_buckets=OOV_BUCKETS, vocab_filename=features.USER_VOCAB)
  item_vocab = tft.vocabulary(item_id, vocab_filename=features.ITEM_VOCAB)
  out[_xf(features.ITEM_ID)] = tft.apply_vocabulary(
      item_id, item_vocab, num_oov_buckets=OOV_BUCKETS)
  # Item counts for the retrieval task's sampling-bias correction.
  tft.vocabulary(item_id, vocab_filename=features.ITEM_FREQ_VOCAB,
                 store_frequency=True)
  history = inputs[features.HISTORY]
  history_idx = tf.SparseTensor(
      history.indices,
      tft.apply_vocabulary(history.values, item_vocab,
                           num_oov_buckets=OOV_BUCKETS),
      history.dense_shape)
  max_history = (custom_config or {}).get(MAX_HISTORY_KEY,
                                          features.MAX_HISTORY)
  out[_xf(features.HISTORY)] = recent_history(history_idx, max_history)

  out[_xf(features.AGE)] = z_score(_dense(inputs[features.AGE], 0))
  out[_xf(features.GENDER)] = tft.compute_and_apply_vocabulary(
      _dense(inputs[features.GENDER], ""), num_oov_buckets=OOV_BUCKETS)
  out[_xf(features.OCCUPATION)] = tft.compute_and_apply_vocabulary(
      _dense(inputs[features.OCCUPATION], ""), num_oov_buckets=OOV_BUCKETS,
      vocab_filename=features.OCCUPATION_VOCAB)

  out[_xf(features.YEAR)] = scale_year(
      _dense(inputs[features.YEAR], features.UNKNOWN_YEAR))
  out[_xf(features.GENRES)] = genre_multi_hot(inputs[features.GENRES])

  out[features.TITLE] = _dense(inputs[features.TITLE], "")
  out[features.LABEL_KEY] = tf.cast(_dense(inputs[features.RATING], 0.0),
                                    tf.float32)
  return out
