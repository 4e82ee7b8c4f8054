"""Small transformed batches for fast model tests."""
import numpy as np
import tensorflow as tf

from trainer import features

_xf = features.transformed_name


def toy_batch():
  """Three interactions of two users over two items (+ OOV), item 0 twice,
  in Transform's output format."""
  return {
      _xf(features.USER_ID): tf.constant([0, 1, 1], tf.int64),
      _xf(features.GENDER): tf.constant([0, 1, 0], tf.int64),
      _xf(features.OCCUPATION): tf.constant([0, 0, 1], tf.int64),
      _xf(features.AGE): tf.constant([-0.5, 0.2, 1.0]),
      _xf(features.HISTORY): tf.constant([[-1, 1], [-1, -1], [0, 1]],
                                         tf.int64),
      _xf(features.ITEM_ID): tf.constant([0, 1, 0], tf.int64),
      _xf(features.GENRES): tf.constant(
          np.eye(3, len(features.GENRE_VOCAB), dtype=np.float32)),
      _xf(features.YEAR): tf.constant([0.1, -1.0, 0.1]),
      features.LABEL_KEY: tf.constant([4.0, 2.0, 5.0]),
  }
