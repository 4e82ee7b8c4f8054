"""The two towers: users (query) and items (candidates).

Both read Transform's outputs (features.transformed_name keys). With the text
tower on, an item's text comes from the frozen BERT vectors computed once per
catalogue: by vocabulary index from a table (training, history), or directly
as a `TEXT_VECTOR` input (export: catalogue rows and brand-new items). An
item is represented the same way as a candidate and inside a user's history
(`ItemRepresentation`). By default (config.item_text_for="new_items") an
item with an id row is that row alone, and an item without one (new since
training, all sharing the OOV id) is its text mapped into the rows' space:
its text is what tells it apart (cold start). With "every_item", every item
is its id row plus a trained projection of its text.
"""
import tensorflow as tf

from trainer import features
from trainer import preprocessing
from trainer.config import TrainerConfig

_xf = features.transformed_name
# Inputs the model adds next to Transform's outputs.
TEXT_VECTOR = "item_text_vector"  # [B, text_dim] float: the item's own text
TEXT_INDEX = "item_text_index"    # [B] int: table row of the item's text
# [B, H, text_dim] float: the text of each history item, aligned with
# Transform's history; read only where the item has no id row (new items)
# and, if HISTORY_HAS_TEXT [B, H] bool is given, where that is True (an id
# the catalogue does not know has no text either).
HISTORY_TEXT_VECTORS = "history_text_vectors"
HISTORY_HAS_TEXT = "history_has_text"
# In training only, instead of HISTORY_TEXT_VECTORS: each history position's
# row of the catalogue text table.
HISTORY_TEXT_ROWS = "history_text_rows"


def masked_mean(vectors: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
  """Mean over axis 1 of [batch, n, d] where mask [batch, n] is True.

  An empty history gives a zero vector rather than NaN.
  """
  weights = tf.cast(mask, vectors.dtype)[..., tf.newaxis]
  total = tf.reduce_sum(vectors * weights, axis=1)
  return total / tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)


