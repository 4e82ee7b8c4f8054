"""The two towers: users (query) and items (candidates).

Both read Transform's outputs (features.transformed_name keys). The item id
embedding is shared: the candidate tower uses it for the item itself and the
user tower pools it over the user's history, so what the model learns about an
item as a candidate also describes the users who watched it.
"""
import tensorflow as tf

from trainer import features
from trainer import preprocessing
from trainer.config import TrainerConfig

_xf = features.transformed_name


def masked_mean(vectors: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
  """Mean over axis 1 of [batch, n, d] where mask [batch, n] is True.

  An empty history gives a zero vector rather than NaN.
  """
  weights = tf.cast(mask, vectors.dtype)[..., tf.newaxis]
  total = tf.reduce_sum(vectors * weights, axis=1)
  return total / tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)


class QueryTower(tf.keras.Model):
  """User id, profile and (optionally) pooled history -> unit query vector."""

  def __init__(self, config: TrainerConfig, num_users: int,
               num_occupations: int, item_embedding: tf.keras.layers.Layer):
    super().__init__()
    self._config = config
    oov = preprocessing.OOV_BUCKETS
    self.user_embedding = tf.keras.layers.Embedding(
        num_users + oov, config.embedding_dim)
    self.gender_embedding = tf.keras.layers.Embedding(
        len(features.GENDER_VOCAB) + oov, 4)
    self.occupation_embedding = tf.keras.layers.Embedding(
        num_occupations + oov, 8)
    self.item_embedding = item_embedding
    self.hidden = tf.keras.layers.Dense(config.hidden_units, activation="relu")
    self.out = tf.keras.layers.Dense(config.embedding_dim)

  def call(self, inputs):
    parts = [
        self.user_embedding(inputs[_xf(features.USER_ID)]),
        self.gender_embedding(inputs[_xf(features.GENDER)]),
        self.occupation_embedding(inputs[_xf(features.OCCUPATION)]),
        tf.expand_dims(inputs[_xf(features.AGE)], -1),
    ]
    if self._config.use_history:
      history = inputs[_xf(features.HISTORY)][:, -self._config.history_length:]
      mask = history >= 0
      vectors = self.item_embedding(tf.maximum(history, 0))
      parts.append(masked_mean(vectors, mask))
    x = self.hidden(tf.concat(parts, axis=-1))
    return tf.math.l2_normalize(self.out(x), axis=-1)


class CandidateTower(tf.keras.Model):
  """Item id, genres and year -> unit candidate vector."""

  def __init__(self, config: TrainerConfig,
               item_embedding: tf.keras.layers.Layer):
    super().__init__()
    self.item_embedding = item_embedding
    self.genres = tf.keras.layers.Dense(16, use_bias=False)
    self.hidden = tf.keras.layers.Dense(config.hidden_units, activation="relu")
    self.out = tf.keras.layers.Dense(config.embedding_dim)

  def call(self, inputs):
    x = tf.concat([
        self.item_embedding(inputs[_xf(features.ITEM_ID)]),
        self.genres(inputs[_xf(features.GENRES)]),
        tf.expand_dims(inputs[_xf(features.YEAR)], -1),
    ], axis=-1)
    return tf.math.l2_normalize(self.out(self.hidden(x)), axis=-1)