class ItemRepresentation(tf.keras.layers.Layer):
  """Item id embedding (+ projected text vector): [..] ids -> [.., d].

  The text projection is applied to the whole text table once per step and
  then gathered, rather than to every history position of every example: the
  catalogue is far smaller than batch x history, so this is what keeps the
  text tower cheap on CPU.

  Args:
    config: hyperparameters.
    num_items: rows of the id embedding (vocabulary + OOV).
    text_table: [num_items, text_dim] frozen text vectors, or None.
    fine_tuned_text: instead of text_table, (token states [num_items, T, H]
      below the fine-tuned blocks, their mask [num_items, T], FineTunedTop):
      the table is then recomputed every step through the trainable top.
  """

  def __init__(self, config: TrainerConfig, num_items: int, text_table=None,
               fine_tuned_text=None, **kwargs):
    super().__init__(**kwargs)
    self.use_text = config.use_text
    if config.item_text_for not in ("new_items", "every_item"):
      raise ValueError(f"item_text_for must be 'new_items' or 'every_item', "
                       f"not {config.item_text_for!r}")
    self.text_for_new_items_only = config.item_text_for == "new_items"
    self.oov_row = num_items - 1
    self.id_embedding = tf.keras.layers.Embedding(num_items,
                                                  config.embedding_dim)
    self.top = None
    if self.use_text:
      if fine_tuned_text is not None:
        states, mask, self.top = fine_tuned_text
        # A variable, not a constant: tens of MB stay out of the graph.
        self.text_states = tf.Variable(states, trainable=False,
                                       name="item_text_states")
        self.text_mask = tf.constant(mask, tf.int32)
      else:
        self.text_table = tf.constant(text_table, tf.float32)
      self.text_projection = tf.keras.layers.Dense(config.embedding_dim,
                                                   name="text_projection")

  def text_vectors(self) -> tf.Tensor:
    """[num_items, text_dim]: the (possibly fine-tuned) text of every item."""
    if self.top is not None:
      return self.top(self.text_states, self.text_mask)
    return self.text_table

  def call(self, ids, text_vectors=None, text_ids=None, with_text=True,
           has_text=None):
    """ids: id-embedding rows; text from `text_vectors` if given, else from
    the table at `text_ids` (default: `ids`); none without `with_text`.
    has_text (shaped like ids): where `text_vectors` holds a text at all."""
    x = self.id_embedding(ids)
    if self.use_text and with_text and self.text_for_new_items_only:
      # Only an item's own text (catalogue rows, new items) can stand in for
      # a missing id row; the vocabulary table has none for unknown ids.
      if text_vectors is not None:
        mapped = self.text_projection(text_vectors)
      elif text_ids is not None and has_text is not None:
        # Training's hidden history items (history_id_dropout): their own
        # text through the map, which only its regression moves.
        mapped = tf.gather(tf.stop_gradient(
            self.text_projection(self.text_vectors())), text_ids)
      else:
        return x
      unknown = tf.equal(ids, self.oov_row)
      if has_text is not None:
        unknown &= has_text
      return tf.where(unknown[..., tf.newaxis], mapped, x)
    if self.use_text and with_text:
      if text_vectors is not None:
        text = self.text_projection(text_vectors)
      else:
        projected = self.text_projection(self.text_vectors())
        text = tf.gather(projected, ids if text_ids is None else text_ids)
      x = x + text
    return x

  def start_rows_from_text(self, rows) -> None:
    """Sets the id rows `rows` (items new to a warm-started model) to where
    the model's text puts those items: the text map's vector ("new_items",
    exactly what the base model served them as), or zero ("every_item",
    leaving the projected text alone). A random row would rank a new item
    by noise until enough steps had moved it."""
    if not self.use_text or not len(rows):
      return
    rows = tf.constant(rows, tf.int64)
    start = self.text_projection(tf.gather(self.text_vectors(), rows))
    if not self.text_for_new_items_only:
      start = tf.zeros_like(start)
    self.id_embedding.embeddings.scatter_nd_update(rows[:, tf.newaxis], start)

  def text_map_loss(self, ids) -> tf.Tensor:
    """Mean squared distance from each known item's mapped text to its
    (fixed) id row: teaches the text map where an id row would lie."""
    known = tf.cast(tf.not_equal(ids, self.oov_row), tf.float32)
    target = tf.stop_gradient(self.id_embedding(ids))
    mapped = self.text_projection(tf.gather(self.text_vectors(), ids))
    error = tf.reduce_sum(tf.square(mapped - target), axis=-1)
    return tf.reduce_sum(error * known) / tf.maximum(tf.reduce_sum(known), 1.)


class AttentionEncoder(tf.keras.layers.Layer):
  """Self-attention over the recent items (newest last) -> [B, n, d].

  SASRec's block (Kang & McAuley 2018), read at the newest position: learned
  position embeddings, pre-norm multi-head attention over the valid items,
  a point-wise feed-forward, residuals. Unlike a GRU it can look back to any
  recent item directly, whatever lies between.
  """

  def __init__(self, dim: int, length: int, heads: int = 2,
               dropout: float = 0.1, **kwargs):
    super().__init__(**kwargs)
    self.positions = tf.keras.layers.Embedding(length, dim)
    self.norm1 = tf.keras.layers.LayerNormalization(epsilon=1e-6)
    self.attention = tf.keras.layers.MultiHeadAttention(
        heads, dim // heads, dropout=dropout)
    self.norm2 = tf.keras.layers.LayerNormalization(epsilon=1e-6)
    self.feed_forward = tf.keras.Sequential([
        tf.keras.layers.Dense(dim, activation="relu"),
        tf.keras.layers.Dense(dim)])
    self.final_norm = tf.keras.layers.LayerNormalization(epsilon=1e-6)

  def call(self, vectors, mask, training=False):
    """[B, n, d] -> [B, n, d], as a GRU with return_sequences: position i
    attends to the valid items up to i (the newest item's state is last)."""
    length = tf.shape(vectors)[1]
    x = vectors + self.positions(tf.range(length))[tf.newaxis]
    keep = tf.cast(mask, x.dtype)[..., tf.newaxis]
    x = x * keep
    causal = tf.cast(tf.linalg.band_part(tf.ones([length, length]), -1, 0),
                     tf.bool)
    pairs = causal[tf.newaxis] & mask[:, tf.newaxis, :]
    x = x + self.attention(self.norm1(x), x, attention_mask=pairs,
                           training=training)
    x = x + self.feed_forward(self.norm2(x))
    return self.final_norm(x)


class QueryTower(tf.keras.Model):
  """User id, profile, long- and short-term history -> unit query vector.

  Long-term interest is the mean of every history item kept; short-term is a
  GRU or self-attention (config.history_encoder) over the most recent
  `history_length` items (newest last). A learned
  gate decides, per user, how much each contributes next to the profile: a
  heavy user's recent binge says more than their average, a new user has only
  their profile.
  """

  def __init__(self, config: TrainerConfig, num_users: int,
               num_occupations: int, items: ItemRepresentation):
    super().__init__()
    self._config = config
    oov = preprocessing.OOV_BUCKETS
    d = config.embedding_dim
    self.user_embedding = tf.keras.layers.Embedding(num_users + oov, d)
    self.gender_embedding = tf.keras.layers.Embedding(
        len(features.GENDER_VOCAB) + oov, 4)
    self.occupation_embedding = tf.keras.layers.Embedding(
        num_occupations + oov, 8)
    self.items = items
    self.profile = tf.keras.layers.Dense(d, activation="relu")
    if config.use_history:
      if config.history_encoder == "attention":
        self.sequence = AttentionEncoder(d, config.history_length)
      elif config.history_encoder == "gru":
        self.sequence = tf.keras.layers.GRU(d, return_sequences=True)
      else:
        raise ValueError(f"history_encoder must be 'gru' or 'attention', "
                         f"not {config.history_encoder!r}")
      self.gate = tf.keras.layers.Dense(3, activation="softmax")
    self.hidden = tf.keras.layers.Dense(config.hidden_units, activation="relu")
    self.out = tf.keras.layers.Dense(d)

  def call(self, inputs):
    profile = self.profile(tf.concat([
        self.user_embedding(inputs[_xf(features.USER_ID)]),
        self.gender_embedding(inputs[_xf(features.GENDER)]),
        self.occupation_embedding(inputs[_xf(features.OCCUPATION)]),
        tf.expand_dims(inputs[_xf(features.AGE)], -1),
    ], axis=-1))
    parts = [profile]
    if self._config.use_history:
      history = inputs[_xf(features.HISTORY)]
      mask = history >= 0
      vectors = self.items(tf.maximum(history, 0),
                           inputs.get(HISTORY_TEXT_VECTORS),
                           inputs.get(HISTORY_TEXT_ROWS),
                           with_text=self._config.text_in_history,
                           has_text=inputs.get(HISTORY_HAS_TEXT))
      long_term = masked_mean(vectors, mask)
      n = self._config.history_length
      # The state after the newest item (history is newest last).
      short_term = self.sequence(vectors[:, -n:], mask=mask[:, -n:])[:, -1]
      has_recent = tf.reduce_any(mask[:, -n:], axis=1, keepdims=True)
      short_term = tf.where(has_recent, short_term, 0.0)
      weights = self.gate(tf.concat([profile, long_term, short_term], -1))
      fused = (weights[:, 0:1] * profile + weights[:, 1:2] * long_term +
               weights[:, 2:3] * short_term)
      parts = [profile, fused]
    x = self.hidden(tf.concat(parts, axis=-1))
    return tf.math.l2_normalize(self.out(x), axis=-1)


class CandidateTower(tf.keras.Model):
  """Item id (+ text), genres and year -> candidate vector.

  Unit vectors, except, outside training, items the model places from their
  text (no id row: new since training): their vectors are shortened
  to config.new_item_score_scale, which scales their cosine with any query.
  With config.new_item_text_share < 1, such an item's vector (before the
  scale) is a normalised mix of where its text puts it and of the
  unknown-id row's vector (trained through id dropout: a generic new item
  of its genres and year).
  The text map puts a new item where an id row like it would lie, but not
  how popular it is, and a new film is not yet what most users watch next;
  shortening lets new items in where they fit a user well and keeps them
  from crowding everyone's top 10 (see the config field).
  """

  def __init__(self, config: TrainerConfig, items: ItemRepresentation):
    super().__init__()
    self.items = items
    self.new_item_scale = (config.new_item_score_scale if config.use_text
                           else 1.0)
    # Only "new_items" places a new item by its text instead of the
    # unknown-id row; "every_item" adds the text to that row already.
    self.new_item_text_share = (
        config.new_item_text_share
        if config.use_text and items.text_for_new_items_only else 1.0)
    self.genres = tf.keras.layers.Dense(16, use_bias=False)
    self.hidden = tf.keras.layers.Dense(config.hidden_units, activation="relu")
    self.out = tf.keras.layers.Dense(config.embedding_dim)

  def _unit_vectors(self, inputs, text_vectors, text_ids):
    ids = inputs[_xf(features.ITEM_ID)]
    x = tf.concat([
        self.items(ids, text_vectors, text_ids),
        self.genres(inputs[_xf(features.GENRES)]),
        tf.expand_dims(inputs[_xf(features.YEAR)], -1),
    ], axis=-1)
    return tf.math.l2_normalize(self.out(self.hidden(x)), axis=-1)

  def call(self, inputs, training=False):
    ids = inputs[_xf(features.ITEM_ID)]
    vectors = self._unit_vectors(inputs, inputs.get(TEXT_VECTOR),
                                 inputs.get(TEXT_INDEX))
    if training:
      return vectors
    is_new = tf.equal(ids, self.items.oov_row)
    share = self.new_item_text_share
    if share < 1.0 and TEXT_VECTOR in inputs:
      # The unknown-id row's vector: how the model scores an item it
      # knows only by genres and year (what no_text serves a new item).
      unknown = self._unit_vectors(inputs, None, None)
      mixed = mix_new_item_placements(vectors, unknown, share)
      vectors = tf.where(is_new[..., tf.newaxis], mixed, vectors)
    if self.new_item_scale == 1.0:
      return vectors
    return scale_new_items(vectors, is_new, self.new_item_scale)


def mix_new_item_placements(text_placed, unknown_placed, share: float):
  """A new item's unit vector: share * where its text puts it + (1 - share)
  * its unknown-id row's vector, normalised (config.new_item_text_share)."""
  return tf.math.l2_normalize(share * text_placed +
                              (1.0 - share) * unknown_placed, axis=-1)


def scale_new_items(vectors, is_new, scale: float):
  """[N, d] candidate vectors with the rows where is_new [N] times scale."""
  factor = tf.where(is_new, tf.cast(scale, vectors.dtype),
                    tf.ones([], vectors.dtype))
  return vectors * factor[..., tf.newaxis]


class TextQueryTower(tf.keras.Model):
  """Free-text query vector (frozen BERT) -> unit vector in candidate space.

  Trained with item texts as queries for their own items, so `search` uses the
  same index as `recommend`.
  """

  def __init__(self, config: TrainerConfig):
    super().__init__()
    self.hidden = tf.keras.layers.Dense(config.hidden_units, activation="relu")
    self.out = tf.keras.layers.Dense(config.embedding_dim)

  def call(self, text_vectors):
    return tf.math.l2_normalize(self.out(self.hidden(text_vectors)), axis=-1)
